"""Training on one's own pictures and masks, and using the result: what a run reads of a dataset
(its masks checked before training, its files and convention recorded for a resume), a pristine
folder that holds masks, and the kinds and dtypes an export and a load take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trufor_lab as tl
import trufor_lab.training as T
from trufor_lab.cli import train as cli_train
from trufor_lab.lab.datasets import Dataset, MaskConvention, folder_dataset
from trufor_lab.model import TruForConfig
from trufor_lab.training.checkpoints import read_training_state
from trufor_lab.training.scenes import read_folder

TINY = TruForConfig(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), decoder_embed_dim=32)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest's: one torch thread per module


def _dataset(root: Path, mask_sizes: dict[str, tuple[int, int]], forged: slice = slice(20, 50)) -> Path:
    """Pictures ``<name>.png`` of 64x64 and, for each name given, a mask of that (h, w) marking
    ``forged`` rows and columns white."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, name in enumerate(["a", "b", "c"]):
        Image.fromarray(T.synthetic_scene(64, i)).save(root / "images" / f"{name}.png")
    for name, (h, w) in mask_sizes.items():
        m = np.zeros((h, w), np.uint8)
        m[forged, forged] = 255
        Image.fromarray(m).save(root / "masks" / f"{name}.png")
    return root


def _cfg(out: Path, ds, **kw) -> T.TrainConfig:
    base = dict(
        out_dir=str(out),
        model=TINY,
        datasets=[ds],
        dataset_fraction=1.0,
        steps=1,
        batch_size=2,
        crop=64,
        progress=False,
        warmup=1,
    )
    return T.TrainConfig(**{**base, **kw})


def test_a_resume_on_the_same_folder_read_otherwise_or_with_other_masks_is_refused(tmp_path):
    root = _dataset(tmp_path / "data", {"a": (64, 64)})
    ds = folder_dataset(root / "images", root / "masks")
    T.train(_cfg(tmp_path / "run", ds))
    # the same dataset, read again: the run resumes
    assert T.train(_cfg(tmp_path / "run", folder_dataset(root / "images", root / "masks"), steps=2)).step == 2
    # read black = forged (same name, same files): was resumed, mixing two opposite labellings
    inverted = folder_dataset(root / "images", root / "masks", convention=MaskConvention(invert=True))
    with pytest.raises(ValueError, match=r"last\.pt: this folder holds a run with other settings \(datasets"):
        T.train(_cfg(tmp_path / "run", inverted, steps=3))
    # a mask corrected (redrawn) in place: another dataset
    m = np.zeros((64, 64), np.uint8)
    m[:10, :10] = 255
    Image.fromarray(m).save(root / "masks" / "a.png")
    with pytest.raises(ValueError, match="other settings"):
        T.train(_cfg(tmp_path / "run", folder_dataset(root / "images", root / "masks"), steps=3))


def test_a_run_recorded_by_dataset_name_by_an_earlier_version_still_resumes(tmp_path):
    root = _dataset(tmp_path / "data", {"a": (64, 64)})
    ds = folder_dataset(root / "images", root / "masks")
    T.train(_cfg(tmp_path / "run", ds))
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["meta"]["train_config"]["datasets"][0].startswith("images <")
    ck["meta"]["train_config"]["datasets"] = ["images"]  # as earlier versions recorded it
    torch.save(ck, tmp_path / "run" / "last.pt")
    assert T.train(_cfg(tmp_path / "run", ds, steps=2)).step == 2


def test_unusable_masks_are_left_out_before_training_and_inverted_ones_said(tmp_path, capsys):
    # b's mask is of another size: the run stopped at whichever step drew b
    root = _dataset(tmp_path / "data", {"a": (64, 64), "b": (56, 64)})
    ds = folder_dataset(root / "images", root / "masks")
    stream = T.ForgeryStream([], [ds])
    err = capsys.readouterr().err
    assert "note: images: 1 image(s) left out of training (a mask that cannot be used)" in err
    assert "b.png: mask size 64x56 differs from image size 64x64" in err
    assert sorted(s.id for _, s in stream.samples) == ["a.png", "c.png"]
    for seed in range(8):  # every draw works (b drawn: a DatasetError)
        rgb, mask, label = stream.example(np.random.default_rng(seed), 64)
        assert rgb.shape == (64, 64, 3) and mask.shape == (64, 64)
    # nothing usable: the run is refused before it starts
    only_b = Dataset("b", root, [s for s in ds if s.id == "b.png"])
    with pytest.raises(ValueError, match="no training images"):
        T.ForgeryStream([], [only_b])
    # masks drawn black = forged, read white = forged: most mark more than half the picture
    inv = _dataset(tmp_path / "inv", {"a": (64, 64), "b": (64, 64)}, forged=slice(0, 60))
    T.ForgeryStream([], [folder_dataset(inv / "images", inv / "masks")])
    assert "2 of 2 masks mark more than half the picture forged: check the mask convention" in capsys.readouterr().err


def test_a_picture_that_cannot_be_read_is_left_out_before_training_and_the_rest_trains_as_without_it(tmp_path, capsys):
    """A dataset's picture cut short (a fake's, whose mask is fine, or a real one's) passed the
    check before training and stopped the run in one line at the step that drew it, possibly
    hours in. It is decoded up front and left out with a note; the others are drawn exactly as
    from the same folder without it."""
    root = _dataset(tmp_path / "data", {"a": (64, 64), "b": (64, 64)})  # c: real, no mask
    healthy = _dataset(tmp_path / "healthy", {"a": (64, 64)})
    for name in ("b", "c"):  # the healthy folder: a alone, the same file
        (healthy / "images" / f"{name}.png").unlink()
    for name in ("b.png", "c.png"):  # cut in the middle of the pixel data
        data = (root / "images" / name).read_bytes()
        (root / "images" / name).write_bytes(data[: len(data) // 2])
    stream = T.ForgeryStream([], [folder_dataset(root / "images", root / "masks")])
    err = capsys.readouterr().err
    assert "note: images: 2 image(s) left out of training (cannot be read), e.g. " in err
    assert str(root / "images" / "b.png") in err and "checking images's pictures and masks: 100%" in err
    assert [s.id for _, s in stream.samples] == ["a.png"]
    clean = T.ForgeryStream([], [folder_dataset(healthy / "images", healthy / "masks")])
    for seed in range(4):  # every draw works, and draws what the healthy folder draws
        got, want = (st.example(np.random.default_rng(seed), 64) for st in (stream, clean))
        assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_checking_a_datasets_masks_shows_progress_unless_quiet_and_reads_each_file_state_once(
    tmp_path, capsys, monkeypatch
):
    """The check read every mask silently (minutes for thousands of 3 MP masks), again for each
    phase of a run: it shows a bar (not with progress=False, as the run's own bar) and reads a
    dataset again only once a file changed."""
    BAR = "checking images's pictures and masks:"  # the folder's name: images
    reads = []
    read = Dataset.load_mask
    monkeypatch.setattr(Dataset, "load_mask", lambda ds, s: reads.append(s.id) or read(ds, s))
    root = _dataset(tmp_path / "data", {"a": (64, 64), "b": (64, 64)})
    stream = T.ForgeryStream([], [folder_dataset(root / "images", root / "masks")])
    assert f"{BAR} 100%" in capsys.readouterr().err and sorted(reads) == ["a.png", "b.png"]
    # the next phase: the same files, read again from the folder, are not checked again
    again = T.ForgeryStream([], [folder_dataset(root / "images", root / "masks")])
    assert [s for _, s in again.samples] == [s for _, s in stream.samples] and len(reads) == 2
    assert BAR not in capsys.readouterr().err
    # a mask redrawn at another size: checked again, and left out
    Image.fromarray(np.zeros((56, 64), np.uint8)).save(root / "masks" / "b.png")
    quiet = T.ForgeryStream([], [folder_dataset(root / "images", root / "masks")], progress=False)
    err = capsys.readouterr().err
    assert sorted(s.id for _, s in quiet.samples) == ["a.png", "c.png"] and len(reads) == 4
    assert "b.png: mask size 64x56 differs" in err and BAR not in err
    # a dataset of one's own class is always read (its masks may read otherwise)
    own = type("Own", (Dataset,), {})
    for _ in range(2):
        T.ForgeryStream(
            [], [own("images", root, folder_dataset(root / "images", root / "masks").samples)], progress=False
        )
    assert len(reads) == 8
    # a quiet run checks without a bar
    other = _dataset(tmp_path / "other", {"a": (64, 64)})
    T.train(_cfg(tmp_path / "run", folder_dataset(other / "images", other / "masks")))
    assert BAR not in capsys.readouterr().err


def test_train_takes_forgeries_with_their_masks_on_the_command_line_as_eval_reads_them(tmp_path, capsys):
    """Training on one's own forgeries was only possible from Python. `--images DIR --masks DIR`
    (and eval's other mask options) read the folder as eval does; an image without a mask is
    refused in one line, not trained as authentic."""
    root = _dataset(tmp_path / "data", {"a": (64, 64), "b": (64, 64)})  # c has no mask
    imgs, masks, run = root / "images", root / "masks", tmp_path / "run"
    base = ["--model", "b0", "--crop", "32", "--batch-size", "2", "--steps", "1", "-q", "-o", str(run)]
    assert cli_train.main(["--images", str(imgs), "--masks", str(masks), *base]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"error: {imgs}: 1 image(s) without a mask (c.png): with masks, every picture needs")
    assert not run.exists()
    for wrong, why in (
        (["--masks", str(masks)], "--masks and --mask-suffix go with --images DIR"),
        (
            ["--images", str(imgs), "--mask-invert"],
            "--mask-invert: no masks to read (give --masks DIR or --mask-suffix S",
        ),
        (["--images", str(imgs), "--mask-threshold", "0"], "--mask-threshold: no masks to read"),
    ):
        assert cli_train.main([*wrong, *base]) == 2
        (err,) = capsys.readouterr().err.strip().splitlines()
        assert why in err and not run.exists(), wrong
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / "c.png")  # marks nothing: authentic
    assert cli_train.main(["--images", str(imgs), "--masks", str(masks), *base]) == 0
    err = capsys.readouterr().err
    assert "note: images: 1 image(s) whose mask marks no forged pixel are labelled real (e.g. c.png" in err
    recorded = torch.load(run / "last.pt", weights_only=True)["meta"]["train_config"]["datasets"]
    python = T.TrainConfig(datasets=[folder_dataset(imgs, masks)]).to_plain()["datasets"]
    assert recorded == python  # the dataset the Python API reads, and a rerun resumes on it
    # the masks read black = forged: another dataset, so another run
    assert cli_train.main(["--images", str(imgs), "--masks", str(masks), "--mask-invert", *base]) == 2
    assert "this folder holds a run with other settings (datasets" in capsys.readouterr().err


def test_a_python_run_says_which_pictures_it_trains_as_authentic_for_want_of_a_mask(tmp_path, capsys):
    """The README's `TrainConfig(datasets=[folder_dataset(images, masks)])`: a fake whose mask went
    missing was trained as authentic without a word (the command line refuses it; eval says it).
    The dataset's notes are said when a run reads it, once per phase, and once on the command line."""
    root = _dataset(tmp_path / "data", {"a": (64, 64), "b": (64, 64)})  # c has no mask
    T.train(_cfg(tmp_path / "run", folder_dataset(root / "images", root / "masks")))
    err = capsys.readouterr().err
    assert err.count("note: images: 1 image(s) without a mask are labelled real (e.g. c.png)") == 1, err
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "masks" / "c.png")  # marks nothing: authentic
    base = ["--model", "b0", "--crop", "32", "--batch-size", "2", "--steps", "1", "-q", "-o", str(tmp_path / "cli")]
    assert cli_train.main(["--images", str(root / "images"), "--masks", str(root / "masks"), *base]) == 0
    err = capsys.readouterr().err
    assert err.count("whose mask marks no forged pixel are labelled real (e.g. c.png") == 1, err


@pytest.mark.parametrize("mask_name", ["a_mask.png", "A_GT.png", "masks/a.png"])
def test_a_pristine_folder_holding_masks_is_refused(tmp_path, capsys, mask_name):
    pics = tmp_path / "pics"
    (pics / "masks").mkdir(parents=True)
    Image.fromarray(T.synthetic_scene(64, 0)).save(pics / "a.png")
    m = np.zeros((64, 64), np.uint8)
    m[10:30, 10:30] = 255
    Image.fromarray(m).save(pics / mask_name)
    out = tmp_path / "run"
    rc = cli_train.main(["--images", str(pics), "-o", str(out), "--steps", "1", "--crop", "32", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and not out.exists()
    assert mask_name.split("/")[-1] in err and "a folder of pristine pictures holds no masks" in err
    assert "forgeries with their masks as --masks DIR or --mask-suffix S on the command line" in err
    # pristine pictures whose names only end like a mask's, without a twin, are pictures
    (pics / mask_name).unlink()
    Image.fromarray(T.synthetic_scene(64, 1)).save(pics / "b_mask.png")
    assert len(read_folder(pics)) == 2


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = T.TrainConfig(
        out_dir=str(out),
        model=TINY,
        pristine=[T.synthetic_scene(64, 0), T.synthetic_scene(64, 1)],
        steps=1,
        batch_size=2,
        crop=64,
        progress=False,
        warmup=1,
    )
    return T.train(cfg).checkpoint


@pytest.mark.parametrize("kind", ["noiseprint", "untrained", "Official", "mine"])
def test_load_trufor_takes_a_full_checkpoint_only_as_official_demo_or_custom(run_checkpoint, kind):
    # 'noiseprint' recorded a trained TruFor's results as Noiseprint++-only, 'untrained' as random weights
    with pytest.raises(ValueError, match=f"kind must be one of 'official', 'demo', 'custom', got '{kind}'"):
        tl.load_trufor(run_checkpoint, kind=kind)
    assert tl.load_trufor(run_checkpoint, kind="custom").weights_info.kind == "custom"


def test_export_takes_floating_dtypes_and_the_kinds_a_load_reads(run_checkpoint, tmp_path):
    for dtype, why in [
        (torch.int8, "torch.int8"),  # written, then refused by every load (384 dtype mismatches)
        (torch.bool, "torch.bool"),
        (torch.complex64, "torch.complex64"),
        ("float17", "'float17'"),
        ("cuda", "'cuda'"),
    ]:
        with pytest.raises(ValueError, match=f"dtype must be a floating dtype .*, got {why}"):
            T.export_checkpoint(run_checkpoint, tmp_path / "x.pt", dtype=dtype)
    with pytest.raises(ValueError, match="kind must be one of 'demo', 'custom', got 'official'"):
        T.export_checkpoint(run_checkpoint, tmp_path / "x.pt", kind="official")
    assert not (tmp_path / "x.pt").exists()
    # a dtype by name ("Invalid device string: 'float16'" before)
    p = T.export_checkpoint(run_checkpoint, tmp_path / "bf.pt", dtype="bfloat16", kind="custom")
    sd = torch.load(p, weights_only=True)["state_dict"]
    assert sd["decode_head.linear_pred.weight"].dtype == torch.bfloat16 and sd["dncnn.0.weight"].dtype == torch.float32
    m = tl.load_trufor(p)
    assert m.weights_info.kind == "custom" and all(t.dtype == torch.float32 for t in m.parameters())


def test_weights_saved_from_a_training_wrapper_export_and_start_a_run_as_they_load(run_checkpoint, tmp_path):
    from trufor_lab.model import MIT_B0
    from trufor_lab.training.phases import build_model

    obj = torch.load(run_checkpoint, weights_only=True)
    wrapped = tmp_path / "lightning.pt"  # Lightning's 'model.' on every key: load_trufor took it, these refused it
    torch.save(
        {"state_dict": {"model." + k: v for k, v in obj["state_dict"].items()}, "config": obj["config"]}, wrapped
    )
    loaded = tl.load_trufor(wrapped)
    exported = tl.load_trufor(T.export_checkpoint(wrapped, tmp_path / "exp.pt", kind="custom", dtype=torch.float32))
    started = build_model(None, wrapped)
    for m in (exported, started):
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))
    # no config entry: the size is read from the keys once the prefix is off (MiT-B0 here, not B2)
    b0 = build_model(MIT_B0).state_dict()
    torch.save({"state_dict": {"model." + k: v for k, v in b0.items()}}, tmp_path / "b0.pt")
    assert build_model(None, tmp_path / "b0.pt").cfg == MIT_B0


def test_a_fake_whose_picture_viewers_show_turned_is_said(tmp_path, capsys):
    root = _dataset(tmp_path / "data", {"a": (64, 64)})
    im = Image.open(root / "images" / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers turn it a quarter: a mask drawn there does not align with the stored pixels
    im.save(root / "images" / "a.png", exif=exif.tobytes())
    T.ForgeryStream([], [folder_dataset(root / "images", root / "masks")])
    err = capsys.readouterr().err
    assert "note: images: 1 picture(s) with an EXIF orientation are trained as stored, e.g. " in err
    assert "a.png: EXIF orientation 6" in err


def test_train_help_says_what_restart_removes_and_what_images_takes(capsys):
    with pytest.raises(SystemExit):
        cli_train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    # it said "ignore an existing last.pt": the old checkpoint and log are deleted
    assert "start over: the run's last.pt and log.jsonl are removed" in text
    assert "folder of pristine images, no masks" in text


def test_a_model_trained_in_the_localization_phase_alone_says_its_score_is_that_of_random_heads(
    run_checkpoint, tmp_path, capsys
):
    # the README's `train -o RUN` then export of RUN/last.pt: a score of 0.49 and a confidence of 0.5
    # from heads never trained, and no word of it anywhere
    exported = T.export_checkpoint(run_checkpoint, tmp_path / "mine.pt", kind="custom")
    for path in (run_checkpoint, exported):
        m = tl.load_trufor(path, kind="custom")
        assert m.weights_info.untrained == "confidence, detection"
        r = tl.analyze(m, T.synthetic_scene(64, 3))
        assert "its confidence and detection phases were never trained: its confidence map and score come " in str(
            r.notice
        )
        assert str(tl.banner(m)) == r.notice
    # a detection run started from it leaves the confidence head as it found it: random
    det = T.train(
        T.TrainConfig(
            phase="detection",
            init=str(run_checkpoint),
            out_dir=str(tmp_path / "det"),
            pristine=[T.synthetic_scene(64, 0), T.synthetic_scene(64, 1)],
            steps=1,
            batch_size=2,
            crop=64,
            progress=False,
            warmup=1,
        )
    )
    assert det.trained == ["localization", "detection"]
    notice = tl.banner(tl.load_trufor(det.checkpoint, kind="custom"))
    assert "its confidence phase was never trained: its confidence map comes from random weights and means nothing" in (
        str(notice)
    )
    # a checkpoint that says nothing (the official one, an earlier version's run) is not doubted
    obj = torch.load(run_checkpoint, weights_only=True)
    del obj["meta"]["trained"]
    torch.save(obj, tmp_path / "older.pt")
    m = tl.load_trufor(tmp_path / "older.pt", kind="custom")
    assert m.weights_info.untrained == "" and "never trained" not in str(tl.banner(m))
    # the command says it when it ends, -q or not
    capsys.readouterr()
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(2):
        Image.fromarray(T.synthetic_scene(64, i)).save(pics / f"p{i}.png")
    out = tmp_path / "cli"
    args = ["-o", str(out), "--init", str(run_checkpoint), "--images", str(pics), "--steps", "1", "--crop", "64", "-q"]
    assert cli_train.main([*args, "--batch-size", "2"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (
        f"note: {out}/last.pt: its confidence and detection phases were never trained: a model loaded from it " in err
    )
    assert (
        f"train them with --phase confidence --init {out}/last.pt -o ANOTHER_RUN (then the next), or --phase all" in err
    )


def test_an_export_over_the_checkpoint_it_is_made_from_is_refused(run_checkpoint, tmp_path):
    # a run's last.pt exported over itself: float16 weights, no optimizer, the run could never resume
    run = tmp_path / "run"
    run.mkdir()
    src = run / "last.pt"
    src.write_bytes(run_checkpoint.read_bytes())
    before = src.read_bytes()
    for dst in (src, run / "." / "last.pt"):
        with pytest.raises(ValueError, match=f"^{dst}: the export would replace the checkpoint it is made from"):
            T.export_checkpoint(src, dst, kind="custom")
    assert src.read_bytes() == before
    assert read_training_state(src)["step"] == 1


def test_forgeries_and_pictures_smaller_than_the_examples_cut_from_them_are_said(tmp_path, capsys):
    # said of a pristine folder only: a dataset's 40x48 forgery trained on mirror-padded crops with no
    # word, and so did a picture smaller than the precomputed examples' side but not than the crop
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, (h, w) in {"a": (40, 48), "b": (64, 72)}.items():
        Image.fromarray(T.synthetic_scene(80, len(name))[:h, :w]).save(root / "images" / f"{name}.png")
        m = np.zeros((h, w), np.uint8)
        m[8:24, 8:24] = 255
        Image.fromarray(m).save(root / "masks" / f"{name}.png")
    ds = folder_dataset(root / "images", root / "masks")
    T.train(_cfg(tmp_path / "run", ds))
    err = " ".join(capsys.readouterr().err.split())
    assert "note: images: 1 of 2 pictures are smaller than --crop 64 (smallest 48x40): their crops are padded " in err
    T.train(_cfg(tmp_path / "pool", ds, crop=32, precompute=2, precompute_size=64))
    err = " ".join(capsys.readouterr().err.split())
    assert "note: images: 1 of 2 pictures are smaller than the precomputed examples' side 64 (precompute_size) " in err
    T.train(_cfg(tmp_path / "fits", ds, crop=32))
    assert "smaller than" not in capsys.readouterr().err


def test_dataset_picture_sizes_are_read_under_the_projects_pixel_limit(tmp_path, recwarn):
    """The small-picture note read each dataset picture's header under Pillow's own limit (89 MP):
    a 95 MP picture, which load_image reads, printed a DecompressionBombWarning naming no file, and
    one of 182 MP (under the project's 200 MP) stopped the run with a DecompressionBombError."""
    import struct
    import zlib

    from trufor_lab.common.image_files import MAX_PIXELS
    from trufor_lab.training.loop import _stored_sizes

    def chunk(t: bytes, p: bytes) -> bytes:
        return struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p) & 0xFFFFFFFF)

    w, h = 13000, 14000  # the header alone is read: its pixel data need not be there
    assert w * h <= MAX_PIXELS
    path = tmp_path / "big.png"
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )
    assert _stored_sizes([path]) == [(h, w)]
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_an_init_whose_record_names_no_localization_is_not_known_and_ends_without_a_traceback(
    run_checkpoint, tmp_path, capsys
):
    """An init whose ``meta.trained`` left out localization (a list this package never writes:
    every run starts with it; a checkpoint is untrusted) ended 'trufor-lab train' with a
    KeyError traceback after training, in the note on phases never trained."""
    obj = torch.load(run_checkpoint, weights_only=True)
    obj["meta"]["trained"] = []
    torch.save(obj, tmp_path / "odd.pt")
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(2):
        Image.fromarray(T.synthetic_scene(64, i)).save(pics / f"p{i}.png")
    args = ["--phase", "confidence", "-o", str(tmp_path / "cli"), "--init", str(tmp_path / "odd.pt")]
    args += ["--images", str(pics), "--steps", "1", "--crop", "64", "--batch-size", "2", "-q"]
    assert cli_train.main(args) == 0
    assert "Traceback" not in capsys.readouterr().err
    from trufor_lab.training.checkpoints import trained_phases

    assert trained_phases(obj) is None  # not known: no note either way
