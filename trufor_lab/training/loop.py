"""Training TruFor (or a smaller variant) with the paper's three-phase recipe.

Phases, each run on its own and freezing what the paper freezes:

- ``"localization"``: dual encoder + anomaly decoder, loss ``lam * weighted CE + (1 - lam) * Dice``;
- ``"confidence"``: confidence decoder only, MSE to the true-class probability of the (frozen)
  anomaly map;
- ``"detection"``: detection MLP only, BCE on the confidence-pooled statistics.

Noiseprint++ is always the official DnCNN, frozen (eval mode, no gradient, exact float32).
Automatic mixed precision (bfloat16, CUDA only) covers the encoder and decoders, never the DnCNN
nor the losses.

Data: forgeries made on the fly (:mod:`trufor_lab.lab.forgeries`) from pristine images (a folder, a
list of arrays, or the built-in scikit-image + synthetic scenes), the pristine crops themselves
as negatives, and optionally user datasets with masks (:class:`trufor_lab.lab.datasets.Dataset`).
Augmentations keep the JPEG 8x8 grid: crops start at multiples of 8, horizontal/vertical flips
of crops whose sides are multiples of 8 (a flip maps block boundaries onto block boundaries and
only changes the sign of DCT coefficients, so the quantisation grid is kept); no 90-degree
rotations (they transpose the quantisation tables) and no resizing.

>>> from trufor_lab.training import DEMO_MODEL, TrainConfig, train, plot_log
>>> small = dict(model=DEMO_MODEL, batch_size=2, crop=64)     # a taste: MiT-B2, crop 256, 1000s of steps for real
>>> r = train(TrainConfig(out_dir="runs/loc", steps=4, **small))
>>> r2 = train(TrainConfig(phase="confidence", init=r.checkpoint, out_dir="runs/conf", steps=2, **small))
>>> plot_log(r.log)

Every run writes ``last.pt`` (one atomic file, ``weights_only``-loadable: the model's tensors
and config, the optimizer state, the step and the RNG state) and ``log.jsonl``; ``resume=True``
continues from ``last.pt`` with the same step count and log (a crash at any moment leaves a
complete checkpoint of one step). ``train`` restores torch's thread count and global RNG state
when it returns. Each step's batch and dropout depend only on
``(seed, step)``, so an interrupted and resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import threading
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from trufor_lab.common.device import resolve_device
from trufor_lab.common.files import atomic_savez
from trufor_lab.common.image_files import open_unwarned, stored_size
from trufor_lab.model import TruFor, read_checkpoint
from trufor_lab.training.checkpoints import (
    phases_after,
    read_log,
    read_training_state,
    remove_leftovers,
    run_amp,
    save_checkpoint,
    truncate_log,
)
from trufor_lab.training.config import TrainConfig, TrainResult, file_digest, stream_fingerprint
from trufor_lab.training.losses import phase_loss
from trufor_lab.training.phases import PHASES, set_phase, start_model
from trufor_lab.training.scenes import builtin_images, read_folder
from trufor_lab.training.streams import ForgeryStream, grid_crop, say_no_splices

# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def train_device(name: str | None) -> torch.device:
    return resolve_device(name)


def _images(cfg: TrainConfig) -> list[np.ndarray]:
    if cfg.pristine is None:
        return [] if cfg.datasets and cfg.dataset_fraction >= 1 else builtin_images("train")
    folder = isinstance(cfg.pristine, (str, os.PathLike))  # read without the run's folder inside it
    images = read_folder(cfg.pristine, skip=cfg.out_dir) if folder else [np.asarray(a) for a in cfg.pristine]
    if folder:
        _say_small(cfg.pristine, [im.shape[:2] for im in images], cfg)
    say_no_splices(cfg.pristine if folder else "TrainConfig.pristine", len(images), cfg)
    return images


def _say_small(source: object, sizes: Sequence[tuple[int, int]], cfg: TrainConfig) -> None:
    """A note on the pictures (``(height, width)`` each) smaller than the examples cut from them:
    trained on mirror-padded crops with seams, unsaid (a dataset's forgeries, and pictures smaller
    than a pool's precomputed side but not than the crop, were not said)."""
    side = (cfg.precompute_size or cfg.crop) if cfg.precompute else cfg.crop
    small = [hw for hw in sizes if min(hw) < side]
    if small:
        h, w = min(small, key=min)
        what = f"--crop {cfg.crop}" if side == cfg.crop else f"the precomputed examples' side {side} (precompute_size)"
        tqdm.write(
            f"note: {source}: {len(small)} of {len(sizes)} pictures are smaller than {what} "
            f"(smallest {w}x{h}): their crops are padded by mirroring",
            file=sys.stderr,
        )


def _stored_sizes(paths: Sequence[object]) -> list[tuple[int, int]]:
    """``(height, width)`` of image files as stored, from their headers (under the project's pixel
    limit, as :func:`load_image` read them: Pillow's own refused a 182 MP picture with a traceback)."""
    sizes = []
    for p in paths:
        with open_unwarned(p) as im:
            w, h = stored_size(im)
        sizes.append((h, w))
    return sizes


@torch.no_grad()
def _noiseprint(model: TruFor, rgb: torch.Tensor) -> torch.Tensor:
    return model.dncnn(rgb)


def _to_batch(examples: Sequence[tuple[np.ndarray, np.ndarray, int]], device: torch.device):
    rgb = torch.from_numpy(np.stack([e[0] for e in examples])).permute(0, 3, 1, 2).float().div_(256.0)
    mask = torch.from_numpy(np.stack([e[1] for e in examples]).astype(bool))
    label = torch.tensor([e[2] for e in examples])
    return rgb.to(device), mask.to(device), label.to(device)


def _weights_digest(module: torch.nn.Module) -> str:
    """A short digest of a module's weights (which Noiseprint++ computed a pool's maps)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:8]


def _pool_digest(arrays: dict[str, np.ndarray]) -> str:
    """The sha256 of a pool's arrays (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}{a.shape}{a.dtype.str}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class _Pool:
    """Examples generated once with their Noiseprint++ maps; batches are grid-aligned crops."""

    def __init__(
        self, model: TruFor, stream: ForgeryStream, cfg: TrainConfig, device: torch.device, out: Path, progress: bool
    ) -> None:
        size = cfg.precompute_size or cfg.crop
        key = stream_fingerprint(stream)  # another stream with the same seed never reuses this pool
        maps = _weights_digest(model.dncnn)  # ... nor a run with other Noiseprint++ weights
        cache = Path(cfg.cache_dir or out) / f"pool_{cfg.seed}_{cfg.precompute}_{size}_{key}_{maps}.npz"
        cache.parent.mkdir(parents=True, exist_ok=True)
        if cache.is_file() and self._read(cache, cfg.precompute, size):
            return
        rgbs, masks, labels, nps = [], [], [], []
        # oneDNN convolutions (CPU) are ~2.5x faster and ~1e-5 from the exact map: fine for training
        onednn, model.dncnn.onednn = model.dncnn.onednn, True
        try:
            for i in tqdm(range(cfg.precompute), desc="precomputing Noiseprint++", disable=not progress):
                rgb, mask, label = stream.example(np.random.default_rng([cfg.seed, 7, i]), size)
                t, _, _ = _to_batch([(rgb, mask, label)], device)
                nps.append(_noiseprint(model, t)[0, 0].cpu().numpy().astype(np.float32))
                rgbs.append(rgb), masks.append(mask), labels.append(label)
        finally:
            model.dncnn.onednn = onednn
        self.rgb, self.mask = np.stack(rgbs), np.stack(masks)
        self.label, self.np = np.array(labels), np.stack(nps)
        arrays = dict(rgb=self.rgb, mask=self.mask, label=self.label, np=self.np)
        atomic_savez(cache, {**arrays, "sha256": np.array(_pool_digest(arrays))})

    def _read(self, cache: Path, n: int, size: int) -> bool:
        """Whether ``cache`` holds the pool as written (its arrays, their shapes and digest); if
        not, a note says so and the pool is computed again (a pool cut short was a traceback, one
        changed since trained on, unsaid; one of an earlier version has no digest to check)."""
        shapes = {"rgb": (n, size, size, 3), "mask": (n, size, size), "label": (n,), "np": (n, size, size)}
        try:
            with np.load(cache) as z:
                arrays = {k: z[k] for k in shapes}
                digest = str(z["sha256"]) if "sha256" in z.files else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)  # KeyError's str is quoted
            why = f"cannot be read ({' '.join(text.split())[:120]})"
        else:
            bad = [k for k, a in arrays.items() if a.shape != shapes[k]]
            why = (
                f"holds arrays of other shapes ({', '.join(bad)})"
                if bad
                else "has no digest (an earlier version's)"
                if digest is None
                else "is not the pool written (its digest differs)"
                if digest != _pool_digest(arrays)
                else None
            )
            if why is None:
                self.rgb, self.mask, self.label, self.np = arrays["rgb"], arrays["mask"], arrays["label"], arrays["np"]
                return True
        tqdm.write(f"note: {cache}: the precomputed pool {why}: computed again", file=sys.stderr)
        return False

    def batch(self, rng: np.random.Generator, n: int, crop: int, device: torch.device):
        ex, nps = [], []
        for _ in range(n):
            i = int(rng.integers(len(self.rgb)))
            rgb, mask, npm = grid_crop(rng, [self.rgb[i], self.mask[i], self.np[i]], crop)
            ex.append((rgb, mask, int(self.label[i] and mask.any())))  # forged region may be cropped out
            nps.append(npm)
        rgb, mask, label = _to_batch(ex, device)
        return rgb, torch.from_numpy(np.stack(nps))[:, None].to(device), mask, label


def _lr(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up then cosine decay to 5% of ``lr`` (``step`` counts from 0)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) one phase for ``cfg.steps`` steps in total; returns a :class:`TrainResult`.

    Torch's global thread count and RNG state (CPU and CUDA) are restored on return.
    """
    threads, rng_cpu = torch.get_num_threads(), torch.get_rng_state()
    on_gpu = torch.cuda.is_initialized() or (torch.cuda.is_available() and train_device(cfg.device).type == "cuda")
    rng_cuda = torch.cuda.get_rng_state_all() if on_gpu else None  # read before the run seeds them
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng_cpu)
        if rng_cuda is not None:
            torch.cuda.set_rng_state_all(rng_cuda)


#: Settings a resumed run may change (how long and where it runs, not what it learns).
_RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "max_seconds",
        "progress",
        "num_threads",
        "device",
        "checkpoint_every",
        "resume",
        "out_dir",
        "init",
        "cache_dir",
    }
)


#: What to do after a NaN or Inf loss (the learning rate is a setting a run cannot resume with).
NAN_ADVICE = "start again with a lower lr (resume=False, or another out_dir)"


def _init_digest(cfg: TrainConfig) -> str | None:
    """What the run starts from: the sha256 of ``init``'s bytes, ``"none"`` without one, ``None``
    when the file cannot be read (a fresh start then fails on it with its own message)."""
    if cfg.init is None:
        return "none"
    try:
        return file_digest(cfg.init)
    except OSError:
        return None


def _init_changed(ckpt: Path, state: dict, cfg: TrainConfig, now: str | None) -> bool:
    """Whether the run in ``ckpt`` started from another ``init`` than the one given now (a
    previous phase trained further since): it then starts again, as :func:`train_chain` restarts
    a phase after one that trained further (resuming returned heads fitted to the old network).
    Not when no init is given now, nor for a run of an earlier version (nothing recorded)."""
    was = state.get("init_sha256")
    if cfg.init is None or now is None or was is None or was == now:
        return False
    tqdm.write(
        f"note: {ckpt}: its init {cfg.init} is not the one this run started from (trained further "
        f"since?): {cfg.phase} starts again from it",
        file=sys.stderr,
    )
    return True


def _check_same_run(ckpt: Path, stored: dict | None, cfg: TrainConfig, at_step: int | None = None) -> None:
    """Refuse to resume a run made with other settings: it would silently return the old model
    (or continue it with a mix of both)."""
    if stored is None:
        return
    now = json.loads(json.dumps(cfg.to_plain(), default=str))
    was = json.loads(json.dumps(stored, default=str))
    old, new = str(was.get("pristine")), str(now.get("pristine"))
    if old.endswith(" arrays>") and new.startswith(old[:-1] + ", sha256 "):
        was["pristine"] = now["pristine"]  # an earlier version recorded the count only: cannot tell more
    if isinstance(was.get("pristine"), str) and not was["pristine"].startswith("<"):  # a folder as typed
        path, mark, digest = was["pristine"].rpartition(" <") if " <" in was["pristine"] else (was["pristine"], "", "")
        was["pristine"] = os.path.realpath(path) + mark + digest  # now recorded resolved
    # earlier versions recorded a folder by its path and a stream by its description only
    for key, mark in (("pristine", " <"), ("stream", " #")):
        if isinstance(was.get(key), str) and str(now.get(key)).startswith(was[key] + mark) and mark not in was[key]:
            was[key] = now[key]
    old_sets, new_sets = was.get("datasets"), now.get("datasets")
    if (  # an earlier version recorded a dataset by its name only
        isinstance(old_sets, list)
        and isinstance(new_sets, list)
        and len(old_sets) == len(new_sets)
        and all(
            isinstance(o, str) and " <" not in o and str(n).startswith(o + " <") for o, n in zip(old_sets, new_sets)
        )
    ):
        was["datasets"] = new_sets
    diff = sorted(k for k in set(now) | set(was) if k not in _RESUMABLE_CHANGES and now.get(k) != was.get(k))
    if not diff and at_step is not None and isinstance(now.get("steps"), int) and at_step >= now["steps"]:
        tqdm.write(
            f"note: {ckpt}: the run is at step {at_step} already (steps {now['steps']}): nothing to train",
            file=sys.stderr,
        )
    elif not diff and was.get("steps") not in (None, now.get("steps")):  # allowed, but not without a word
        tqdm.write(
            f"note: {ckpt}: resumed with steps {was.get('steps')} -> {now.get('steps')}: the learning-rate "
            "schedule (cosine over the run's steps) continues on the new length",
            file=sys.stderr,
        )
    if diff:
        shown = ", ".join(f"{k} {was.get(k)!r} -> {now.get(k)!r}" for k in diff[:4])
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise ValueError(
            f"{ckpt}: this folder holds a run with other settings ({shown}{more}); "
            "use another out_dir, or resume=False to start over"
        )


def _train(cfg: TrainConfig) -> TrainResult:
    t0 = time.time()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = train_device(cfg.device)
    out = Path(cfg.out_dir)
    ckpt, log_path = out / "last.pt", out / "log.jsonl"
    held = read_checkpoint(ckpt) if cfg.resume and ckpt.is_file() else None  # read once: state and weights
    state = read_training_state(ckpt, held) if held is not None else None
    init_digest = _init_digest(cfg)
    if state is not None and _init_changed(ckpt, state, cfg, init_digest):
        state = held = None
    resuming = state is not None
    if not resuming and cfg.init is None and cfg.phase != PHASES[0]:  # heads on a random frozen network
        raise ValueError(
            f"{out}: the {cfg.phase} phase trains on a trained localization network and there is no run "
            "here to resume: give init (the previous phase's last.pt)"
        )
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    torch.manual_seed(cfg.seed)  # reproducible initialisation
    source = ckpt if resuming else cfg.init
    # model=None with a checkpoint: its own architecture (its config entry, else its weights' size)
    arch = None if cfg.model is None and source is not None else cfg.model_config()
    model, init_trained = start_model(arch, source, cfg.noiseprint_weights, held)
    del held  # its tensors are not kept beside the model's
    if source is not None and cfg.model is not None and model.cfg != cfg.model_config():
        raise ValueError(
            f"{source}: its architecture differs from TrainConfig.model (leave model=None to take its own)"
        )
    if cfg.model is None:  # the architecture taken from the checkpoint is the one recorded
        cfg = dataclasses.replace(cfg, model=model.cfg)
    model.to(device)
    params = set_phase(model, cfg.phase)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, saved = 0, None  # saved: the step of the checkpoint on disk
    # the phases these weights are trained in, recorded: a model exported from a localization run
    # gave the score and confidence of random heads, unsaid
    trained = phases_after([] if cfg.init is None else init_trained, cfg.phase)
    if state is not None:
        trained = state.get("trained")  # the record of the run resumed
        _check_same_run(ckpt, state.get("train_config"), cfg, at_step=state.get("step"))
        opt.load_state_dict(state["optimizer"])
        step = saved = state["step"]
        init_digest = state.get("init_sha256")  # the init the run started from, not today's file
        if isinstance(state["rng"].get("torch"), torch.Tensor):
            torch.set_rng_state(state["rng"]["torch"].cpu())
        truncate_log(log_path, step)
    amp = run_amp(cfg, device, state, ckpt)  # a resume on another device keeps the run's precision
    stream = cfg.stream or ForgeryStream(
        _images(cfg),
        cfg.datasets,
        forged_fraction=cfg.forged_fraction,
        dataset_fraction=cfg.dataset_fraction,
        jpeg_prob=cfg.jpeg_prob,
        jpeg_quality=cfg.jpeg_quality,
        flips=cfg.flips,
        camera=cfg.camera,
        kinds=cfg.kinds,
        traceable=cfg.traceable,
        progress=cfg.progress,
    )
    for ds in cfg.datasets if cfg.stream is None else ():  # their pictures that are checked and used
        _say_small(
            getattr(ds, "name", "dataset"), _stored_sizes([s.image_path for d, s in stream.samples if d is ds]), cfg
        )
    if state is None:  # a restart, once its inputs are read (a typo in them deleted the old run first):
        # the old run's log, checkpoint and pools go together (a resume after an interrupted restart
        # continued the old run, logged as the new one; a pool made from files since changed was reused)
        for stale in (log_path, ckpt, *out.glob("pool_*.npz")):
            if stale.exists():
                stale.unlink()
    pool = _Pool(model, stream, cfg, device, out, cfg.progress) if cfg.precompute and step < cfg.steps else None
    last = {"loss": float("nan")}
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.phase}", disable=not cfg.progress)
    with open(log_path, "a") as log, _finish_step_on_interrupt() as stop:
        while step < cfg.steps:
            rng = np.random.default_rng([cfg.seed, step])
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            if pool is not None:
                rgb, npm, mask, label = pool.batch(rng, cfg.batch_size, cfg.crop, device)
            else:
                rgb, mask, label = _to_batch([stream.example(rng, cfg.crop) for _ in range(cfg.batch_size)], device)
                npm = _noiseprint(model, rgb)
            lr = _lr(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr
            loss, parts = phase_loss(model, cfg.phase, rgb, npm, mask, label, cfg.class_weights, cfg.ce_lambda, amp)
            if not torch.isfinite(loss):
                # stop before the update: the weights and the last checkpoint stay the good ones
                kept = "no checkpoint yet" if saved is None else f"the checkpoint of step {saved} is kept"
                raise FloatingPointError(
                    f"{out}: the {cfg.phase} loss is {float(loss.detach())} at step {step + 1} (lr {lr:g}); "
                    f"{kept}: {NAN_ADVICE}"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            last = parts
            log.write(
                json.dumps({"step": step, "phase": cfg.phase, **parts, "lr": lr, "time": round(time.time() - t0, 3)})
                + "\n"
            )
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
            over = cfg.max_seconds is not None and time.time() - t0 > cfg.max_seconds
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or over or stop:
                save_checkpoint(model, opt, cfg, step, out, init_digest, trained, amp)
                saved = step
            if stop:  # Ctrl-C: the step in progress was finished and saved, nothing is lost
                bar.close()
                raise KeyboardInterrupt(f"{out}: interrupted; saved at step {step}, run again to resume")
            if over:
                break
    bar.close()
    if not ckpt.is_file():
        save_checkpoint(model, opt, cfg, step, out, init_digest, trained, amp)
    if np.isnan(last["loss"]):
        rows = read_log(log_path)
        last = rows[-1] if rows else last
    return TrainResult(
        out, ckpt, log_path, cfg.phase, step, float(last["loss"]), time.time() - t0, model.eval(), trained
    )


class _StopFlag:
    """Truthy once Ctrl-C was pressed (see :func:`_finish_step_on_interrupt`)."""

    def __init__(self) -> None:
        self.pressed = False

    def __bool__(self) -> bool:
        return self.pressed


@contextlib.contextmanager
def _finish_step_on_interrupt() -> Iterator[_StopFlag]:
    """Ctrl-C (SIGINT) during training sets a flag instead of raising mid-step, so the loop
    finishes and saves the step in progress (steps since the last checkpoint were lost, and the
    log described steps no checkpoint held); a second Ctrl-C stops at once. The handler is
    restored on exit; outside the main thread nothing changes."""
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        if flag.pressed:
            raise KeyboardInterrupt
        flag.pressed = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def train_phases(
    cfg: TrainConfig, steps: dict[str, int] | None = None, overrides: dict[str, dict] | None = None
) -> dict[str, TrainResult]:
    """All three phases in sequence, each in ``out_dir/<phase>`` starting from the previous one's
    checkpoint; ``steps`` per phase (default ``cfg.steps`` for localization, a quarter for the
    others); ``overrides``: other settings per phase (``{"detection": {"lr": 3e-3}}``)."""
    steps = steps or {
        "localization": cfg.steps,
        "confidence": max(1, cfg.steps // 4),
        "detection": max(1, cfg.steps // 4),
    }
    return train_chain(
        [
            dataclasses.replace(
                cfg,
                phase=phase,
                steps=steps[phase],
                out_dir=str(Path(cfg.out_dir) / phase),
                **(overrides or {}).get(phase, {}),
            )
            for phase in PHASES
            if steps.get(phase)
        ]
    )


def train_chain(cfgs: Sequence[TrainConfig]) -> dict[str, TrainResult]:
    """Phases in order, each from the previous one's checkpoint (the first from its own
    ``init``), each resumed from its folder when it can be. A phase whose predecessor trained
    further in this call starts again: its old run built on the old checkpoint (a rerun that
    finished a capped localization got the old confidence and detection back, unsaid)."""
    results: dict[str, TrainResult] = {}
    init = cfgs[0].init if cfgs else None
    moved = False  # an earlier phase trained in this call: a later one's old checkpoint is stale
    for cfg in cfgs:
        out = Path(cfg.out_dir)
        rows = read_log(out) if (out / "last.pt").is_file() else []
        before = rows[-1].get("step") if rows else None
        resume = cfg.resume and not moved
        if cfg.resume and moved and before is not None:
            tqdm.write(
                f"note: {out}: the phase before it trained further in this call: {cfg.phase} starts again "
                "from the new checkpoint (its old run built on the old one)",
                file=sys.stderr,
            )
        r = train(dataclasses.replace(cfg, init=init, resume=resume))
        results[cfg.phase] = r
        init = str(r.checkpoint)
        moved = moved or not resume or before is None or r.step != before
    return results


#: Architecture of the shipped demo model (between the tiny test model and MiT-B0).
