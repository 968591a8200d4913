"""Training inputs and run folders at toy scale: what a run reads (pristine arrays and folders,
dataset files, the checkpoint it starts from), when it resumes or starts again, and the one-line
errors of the training commands."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trufor_lab.training as T
from trufor_lab.cli import train as cli_train
from trufor_lab.inference.preprocess import load_image
from trufor_lab.lab.datasets import folder_dataset
from trufor_lab.model import CheckpointError, TruForConfig
from trufor_lab.training import card, finetune_real
from trufor_lab.training.config import stream_fingerprint

TINY = TruForConfig(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), decoder_embed_dim=32)
ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest's: one torch thread per module


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [T.synthetic_scene(96, i) for i in range(2)]


def _cfg(out, images, **kw) -> T.TrainConfig:
    base = dict(out_dir=str(out), model=TINY, pristine=images, steps=1, batch_size=2, crop=64, progress=False, warmup=1)
    return T.TrainConfig(**{**base, **kw})


def _state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _one_mask_dataset(root: Path, box: slice) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        root / "images" / "a.png"
    )
    m = np.zeros((64, 64), np.uint8)
    m[box, box] = 255
    Image.fromarray(m).save(root / "masks" / "a.png")


def test_a_pool_is_not_reused_after_the_dataset_files_change(tmp_path):
    """A dataset's files counted by their names only (a Path hashed by its type name), and a
    restart kept the old pool_*.npz: a corrected mask trained on the old one, even with
    resume=False."""
    root = tmp_path / "ds"
    _one_mask_dataset(root, slice(0, 20))
    ds = folder_dataset(root / "images", root / "masks")
    before = stream_fingerprint(T.ForgeryStream([], [ds]))
    out = tmp_path / "run"
    cfg = dict(datasets=[ds], dataset_fraction=1.0, precompute=2, resume=False, flips="none")
    T.train(_cfg(out, None, **cfg))
    (old,) = out.glob("pool_*.npz")
    os.utime(old, ns=(0, 0))  # told apart from a new pool of the same name
    _one_mask_dataset(root, slice(30, 60))  # the user corrects the mask in place
    ds = folder_dataset(root / "images", root / "masks")
    assert stream_fingerprint(T.ForgeryStream([], [ds])) != before
    T.train(_cfg(out, None, **{**cfg, "datasets": [ds]}))
    (pool,) = out.glob("pool_*.npz")  # the old one is gone
    assert pool.stat().st_mtime_ns != 0
    z = np.load(pool)
    forged = z["mask"][z["label"] == 1]
    assert len(forged) and all(m[:30, :30].sum() == 0 for m in forged)  # the new mask, not the old


def test_a_run_on_an_init_that_changed_starts_again_from_it(tmp_path, images, capsys):
    """Confidence from L, then L trained further, then confidence again: the old confidence run
    was resumed (exit 0) and its backbone was the old L."""
    loc = tmp_path / "L"
    T.train(_cfg(loc, images))
    conf = dict(phase="confidence", init=str(loc / "last.pt"), model=None)
    T.train(_cfg(tmp_path / "C", images, **conf))
    T.train(_cfg(loc, images, steps=2))
    capsys.readouterr()
    r = T.train(_cfg(tmp_path / "C", images, **conf))
    assert "is not the one this run started from" in capsys.readouterr().err
    key = "backbone.patch_embed1.proj.weight"
    assert torch.equal(_state(loc / "last.pt")[key], _state(r.checkpoint)[key])
    assert T.train(_cfg(tmp_path / "C", images, **{**conf, "steps": 2})).step == 2  # same init: resumed
    assert [row["step"] for row in T.read_log(tmp_path / "C")] == [1, 2]


def test_a_run_reads_its_init_and_its_resumed_checkpoint_once(tmp_path, images, monkeypatch):
    """A run from init read the file twice (the model, then its meta.trained record: seconds for
    the official 270 MB file); a resume read last.pt twice (the optimizer, then the model)."""
    loc = T.train(_cfg(tmp_path / "L", images))
    reads, real = collections.Counter(), torch.load

    def counting(f, *args, **kw):
        reads[Path(f).resolve()] += 1
        return real(f, *args, **kw)

    monkeypatch.setattr(torch, "load", counting)
    conf = dict(phase="confidence", init=str(loc.checkpoint), model=None)
    r = T.train(_cfg(tmp_path / "C", images, **conf))
    assert reads[loc.checkpoint.resolve()] == 1 and r.trained == ["localization", "confidence"]
    reads.clear()
    r = T.train(_cfg(tmp_path / "C", images, **{**conf, "steps": 2}))
    assert r.step == 2 and reads[r.checkpoint.resolve()] == 1 and reads[loc.checkpoint.resolve()] == 0
    assert r.trained == ["localization", "confidence"]


def test_confidence_and_detection_without_init_are_refused(tmp_path, images, capsys):
    """Without --init (and nothing to resume) the heads were trained on a random frozen network."""
    for phase in ("confidence", "detection"):
        with pytest.raises(ValueError, match=f"the {phase} phase trains on a trained localization network"):
            T.train(_cfg(tmp_path / phase, images, phase=phase))
        assert not (tmp_path / phase).exists()
    args = ["--phase", "detection", "--crop", "64", "--steps", "1", "-q", "-o", str(tmp_path / "cli")]
    assert cli_train.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error:") and "give --init (the previous phase's last.pt)" in line


def test_pristine_arrays_are_read_as_images(tmp_path):
    """Float [0, 1] pictures were cast to uint8 (black), uint16 ones wrapped (noise), a grey one
    broke later with a message naming no input."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    pics = [rng.random((40, 48, 3)), (rng.random((40, 48, 3)) * 65535).astype(np.uint16), grey]
    stream = T.ForgeryStream([*pics, grey.astype(np.int64)])
    for got, pic in zip(stream.images, [*pics, grey]):
        assert got.dtype == np.uint8 and np.array_equal(got, load_image(pic).rgb)
    assert stream.images[0].max() > 200 and stream.images[2].shape == (40, 48, 3)
    with pytest.raises(ValueError, match=r"^pristine image 1: float images must hold finite values"):
        T.ForgeryStream([pics[0], pics[0] * 3])
    with pytest.raises(ValueError, match=r"^pristine image 0: expected an \(H, W\)"):
        T.ForgeryStream([np.zeros((40, 48, 2), np.uint8)])


def test_splice_only_draws_splices_from_another_picture(images):
    """kinds=('splice',) drew the host as its own donor 13 times in 20 and made copy-moves."""
    stream = T.ForgeryStream(images, kinds=("splice",), jpeg_prob=0.0)
    kinds = collections.Counter(stream.synthetic(np.random.default_rng(i), 64, forged=True)[3] for i in range(20))
    assert kinds == {"splice": 20}
    with pytest.raises(ValueError, match="needs a donor from another picture"):
        T.ForgeryStream(images[:1], kinds=("splice",))
    with pytest.raises(ValueError, match="need a donor image"):
        stream.forge(np.random.default_rng(0), images[0][:64, :64], None)
    assert (
        T.ForgeryStream(images[:1], kinds=("splice",), camera=True).synthetic(
            np.random.default_rng(0), 64, forged=True
        )[3]
        == "splice"
    )  # another camera shoots the donor


def test_a_resume_is_not_refused_for_files_that_are_not_pictures(tmp_path, images, monkeypatch):
    """Every file under --images counted, the run folder inside it too, and the path as typed:
    a resume was refused after a note was saved there, after the run's own first checkpoint,
    or when run from another folder."""
    pics = tmp_path / "pics"
    pics.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(pics / f"{i}.png")
    out = pics / "run"  # -o inside --images
    T.train(_cfg(out, None, pristine=str(pics)))
    (pics / "notes.txt").write_text("where these came from")
    T.train(_cfg(out, None, pristine=str(pics), steps=2))
    monkeypatch.chdir(tmp_path)
    assert T.train(_cfg(out, None, pristine="pics", steps=3)).step == 3  # the folder as typed here
    Image.fromarray(images[0][::-1]).save(pics / "new.png")  # another picture: another run
    with pytest.raises(ValueError, match=r"other settings \(pristine"):
        T.train(_cfg(out, None, pristine=str(pics), steps=4))


def test_a_nan_loss_is_one_line_with_advice_that_works(tmp_path, images, capsys, monkeypatch):
    """A NaN loss was a traceback from the command, said 'nothing saved after step 1' with no
    checkpoint, and advised to resume, which a new learning rate refuses."""
    with pytest.raises(FloatingPointError, match=r"; no checkpoint yet: start again with a lower lr") as e:
        T.train(_cfg(tmp_path / "lib", images, steps=3, lr=1e12, warmup=0))
    assert "resume=False" in str(e.value)
    with pytest.raises(FloatingPointError, match="the checkpoint of step 1 is kept"):
        T.train(_cfg(tmp_path / "kept", images, steps=3, lr=1e12, warmup=0, checkpoint_every=1))
    tiny = str(tmp_path / "kept" / "last.pt")  # the command takes its architecture
    base = ["--init", tiny, "--crop", "64", "--batch-size", "2", "--steps", "3", "--images", str(tmp_path / "pics")]
    (tmp_path / "pics").mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / "pics" / f"{i}.png")
    assert cli_train.main([*base, "--lr", "1e12", "-q", "-o", str(tmp_path / "cli")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no checkpoint yet: start again with a lower --lr (--restart, or another -o)" in line

    from trufor_lab.training.loop import NAN_ADVICE

    def nan_run(*a, **k):
        raise FloatingPointError(
            f"run: the detection loss is nan at step 9 (lr 0.002); no checkpoint yet: {NAN_ADVICE}"
        )

    monkeypatch.setattr(finetune_real, "run", nan_run)
    argv = ["--photos", str(tmp_path), "--out", str(tmp_path / "ft")]
    assert finetune_real.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: run: the detection loss is nan") and "another --out" in line


def test_all_phases_share_one_precomputed_pool(tmp_path, monkeypatch):
    """``--phase all --precompute N`` computed the same pool three times, once per phase folder."""
    seen = []
    monkeypatch.setattr(cli_train, "train_phases", lambda cfg: seen.append(cfg) or {})
    assert cli_train.main(["--phase", "all", "--precompute", "4", "-q", "-o", str(tmp_path / "all")]) == 0
    assert seen[0].cache_dir == str(tmp_path / "all" / "cache")


def test_the_card_without_its_splits_is_one_line(tmp_path, capsys, monkeypatch):
    """Photos in camera folders without --splits: the default test split holds no camera photo,
    and the card died with a traceback ('real_heldout needs photos from at least two cameras')."""
    for seed, cam in enumerate(("camA", "camB")):
        (tmp_path / "photos" / cam).mkdir(parents=True)
        a = np.random.default_rng(seed).integers(0, 256, (300, 300, 3), dtype=np.uint8)
        Image.fromarray(a).save(tmp_path / "photos" / cam / f"{cam}.jpg")
    tiles = finetune_real.tile_crops
    monkeypatch.setattr(finetune_real, "tile_crops", lambda a, size, limit=None: tiles(a, size, 1))  # time
    argv = ["--photos", str(tmp_path / "photos"), "--camera-folders", "--out", str(tmp_path / "card")]
    assert card.main(argv) == 2
    (line,) = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error")]
    assert "needs photos from at least two cameras" in line and "--splits" in line


def test_export_names_a_checkpoint_whose_meta_is_not_plain_data(tmp_path, images):
    """A tensor in a checkpoint's meta was a bare TypeError naming no file."""
    r = T.train(_cfg(tmp_path / "run", images))
    obj = torch.load(r.checkpoint, weights_only=True)
    obj["meta"]["note"] = torch.tensor([1.0])
    torch.save(obj, tmp_path / "tensor_meta.pt")
    with pytest.raises(CheckpointError, match=r"tensor_meta\.pt: its 'meta' entry is not plain data"):
        T.export_checkpoint(tmp_path / "tensor_meta.pt", tmp_path / "out.pt")
    obj["meta"] = ["not", "a", "dict"]
    torch.save(obj, tmp_path / "list_meta.pt")
    with pytest.raises(CheckpointError, match=r"list_meta\.pt: its 'meta' entry is not a dict"):
        T.export_checkpoint(tmp_path / "list_meta.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_notebook_07_trains_as_its_text_says():
    """Its text named a last_optim.pt no run writes, and called its GPU setting step 1 of the demo
    recipe while training confidence and detection without the recipe's settings for them."""
    nb = json.loads((ROOT / "notebooks" / "07_train_your_own.ipynb").read_text(encoding="utf-8"))
    text = ["".join(c["source"]) for c in nb["cells"]]
    assert not any("last_optim.pt" in t for t in text)
    (call,) = [ln for t in text for ln in t.splitlines() if "T.train_phases(" in ln]
    assert "T.DEMO_PHASE_SETTINGS" in call


def test_a_pool_is_not_reused_with_other_noiseprint_weights(tmp_path, images, shared_dir):
    """A shared pool cache (``--phase all`` keeps one under OUT/cache) was reused by a run with
    other Noiseprint++ weights: it trained on the first run's maps."""
    sd = torch.load(shared_dir / "weights" / "noiseprint++.th", weights_only=True, map_location="cpu")

    def nudged(v):
        if isinstance(v, dict):
            return type(v)((k, nudged(x)) for k, x in v.items())
        return v + 1e-3 if isinstance(v, torch.Tensor) and v.is_floating_point() else v

    sd = nudged(sd)
    torch.save(sd, tmp_path / "other.th")
    cache = tmp_path / "cache"
    for out, weights in ((tmp_path / "a", None), (tmp_path / "b", str(tmp_path / "other.th"))):
        T.train(_cfg(out, images, precompute=2, cache_dir=str(cache), noiseprint_weights=weights))
    pools = sorted(cache.glob("pool_*.npz"))
    assert len(pools) == 2
    a, b = (np.load(p)["np"] for p in pools)
    assert not np.array_equal(a, b)


def test_training_from_a_checkpoint_keeps_its_own_noiseprint(tmp_path, images, shared_dir):
    """Training from someone's checkpoint whose Noiseprint++ is not the shipped one (its encoder
    learned from it) silently replaced that Noiseprint++ with the shipped file: the trained model
    mixed the checkpoint's encoder with another Noiseprint++. Naming one explicitly still puts it in."""
    T.train(_cfg(tmp_path / "a", images))
    sd = _state(tmp_path / "a" / "last.pt")
    gen = torch.Generator().manual_seed(3)
    theirs = {
        k: v * (1 + 1e-2 * torch.randn(v.shape, generator=gen)).abs()
        if k.startswith("dncnn.") and v.is_floating_point()
        else v
        for k, v in sd.items()
    }
    torch.save({"state_dict": theirs, "config": TINY.to_dict()}, tmp_path / "theirs.pt")
    r = T.train(_cfg(tmp_path / "b", images, model=None, init=str(tmp_path / "theirs.pt")))
    got = _state(r.checkpoint)
    for k in (k for k in theirs if k.startswith("dncnn.")):
        assert torch.equal(got[k], theirs[k]), k  # frozen: exactly the checkpoint's
    official = torch.load(shared_dir / "weights" / "noiseprint++.th", weights_only=True, map_location="cpu")["network"]
    named = T.build_model(None, tmp_path / "theirs.pt", str(shared_dir / "weights" / "noiseprint++.th"))
    assert all(torch.equal(v, official[k]) for k, v in named.dncnn.state_dict().items())
    # a checkpoint saved in half precision holds the official Noiseprint++ rounded: the original is taken
    for low in (torch.float16, torch.bfloat16):
        half = {k: v.to(low) if v.is_floating_point() else v for k, v in sd.items()}
        torch.save({"state_dict": half, "config": TINY.to_dict()}, tmp_path / "half.pt")
        got = T.build_model(None, tmp_path / "half.pt").dncnn.state_dict()
        assert all(torch.equal(v, official[k]) for k, v in got.items()), low


def test_one_unreadable_picture_is_left_out_of_training_with_a_note(tmp_path, images, capsys):
    """One cut PNG among the pictures stopped the whole run ("unreadable image (file is
    truncated)"), where analyze goes on past a bad file; a folder of none readable is refused."""
    from trufor_lab.training.scenes import read_folder

    pics = tmp_path / "pics"
    pics.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(pics / f"{i}.png")
    whole = (pics / "0.png").read_bytes()
    (pics / "zz_cut.png").write_bytes(whole[: len(whole) // 2])
    got = read_folder(pics)
    assert len(got) == len(images) and all(np.array_equal(a, b) for a, b in zip(got, images))
    err = capsys.readouterr().err
    assert "zz_cut.png" in err and "left out of training" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(whole[:100])
    with pytest.raises(ValueError, match="none of its 1 images can be read"):
        read_folder(bad)


def test_pictures_smaller_than_the_crop_are_said(tmp_path, capsys):
    """A crop larger than the pictures trained on mirror-padded crops (seams), with no word."""
    from trufor_lab.training.loop import _images

    pics = tmp_path / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    for i, side in enumerate((40, 80)):
        Image.fromarray(rng.integers(0, 256, (side, side + 8, 3), np.uint8)).save(pics / f"{i}.png")
    assert len(_images(T.TrainConfig(pristine=str(pics), crop=64))) == 2
    assert "1 of 2 pictures are smaller than --crop 64 (smallest 48x40): their crops are padded by mirroring" in (
        capsys.readouterr().err
    )
    _images(T.TrainConfig(pristine=str(pics), crop=32))
    assert capsys.readouterr().err == ""


def test_one_pristine_picture_with_the_default_kinds_says_it_makes_no_splices(tmp_path, images, capsys):
    """A splice takes its donor from another picture: one picture made none, with no word (a
    run given kinds naming splice said it, or was refused)."""
    from trufor_lab.training.loop import _images

    pics = tmp_path / "pics"
    pics.mkdir()
    Image.fromarray(images[0]).save(pics / "a.png")
    capsys.readouterr()
    assert len(_images(T.TrainConfig(pristine=str(pics), crop=64))) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"note: {pics}: one picture: no splices in this run (a splice takes its donor from another picture: "
        "give two at least)"
    )
    _images(T.TrainConfig(pristine=images[:1], crop=64))
    assert capsys.readouterr().err.startswith("note: TrainConfig.pristine: one picture: no splices in this run")
    for enough in (dict(pristine=images), dict(camera=True), dict(kinds=("copy_move",)), dict(forged_fraction=0.0)):
        _images(T.TrainConfig(**{"pristine": str(pics), "crop": 64, **enough}))  # splices, or none asked for
        assert capsys.readouterr().err == "", enough
    Image.fromarray(images[1]).save(pics / "b.png")
    _images(T.TrainConfig(pristine=str(pics), crop=64))
    assert capsys.readouterr().err == ""


def test_a_damaged_or_changed_pool_is_computed_again_and_the_run_trains_as_without_it(tmp_path, images, capsys):
    # a pool cut short (a copy of the run folder interrupted) was a BadZipFile traceback; one whose
    # arrays changed since it was written was trained on, unsaid
    cfg = dict(precompute=3, precompute_size=64, checkpoint_every=1)
    whole = T.train(_cfg(tmp_path / "whole", images, steps=3, **cfg))
    for damage, said in [
        (lambda p: p.write_bytes(p.read_bytes()[:5000]), "cannot be read (File is not a zip file)"),
        (lambda p: np.savez(p, **{k: np.zeros_like(v) for k, v in np.load(p).items()}), "its digest differs"),
        (lambda p: np.savez(p, rgb=np.zeros((3, 8, 8, 3), np.uint8)), "cannot be read (mask is not a file"),
    ]:
        out = tmp_path / f"run{len(said)}"
        T.train(_cfg(out, images, steps=1, **cfg))
        (pool,) = out.glob("pool_*.npz")
        damage(pool)
        capsys.readouterr()
        resumed = T.train(_cfg(out, images, steps=3, **cfg))
        err = " ".join(capsys.readouterr().err.split())
        assert f"note: {pool}: the precomputed pool " in err and said in err and "computed again" in err
        assert [r["loss"] for r in T.read_log(resumed.log)] == [r["loss"] for r in T.read_log(whole.log)]
        a, b = _state(whole.checkpoint), _state(resumed.checkpoint)
        assert all(torch.equal(a[k], b[k]) for k in a)
