"""Training at toy scale on the CPU: phases, freezing, overfitting, checkpoint/resume, loading."""

from __future__ import annotations

import dataclasses
import json

import re

import numpy as np
import pytest
import torch
from PIL import Image

from types import SimpleNamespace

from trufor_lab import training
from trufor_lab.model import CheckpointError, TruForConfig
from trufor_lab.training import checkpoints as training_checkpoints
from trufor_lab.training import loop, losses, streams
from trufor_lab.training import phases as training_phases

# The public training API plus the few internals these toy-scale tests drive directly.
T = SimpleNamespace(
    **{n: getattr(training, n) for n in training.__all__},
    _grid_crop=streams.grid_crop,
    _noiseprint=loop._noiseprint,
    _to_batch=loop._to_batch,
    _official_noiseprint=training_phases.official_noiseprint,
    phase_loss=losses.phase_loss,
    evaluate=training.score_heldout,
)

TINY = TruForConfig(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), decoder_embed_dim=32)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest's: one torch thread per module


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [T.synthetic_scene(96, i) for i in range(4)]


_CACHE: list = []  # one precomputed pool (Noiseprint++ maps) shared by the module's runs


@pytest.fixture(scope="module", autouse=True)
def _pool_cache(tmp_path_factory):
    _CACHE.append(tmp_path_factory.mktemp("pool"))
    yield
    _CACHE.pop()


def _cfg(tmp, images, **kw) -> T.TrainConfig:
    base = dict(
        model=TINY,
        batch_size=2,
        crop=64,
        pristine=images,
        precompute=6,
        precompute_size=64,
        cache_dir=str(_CACHE[-1]),
        progress=False,
        lr=1e-3,
        warmup=1,
        checkpoint_every=2,
    )
    return T.TrainConfig(**{**base, **kw})


def _sd(path) -> dict[str, torch.Tensor]:
    from trufor_lab.model import extract_state_dict, read_checkpoint

    return extract_state_dict(read_checkpoint(path))


def _same(a, b, prefixes) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefixes))


@pytest.fixture(scope="module")
def phases(tmp_path_factory, images):
    """The three phases in sequence, a few steps each."""
    tmp = tmp_path_factory.mktemp("phases")
    return T.train_phases(
        _cfg(tmp, images, out_dir=str(tmp / "run")), {"localization": 3, "confidence": 3, "detection": 3}
    ), tmp


def test_phases_freeze_what_they_should(phases):
    res, _ = phases
    official = T._official_noiseprint(None)
    sds = {p: _sd(r.checkpoint) for p, r in res.items()}
    for p, sd in sds.items():
        assert res[p].step == 3 and np.isfinite(res[p].final_loss)
        assert all(torch.equal(sd["dncnn." + k], v) for k, v in official.items()), p  # bit-identical
    loc, conf, det = sds["localization"], sds["confidence"], sds["detection"]
    assert _same(loc, conf, ("backbone.", "decode_head.", "detection."))
    assert not _same(loc, conf, ("decode_head_conf.",))
    assert _same(conf, det, ("backbone.", "decode_head.", "decode_head_conf."))
    assert not _same(conf, det, ("detection.",))


def test_a_model_of_the_three_phases_records_them_and_is_not_said_untrained(phases):
    import trufor_lab as tl

    res, _ = phases
    assert [r.trained for r in res.values()] == [["localization"], ["localization", "confidence"], list(T.PHASES)]
    m = tl.load_trufor(
        T.export_checkpoint(res["detection"].checkpoint, res["detection"].out_dir / "x.pt"), kind="custom"
    )
    assert m.weights_info.untrained == "" and "never trained" not in str(tl.banner(m))
    assert tl.load_trufor(res["confidence"].checkpoint, kind="custom").weights_info.untrained == "detection"


def test_set_phase_trainable_sets():
    m = T.build_model(TINY)
    for phase, mods in T.TRAINABLE.items():
        params = T.set_phase(m, phase)
        names = {n.split(".")[0] for n, p in m.named_parameters() if p.requires_grad}
        assert names == set(mods) and len(params) > 0
        assert not m.dncnn.training and not any(p.requires_grad for p in m.dncnn.parameters())


def test_localization_overfits_a_fixed_batch(images):
    torch.manual_seed(0)
    m = T.build_model(TINY)
    opt = torch.optim.AdamW(T.set_phase(m, "localization"), lr=2e-3)
    stream = T.ForgeryStream(images, forged_fraction=1.0, flips="none")
    rng = np.random.default_rng(0)
    rgb, mask, label = T._to_batch([stream.example(rng, 64) for _ in range(2)], torch.device("cpu"))
    npm = T._noiseprint(m, rgb)
    losses = []
    for _ in range(20):
        loss, _ = T.phase_loss(m, "localization", rgb, npm, mask, label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_resume_continues_exactly(tmp_path, images):
    a = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "a"), steps=4))
    # B: interrupted after its first step, then resumed (a stale log line past the checkpoint is dropped)
    T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=4, max_seconds=0))
    with open(tmp_path / "b" / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": 2, "phase": "localization", "loss": -1.0}) + "\n")
    assert _sd(tmp_path / "b" / "last.pt") and T.read_log(tmp_path / "b")[0]["step"] == 1
    b = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=4))
    assert a.step == b.step == 4
    la, lb = T.read_log(a.log), T.read_log(b.log)
    assert [r["step"] for r in lb] == [1, 2, 3, 4]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    sa, sb = _sd(a.checkpoint), _sd(b.checkpoint)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _losses_and_weights(run):
    return [r["loss"] for r in T.read_log(run.log)], _sd(run.checkpoint)


@pytest.mark.parametrize("crash_after_write", [1, 2, 3])
def test_resume_after_a_crash_between_checkpoint_writes(tmp_path, images, monkeypatch, crash_after_write):
    """A crash right after any file write of the checkpoints (steps 2 and 4 of 6) then a resume
    gives the same run as an uninterrupted one: model, optimizer and step are saved together."""
    a = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "a"), steps=6))
    real, calls = training_checkpoints.atomic_torch_save, []

    class Crash(Exception):
        pass

    def crashing_save(path, obj):
        out = real(path, obj)
        calls.append(path)
        if len(calls) == crash_after_write:
            raise Crash(f"crash after writing {path}")
        return out

    with monkeypatch.context() as mp:
        mp.setattr(training_checkpoints, "atomic_torch_save", crashing_save)
        with pytest.raises(Crash):
            T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=6))
    b = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=6))
    assert b.step == 6 and [r["step"] for r in T.read_log(b.log)] == [1, 2, 3, 4, 5, 6]
    (la, sa), (lb, sb) = _losses_and_weights(a), _losses_and_weights(b)
    assert la == lb
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    obj = torch.load(b.checkpoint, weights_only=True)  # one file: model, optimizer, step, RNG
    assert obj["meta"]["step"] == 6 and obj["optimizer"]["state"] and "torch" in obj["rng"]
    assert not (tmp_path / "b" / "last_optim.pt").exists()


def test_a_run_removes_what_a_killed_checkpoint_write_left_and_nothing_else(tmp_path, images):
    """A SIGKILL while last.pt (or the log) was written left its temporary file (as large as the
    checkpoint) in the run folder, and no resume nor restart removed it."""
    import os
    import tempfile

    from trufor_lab.common.files import _temp_prefix

    a = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "a"), steps=4))
    run = tmp_path / "b"
    T.train(_cfg(tmp_path, images, out_dir=str(run), steps=4, max_seconds=0))
    left = []
    for name in ("last.pt", "log.jsonl"):  # named as the atomic write names them, cut short
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=".tmp", dir=run)
        os.write(fd, b"half a checkpoint")
        os.close(fd)
        left.append(tmp)
    theirs = [".last.pt.mine.tmp", "last.pt.tmp", ".last.pt.40fa6bf8.notours.tmp", ".last.pt.40fa6bf8.abcdefgh.tmp.x"]
    for name in theirs:
        (run / name).write_bytes(b"a user's file")
    b = T.train(_cfg(tmp_path, images, out_dir=str(run), steps=4))
    assert not any(os.path.exists(t) for t in left)
    assert all((run / name).read_bytes() == b"a user's file" for name in theirs)
    (la, sa), (lb, sb) = _losses_and_weights(a), _losses_and_weights(b)
    assert b.step == 4 and la == lb and all(torch.equal(sa[k], sb[k]) for k in sa)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix("last.pt"), suffix=".tmp", dir=run)
    os.close(fd)
    T.train(_cfg(tmp_path, images, out_dir=str(run), steps=1, resume=False))  # a restart too
    assert not os.path.exists(tmp) and (run / theirs[0]).exists()


@pytest.mark.parametrize("began_on_gpu", [False, True])
def test_a_resume_on_another_device_keeps_the_precision_the_run_began_with(
    tmp_path, images, monkeypatch, capsys, began_on_gpu
):
    """A CPU run resumed on a GPU turned bfloat16 autocast on mid-run (and a GPU run resumed on
    the CPU turned it off), unsaid. The device is faked: autocast is what a bf16 GPU would get."""
    monkeypatch.setattr(training_checkpoints, "default_amp", lambda device: began_on_gpu)
    a = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "a"), steps=4))
    T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=4, max_seconds=0))
    obj = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert obj["meta"]["amp"] is began_on_gpu and obj["meta"]["device"] == "cpu"
    obj["meta"]["device"] = "cpu\x1b[2J"  # a checkpoint's text is untrusted: it reaches the terminal escaped
    torch.save(obj, tmp_path / "b" / "last.pt")
    monkeypatch.setattr(training_checkpoints, "default_amp", lambda device: not began_on_gpu)  # the other device
    capsys.readouterr()
    b = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=4))
    (la, sa), (lb, sb) = _losses_and_weights(a), _losses_and_weights(b)
    assert la == lb and all(torch.equal(sa[k], sb[k]) for k in sa)  # as the run began, bit for bit
    (note,) = capsys.readouterr().err.strip().splitlines()
    said = "with" if began_on_gpu else "without"
    assert note.startswith(
        f"note: {tmp_path / 'b' / 'last.pt'}: the run began {said} bfloat16 autocast (on cpu\\x1b[2J)"
    )
    assert "\x1b" not in note


def test_resume_refuses_a_model_and_optimizer_of_different_steps(tmp_path, images):
    """A run folder of the earlier two-file layout, interrupted between its writes, is refused."""
    r = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "old"), steps=2))
    obj = torch.load(r.checkpoint, weights_only=True)
    torch.save({"optimizer": obj.pop("optimizer"), "step": 4}, tmp_path / "old" / "last_optim.pt")
    torch.save(obj, r.checkpoint)
    with pytest.raises(ValueError, match="step 2 but last_optim.pt at step 4"):
        T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "old"), steps=6, resume=True))


def test_train_restores_threads_and_global_rng(tmp_path, images):
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "r"), steps=1, num_threads=2, seed=7))
    assert torch.get_num_threads() == 1
    assert torch.equal(torch.rand(3), expected)


def test_on_the_fly_and_dataset(tmp_path, images):
    from PIL import Image
    from trufor_lab.lab.datasets import folder_dataset

    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    Image.fromarray(images[0]).save(tmp_path / "img" / "a.png")
    Image.fromarray(images[1]).save(tmp_path / "img" / "b.png")
    mask = np.zeros((96, 96), np.uint8)
    mask[20:60, 30:70] = 255
    Image.fromarray(mask).save(tmp_path / "msk" / "a.png")
    ds = folder_dataset(tmp_path / "img", tmp_path / "msk")
    stream = T.ForgeryStream([], [ds])
    rgb, m, label = stream.example(np.random.default_rng(1), 64)
    assert rgb.shape == (64, 64, 3) and m.shape == (64, 64) and label in (0, 1)
    r = T.train(
        _cfg(
            tmp_path,
            images,
            out_dir=str(tmp_path / "fly"),
            steps=1,
            precompute=0,
            batch_size=1,
            datasets=[ds],
            dataset_fraction=0.5,
        )
    )
    assert r.step == 1 and np.isfinite(r.final_loss)


def test_grid_crops_and_config_checks():
    rng = np.random.default_rng(0)
    a = np.arange(200 * 120).reshape(200, 120)
    for _ in range(20):
        (c,) = T._grid_crop(rng, [a], 64)
        y, x = divmod(int(c[0, 0]), 120)
        assert y % 8 == 0 and x % 8 == 0
    with pytest.raises(ValueError):
        T.TrainConfig(crop=100)
    with pytest.raises(ValueError):
        T.TrainConfig(phase="segmentation")


def test_checkpoints_load_through_load_trufor(phases, tmp_path):
    from trufor_lab import load_trufor

    res, _ = phases
    src = res["detection"].checkpoint
    full = load_trufor(src)
    assert full.weights_info.kind == "custom" and full.cfg == TINY
    demo = T.export_checkpoint(src, tmp_path / "demo.pt", meta={"note": "test"})
    obj = torch.load(demo, weights_only=True)
    assert obj["kind"] == "demo" and obj["meta"]["note"] == "test"
    assert obj["state_dict"]["decode_head.linear_pred.weight"].dtype == torch.float16
    assert obj["state_dict"]["dncnn.0.weight"].dtype == torch.float32
    m = load_trufor(demo, kind="demo")
    # exported as a demo, but not the shipped demo file (its card and calibration): custom weights
    assert m.weights_info.kind == "custom" and not m.weights_info.verified
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert all(torch.equal(a, b) for a, b in zip(m.dncnn.state_dict().values(), full.dncnn.state_dict().values()))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        o1, o2 = full(x), m(x)
    assert torch.allclose(o1.map, o2.map, atol=2e-2)
    # a weight float16 cannot hold stays float32 (it became Inf, and the file would not load)
    obj = torch.load(src, weights_only=True)
    key = "decode_head.linear_pred.bias"
    obj["state_dict"][key] = obj["state_dict"][key] + 1e5
    torch.save(obj, tmp_path / "big.pt")
    big = torch.load(T.export_checkpoint(tmp_path / "big.pt", tmp_path / "big_demo.pt"), weights_only=True)
    assert big["state_dict"][key].dtype == torch.float32 and torch.equal(big["state_dict"][key], obj["state_dict"][key])
    assert big["state_dict"]["decode_head.linear_pred.weight"].dtype == torch.float16
    load_trufor(tmp_path / "big_demo.pt")
    # weights that do not match their config, or no config and not MiT-B2: one line, nothing written
    del obj["config"]
    torch.save(obj, tmp_path / "noconfig.pt")
    with pytest.raises(CheckpointError, match=r"noconfig\.pt: does not match the model"):
        T.export_checkpoint(tmp_path / "noconfig.pt", tmp_path / "never.pt")
    assert not (tmp_path / "never.pt").exists()


def test_evaluate_and_plot(phases):
    from matplotlib.figure import Figure
    from trufor_lab.lab.forgeries import pristine, random_forgery

    res, _ = phases
    img = T.synthetic_scene(64, 5)
    items = [pristine(img), random_forgery(img, T.synthetic_scene(64, 6), seed=1)]
    ev = T.evaluate(res["detection"].model, items)
    assert ev.n_forged == 1 and ev.n_pristine == 1 and 0 <= ev.auc <= 1
    assert isinstance(T.plot_log(res["localization"].log), Figure)


def test_pool_cache_is_keyed_by_the_stream(images):
    """A precomputed pool is reused only by the same stream: other settings or other pictures
    with the same seed get another file (before, the seed alone named it)."""
    a = T.ForgeryStream(images, forged_fraction=0.5)
    assert loop.stream_fingerprint(a) == loop.stream_fingerprint(T.ForgeryStream(images, forged_fraction=0.5))
    assert loop.stream_fingerprint(a) != loop.stream_fingerprint(T.ForgeryStream(images, forged_fraction=0.9))
    other = [im.copy() for im in images]
    other[0][0, 0, 0] ^= 1
    assert loop.stream_fingerprint(a) != loop.stream_fingerprint(T.ForgeryStream(other, forged_fraction=0.5))


def test_a_run_is_not_resumed_with_other_settings_nor_trained_past_a_nan(tmp_path, images):
    """Rerunning in the same folder with another lr and seed silently returned the old model; a
    NaN loss went on and overwrote the good checkpoint; a log row cut by a crash stopped resume;
    numpy settings all hashed alike (one data pool for every setting)."""
    from trufor_lab.training.checkpoints import read_log
    from trufor_lab.training.loop import stream_fingerprint
    from trufor_lab.training.streams import ForgeryStream

    out = tmp_path / "run"
    first = T.train(_cfg(out, images, out_dir=str(out), steps=2))
    with pytest.raises(ValueError, match=r"other settings \(lr"):
        T.train(_cfg(out, images, out_dir=str(out), steps=3, lr=5e-2))
    with (out / "log.jsonl").open("a") as f:
        f.write('{"step": 3, "loss"')  # cut mid-row
    assert [r["step"] for r in read_log(out)] == [1, 2]
    assert T.train(_cfg(out, images, out_dir=str(out), steps=3)).step == 3  # same settings: resumes past the cut row
    before = (out / "last.pt").read_bytes()
    with pytest.raises(FloatingPointError, match="loss is (nan|inf)"):
        T.train(_cfg(out, images, out_dir=str(tmp_path / "nan"), steps=4, lr=1e9))
    assert not (tmp_path / "nan" / "last.pt").exists()
    assert (out / "last.pt").read_bytes() == before and first.step == 2
    a = ForgeryStream(images, forged_fraction=np.float32(0.1), jpeg_quality=(np.int64(50), np.int64(60)))
    b = ForgeryStream(images, forged_fraction=np.float32(0.9), jpeg_quality=(np.int64(95), np.int64(100)))
    assert stream_fingerprint(a) != stream_fingerprint(b)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _cfg(out, images, checkpoint_every=0)


def test_a_run_is_not_resumed_on_another_stream_or_other_pictures_in_its_folder(tmp_path, images):
    """A stream was recorded by its type and a pictures folder by its path: a rerun on other
    photos or stream settings returned the old model (or mixed both), unsaid."""
    from trufor_lab.training.streams import ForgeryStream

    out = tmp_path / "run"
    cfg = dict(out_dir=str(out), steps=1, pristine=None, precompute=0)
    T.train(_cfg(out, images, stream=ForgeryStream(images, forged_fraction=0.5), **cfg))
    with pytest.raises(ValueError, match=r"other settings \(stream"):
        T.train(_cfg(out, images, stream=ForgeryStream(images, forged_fraction=0.9), **{**cfg, "steps": 2}))
    assert (
        T.train(_cfg(out, images, stream=ForgeryStream(images, forged_fraction=0.5), **{**cfg, "steps": 2})).step == 2
    )
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, im in enumerate(images[:3]):
        Image.fromarray(im).save(folder / f"{i}.png")
    run2 = tmp_path / "run2"
    T.train(_cfg(run2, images, out_dir=str(run2), steps=1, pristine=str(folder), precompute=0))
    Image.fromarray(images[3]).save(folder / "3.png")  # other pictures in the same folder
    with pytest.raises(ValueError, match=r"other settings \(pristine"):
        T.train(_cfg(run2, images, out_dir=str(run2), steps=2, pristine=str(folder), precompute=0))


def test_damaged_training_state_and_logs_give_one_line(tmp_path):
    """A checkpoint whose optimizer is not an optimizer state, or whose step is not a number,
    and a log line that is JSON but not a row, gave tracebacks on resume."""
    from trufor_lab.training.checkpoints import read_log, read_training_state, truncate_log

    for bad, why in (
        ({"meta": {"step": "five"}, "optimizer": {}}, "meta.step"),
        ({"meta": {"step": 2}, "optimizer": 3}, "optimizer"),
    ):
        p = tmp_path / f"{why}.pt"
        torch.save(bad, p)
        with pytest.raises(ValueError, match=why) as e:
            read_training_state(p)
        assert str(p) in str(e.value)
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 0.5}\n42\n["x"]\n{"step": 2, "loss": 0.4}\n')
    assert [r["step"] for r in read_log(log)] == [1, 2]
    truncate_log(log, 1)
    assert [r["step"] for r in read_log(log)] == [1]


def test_ctrl_c_saves_the_step_in_progress_and_a_restart_drops_the_old_checkpoint(tmp_path, images, monkeypatch):
    """Ctrl-C lost every step since the last checkpoint (a log of 5 steps, no last.pt); a
    ``--restart`` interrupted before its first checkpoint left the old run's last.pt, which the
    next resume continued while its log came from the new run."""
    import os
    import signal

    import trufor_lab.training.loop as L

    a = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "a"), steps=3, checkpoint_every=100))
    real = L.phase_loss
    calls = []

    def press_ctrl_c_in_step_2(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step: the step finishes, then stops
        return real(*args, **kw)

    monkeypatch.setattr(L, "phase_loss", press_ctrl_c_in_step_2)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="saved at step 2, run again to resume"):
        T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=3, checkpoint_every=100))
    assert signal.getsignal(signal.SIGINT) is before
    monkeypatch.setattr(L, "phase_loss", real)
    assert [r["step"] for r in T.read_log(tmp_path / "b")] == [1, 2]
    b = T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=3, checkpoint_every=100))
    assert [r["loss"] for r in T.read_log(a.log)] == [r["loss"] for r in T.read_log(b.log)]
    sa, sb = _sd(a.checkpoint), _sd(b.checkpoint)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # a restart (resume=False) removes the old checkpoint with the old log, before any step
    monkeypatch.setattr(L, "phase_loss", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stopped")))
    with pytest.raises(RuntimeError, match="stopped"):
        T.train(_cfg(tmp_path, images, out_dir=str(tmp_path / "b"), steps=3, resume=False, lr=5e-4))
    assert not (tmp_path / "b" / "last.pt").exists() and not (tmp_path / "b" / "log.jsonl").read_text()


@pytest.mark.parametrize(
    "bad, why",
    [
        (dict(lr=0), "lr must be a finite number > 0"),
        (dict(lr=float("nan")), "lr must be a finite number"),
        (dict(ce_lambda=5), "ce_lambda must be a finite number >= 0 and <= 1"),  # 5*CE - 4*Dice
        (dict(forged_fraction=1.5), "forged_fraction"),
        (dict(jpeg_prob=-1), "jpeg_prob"),
        (dict(class_weights=(-1, 2)), "class_weights"),
        (dict(class_weights=(0, 2)), "class_weights must be two finite weights > 0"),  # NaN on an all-pristine batch
        (dict(dataset_fraction=3), "dataset_fraction"),
        (dict(jpeg_quality=(100, 65)), "jpeg_quality must be (low, high)"),  # failed partway through a run
        (dict(precompute=-3), "precompute"),
        (dict(weight_decay=-1), "weight_decay"),
        (dict(max_seconds=-5), "max_seconds"),
        (dict(crop=8), "crop must be at least 32"),  # "Kernel size can't be greater than actual input size"
        (dict(crop=32, batch_size=1), "batch_size 1 needs crop >= 64"),  # BatchNorm's error at step 1
        (dict(seed=-1), "seed must be a whole number from 0"),  # numpy's "expected non-negative integer"
        (dict(seed=10**23), "seed must be a whole number from 0"),  # "Overflow when unpacking long long"
        (dict(seed=1.5), "seed must be a whole number from 0"),
        # 3.5 steps trained 4 and returned a model other than last.pt's; 2.5 a bare TypeError later
        (dict(steps=3.5), "steps must be a whole number, got 3.5"),
        (dict(batch_size=2.5), "batch_size must be a whole number"),
        (dict(crop=64.0), "crop must be a whole number"),
        (dict(checkpoint_every=2.0), "checkpoint_every must be a whole number"),
        (dict(precompute=2.5), "precompute must be a whole number"),
        (dict(precompute=4, precompute_size=128.0), "precompute_size must be a whole number"),
        (dict(warmup=1.5), "warmup must be a whole number"),
        (dict(steps=True), "steps must be a whole number"),
    ],
)
def test_settings_a_run_cannot_use_are_refused_up_front(bad, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        T.TrainConfig(**bad)
    T.TrainConfig(
        jpeg_quality=(np.int64(60), np.int64(90)), forged_fraction=np.float32(0.4), steps=np.int64(3), crop=np.int32(64)
    )  # numpy numbers are numbers


def test_a_resume_on_other_pictures_is_refused_and_a_new_length_said(tmp_path, images, capsys):
    """The recorded settings held '<2 arrays>' for the pictures: a resume on other pictures went
    on silently; a resume with more steps changed the learning-rate schedule without a word."""
    out = tmp_path / "run"
    T.train(_cfg(out, images, out_dir=str(out), steps=1))
    others = [np.ascontiguousarray(255 - im) for im in images]
    with pytest.raises(ValueError, match=r"other settings \(pristine"):
        T.train(_cfg(out, others, out_dir=str(out), steps=2))
    capsys.readouterr()
    assert T.train(_cfg(out, images, out_dir=str(out), steps=2)).step == 2
    assert "resumed with steps 1 -> 2: the learning-rate schedule" in capsys.readouterr().err
    # fewer steps than the run has done: it said the schedule "continues on the new length", and
    # gave back the finished model
    assert T.train(_cfg(out, images, out_dir=str(out), steps=1)).step == 2
    err = capsys.readouterr().err
    assert "the run is at step 2 already (steps 1): nothing to train" in err and "continues" not in err


def test_a_longer_earlier_phase_restarts_the_later_ones(tmp_path, images, capsys):
    """train_phases again with more localization steps: confidence and detection resumed their
    own finished runs, built on the old localization, and the final model mixed the two."""
    cfg = _cfg(tmp_path, images, out_dir=str(tmp_path / "run"))
    T.train_phases(cfg, {"localization": 1, "confidence": 1, "detection": 1})
    capsys.readouterr()
    r2 = T.train_phases(cfg, {"localization": 2, "confidence": 1, "detection": 1})
    assert "the phase before it trained further in this call" in capsys.readouterr().err
    loc = _sd(tmp_path / "run" / "localization" / "last.pt")
    final = r2["detection"].model.state_dict()
    assert _same(loc, final, ("decode_head.",)) and r2["localization"].step == 2
    r3 = T.train_phases(cfg, {"localization": 2, "confidence": 1, "detection": 1})  # nothing new: all resumed
    assert _same(_sd(tmp_path / "run" / "detection" / "last.pt"), r3["detection"].model.state_dict(), ("",))
    # per-phase settings (the shipped demo's detection ran at lr 3e-3: one lr for all could not say so)
    other = dataclasses.replace(cfg, out_dir=str(tmp_path / "per_phase"))
    T.train_phases(other, {"localization": 1, "detection": 1}, {"detection": {"lr": 3e-3, "warmup": 1}})
    meta = {
        p: torch.load(tmp_path / "per_phase" / p / "last.pt", weights_only=True)["meta"]
        for p in ("localization", "detection")
    }
    assert meta["detection"]["train_config"]["lr"] == 3e-3 and meta["localization"]["train_config"]["lr"] == cfg.lr


def test_builtin_scenes_are_made_once_and_shared_read_only():
    """``train_phases`` made the 24 built-in scenes again for every phase (~10 s each here)."""
    first = T.builtin_images("train", n_scenes=2, scene_size=64)
    again = T.builtin_images("train", n_scenes=2, scene_size=64)
    assert first is not again and all(a is b for a, b in zip(first, again))
    assert np.array_equal(first[-1], T.synthetic_scene(64, 1))
    with pytest.raises(ValueError, match="read-only"):
        first[-1][0, 0] = 0


class _Stub(torch.nn.Module):
    """A network whose detection logit is NaN on images whose first pixel is black."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, rgb):
        from trufor_lab.model.trufor import TruForOutput

        b, _, h, w = rgb.shape
        logits = torch.stack([torch.zeros(b, h, w), rgb[:, 0] * 8 - 4], 1) + self.w
        det = torch.where(rgb[:, :1, 0, 0] == 0, torch.nan, rgb[:, :1, 0, 0] * 8 - 4)
        return TruForOutput(logits, torch.zeros(b, 1, h, w), det, torch.zeros(b, 1, h, w))


def test_score_heldout_says_a_nan_score_instead_of_dropping_it():
    """A NaN score was dropped from the AUC without a word (n_pristine still counted it): two
    pristine and two forged items gave an AUC over three, reported as over four."""
    from trufor_lab.lab.forgeries import Forgery

    rng = np.random.default_rng(0)
    mask = np.zeros((48, 48), bool)
    mask[8:40, 8:40] = True
    items = []
    for i, (label, first) in enumerate(((0, 0), (0, 60), (1, 200), (1, 100))):
        img = rng.integers(1, 256, (48, 48, 3), dtype=np.uint8)
        img[0, 0, 0] = first
        items.append(Forgery(img, mask if label else np.zeros_like(mask), "x", {}, (), label=label, name=f"it{i}"))
    with pytest.raises(ValueError, match=r"^it0: the model's score is nan \(a diverged model\?\)"):
        T.evaluate(_Stub(), items)
    items[0] = dataclasses.replace(items[0], image=items[1].image)
    ev = T.evaluate(_Stub(), items)
    assert ev.n_pristine == 2 and ev.auc == 1.0  # scores 60/256*8-4 < 100/256*8-4 < 200/256*8-4


def test_score_heldout_says_a_mask_with_nothing_to_score_instead_of_a_nan_f1():
    """A forged item whose mask leaves no pixel to score (scattered dots: dilated they cover the
    picture, eroded nothing is left) has a NaN F1, and the np.mean of the F1s was NaN, unsaid."""
    from trufor_lab.lab.forgeries import Forgery

    rng = np.random.default_rng(0)
    square, dots = np.zeros((48, 48), bool), np.zeros((48, 48), bool)
    square[8:40, 8:40] = True
    dots[::6, ::6] = True
    items = [
        Forgery(rng.integers(1, 256, (48, 48, 3), dtype=np.uint8), m, "x", {}, (), label=1, name=f"it{i}")
        for i, m in enumerate((square, dots))
    ]
    assert T.evaluate(_Stub(), items[:1]).f1_best >= 0  # a number with the square alone
    with pytest.raises(ValueError, match=r"^it1: its mask leaves no pixel to score .*: no pixel F1$"):
        T.evaluate(_Stub(), items)


def test_score_heldout_leaves_a_model_in_training_as_it_was_when_it_refuses_an_item():
    """A refused item (a NaN score, a mask with nothing to score) left the model in eval mode: a
    caller that caught the error and went on training its own loop had its BatchNorm layers frozen, unsaid."""
    from trufor_lab.lab.forgeries import Forgery

    dots = np.zeros((48, 48), bool)
    dots[::6, ::6] = True
    black = np.zeros((48, 48, 3), np.uint8)  # the stub's score is NaN on it
    grey = np.full((48, 48, 3), 90, np.uint8)
    for item in (Forgery(black, None, "x", {}, (), label=0, name="nan"), Forgery(grey, dots, "x", {}, (), label=1)):
        model = _Stub().train()
        with pytest.raises(ValueError):
            T.evaluate(model, [item])
        assert model.training
    model = _Stub().eval()
    T.evaluate(model, [Forgery(grey, None, "x", {}, (), label=0)])
    assert not model.training


def test_a_restart_with_an_input_that_cannot_be_read_keeps_the_old_run(tmp_path, images):
    """``--restart`` deleted the old run's checkpoint and log before reading its inputs: a typo in
    ``--images`` lost the run and trained nothing."""
    out = str(tmp_path / "run")
    T.train(_cfg(tmp_path, images, out_dir=out, steps=2))
    before = (tmp_path / "run" / "last.pt").read_bytes(), (tmp_path / "run" / "log.jsonl").read_text()
    with pytest.raises((ValueError, OSError), match="nope"):
        T.train(_cfg(tmp_path, images, out_dir=out, steps=2, resume=False, pristine=str(tmp_path / "nope")))
    assert ((tmp_path / "run" / "last.pt").read_bytes(), (tmp_path / "run" / "log.jsonl").read_text()) == before
