"""Real-photo training data (trufor_lab.training.photos) and score calibration
(trufor_lab.training.finetune_real): camera identity, camera-level splits, grid-aligned native
crops, the platform chain, the example stream, Platt scaling folded into the detection head."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trufor_lab.model.detection import detection_mlp
from trufor_lab.training import finetune_real as FR
from trufor_lab.training import photos as P


def _noise_photo(seed: int, h: int = 320, w: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, w)[None, :, None] + rng.normal(0, 12, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def _save(path, a, make=None, model=None, quality=90):
    exif = Image.Exif()
    if make:
        exif[271] = make
    if model:
        exif[272] = model
    Image.fromarray(a).save(path, quality=quality, exif=exif.tobytes())


@pytest.fixture()
def photo_dir(tmp_path):
    _save(tmp_path / "a1.jpg", _noise_photo(0), "Canon", "Canon PowerShot X")
    _save(tmp_path / "a2.jpg", _noise_photo(1), "Canon", "Canon PowerShot X")
    _save(tmp_path / "b1.jpg", _noise_photo(2), "Xiaomi", "Mi A3")
    _save(tmp_path / "c1.jpg", _noise_photo(3))  # no EXIF
    _save(tmp_path / "tiny.jpg", _noise_photo(4, 64, 64), "Canon", "Canon PowerShot X")
    return tmp_path


def test_scan_photos_reads_camera_identity_and_skips_small_images(photo_dir):
    photos = P.scan_photos(photo_dir)
    cams = {p.name: p.camera for p in photos}
    assert cams == {"a1": "Canon PowerShot X", "a2": "Canon PowerShot X", "b1": "Xiaomi Mi A3", "c1": "unknown:c1"}
    assert all(p.size == (320, 400) for p in photos)
    assert photos[0].load().shape == (320, 400, 3)


def test_scan_photos_uses_camera_folders_and_names_the_folder_on_errors(tmp_path):
    """One sub-folder per camera (as the fetch script tells users): each photo in camA/ or camB/
    was its own 'unknown' camera, and camA/1.jpg and camB/1.jpg even shared one, so a split by
    camera leaked. With camera_folders the folder is the camera; names never collide."""
    for cam, seeds in (("camA", (1, 2)), ("camB", (1, 3))):
        (tmp_path / cam).mkdir()
        for s in seeds:
            _save(tmp_path / cam / f"{s}.jpg", _noise_photo(s + (10 if cam == "camB" else 0)))
    by_folder = {p.name: p.camera for p in P.scan_photos(tmp_path, camera_folders=True)}
    assert by_folder == {"camA/1": "folder:camA", "2": "folder:camA", "camB/1": "folder:camB", "3": "folder:camB"}
    plain = P.scan_photos(tmp_path)
    assert len({p.camera for p in plain}) == 4 and len({p.name for p in plain}) == 4
    split = P.split_by_camera(P.scan_photos(tmp_path, camera_folders=True), {"test": ("folder:camB",)})
    assert sorted(p.name for p in split["test"]) == ["3", "camB/1"]
    with pytest.raises(ValueError, match="no photo matches the test split"):
        P.split_by_camera(plain, {"test": ("folder:camB",)})
    with pytest.raises(ValueError, match="empty"):
        (tmp_path / "empty").mkdir()
        P.scan_photos(tmp_path / "empty")


def test_photos_that_differ_only_by_extension_are_two_photos(tmp_path):
    """a.jpg beside a.png were both named "a" (and both "unknown:a"): a split named one and
    moved both, and a name -> image table kept one of them."""
    _save(tmp_path / "a.jpg", _noise_photo(0))
    Image.fromarray(_noise_photo(1)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    _save(tmp_path / "sub" / "a.jpg", _noise_photo(2))
    photos = P.scan_photos(tmp_path, min_side=64)
    names = sorted(p.name for p in photos)
    assert names == ["a.jpg", "a.png", "sub/a"] and len({p.camera for p in photos}) == 3
    split = P.split_by_camera(photos, {"test": ("photo:a.png",)})
    assert [p.name for p in split["test"]] == ["a.png"]
    with pytest.raises(ValueError, match="unknown split name"):
        P.split_by_camera(photos, {"Test": ("photo:a.png",)})


def test_mpo_frames_are_photos(tmp_path):
    """A stereo camera's .mpo (one photo per frame) was left out when the listing moved to
    find_images, whose extensions lacked .mpo: the default split's validation frame vanished."""
    frames = [Image.fromarray(_noise_photo(s, 96, 128)) for s in (0, 1)]
    frames[0].save(tmp_path / "stereo.mpo", "MPO", save_all=True, append_images=frames[1:])
    _save(tmp_path / "other.jpg", _noise_photo(2, 96, 128))
    assert sorted(p.name for p in P.scan_photos(tmp_path, min_side=64)) == ["other", "stereo#0", "stereo#1"]


def test_split_is_by_camera_never_by_photo(photo_dir):
    photos = P.scan_photos(photo_dir)
    s = P.split_by_camera(photos, {"test": ["Canon PowerShot X"], "validation": ["unknown:c1"]})
    assert [p.name for p in s["test"]] == ["a1", "a2"]
    assert [p.name for p in s["validation"]] == ["c1"] and [p.name for p in s["train"]] == ["b1"]
    with pytest.raises(ValueError, match="both"):
        P.split_by_camera(photos, {"test": ["Mi A3"], "validation": ["Mi A3"]})
    s = P.split_by_camera(photos, {"validation": ["photo:a2"]})  # a held-out photo of a training camera
    assert [p.name for p in s["validation"]] == ["a2"] and "a1" in [p.name for p in s["train"]]
    with pytest.raises(ValueError, match="held out whole"):
        P.split_by_camera(photos, {"test": ["Canon PowerShot X"], "validation": ["photo:a2"]})


def test_default_split_keeps_test_cameras_out_of_training():
    test, val = set(P.DEFAULT_SPLIT["test"]), set(P.DEFAULT_SPLIT["validation"])
    assert not test & val
    assert "Canon PowerShot SX530 HS" in test and "unknown:IMG-20191006-WA0002" in test


def test_grid_crop_is_native_and_grid_aligned():
    a = _noise_photo(6)
    rng = np.random.default_rng(0)
    for _ in range(20):
        c, (y, x) = P.grid_crop(rng, a, 128)
        assert y % 8 == 0 and x % 8 == 0 and np.array_equal(c, a[y : y + 128, x : x + 128])
    tiles = P.tile_crops(a, 128)
    assert len(tiles) == 2 * 3 and np.array_equal(tiles[4], a[128:256, 128:256])
    # a limit spreads the tiles over the photo (it kept the top rows only), and 0 means none
    big = np.kron(np.arange(1, 33, dtype=np.uint8).reshape(8, 4), np.ones((64, 64), np.uint8))[..., None].repeat(3, 2)
    rows = [(int(t[0, 0, 0]) - 1) // 4 for t in P.tile_crops(big, 64, limit=4)]  # tile k holds k + 1
    assert rows == [0, 2, 5, 7], rows
    assert P.tile_crops(big, 64, limit=0) == [] and len(P.tile_crops(big, 64, limit=99)) == 32
    with pytest.raises(ValueError, match="tile limit"):
        P.tile_crops(big, 64, limit=-1)
    with pytest.raises(ValueError, match="smaller"):
        P.grid_crop(rng, a[:100], 128)


def test_platform_chain_keeps_size_and_moves_the_mask_with_the_pixels():
    a = _noise_photo(7, 256, 256)
    m = np.zeros((256, 256), bool)
    m[100:180, 50:130] = True
    seen = set()
    for s in range(30):
        out, mask, how = P.platform_chain(a, m, np.random.default_rng(s), 160)
        assert out.shape == (160, 160, 3) and mask.shape == (160, 160) and mask.any()
        seen.add(how.split("+")[-1][:3])
        if how.startswith("resize"):
            f = float(how.split("+")[0][6:])
            assert abs(mask.sum() - m[: round(160 / f), : round(160 / f)].sum() * f * f) < 0.15 * mask.sum() + 50
    assert seen == {"jpe", "png"}
    o1, _, h1 = P.platform_chain(a, m, np.random.default_rng(3), 160)
    o2, _, h2 = P.platform_chain(a, m, np.random.default_rng(3), 160)
    assert h1 == h2 and np.array_equal(o1, o2)


def test_real_stream_makes_all_kinds_of_examples(photo_dir):
    photos = P.scan_photos(photo_dir)
    sims = [_noise_photo(10 + i, 192, 192) for i in range(2)]
    st = P.RealForgeryStream(photos, sim_images=sims, sim_fraction=0.2)
    rng = np.random.default_rng(0)
    kinds = []
    for _ in range(40):
        rgb, mask, label, kind = st.real_example(rng, 96)
        assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8 and mask.shape == (96, 96)
        assert label == int(mask.any())
        kinds.append(kind.split("+")[0])
    assert {"pristine", "splice_real", "splice_sim"} <= set(kinds)
    assert len(set(kinds) - {"pristine", "splice_real", "splice_sim"}) >= 2  # within-photo edits
    rgb, mask, label = st.example(rng, 96)
    assert rgb.shape == (96, 96, 3)


def test_real_heldout_splices_across_cameras(photo_dir):
    photos = [p for p in P.scan_photos(photo_dir) if p.name in ("a1", "b1")]
    items = P.real_heldout(photos, 4, 4, 128, seed=0)
    assert [it.label for it in items] == [0] * 4 + [1] * 4
    for it in items[4:]:
        assert it.params["camera"] != it.params["donor_camera"] and it.mask.any()
        assert it.image.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="two cameras"):
        P.real_heldout(photos[:1], 2, 2, 128)


def test_platt_scaling_recovers_a_known_calibration_and_folds_exactly():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(int)
    a, b = FR.fit_platt(z, y)
    assert abs(a - 0.5) < 0.08 and abs(b + 1.0) < 0.15
    torch.manual_seed(0)
    mlp = detection_mlp(8).eval()
    sd = {f"detection.{k}": v for k, v in mlp.state_dict().items()}
    folded = FR.fold_calibration(sd, 0.5, -1.0)
    assert set(folded) == set(sd)
    mlp2 = detection_mlp(8).eval()
    mlp2.load_state_dict({k[len("detection.") :]: v for k, v in folded.items()}, strict=True)
    x = torch.randn(5, 8)
    assert torch.allclose(mlp2(x), 0.5 * mlp(x) - 1.0, atol=1e-6)


def test_prior_shift_gives_the_posterior_of_another_base_rate():
    """Platt on a balanced sample, shifted to a 20 % base rate, is Bayes' posterior for that rate
    (two unit Gaussians at -1 / +1: log-likelihood ratio 2x)."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 5000)
    x = rng.normal(2.0 * y - 1.0, 1.0)
    a, b = FR.fit_platt(x, y)
    shift = FR.prior_shift(y, 0.2)
    assert abs(shift - np.log(0.25)) < 1e-12 and FR.prior_shift(y, 0.5) == 0
    grid = np.linspace(-2, 2, 9)
    truth = (
        0.2
        * np.exp(-((grid - 1) ** 2) / 2)
        / (0.2 * np.exp(-((grid - 1) ** 2) / 2) + 0.8 * np.exp(-((grid + 1) ** 2) / 2))
    )
    got = 1 / (1 + np.exp(-(a * grid + b + shift)))
    assert np.abs(got - truth).max() < 0.03
    assert FR.prior_shift(np.array([0, 0, 0, 1]), 0.25) == pytest.approx(0.0)  # already that balance
    with pytest.raises(ValueError, match="base_rate"):
        FR.prior_shift(y, 1.0)


def test_every_listed_skimage_photo_exists():
    """The photo list names real scikit-image samples (an unknown name crashed the recipe)."""
    import skimage.data

    missing = [n for n in P.SKIMAGE_PHOTOS if not callable(getattr(skimage.data, n, None))]
    assert not missing, missing
    names = {p.name for p in P.skimage_photos()}
    assert {"astronaut", "coffee", "camera", "chelsea", "rocket"} <= names


def _grid_sub_array(crop: np.ndarray, images: list[np.ndarray]) -> bool:
    s = crop.shape[0]
    return any(
        np.array_equal(im[y : y + s, x : x + s], crop)
        for im in images
        for y in range(0, im.shape[0] - s + 1, 8)
        for x in range(0, im.shape[1] - s + 1, 8)
    )


def test_source_resave_saves_real_crops_again_before_use(tmp_path):
    """``source_resave``: pristine crops, hosts and donors had been saved again (as the test
    cameras' photos were); off, a pristine crop is the photo's own grid-aligned pixels."""
    for cam, seeds in (("camA", (0, 1)), ("camB", (2,))):
        (tmp_path / cam).mkdir()
        for s in seeds:
            Image.fromarray(_noise_photo(s)).save(tmp_path / cam / f"p{s}.png")  # lossless sources
    photos = P.scan_photos(tmp_path)
    images = [p.load() for p in photos]
    for resave in (0.0, 1.0):
        st = P.RealForgeryStream(photos, sim_images=[_noise_photo(9, 192, 192)], chain_prob=0.0, source_resave=resave)
        rng = np.random.default_rng(3)
        pristine = [st.real_example(rng, 96, forged=False) for _ in range(6)]
        for rgb, mask, label, kind in pristine:
            assert rgb.shape == (96, 96, 3) and not mask.any() and label == 0 and kind == "pristine"
            assert _grid_sub_array(rgb, images) == (resave == 0.0)
        for _ in range(4):
            rgb, mask, label, _ = st.real_example(rng, 96, forged=True)
            assert rgb.shape == (96, 96, 3) and mask.shape == (96, 96)


def test_source_scale_sets_how_far_a_resaved_source_was_downscaled(tmp_path):
    """``source_scale``: the factor range of the messenger-like downscale of a re-saved source
    (a 12 MP photo sent at 1600 px is scaled by ~0.4); a ramp of one grey level per pixel
    comes back four times as steep after a 0.25 downscale, never steeper without one."""
    ramp = np.broadcast_to((np.arange(640) % 256).astype(np.uint8)[None, :, None], (640, 640, 3)).copy()
    for k, cam in enumerate(("camA", "camB")):
        (tmp_path / cam).mkdir()
        Image.fromarray(np.roll(ramp, 7 * k, axis=1)).save(tmp_path / cam / "p.png")
    photos = P.scan_photos(tmp_path)
    slopes = {}
    for scale in ((0.25, 0.25), (1.0, 1.0)):
        st = P.RealForgeryStream(
            photos, sim_images=[ramp[:192, :192]], chain_prob=0.0, source_resave=1.0, source_scale=scale
        )
        rng = np.random.default_rng(5)
        slopes[scale] = [
            float(np.median(np.abs(np.diff(rgb[:, :, 1].astype(int), axis=1))))
            for rgb, _, _, _ in (st.real_example(rng, 96, forged=False) for _ in range(12))
        ]
    assert max(slopes[(1.0, 1.0)]) <= 1, slopes
    steep = [s for s in slopes[(0.25, 0.25)] if s >= 3.5]
    assert 2 <= len(steep) <= 10 and all(s <= 1 or s >= 3.5 for s in slopes[(0.25, 0.25)]), slopes  # half of them
    for bad in ((0.0, 0.5), (0.6, 0.4), (0.5, 1.5)):
        with pytest.raises(ValueError, match="source_scale"):
            P.RealForgeryStream(photos, sim_images=[ramp[:192, :192]], source_scale=bad)


def test_history_splices_join_two_separately_resaved_photos_of_any_camera(tmp_path):
    """The fourth kind of forgery: host and donor, from any photos (one camera is enough), were
    each saved again on their own, so the splice differs in processing history, not in camera."""
    (tmp_path / "camA").mkdir()
    for s in (0, 1):
        Image.fromarray(_noise_photo(s)).save(tmp_path / "camA" / f"p{s}.png")  # lossless, one camera
    photos = P.scan_photos(tmp_path)
    images = [p.load() for p in photos]
    st = P.RealForgeryStream(photos, sim_images=[_noise_photo(9, 192, 192)], chain_prob=0.0, weights=(0, 0, 0, 1))
    rng = np.random.default_rng(4)
    for _ in range(5):
        rgb, mask, label, kind = st.real_example(rng, 96, forged=True)
        assert kind == "splice_history" and label == 1 and mask.shape == (96, 96) and 0 < mask.mean() < 1
        outside = ~mask
        assert not any(  # the host was saved again too: outside the region, not the photo's own pixels
            np.array_equal(im[y : y + 96, x : x + 96][outside], rgb[outside])
            for im in images
            for y in range(0, im.shape[0] - 95, 8)
            for x in range(0, im.shape[1] - 95, 8)
        )
    for bad in ((1, 1), (0, 0, 0, 0), (1, -1, 0, 0), (1, 1, 1, 1, 1)):
        with pytest.raises(ValueError, match="weights"):
            P.RealForgeryStream(photos, sim_images=[_noise_photo(9, 192, 192)], weights=bad)


def test_the_card_scores_the_runs_own_test_photos(photo_dir, tmp_path):
    """The card recomputed the default split: a run whose split put a camera in training had
    those photos scored as 'unseen cameras'. With the run's splits.json it takes its test photos."""
    import json

    from trufor_lab.training.card import recorded_test_photos

    photos = P.scan_photos(photo_dir)
    run = P.split_by_camera(photos, {"test": ["Xiaomi Mi A3"]})  # what the run trained with
    splits_json = tmp_path / "splits.json"
    splits_json.write_text(json.dumps({k: [(p.name, p.camera) for p in v] for k, v in run.items()}))
    recomputed = P.split_by_camera(photos, {"test": ["Canon PowerShot X"]})  # another split of the same photos
    assert [p.name for p in recorded_test_photos(recomputed, splits_json)] == ["b1"]
    (tmp_path / "other.json").write_text(json.dumps({"test": [["zz", "Nikon"]]}))
    with pytest.raises(ValueError, match="1 test photo"):
        recorded_test_photos(recomputed, tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a splits.json"):
        recorded_test_photos(recomputed, tmp_path / "bad.json")


def test_own_photos_without_a_validation_split_are_refused_before_any_training(photo_dir, capsys):
    """The recipe on one's own folder trained all three phases (7-45 min) and only then failed in
    calibration ('needs photos from at least two cameras'), never saying the validation split was
    empty; main() printed tracebacks for every bad input."""
    out = photo_dir / "run"
    with pytest.raises(ValueError, match=r"validation split has photos of 0 camera\(s\).*--validation"):
        FR.run(photo_dir, out)
    assert not out.exists()
    assert FR.main(["--photos", str(photo_dir), "--out", str(out), "--round", "3"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "--validation" in line
    empty = photo_dir / "empty"
    empty.mkdir()
    assert FR.main(["--photos", str(empty), "--out", str(out), "--round", "3", "--validation", "x", "y"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "empty" in line


def test_a_rerun_that_trains_localization_further_retrains_the_phases_after_it(photo_dir):
    """A rerun that finished a localization stopped by its time cap got the old confidence and
    detection back: the calibrated model held the capped encoder, unsaid."""
    tiny = {"precompute": 2, "precompute_size": 64, "crop": 64, "batch_size": 2, "warmup": 1}
    split = {"validation": ("Xiaomi Mi A3", "photo:c1")}

    def go(cap: int):
        phases = {"localization": (3, 1e-3, cap), "confidence": (1, 1e-3, 600), "detection": (1, 1e-3, 600)}
        return FR.run(
            photo_dir, photo_dir / "run", split=split, phases=phases, calibration={"n": 2, "base_rate": 0.2},
            overrides={p: tiny for p in FR.PHASES},
        )  # fmt: skip

    go(0)  # the cap stops localization after its first step
    cal = go(600)
    load = lambda p: torch.load(p, weights_only=True)["state_dict"]  # noqa: E731
    loc, got = load(photo_dir / "run" / "localization" / "last.pt"), load(cal)
    key = "backbone.patch_embed1.proj.weight"
    assert torch.equal(loc[key], got[key])


def test_one_camera_however_its_exif_spells_it_and_one_photo_however_many_copies(photo_dir):
    """'samsung SM-G991B' and 'SAMSUNG SM-G991B' were two cameras, 'Canon  EOS X' (two spaces) a
    third beside 'Canon EOS X' (the test camera's photos leaked into training); a copy of a
    photo under another name went to another split than its original."""
    _save(photo_dir / "s1.jpg", _noise_photo(5), "samsung", "SM-G991B")
    _save(photo_dir / "s2.jpg", _noise_photo(6), "SAMSUNG", "SM-G991B")
    _save(photo_dir / "e1.jpg", _noise_photo(7), "Canon", "Canon  EOS X")
    _save(photo_dir / "e2.jpg", _noise_photo(8), "Canon", "Canon EOS X")
    (photo_dir / "a1 (1).jpg").write_bytes((photo_dir / "a1.jpg").read_bytes())
    with pytest.warns(UserWarning, match=r"a1\.jpg: the same file as .*a1 \(1\)\.jpg: left out"):
        photos = P.scan_photos(photo_dir)
    cams = {p.name: p.camera for p in photos}
    assert ("a1" in cams) != ("a1 (1)" in cams)  # one of the two, the first by name
    assert cams["s1"] == cams["s2"] and cams["e1"] == cams["e2"] == "Canon EOS X"
    sp = P.split_by_camera(photos, {"validation": ("SAMSUNG sm-g991b",), "test": ("canon eos x",)})
    assert {p.name for p in sp["test"]} == {"e1", "e2"} and {p.name for p in sp["validation"]} == {"s1", "s2"}


def test_a_16_bit_grey_photo_loads_as_every_image_does(tmp_path):
    """Pillow's RGB conversion clips 16-bit grey to 255: a mid-grey 16-bit photo loaded nearly white."""
    from trufor_lab.inference.preprocess import load_image

    a = np.linspace(0, 65535, 300 * 320).reshape(300, 320).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "grey16.png")
    (photo,) = P.scan_photos(tmp_path)
    rgb = photo.load()
    assert np.array_equal(rgb, load_image(tmp_path / "grey16.png").rgb) and abs(rgb.mean() - 127.5) < 1


def test_every_image_format_read_elsewhere_is_a_photo_and_one_left_out_is_said(tmp_path):
    """AVIF, PPM (and HEIC where a plugin reads it) photos were skipped without a word."""
    Image.fromarray(_noise_photo(0)).save(tmp_path / "phone.avif")
    Image.fromarray(_noise_photo(1)).save(tmp_path / "scan.ppm")
    (tmp_path / "iphone.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 100)  # no decoder reads this
    with pytest.warns(UserWarning, match=r"iphone\.heic: left out \(a HEIC/HEIF photo"):
        photos = P.scan_photos(tmp_path)
    assert sorted(p.name for p in photos) == ["phone", "scan"]
    assert all(p.load().shape == (320, 400, 3) for p in photos)


def test_a_warning_about_a_photo_reaches_the_terminal(tmp_path):
    """The reader kept the terminal's file descriptor for libtiff around its callers' whole block,
    so scan_photos' warning 'EXIF names the make (Canon) but no model', raised in that block,
    was written into the capture and lost."""
    import subprocess
    import sys

    _save(tmp_path / "a.jpg", _noise_photo(0), "Canon")
    code = "import sys\nfrom trufor_lab.training.photos import scan_photos\nprint(len(scan_photos(sys.argv[1])))\n"
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == "1\n", p.stderr
    assert "a.jpg: EXIF names the make (Canon) but no model" in p.stderr, p.stderr


def _no_training(monkeypatch):
    """run() stopped where training would start (after its splits are written)."""

    class Trained(Exception):
        pass

    def stream(*a, **k):
        raise Trained

    monkeypatch.setattr(FR, "RealForgeryStream", stream)
    return Trained


def test_a_test_list_of_ones_own_keeps_the_held_out_scikit_image_pictures_in_test(photo_dir, monkeypatch):
    """--test replaced the whole default test list: astronaut, coffee and camera, sources never
    used in training, went to training."""
    from trufor_lab.training.scenes import HELDOUT_SKIMAGE

    trained = _no_training(monkeypatch)
    split = {"validation": ("photo:a2", "photo:c1"), "test": ("Xiaomi Mi A3",)}
    with pytest.raises(trained):
        FR.run(photo_dir, photo_dir / "run", split=split)
    got = json.loads((photo_dir / "run" / "splits.json").read_text())
    assert set(HELDOUT_SKIMAGE) <= {n for n, _ in got["test"]} and "b1" in {n for n, _ in got["test"]}
    assert not set(HELDOUT_SKIMAGE) & {n for n, _ in got["train"]}
    moved = {**split, "train": ("skimage:coffee",)}  # moved by name: it trains
    with pytest.raises(trained):
        FR.run(photo_dir, photo_dir / "run2", split=moved)
    got = json.loads((photo_dir / "run2" / "splits.json").read_text())
    assert "coffee" in {n for n, _ in got["train"]} and "astronaut" in {n for n, _ in got["test"]}


def test_the_command_runs_the_shipped_round_and_refuses_validation_with_a_round_without_calibration(
    photo_dir, monkeypatch, capsys
):
    """The documented command ran round 1 (calibration skipped, unsaid): the --validation
    cameras were taken out of training and never used."""
    seen = {}
    monkeypatch.setattr(FR, "run", lambda *a, **k: seen.update(k) or "done")
    args = ["--photos", str(photo_dir), "--out", str(photo_dir / "run")]
    assert FR.main(args + ["--validation", "photo:a2", "photo:c1"]) == 0
    assert seen["calibration"] == FR.ROUND3["calibration"] and seen["seed"] == FR.ROUND3["seed"]
    capsys.readouterr()
    assert FR.main(args + ["--round", "1", "--validation", "photo:a2", "photo:c1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --validation") and "skips calibration" in line
    assert FR.main(args + ["--round", "1"]) == 0
    assert "skips calibration" in capsys.readouterr().err


def _strip_exif(src, dst):
    """The same JPEG without its EXIF segment (an exported or shared copy): same pixels."""
    raw = src.read_bytes()
    i = raw.index(b"\xff\xe1")
    dst.write_bytes(raw[:i] + raw[i + 2 + int.from_bytes(raw[i + 2 : i + 4], "big") :])


def test_a_copy_with_its_exif_stripped_is_one_photo_and_unknown_cameras_in_test_are_said(photo_dir):
    """Duplicates were found by the files' bytes alone: the test camera's photo, its EXIF
    stripped, trained as 'unknown:<name>'."""
    _strip_exif(photo_dir / "a1.jpg", photo_dir / "shared.jpg")
    with pytest.warns(UserWarning, match=r"shared\.jpg: the same pixels as .*a1\.jpg: left out"):
        photos = P.scan_photos(photo_dir)
    assert "shared" not in {p.name for p in photos} and "a1" in {p.name for p in photos}
    _save(photo_dir / "d1.jpg", _noise_photo(9))  # no EXIF: its camera is unknown
    photos = P.scan_photos(photo_dir)
    with pytest.warns(UserWarning, match=r"test camera\(s\) without EXIF \(unknown:c1\).*training photo"):
        P.split_by_camera(photos, {"test": ("unknown:c1",)})


def test_one_exif_camera_in_two_camera_folders_is_said_and_cannot_be_on_both_sides(tmp_path):
    """With camera folders, one camera filed under two folders was two cameras: one in test,
    the other in training."""
    for sub, seed, make, model in (("canon", 1, "Canon", "Canon EOS 80D"), ("trip", 2, "Canon", "Canon EOS 80D")):
        (tmp_path / sub).mkdir()
        _save(tmp_path / sub / f"{sub}.jpg", _noise_photo(seed), make, model)
    (tmp_path / "xiaomi").mkdir()
    _save(tmp_path / "xiaomi" / "x.jpg", _noise_photo(3), "Xiaomi", "Mi A3")
    with pytest.warns(UserWarning, match=r"EXIF camera 'Canon EOS 80D' is in 2 camera folders"):
        photos = P.scan_photos(tmp_path, camera_folders=True)
    assert {p.name: p.exif_camera for p in photos}["trip"] == "Canon EOS 80D"
    with pytest.raises(ValueError, match=r"held out whole.*\['trip'\]"):
        P.split_by_camera(photos, {"test": ("folder:canon",)})
    assert [p.name for p in P.split_by_camera(photos, {"test": ("folder:xiaomi",)})["test"]] == ["x"]


def test_a_cut_or_small_validation_photo_fails_before_any_training(photo_dir, monkeypatch):
    """Validation photos were decoded only for calibration, after all three phases had trained;
    grid_crop's error named no photo."""
    _no_training(monkeypatch)  # a ValueError, not training
    raw = (photo_dir / "c1.jpg").read_bytes()
    (photo_dir / "c1.jpg").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"c1"):  # left out of the scan (said), then named as missing
        FR.run(photo_dir, photo_dir / "run", split={"validation": ("photo:a2", "photo:c1")})
    small = P.Photo("skimage:page", "skimage:page", "page", 0, (191, 384))
    big = P.skimage_photos(("brick",))[0]
    with pytest.raises(ValueError, match=r"page is 191x384, smaller than a 256 px crop"):
        FR._check_decodes({"validation": [big, small], "test": []}, 256)
    with pytest.raises(ValueError, match=r"^page: 191x384 is smaller than a 256 px crop"):
        P.real_heldout([small, big], 2, 2, 256)


def test_a_decompression_bomb_is_left_out_with_a_line_naming_it(photo_dir):
    """Pillow's DecompressionBombError (and its warning, as an error) was a traceback."""
    import struct
    import zlib

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)

    for name, side in (("huge.png", 40000), ("big.png", 15000)):  # above Pillow's error, above the warning
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        (photo_dir / name).write_bytes(png + chunk(b"IEND", b""))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        photos = P.scan_photos(photo_dir)
    said = [str(w.message) for w in caught]
    for name in ("huge.png", "big.png"):
        assert any(name in m and "decompression bomb" in m for m in said), said
    assert {p.name for p in photos} == {"a1", "a2", "b1", "c1"}


def test_photos_too_small_for_the_stream_are_left_out_with_a_line(tmp_path):
    """A photo smaller than the platform chain's source crop was mirror-padded (its JPEG grid
    broken), unsaid; scikit-image's 191 px 'page' trained although scans keep 256 px and more."""
    assert P.skimage_photos(("page", "brick")) == P.skimage_photos(("brick",))
    photos = P.skimage_photos(("page", "brick"), min_side=64)
    stream = P.RealForgeryStream(photos, sim_images=[np.full((64, 64, 3), 128, np.uint8)], chain_prob=1.0)
    with pytest.warns(UserWarning, match=r"1 photo\(s\) smaller than the 288 px source crop .*: page"):
        stream.usable(160)
    rng = np.random.default_rng(0)
    assert all(stream._photo_crop(rng, 288, fits=stream.usable(160))[1] == "skimage:brick" for _ in range(20))
    with pytest.raises(ValueError, match="no photo has a short side of 1008 px"):
        stream.usable(560)


def test_a_photo_named_as_a_scikit_image_picture_is_refused(tmp_path):
    """camera.jpg and scikit-image's 'camera' shared a name: photo:camera took both, and the
    results keyed by name kept one."""
    _save(tmp_path / "camera.jpg", _noise_photo(0), "Canon", "Canon EOS 80D")
    _save(tmp_path / "x.jpg", _noise_photo(1), "Xiaomi", "Mi A3")
    photos = P.scan_photos(tmp_path) + P.skimage_photos(("camera", "coffee"))
    with pytest.raises(ValueError, match=r"two photos are named 'camera' \(.*camera\.jpg and skimage:camera\)"):
        P.split_by_camera(photos, {"test": ("skimage:coffee",)})


def test_a_name_given_that_matches_no_photo_is_an_error_and_small_photos_are_said(photo_dir, monkeypatch, capsys):
    """A --test camera misspelt (or its model without the make) was a warning: it trained."""
    with pytest.warns(UserWarning, match=r"1 photo\(s\) with a short side < 256 px left out: tiny\.jpg"):
        photos = P.scan_photos(photo_dir)
    with pytest.raises(ValueError, match=r"split name\(s\) \['Mi A3'\] match no photo"):
        P.split_by_camera(photos, {"test": ("Mi A3", "Canon PowerShot X")}, required=["Mi A3", "Canon PowerShot X"])
    with pytest.warns(UserWarning, match="match no photo"):  # a default's name: said, as before
        P.split_by_camera(photos, {"test": ("Mi A3", "Canon PowerShot X")})
    _no_training(monkeypatch)
    args = ["--photos", str(photo_dir), "--out", str(photo_dir / "run"), "--validation", "photo:a2", "photo:c1"]
    assert FR.main(args + ["--test", "iPhone 12"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "iPhone 12" in line and "match no photo" in line


@pytest.mark.parametrize(
    "bad, why",
    [
        (dict(chain_quality=(90, 70)), "chain_quality must satisfy 1 <= low <= high <= 100"),
        (dict(chain_quality=(70.5, 90)), "chain_quality must be two whole JPEG qualities"),
        (dict(sim_fraction=1.5), "sim_fraction must be a probability from 0 to 1"),
        (dict(chain_prob=-0.1), "chain_prob must be a probability"),
    ],
)
def test_stream_settings_out_of_range_are_one_line(bad, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        P.RealForgeryStream(P.skimage_photos(("brick",)), sim_images=[np.zeros((64, 64, 3), np.uint8)], **bad)


def test_a_failed_download_is_one_line_naming_the_command_and_its_exit_status(tmp_path, monkeypatch, capsys):
    """fetch's main printed a traceback when apt-get failed (offline)."""
    import os

    from trufor_lab.training import fetch

    fake = tmp_path / "bin" / "apt-get"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'E: Unable to locate package forensics-samples-files' >&2\nexit 100\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert fetch.main(["--dest", str(tmp_path / "dest")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: apt-get download") and "exit status 100" in line and "Unable to locate" in line


def test_a_cut_file_is_left_out_of_the_scan_with_a_line_and_the_scan_goes_on(tmp_path):
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 320, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (300, 320, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.warns(UserWarning, match=r"cut\.png: left out \(unreadable image"):
        photos = P.scan_photos(tmp_path)
    assert [p.name for p in photos] == ["good"]


def test_an_interrupted_fetch_leaves_no_cut_photo(tmp_path, monkeypatch):
    """The photos were copied in place: Ctrl-C mid-copy left a cut JPEG to train on."""
    import shutil

    from trufor_lab.training import fetch

    work, dest = tmp_path / "work", tmp_path / "dest"
    work.mkdir()

    def fake_run(cmd, cwd):  # apt-get download, then dpkg -x: the package's files, offline
        if cmd[0] == "apt-get":
            (work / f"{fetch.DEB_PACKAGE}_1.0_all.deb").write_bytes(b"deb")
            return
        root = Path(cmd[-1])
        for rel in fetch.DEB_PHOTOS:
            (root / fetch.DEB_PHOTO_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / fetch.DEB_PHOTO_DIR / rel).write_bytes(b"\xff\xd8" + b"x" * 5000)
        (root / fetch.DEB_COPYRIGHT).parent.mkdir(parents=True, exist_ok=True)
        (root / fetch.DEB_COPYRIGHT).write_text("licence")

    real_copy, calls = shutil.copy2, []

    def cut_copy(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the second photo: half written, then interrupted
            Path(dst).write_bytes(Path(src).read_bytes()[:100])
            raise KeyboardInterrupt
        return real_copy(src, dst)

    monkeypatch.setattr(fetch, "_run", fake_run)
    monkeypatch.setattr(fetch.shutil, "copy2", cut_copy)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_forensics_samples(dest, work)
    left = sorted(p.name for p in (dest / "forensics-samples").iterdir())
    assert left == [Path(fetch.DEB_PHOTOS[0]).name]
    assert (dest / "forensics-samples" / left[0]).stat().st_size == 5002


def test_the_pooled_false_positive_rate_counts_the_scores_not_their_rounded_record(monkeypatch):
    """The pooled rate was computed from the record's scores rounded to 3 decimals: a pristine tile
    scored 0.5004 was a false alarm in its camera's rate and none in the pooled one."""
    from types import SimpleNamespace

    scores = {"a": np.array([0.5004, 0.2]), "b": np.array([0.9, 0.4996])}
    photos = [
        SimpleNamespace(name=n, camera=n, size=(8, 8), source="skimage:x", load=lambda n=n: np.full((8, 8, 3), ord(n)))
        for n in scores
    ]
    monkeypatch.setattr(FR, "_scores", lambda model, tiles: scores[chr(int(tiles[0][0, 0, 0]))])
    monkeypatch.setattr(FR, "real_heldout", lambda *a, **k: [])
    monkeypatch.setattr(FR, "evaluate_items", lambda model, items: {})
    res = FR.evaluate_real(None, photos, size=256)
    per_camera = [r["fpr_at_0.5"] for r in res["pristine_tiles"].values()]
    assert per_camera == [0.5, 0.5]
    assert res["pristine_fpr_at_0.5"] == np.mean(np.concatenate(list(scores.values())) > 0.5) == 0.5
