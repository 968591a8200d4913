"""Classic detectors: each finds a forgery made for it and misses one it is known to miss.

Floors are AUC or best F1 of ``result.map`` against the forgery lab's mask
(``trufor_lab.lab.metrics``); a random map gives AUC ~0.5 and best F1 ~ 2 * mask fraction.
"""

from __future__ import annotations

import io

import re
from pathlib import Path

import numpy as np
from scipy import ndimage
import pytest
from PIL import Image

from trufor_lab.lab import forgeries as F
from trufor_lab.inference.analyze import Result
from trufor_lab.training.camera import Camera
from trufor_lab.forensics.jpeg import jpeg_bytes, jpeg_compress
from trufor_lab.lab.classic import METHODS, Method, detect, with_method
from trufor_lab.lab.metrics import localization_metrics

REAL_PHOTOS = Path(__file__).parent / "data" / "real_photos"

AREA = (0.08, 0.15)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return F.demo_images(384)


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def djpeg_file(img: np.ndarray, f: F.Forgery) -> bytes:
    """The JPEG file behind ``F.double_jpeg``'s pixels (same recipe), so its tables are there."""
    q1, q2 = f.params["q1"], f.params["q2"]
    dy, dx = f.params["grid_shift"]
    py, px = (8 - dy) % 8, (8 - dx) % 8
    first = jpeg_compress(np.pad(img, ((py, 0), (px, 0), (0, 0)), mode="symmetric"), q1)[py:, px:]
    data = jpeg_bytes(np.ascontiguousarray(np.where(f.mask[..., None], first, img)), q2)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), f.image)
    return data


def quality(result: Result, mask: np.ndarray):
    return localization_metrics(result.map, mask)


# ---------------------------------------------------------------------- known to work


def test_ela_finds_uncompressed_paste_in_jpeg(images):
    target = jpeg_compress(images["chelsea"], 75)
    f = F.splice(target, images["coffee"], seed=1, area=AREA)
    r = detect(png(f.image), "ela", quality=75)
    assert quality(r, f.mask).auc > 0.85


def test_jpeg_ghost_finds_first_quality(images):
    img = images["chelsea"]
    f = F.double_jpeg(img, seed=2, q1=60, q2=90, area=AREA)
    r = detect(djpeg_file(img, f), "jpeg_ghost")
    assert quality(r, f.mask).auc > 0.95
    assert abs(r.captures["ghost_quality"] - 60) <= 3


@pytest.mark.parametrize("name,seed,floor", [("chelsea", 2, 0.85), ("coffee", 1, 0.6)])
def test_dq_aligned_finds_aligned_double_compression(images, name, seed, floor):
    img = images[name]
    f = F.double_jpeg(img, seed=seed, q1=60, q2=90, aligned=True, area=AREA)
    r = detect(djpeg_file(img, f), "dq_aligned", show="double")
    assert quality(r, f.mask).f1_best > floor
    assert any(3.5 <= p <= 5 for p in r.captures["periods"])  # Q1/Q2 ~ 4 at 60 -> 90


def test_dq_nonaligned_finds_shifted_grid(images):
    img = images["chelsea"]
    f = F.double_jpeg(img, seed=2, q1=60, q2=90, aligned=False, area=AREA)
    r = detect(djpeg_file(img, f), "dq_nonaligned")
    assert r.captures["grid_shift"] == f.params["grid_shift"]
    assert quality(r, f.mask).f1_best > 0.9
    assert r.score is not None and r.score > 0.9


def test_bag_finds_shifted_grid(images):
    img = images["chelsea"]
    f = F.double_jpeg(img, seed=2, q1=60, q2=90, aligned=False, area=AREA)
    assert quality(detect(djpeg_file(img, f), "bag"), f.mask).auc > 0.85


def test_noise_finds_noisier_region(images):
    cam = Camera(jpeg_quality=None)
    photo = cam.capture(images["chelsea"], np.random.default_rng(2))
    f = F.splice(photo, photo, seed=2, noise=5.0, area=AREA)
    assert quality(detect(png(f.image), "noise"), f.mask).auc > 0.9


def test_cfa_finds_non_demosaiced_paste(images):
    photo = Camera(jpeg_quality=None).capture(images["astronaut"], np.random.default_rng(0))
    f = F.splice(photo, images["coffee"], seed=0, area=AREA)
    assert quality(detect(png(f.image), "cfa"), f.mask).f1_best > 0.95


@pytest.mark.parametrize("shift", [(80, 121), (-57, 100)])
def test_cfa_finds_a_copy_moved_out_of_phase(images, shift):
    """A copy moved by an odd offset inside a raw photo carries its demosaicing trace in the
    other phase (L strongly negative). The EM's trace-free component widened to cover those
    blocks, and the check "authentic mode within 4 sigma of it" then refused the whole picture
    as having no CFA trace (notebook 08's copy-move): now such blocks count as tampered."""
    photo = Camera(jpeg_quality=None).capture(images["chelsea"], np.random.default_rng(0))
    mask = np.zeros(photo.shape[:2], bool)
    mask[150:250, 140:260] = True
    img = photo.copy()
    img[mask] = np.roll(photo, shift, axis=(0, 1))[mask]
    r = detect(png(img), "cfa")
    assert r.captures["applicable"], r.notice
    assert r.captures["out_of_phase"] > 0.05
    assert quality(r, mask).f1_best > 0.9


def test_noiseprint_finds_paste_with_other_processing():
    """Noiseprint++ (the real weights, CPU, 256 px) clustered: a JPEG-40 donor in a raw photo."""
    imgs = F.demo_images(256)
    photo = Camera(jpeg_quality=None).capture(imgs["chelsea"], np.random.default_rng(2))
    f = F.splice(photo, imgs["coffee"], seed=2, area=(0.1, 0.2), donor_jpeg_quality=40)
    assert quality(detect(f.image, "noiseprint"), f.mask).auc > 0.85


def test_noiseprint_detector_takes_a_full_trufor_as_its_model():
    """``detect(img, "noiseprint", model=tl.load())`` (the model a user holds) was a bare
    'tuple indices must be integers' TypeError: TruFor's output was read as a Noiseprint++ map.
    It runs the model's own Noiseprint++ now, wrapped in DataParallel too."""
    import torch

    import trufor_lab as tl

    model = tl.load(device="cpu")
    img = F.demo_images(96)["coffee"]
    want = detect(img, "noiseprint", model=model.dncnn)
    for given in (model, torch.nn.DataParallel(model)):
        got = detect(img, "noiseprint", model=given)
        assert np.array_equal(got.noiseprint, want.noiseprint) and np.array_equal(got.map, want.map)


@pytest.mark.parametrize("size", [192, 256])
def test_noiseprint_is_not_drawn_to_the_padding_band_of_small_pictures(size):
    """Notebook 08's showcase at its CPU sizes (raw camera photo, downscaled scenes): the odd
    cluster was Noiseprint++'s zero-padding band, a red frame round the picture (pixel AUC
    0.07 at 192 px, 0.05 at 256) while the paste went unmarked."""
    from trufor_lab.lab.classic_noise import NOISEPRINT_BORDER
    from trufor_lab.training.camera import downscale

    imgs = F.demo_images(2 * size)
    photo = Camera(jpeg_quality=None).capture(downscale(imgs["chelsea"]), np.random.default_rng(0))
    f = F.splice(photo, downscale(imgs["coffee"]), seed=2, area=(0.1, 0.2), donor_jpeg_quality=40)
    r = detect(f.image, "noiseprint")
    assert quality(r, f.mask).auc > 0.9
    band = np.ones(f.mask.shape, bool)
    band[NOISEPRINT_BORDER:-NOISEPRINT_BORDER, NOISEPRINT_BORDER:-NOISEPRINT_BORDER] = False
    assert r.map[band].mean() < 0.3 < r.map[f.mask].mean()


# ----------------------------------------------------------------------- known to fail


def test_ela_misses_png_splice_without_recompression(images):
    f = F.splice(images["astronaut"], images["coffee"], seed=0, area=AREA)
    assert quality(detect(png(f.image), "ela"), f.mask).auc < 0.65


def test_dq_aligned_misses_same_quality_twice(images):
    img = images["chelsea"]
    f = F.double_jpeg(img, seed=2, q1=90, q2=90, aligned=True, area=AREA)
    r = detect(djpeg_file(img, f), "dq_aligned", show="double")
    assert quality(r, f.mask).f1_best < 0.4


def test_jpeg_ghost_misses_a_splice_compressed_only_once(images):
    """No region carries an earlier, different JPEG quality: nothing for the ghost to show."""
    f = F.splice(images["chelsea"], images["coffee"], seed=1, area=AREA)
    r = detect(jpeg_bytes(f.image, 90), "jpeg_ghost")
    assert quality(r, f.mask).auc < 0.65


def test_dq_nonaligned_misses_same_high_quality_twice(images):
    """A shifted first compression at the same high quality (90 -> 90) leaves too little of its
    grid for the non-aligned model to find."""
    img = images["chelsea"]
    f = F.double_jpeg(img, seed=2, q1=90, q2=90, aligned=False, area=AREA)
    r = detect(djpeg_file(img, f), "dq_nonaligned")
    assert quality(r, f.mask).f1_best < 0.4


def test_noiseprint_misses_copy_move_within_one_photo():
    """A region copied within one photo carries the same camera trace as its surroundings: not
    found even at the best threshold (its AUC, 0.65, is the picture's content, not the paste)."""
    imgs = F.demo_images(256)
    photo = Camera(jpeg_quality=None).capture(imgs["chelsea"], np.random.default_rng(2))
    f = F.copy_move(photo, seed=2, area=(0.1, 0.2))
    assert quality(detect(f.image, "noiseprint"), f.mask).f1_best < 0.4


def test_bag_misses_aligned_double_compression(images):
    img = images["chelsea"]
    f = F.double_jpeg(img, seed=2, q1=60, q2=95, aligned=True, area=AREA)
    assert quality(detect(djpeg_file(img, f), "bag"), f.mask).auc < 0.65


@pytest.mark.parametrize("how", ["scene", "camera_jpeg75"])
def test_cfa_misses_without_demosaicing_traces(images, how):
    scene = images["astronaut"]
    base = scene if how == "scene" else Camera(jpeg_quality=75).capture(scene, np.random.default_rng(0))
    f = F.splice(base, images["coffee"], seed=0, area=AREA)
    assert quality(detect(png(f.image), "cfa"), f.mask).auc < 0.65


def test_noise_misses_copy_move(images):
    photo = Camera(jpeg_quality=None).capture(images["chelsea"], np.random.default_rng(2))
    f = F.copy_move(photo, seed=2, area=AREA)
    assert quality(detect(png(f.image), "noise"), f.mask).auc < 0.7


# ---------------------------------------------------------------------------- registry


def test_typo_suggests_closest_name():
    with pytest.raises(ValueError, match="did you mean 'jpeg_ghost'"):
        detect(np.zeros((16, 16, 3), np.uint8), "jpeg_gost")


def test_duplicate_refused_and_registry_read_only():
    extra = Method("ela", METHODS["ela"].run, "again", "-")
    with pytest.raises(ValueError, match="duplicate"):
        with_method(METHODS, extra)
    with pytest.raises(TypeError):
        METHODS["x"] = extra  # type: ignore[index]
    more = with_method(METHODS, Method("ela2", METHODS["ela"].run, "copy", "-"))
    assert "ela2" in more and "ela2" not in METHODS


@pytest.fixture(scope="module")
def small(images) -> np.ndarray:
    return np.ascontiguousarray(images["rocket"][:96, :120])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_a_result_on_png_and_jpeg(small, method):
    params = {"noiseprint": np.random.default_rng(0).standard_normal(small.shape[:2])} if method == "noiseprint" else {}
    for data, is_jpeg in ((png(small), False), (jpeg_bytes(small, 85), True)):
        r = detect(data, method, **params)
        assert isinstance(r, Result) and r.map.shape == small.shape[:2] and r.map.dtype == np.float32
        assert 0 <= r.map.min() and r.map.max() <= 1 and r.conf.shape == r.map.shape
        assert r.noiseprint.shape == r.map.shape
        assert (r.score is not None) == (METHODS[method].defines_score and r.captures["applicable"])
        assert r.label == f"classic:{method}"
        localization_metrics(r.map, np.pad(np.ones((20, 20), bool), ((30, 46), (40, 60))))
        if METHODS[method].needs_jpeg and not is_jpeg:
            assert not r.captures["applicable"] and "needs a JPEG" in r.notice
            assert not r.map.any()


def test_result_plots_and_fallback_score(small):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = detect(small, "ela", fallback_score=True)
    assert r.score is not None and any("99th percentile" in n for n in r.notes)
    plt.close(r.plot())


def test_classic_result_is_not_described_as_noiseprint_only(small):
    """A classic map without a global score is described as such, never as 'Noiseprint++ only'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = detect(small, "noise")  # defines no global score
    assert r.score is None and r.map is not None
    s = r.summary()
    assert "Noiseprint++" not in s and "no global score" in s and "classic:noise" in s
    fig = r.plot()
    titles = [ax.get_title() for ax in fig.axes]
    assert "Noiseprint++" not in titles and "noise (raw output)" in titles
    assert "no global score" in fig._suptitle.get_text() and "Noiseprint++" not in fig._suptitle.get_text()
    plt.close(fig)
    na = detect(png(small), "ela")  # needs a JPEG: not applicable
    assert "Noiseprint++" not in na.summary()
    plt.close(na.plot())


def test_a_edited_pil_image_is_judged_as_edited(shared_dir):
    """A PIL image opened from a file was decoded again from the file: a paste made since was
    not in the analysed pixels. Its pixels are the object's; the file gives the tables only."""
    with Image.open(shared_dir / "images" / "pristine1.jpg") as im:
        im.load()
        im.paste((255, 0, 0), (0, 0, 50, 50))
        r = detect(im, "ela")
    assert (r.image[:50, :50] == (255, 0, 0)).all()
    assert r.captures["quality"] is not None


def test_ela_of_a_file_saved_at_its_own_quality_is_not_a_blank_panel(shared_dir):
    """Re-saving a libjpeg 4:2:0 file at its own quality gives back the same pixels: the map was
    zero everywhere, shown as a black panel with no word. ELA now falls back to quality 95 and
    says so; an all-zero map of any method is noted."""
    with Image.open(shared_dir / "images" / "pristine2.jpg") as im:  # a camera JPEG, cropped on its grid
        photo = np.asarray(im.convert("RGB"))[:256, :256].copy()
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=90, subsampling=2)  # re-saved as editors do
    data = buf.getvalue()
    r = detect(data, "ela")
    assert r.captures["raw_map"].max() > 0 and r.captures["quality"] == 95
    assert any("changed nothing; shown at quality 95" in n for n in r.notes)
    pinned = detect(data, "ela", quality=90)  # asked for: kept, and the empty map is said
    assert pinned.captures["raw_map"].max() == 0
    assert any("zero everywhere" in n for n in pinned.notes)


@pytest.mark.parametrize("shape", [(7, 7), (1, 50), (50, 1), (15, 40)])
def test_tiny_images_are_not_applicable_rather_than_tracebacks(shape):
    a = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for name, spec in METHODS.items():
        r = detect(a, name)
        assert r.map.shape == shape, name
        if min(shape) < spec.min_side:
            assert r.captures["applicable"] is False and "pixels a side" in r.notice, name


def test_display_scaling_does_not_jump_at_one():
    """An unbounded map (ELA grey levels, noise z) was shown as is when its max was <= 1 and
    divided by its 99.5th percentile otherwise: a hot spot at 0.99 left the background at 0.05,
    at 1.01 it turned the background white. One rule now, whatever the values."""
    from trufor_lab.lab.classic import _normalise

    shown = []
    for peak in (0.99, 1.01, 50.0):
        m = np.full((64, 64), 0.05 * peak / 0.99)
        m[30:35, 30:35] = peak
        shown.append(_normalise(m))
    for s in shown:
        assert s[30:35, 30:35].min() == 1.0 and s[:20, :20].max() < 0.2
    np.testing.assert_allclose(shown[0], shown[1], atol=1e-6)


@pytest.mark.parametrize("quality", [70, 75, 85])
def test_dq_nonaligned_does_not_flag_a_jpeg_saved_once(images, quality):
    """A shift along one axis keeps the last compression's rows or columns: a picture saved
    once as JPEG scored up to 0.93 (z 8.6 at shift (4, 0)). Only shifts along both axes are
    judged now."""
    for name in ("chelsea", "coffee"):
        r = detect(jpeg_bytes(images[name], quality), "dq_nonaligned")
        assert r.score < 0.5 and 0 not in r.captures["grid_shift"], (name, r.score, r.captures["grid_shift"])


def test_noise_level_on_a_smooth_picture_is_not_saturated_by_texture():
    """On a smooth picture most tiles have no measurable noise: the robust spread was 0 and
    every textured tile came out at z ~ 500 (the map showed texture). The spread is floored
    and the note says the picture is mostly flat."""
    rng = np.random.default_rng(0)
    sky = np.full((256, 256, 3), 128, np.uint8)
    sky[:, 192:] = rng.integers(0, 256, (256, 64, 3), dtype=np.uint8)  # a textured strip
    r = detect(sky, "noise")
    assert r.captures["raw_map"].max() < 100  # was ~6500: z in units of a 10 % noise change now
    assert any("tiles are flat" in n for n in r.notes)


@pytest.mark.parametrize("offset", [3, 5])
def test_jpeg_ghost_finds_a_ghost_in_a_picture_cropped_off_its_grid(images, offset):
    """Recompression ran on the (0, 0) grid: cropped by 3 or 5 pixels, the ghost vanished
    (inside 0.05 vs outside 0.07). It now runs on the picture's own grid."""
    src = images["coffee"][:300, :300]
    mask = np.zeros(src.shape[:2], bool)
    mask[96:200, 96:200] = True
    first = jpeg_compress(src, 60, "4:4:4")
    final = jpeg_compress(np.ascontiguousarray(np.where(mask[..., None], first, src)), 90, "4:4:4")
    from trufor_lab.lab.classic_jpeg import jpeg_ghost

    m, _, raw = jpeg_ghost(np.ascontiguousarray(final[offset:, offset:]))
    inside = mask[offset:, offset:]
    assert raw["ghost_quality"] in (55, 60, 65) and m[inside].mean() > m[~inside].mean() + 0.1


# ------------------------------------------------------------- premise does not hold


@pytest.mark.parametrize("how", ["scene", "camera_jpeg90", "sample"])
def test_cfa_without_a_demosaicing_trace_says_not_applicable(images, shared_dir, how):
    """Ferrara's EM split the L noise of a picture with no CFA trace in two and flagged 60-98 %
    of it (the official pristine sample: 86 %), with no word. Such a picture now gets an empty
    map and a note; a demosaiced photo with a non-demosaiced paste is still found."""
    if how == "sample":
        data = (shared_dir / "images" / "pristine1.jpg").read_bytes()
    else:
        scene = images["chelsea"]
        data = png(scene if how == "scene" else Camera(jpeg_quality=90).capture(scene, np.random.default_rng(0)))
    r = detect(data, "cfa")
    assert not r.map.any() and r.captures["applicable"] is False
    assert "no CFA trace found" in r.notice and any("no CFA trace found" in n for n in r.notes)
    photo = Camera(jpeg_quality=None).capture(images["chelsea"], np.random.default_rng(0))
    f = F.splice(photo, images["coffee"], seed=0, area=AREA)
    found = detect(png(f.image), "cfa")
    assert found.captures["applicable"] and quality(found, f.mask).auc > 0.95


def test_bag_on_a_picture_never_compressed_says_no_grid(images):
    """With no 8x8 grid the per-block anomaly is noise, and the display scaling showed it at full
    scale (64 % of a never-compressed picture at >= 0.5). Now: empty map and a note; the same
    picture saved as JPEG still has its grid (and a shifted paste in it is still found)."""
    photo = Camera(jpeg_quality=None).capture(images["chelsea"], np.random.default_rng(0))
    r = detect(png(photo), "bag")
    assert not r.map.any() and r.captures["applicable"] is False and "no 8x8 JPEG grid found" in r.notice
    for q in (75, 95):
        jp = detect(jpeg_bytes(photo, q), "bag")
        assert jp.captures["applicable"] and jp.captures["grid_strength"] > 5, q


@pytest.mark.parametrize("q", [50, 60])
def test_bag_finds_the_grid_of_a_smooth_picture_at_mid_quality(q):
    """Strong edges were clipped at twice the median second difference, which is 0 in a smooth
    picture saved at 50-60: the grid was clipped away too and the JPEG called "never compressed"
    (grid strength 3.4-4.4). Cropped off its grid, the grid phase is still found (JPEG ghosts
    recompress on it); the same picture never compressed still has no grid."""
    img = F.demo_images(256)["rocket"]
    r = detect(jpeg_bytes(img, q), "bag")
    assert r.captures["applicable"] and r.captures["grid_strength"] > 5, r.notice
    cropped = detect(png(jpeg_compress(img, q)[3:, 5:]), "bag")
    assert cropped.captures["applicable"] and cropped.captures["grid_phase"] == [5, 3]
    assert detect(png(img), "bag").captures["applicable"] is False


def test_dq_aligned_does_not_call_a_resized_or_cropped_camera_jpeg_singly_compressed():
    """A JPEG at quality 95 a messenger resized and saved again at 80, cropped off the 8x8 grid
    and saved again, or saved again at 80 as it is, was compressed twice; the resize, the shifted
    grid or the coarser second table hides the first compression's trace, and the notice said
    'looks singly compressed': a fact-checker read a re-shared photo as a file saved once. The
    notice names what hides an earlier compression."""
    camera = Image.open(REAL_PHOTOS / "IMG_1054.JPG").convert("RGB")  # a JPEG at quality 95, 1280x960
    for chain in (camera.resize((800, 600), Image.LANCZOS), camera.crop((3, 5, 1003, 749)), camera):
        buf = io.BytesIO()
        chain.save(buf, "JPEG", quality=80, subsampling="4:2:0")
        r = detect(buf.getvalue(), "dq_aligned")
        assert r.captures["applicable"] is False and "no double-quantization effect found" in r.notice
        assert "singly compressed" not in r.notice
        assert "hidden by a resize, a crop off the 8×8 grid or a resave at the same or a lower quality" in r.notice


@pytest.mark.parametrize("q", [50, 75, 90])
def test_dq_aligned_on_a_jpeg_saved_once_finds_no_double_quantization(images, q):
    """The comb test ran on the raw, decaying histogram: pictures saved once showed 'periods'
    near 2 and a texture-driven map (p_single 0.01..1.00). Combs are now measured on the
    detrended histogram and must agree on one first table; none: empty map and a note. A paste
    saved once into a 60 -> 90 or 70 -> 95 picture is still found."""
    photo = Camera(jpeg_quality=None).capture(images["chelsea"], np.random.default_rng(0))
    r = detect(jpeg_bytes(photo, q), "dq_aligned")
    assert not r.map.any() and r.captures["applicable"] is False
    assert "no double-quantization effect found" in r.notice
    mask = np.zeros(photo.shape[:2], bool)
    mask[128:256, 192:320] = True
    for q1, q2 in ((60, 90), (70, 95)):
        fake = np.where(mask[..., None], photo, jpeg_compress(photo, q1))
        found = detect(jpeg_bytes(np.ascontiguousarray(fake), q2), "dq_aligned")
        assert found.captures["first_quality"] == q1 and quality(found, mask).auc > 0.95, (q1, q2)


@pytest.mark.parametrize("side", [7, 40])
def test_dq_aligned_on_a_tiny_jpeg_is_not_applicable_not_nan(side):
    """Under 8 px there was no block: the map was NaN (min_side was 1); under 64 px a uniform 0.5."""
    a = np.random.default_rng(0).integers(0, 256, (side, 80, 3), dtype=np.uint8)
    r = detect(jpeg_bytes(a, 80), "dq_aligned")
    assert r.captures["applicable"] is False and "pixels a side" in r.notice
    assert np.isfinite(r.noiseprint).all() and not r.map.any()


# ------------------------------------------------------------------ what the file says


def test_ela_empty_after_fallback_does_not_claim_the_file_was_saved_at_the_fallback_quality():
    """A simple file saved at 95 comes back unchanged at 95 and at 85 (the fallback): the note said
    "saving again at quality 85 gives back the same pixels (the file was last saved so ...)"."""
    x = np.full((64, 64), 128, np.uint8)
    x[16:48, 16:48] = 40
    once = np.asarray(Image.open(io.BytesIO(jpeg_bytes(x, 95))).convert("RGB"))
    r = detect(jpeg_bytes(once, 95), "ela")
    assert r.captures["quality"] == 85
    empty = [n for n in r.notes if "zero everywhere" in n]
    assert empty and "last saved so" not in empty[0] and "file's quality 95" in empty[0]


def _save(a: np.ndarray, tables: list[np.ndarray], **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", qtables=[[int(v) for v in t.reshape(64)] for t in tables], **kw)
    return buf.getvalue()


def test_read_source_uses_the_luma_quality_not_a_joint_fit(images):
    """``cjpeg -quality 95,60``: the joint fit says 60, so ELA re-saved the luma at 60 and the
    ghost search stopped at 58; the detectors read luma, at 95."""
    from trufor_lab.forensics.ijg import ijg_table
    from trufor_lab.lab.classic import read_source

    data = _save(images["chelsea"][:128, :128], [ijg_table(95), ijg_table(60, True)])
    s = read_source(data)
    assert s.quality == 95
    np.testing.assert_array_equal(s.qtable, ijg_table(95))
    assert not any("custom tables" in n for n in s.notes)  # IJG tables, at two qualities
    assert detect(data, "jpeg_ghost").captures["qualities"][-1] >= 92


def _swap_table_ids(data: bytes) -> bytes:
    """The same file with luma stored as table 1 and chroma as table 0 (legal JPEG)."""
    b, i = bytearray(data), 2
    while i < len(b):
        marker, length, p = b[i + 1], int.from_bytes(b[i + 2 : i + 4], "big"), i + 4
        if marker == 0xDB:
            j = p
            while j < i + 2 + length:
                pq = b[j] >> 4
                b[j] = (pq << 4) | (1 - (b[j] & 15))
                j += 1 + (128 if pq else 64)
        elif marker == 0xC0:
            for k in range(b[p + 5]):
                b[p + 8 + 3 * k] = 1 - b[p + 8 + 3 * k]
        elif marker == 0xDA:
            break
        i += 2 + length
    return bytes(b)


def test_read_source_takes_the_table_the_luma_component_uses(images):
    """The luma table was ``tables[min(tables)]``: a file whose luma uses table 1 gave the chroma
    table to dq_aligned (periods halved)."""
    from trufor_lab.forensics.ijg import ijg_table
    from trufor_lab.lab.classic import read_source

    data = jpeg_bytes(images["chelsea"][:128, :128], 90)
    swapped = _swap_table_ids(data)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(swapped))), np.asarray(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(read_source(swapped).qtable, ijg_table(90))


def test_read_source_says_when_the_tables_are_custom(images):
    data = _save(images["chelsea"][:64, :64], [np.full((8, 8), 4), np.full((8, 8), 4)])
    from trufor_lab.lab.classic import read_source

    assert any("nearest IJG quality; the file uses custom tables" in n for n in read_source(data).notes)
    assert any("custom tables" in n for n in detect(data, "ela").notes)


def test_ela_resaves_with_the_files_own_chroma_subsampling(images):
    """ELA re-saved at 4:2:0 whatever the file: a 4:4:4 photo saved once showed its colour edges
    (chroma-subsampling error), not an error level."""
    for sub, pil in (("4:4:4", 0), ("4:2:2", 1)):
        r = detect(jpeg_bytes(images["chelsea"], 90, sub), "ela", quality=90)
        assert r.captures["subsampling"] == sub
        assert float(r.captures["residual"].mean()) < 0.3, sub


@pytest.mark.parametrize("name", ["retina", "coffee"])
def test_jpeg_ghost_resaves_with_the_files_own_chroma_subsampling(images, name):
    """JPEG ghosts re-saved at 4:2:0 whatever the file, as ELA once did: in a 4:4:4 file the
    chroma error at every quality hid the ghost (AUC 0.60 and 0.83, ghost at 46 on retina)."""
    f = F.double_jpeg(images[name], seed=2, q1=60, q2=90, subsampling="4:4:4", area=AREA)
    r = detect(jpeg_bytes(f.image, 90, "4:4:4"), "jpeg_ghost")
    assert r.captures["subsampling"] == "4:4:4"
    assert abs(r.captures["ghost_quality"] - 60) <= 3 and quality(r, f.mask).auc > 0.95


@pytest.mark.parametrize("q1", [80, 85])
def test_jpeg_ghost_finds_a_region_first_saved_at_a_high_quality(images, q1):
    """For a region first saved at 80 or more (then the whole at 95) the most uneven difference
    map was the one at the range's low end: q* = 40 and an AUC of 0.74. q* is now an interior
    local minimum of the difference curves."""
    img = images["chelsea"]
    mask = np.zeros(img.shape[:2], bool)
    mask[128:256, 160:288] = True
    fake = np.ascontiguousarray(np.where(mask[..., None], jpeg_compress(img, q1), img))
    r = detect(jpeg_bytes(fake, 95), "jpeg_ghost")
    assert abs(r.captures["ghost_quality"] - q1) <= 3 and quality(r, mask).auc > 0.9


@pytest.mark.parametrize("shift", [(4, 0), (0, 3)])
def test_dq_nonaligned_says_a_one_axis_grid_shift_is_not_judged(images, shift):
    """The docstring said a first grid shifted along one axis only is missed; the detector
    reported 0.997 at a wrong (two-axis) shift with wrong Q1 steps. It now says not applicable."""
    sy, sx = shift
    first = jpeg_compress(images["coffee"], 60)
    oy, ox = (8 - sy) % 8, (8 - sx) % 8
    data = jpeg_bytes(np.ascontiguousarray(first[oy : oy + 368, ox : ox + 368]), 90)
    r = detect(data, "dq_nonaligned")
    assert r.captures["applicable"] is False and r.score is None and "one axis only" in r.notice
    assert r.captures["one_axis_shift"] == [sy, sx]


def test_the_checked_options_are_exactly_what_each_method_takes():
    """The option table and the detectors' own keyword arguments must not drift apart (an option
    missing from the table would be refused, one the method dropped would be accepted)."""
    import inspect

    from trufor_lab.lab import classic_jpeg as J
    from trufor_lab.lab import classic_noise as N
    from trufor_lab.lab.classic_params import OPTIONS

    def kwargs(fn, *internal):
        return {k for k, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY} - set(internal)

    takes = {
        "ela": kwargs(J.ela),
        "jpeg_ghost": kwargs(J.jpeg_ghost),
        "dq_aligned": kwargs(J.dq_aligned, "qtable"),
        "dq_nonaligned": kwargs(J.dq_nonaligned, "qtable"),
        "bag": kwargs(J.bag),
        "noise": kwargs(N.noise_level),
        "cfa": kwargs(N.cfa),
        "noiseprint": kwargs(N.noiseprint_cluster) | {"noiseprint", "model"},
    }
    assert set(OPTIONS) == set(METHODS) == set(takes)
    assert {m: set(o) for m, o in OPTIONS.items()} == takes


@pytest.mark.parametrize(
    "method, params, why",
    [
        ("noise", {"block": 0}, "block must be an even whole number from 2 up, not 0"),  # was ZeroDivisionError
        ("noise", {"block": 5}, "block must be an even whole number from 2 up, not 5"),  # map shifted by 1 px a tile
        ("cfa", {"window": 0}, "window must be a whole number from 3 up, not 0"),  # was "no CFA trace found"
        ("cfa", {"window": -3}, "window must be a whole number from 3 up"),
        ("ela", {"quality": 75.9}, "quality must be a whole number, not 75.9"),  # ran at 75
        ("ela", {"smooth": -2}, "smooth must be a finite number of at least 0"),
        ("bag", {"block": 9}, "bag takes no option 'block'; its options: line, min_grid"),  # numpy reshape error
        ("bag", {"line": 0}, "line must be a whole number from 3 up"),  # was RuntimeError: incorrect filter size
        ("jpeg_ghost", {"qualities": ()}, "qualities must be a non-empty sequence"),  # need at least one array
        ("dq_nonaligned", {"max_step": 1}, "max_step must be a whole number from 2 up"),  # zero-size array
        ("ela", {"qualty": 90}, "ela takes no option 'qualty'; its options: quality, smooth, subsampling"),
    ],
)
def test_an_option_a_method_cannot_use_is_refused_in_one_line(small, method, params, why):
    with pytest.raises(ValueError) as e:
        detect(jpeg_bytes(small, 85), method, **params)
    assert why in str(e.value) and str(e.value).startswith(method) and "\n" not in str(e.value)


def test_a_block_larger_than_the_picture_is_not_applicable(small):
    """noise with block=1000 failed in numpy ('cannot reshape'), cfa's in an IndexError: the
    method cannot judge a picture that small with that block, as with any picture too small."""
    for method in ("noise", "cfa"):
        r = detect(png(small), method, block=1000)
        assert r.score is None and not r.map.any()
        assert "block=1000 needs a picture at least that many pixels a side" in (r.notice or ""), r.notice


def test_options_the_methods_document_as_defaults_are_accepted(small):
    """quality=None / subsampling=None (ELA at the file's own) and a numpy array of qualities
    were refused by the first version of the option check."""
    data = jpeg_bytes(small, 85)
    assert detect(data, "ela", quality=None, subsampling=None).label == "classic:ela"
    assert detect(data, "jpeg_ghost", qualities=np.arange(50, 100, 10)).label == "classic:jpeg_ghost"


def test_an_unreadable_file_is_named_by_its_path_not_as_bytes(tmp_path):
    """read_source read the file's bytes first, so a truncated JPEG's error said '<bytes>: ...'
    (the casebook's Classic tab hid it by loading the image first)."""
    from trufor_lab.inference.preprocess import ImageError

    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(np.full((64, 64, 3), 120, np.uint8), 90)[:300])
    with pytest.raises(ImageError, match=rf"^{re.escape(str(path))}: unreadable image"):
        detect(path, "ela")


def test_a_map_without_contrast_is_an_empty_map_that_says_so():
    """ELA of a one-colour picture (a constant residual) and the noise method with two tiles (the
    same |robust z| for both) were drawn as 1.0 everywhere, fallback score 1.0: "everything is
    maximally suspicious" for a picture with nothing in it."""
    flat = np.zeros((64, 64, 3), np.uint8)
    flat[:] = (37, 201, 90)
    for img, method in (
        (flat, "ela"),
        (np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8), "noise"),
    ):
        r = detect(png(img), method, fallback_score=True)
        raw = r.captures["raw_map"]
        assert raw.max() > 0 and raw.max() == raw.min()  # the premise: a flat nonzero output
        assert not r.map.any() and r.score == 0.0
        assert any("one value everywhere (no contrast)" in n for n in r.notes), r.notes


def test_jpeg_ghost_of_a_flat_picture_is_not_applicable():
    """No curve dips inside the quality range: the ghost quality was the range's end (50) and the
    map 0.83 everywhere, against the docstring (never an end of the range; flat pixels neutral)."""
    for level in (10, 250):
        r = detect(np.full((64, 64, 3), level, np.uint8), "jpeg_ghost", fallback_score=True)
        assert r.notice is not None and "no ghost to show" in r.notice
        assert not r.map.any() and r.score is None


def test_bag_refuses_pictures_too_small_to_tell_a_grid_from_texture():
    """At 32-64 px (two 32-px bands per axis) a third of never-compressed noise pictures 'had' an
    8x8 grid (grid strength over 5) and got a full-scale map."""
    rng = np.random.default_rng(1)
    found = 0
    for k in range(12):
        b = ndimage.gaussian_filter(rng.normal(0, 1, (64, 64, 3)), (1.5, 1.5, 0))
        b = (128 + 60 * b / b.std()).clip(0, 255).astype(np.uint8)
        r = detect(png(b), "bag")
        found += r.captures["applicable"]
        assert "needs at least 128 pixels a side" in r.notice
    assert found == 0
