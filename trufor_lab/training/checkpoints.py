"""Training checkpoints, the exported (shippable) checkpoint, and the training log."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from trufor_lab.common.device import cuda_bf16_native, model_device
from trufor_lab.common.errors import escaped
from trufor_lab.common.files import atomic_torch_save, atomic_write_text, leftover_temporaries
from trufor_lab.model import MIT_B2, CheckpointError, TruFor, TruForConfig, extract_state_dict, read_checkpoint
from trufor_lab.model.checkpoint import check_state_dict, without_prefix
from trufor_lab.training.config import TrainConfig
from trufor_lab.training.phases import PHASES, trained_phases
from trufor_lab.viz.figures import new_figure

# --------------------------------------------------------------------------------------------
# checkpoints and log
# --------------------------------------------------------------------------------------------

#: Name of the one training checkpoint of a run folder (model, optimizer, step, RNG state).
LAST_CHECKPOINT = "last.pt"
#: Optimizer file written beside ``last.pt`` by earlier versions; removed by the next save.
OLD_OPTIM_FILE = "last_optim.pt"


def remove_leftovers(out: Path) -> None:
    """Remove from the run folder ``out`` what a write of its checkpoint or log killed outright
    left there (SIGKILL: ``.last.pt.*.tmp``, as large as the checkpoint, stayed through every
    resume and restart); only the temporaries of those two files, by their exact names."""
    for name in (LAST_CHECKPOINT, "log.jsonl"):
        for tmp in leftover_temporaries(out / name):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: harmless
                tmp.unlink()


def default_amp(device: torch.device) -> bool:
    """Whether a run on ``device`` trains under bfloat16 autocast when ``TrainConfig.amp`` does
    not say: on a CUDA GPU that computes bfloat16 natively."""
    return device.type == "cuda" and cuda_bf16_native(device)


def run_amp(cfg: TrainConfig, device: torch.device, state: dict | None, ckpt: Path) -> bool:
    """Whether the run trains under bfloat16 autocast: ``cfg.amp`` when set; a resumed run as it
    began (its checkpoint's ``meta.amp``: a CPU run resumed on a GPU turned autocast on mid-run,
    unsaid), with a note when ``device`` would choose otherwise; else :func:`default_amp`."""
    if cfg.amp is not None:  # a resume with another amp is refused (a setting the run was made with)
        return bool(cfg.amp)
    here, was = default_amp(device), state.get("amp") if state is not None else None
    if was is None or was == here:  # a new run, or one of an earlier version (nothing recorded)
        return here
    said, on = "with" if was else "without", f" (on {state['device']})" if state.get("device") else ""
    tqdm.write(  # the device is the checkpoint's text (untrusted), the path a user's: escaped
        escaped(
            f"note: {ckpt}: the run began {said} bfloat16 autocast{on}: it goes on {said} it on {device} "
            "(a restart takes this device's default)"
        ),
        file=sys.stderr,
    )
    return was


def phases_after(before: list[str] | None, phase: str) -> list[str] | None:
    """The phases trained once ``phase`` is trained on weights trained in ``before`` (``None``:
    not known, and so still not known after)."""
    return None if before is None else [p for p in PHASES if p in before or p == phase]


def save_checkpoint(
    model: TruFor,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    step: int,
    out: Path,
    init_digest: str | None = None,
    trained: list[str] | None = None,
    amp: bool | None = None,
) -> Path:
    """Write model, optimizer, step and RNG state as ONE atomic file, ``out/last.pt``;
    ``init_digest``: what the run started from (``meta.init_sha256``; ``"none"``: no init);
    ``trained``: the phases its weights were trained in (``meta.trained``; a load says when the
    confidence or detection head never was: its output is then that of random weights); ``amp``:
    whether it trains under bfloat16 autocast (``meta.amp``, with ``meta.device``: a resume keeps it).

    One file renamed into place: a crash at any moment leaves either the previous complete
    checkpoint or the new one, never a model from one step with an optimizer from another.
    Only tensors, plain numbers and containers: loadable with ``weights_only=True``.
    """
    ckpt = {
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": model.cfg.to_dict(),
        "kind": "custom",
        "meta": {
            "step": step,
            "phase": cfg.phase,
            "seed": cfg.seed,
            "train_config": cfg.to_plain(),
            **({"init_sha256": init_digest} if init_digest is not None else {}),
            **({"trained": list(trained)} if trained is not None else {}),
            **({"amp": bool(amp), "device": str(model_device(model))} if amp is not None else {}),
        },
        "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
    }
    path = atomic_torch_save(out / LAST_CHECKPOINT, ckpt)
    stale = out / OLD_OPTIM_FILE
    if stale.exists():
        stale.unlink()
    return path


def read_training_state(path: str | os.PathLike, obj: object = None) -> dict:
    """``{"step", "optimizer", "rng", "train_config", "init_sha256", "trained", "amp", "device"}``
    of a training checkpoint (the settings it was trained with, the digest of the init it started
    from, the phases its weights were trained in, whether under bfloat16 autocast and on which
    device; ``None`` when not recorded), read on the CPU like any checkpoint
    (``Optimizer.load_state_dict`` moves the state to the parameters' device).

    A checkpoint of an earlier version keeps its optimizer in ``last_optim.pt`` beside it: taken
    only when it was saved at the same step as the model, else refused with one line. ``obj``:
    ``path`` as already read with ``read_checkpoint`` (read once for the state and the weights).
    """
    path = Path(path)
    if obj is None:  # untrusted like any checkpoint; the optimizer moves its state itself
        obj = read_checkpoint(path)
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or "step" not in meta:
        raise ValueError(f"{path}: not a training checkpoint (no meta.step); cannot resume from it")
    try:
        step = int(meta["step"])
    except (TypeError, ValueError):
        raise ValueError(
            f"{path}: its meta.step is not a step number ({meta['step']!r:.40}); cannot resume from it"
        ) from None
    plain = meta.get("train_config") if isinstance(meta.get("train_config"), dict) else None
    init = meta.get("init_sha256") if isinstance(meta.get("init_sha256"), str) else None
    amp = meta.get("amp") if isinstance(meta.get("amp"), bool) else None
    device = meta.get("device") if amp is not None and isinstance(meta.get("device"), str) else None
    if "optimizer" in obj:
        opt = obj["optimizer"]
        if not isinstance(opt, dict) or not {"state", "param_groups"} <= set(opt):
            raise ValueError(f"{path}: its optimizer entry is not an optimizer state; cannot resume from it")
        rng = obj.get("rng") if isinstance(obj.get("rng"), dict) else {}
        return {
            "step": step,
            "optimizer": opt,
            "rng": rng,
            "train_config": plain,
            "init_sha256": init,
            "trained": trained_phases(obj),
            "amp": amp,
            "device": device,
        }
    old = path.with_name(OLD_OPTIM_FILE)
    if old.is_file():
        state = read_checkpoint(old)
        if int(state.get("step", -1)) == step:
            return {
                "step": step,
                "optimizer": state["optimizer"],
                "rng": {},
                "train_config": plain,
                "init_sha256": init,
                "trained": None,
                "amp": amp,
                "device": device,
            }
        raise ValueError(
            f"{path}: model saved at step {step} but {old.name} at step {state.get('step')} "
            "(interrupted save); cannot resume consistently: start again without resume"
        )
    raise ValueError(f"{path}: no optimizer state saved with the model; cannot resume from it")


def _compact(key: str, v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``v`` in ``dtype`` where that keeps every value finite (Noiseprint++ always as stored)."""
    if not v.is_floating_point() or key.startswith("dncnn."):
        return v
    small = v.to(dtype)
    return small if bool(torch.isfinite(small).all()) else v


def _plain_meta(obj: object, meta: dict | None, src: str | os.PathLike) -> dict:
    """``src``'s ``meta`` updated with ``meta``, as plain JSON data (a tensor or another object in
    it was a bare TypeError naming no file)."""
    old = obj.get("meta") if isinstance(obj, dict) else None
    if old is not None and not isinstance(old, dict):
        raise CheckpointError(f"{src}: its 'meta' entry is not a dict ({type(old).__name__})")
    try:
        kept = json.loads(json.dumps(old or {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{src}: its 'meta' entry is not plain data ({e})") from None
    try:
        return {**kept, **json.loads(json.dumps(dict(meta or {})))}
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta for {src}'s export is not plain data ({e})") from None


#: The ``kind`` an exported checkpoint may say it is (a file with a ``config`` is never the official one).
EXPORT_KINDS = ("demo", "custom")


def _export_dtype(dtype: object) -> torch.dtype:
    """``dtype`` as a floating torch dtype (a name such as ``"float16"`` taken too): an integer,
    bool or complex export was written and then refused by every load; a string was
    'Invalid device string'."""
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        dtype = getattr(torch, dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.itemsize < 2:
        raise ValueError(f"dtype must be a floating dtype such as torch.float16 or torch.float32, got {dtype!r}")
    return dtype


def export_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    kind: str = "demo",
    dtype: torch.dtype = torch.float16,
    meta: dict | None = None,
) -> Path:
    """Write ``src``'s weights as a compact checkpoint (``kind``, ``meta`` plain data) in ``dtype``.

    Noiseprint++ (``dncnn.*``) stays float32: it is precision-sensitive; so does any tensor
    whose values ``dtype`` cannot hold (float16 overflows above 65504). ``load_trufor`` casts the
    rest back to float32 when loading. The weights are checked against their config first (a
    file without one is the official MiT-B2 layout), so a file that would not load is not written.
    ``kind``: ``"demo"`` or ``"custom"`` (what ``load_trufor`` reads of a file with a ``config``);
    ``dtype``: a floating dtype (``torch.float16``, ``torch.bfloat16``, ``torch.float32``, ...).
    """
    dtype = _export_dtype(dtype)
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        # a run's last.pt exported over itself lost its optimizer state and float32 weights: no resume
        raise ValueError(f"{dst}: the export would replace the checkpoint it is made from; give another path")
    if kind not in EXPORT_KINDS:  # 'official' was written into the file; any word was
        raise ValueError(f"kind must be one of {', '.join(map(repr, EXPORT_KINDS))}, got {kind!r}")
    obj = read_checkpoint(src)
    sd = extract_state_dict(obj, str(src))
    raw_cfg = obj.get("config") if isinstance(obj, dict) else None
    try:
        cfg = TruForConfig.from_dict(raw_cfg) if raw_cfg is not None else MIT_B2
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{src}: its 'config' entry is not a TruFor config ({e})") from None
    with torch.device("meta"):
        skeleton = TruFor(cfg)
        sd = without_prefix(sd, skeleton.state_dict().keys())  # as load_trufor reads it ('model.': was refused)
        check_state_dict(skeleton, sd, str(src))
    sd = {k: _compact(k, v, dtype).contiguous() for k, v in sd.items()}
    out = {"state_dict": sd, "config": cfg.to_dict(), "kind": kind, "meta": _plain_meta(obj, meta, src)}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(dst, out)
    return dst


def read_log(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``log.jsonl`` (or of the ``log.jsonl`` inside a run folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "log.jsonl"
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a row cut by a crash while it was written: the run resumes
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):  # anything else is not a log row
            rows.append(row)
    return rows


def truncate_log(path: Path, step: int) -> None:
    rows = [r for r in read_log(path) if r["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def plot_log(path: str | os.PathLike, smooth: int = 20):
    """Loss curves of a run (raw and running mean over ``smooth`` steps of the finite values: a
    missing or NaN one counted as 0 pulled the mean down; over half the logged steps at most, so
    that the mean is a line, and none under 4 steps), one panel per quantity any row logs;
    returns the matplotlib Figure."""
    rows = read_log(path)
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("step", "phase", "time", "lr")))
    fig = new_figure(figsize=(4.2 * max(1, len(keys)), 3.2), layout="constrained")
    axes = fig.subplots(1, max(1, len(keys)), squeeze=False)[0]
    steps = np.array([r["step"] for r in rows])
    for ax, k in zip(axes, keys):
        v = np.array([r.get(k, np.nan) for r in rows], dtype=float)
        ax.plot(steps, v, alpha=0.35, lw=0.8, label="per step")
        n = min(smooth, len(v) // 2)  # a window as long as the run left one point: a legend entry, no line
        if n >= 2:
            ok = np.isfinite(v)
            total = np.convolve(np.where(ok, v, 0.0), np.ones(n), mode="valid")
            count = np.convolve(ok.astype(float), np.ones(n), mode="valid")
            c = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            ax.plot(steps[n - 1 :], c, lw=1.6, label=f"mean of {n}")
        ax.set_xlabel("step")
        ax.set_title(f"{rows[0].get('phase', '')}: {k}" if rows else k)
        ax.legend(fontsize=7)
    if not rows:
        axes[0].set_title("empty log")
    return fig
