"""trufor_lab.lab.datasets: list parsing, mask conventions, registry, folder layout, every error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trufor_lab.lab.datasets import (
    REGISTRY,
    Dataset,
    DatasetError,
    DatasetRegistry,
    DatasetSpec,
    MaskConvention,
    Sample,
    folder_dataset,
    get_spec,
    load_dataset,
    read_list,
    read_mask,
)

H, W = 24, 32
SQUARE = np.zeros((H, W), dtype=bool)
SQUARE[6:18, 8:20] = True


def _img(path: Path, size=(W, H), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _mask(path: Path, forged: np.ndarray, on=255, off=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(forged, on, off).astype(np.uint8), mode="L").save(path)
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# list parsing
# --------------------------------------------------------------------------------------------


def test_read_list_format(tmp_path):
    lst = _write(tmp_path / "x_fake.txt", "# comment\n\nA/im 1.jpg,M/im 1.png\n  A/im2.jpg , None \nA/im3.jpg\n")
    s = read_list(lst, 1, tmp_path / "root", tmp_path / "masks", "X")
    assert [x.id for x in s] == ["A/im 1.jpg", "A/im2.jpg", "A/im3.jpg"]
    assert s[0].image_path == tmp_path / "root" / "A/im 1.jpg"
    assert s[0].mask_path == tmp_path / "masks" / "M/im 1.png"
    assert s[1].mask_path is None and s[2].mask_path is None
    assert all(x.label == 1 and x.dataset == "X" for x in s)
    real = read_list(_write(tmp_path / "r.txt", "B/a.jpg\nB/b.jpg,None\n"), 0, tmp_path)
    assert [x.label for x in real] == [0, 0] and real[0].mask_path is None


def test_read_list_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"r\.txt:2: a real-image list"):
        read_list(_write(tmp_path / "r.txt", "a.jpg\nb.jpg,b.png\n"), 0, tmp_path)
    with pytest.raises(DatasetError, match=r"f\.txt:1: expected"):
        read_list(_write(tmp_path / "f.txt", "a.jpg,b.png,c.png\n"), 1, tmp_path)
    with pytest.raises(DatasetError, match="list file not found"):
        read_list(tmp_path / "nope.txt", 1, tmp_path)


# --------------------------------------------------------------------------------------------
# registered benchmarks and their conventions
# --------------------------------------------------------------------------------------------


def test_coverage_white_forged(tmp_path):
    root, lists = tmp_path / "coverage", tmp_path / "lists"
    _img(root / "image/1t.tif")
    _mask(root / "mask/1forged.tif", SQUARE)
    _img(root / "image/1.tif")
    _write(lists / "coverage_fake.txt", "image/1t.tif,mask/1forged.tif\n")
    _write(lists / "coverage_real.txt", "image/1.tif\n")
    ds = load_dataset("coverage", root, list_dir=lists)
    assert isinstance(ds, Dataset) and ds.name == "Coverage" and ds.root == root
    assert len(ds) == 2 and [s.id for s in ds.fakes()] == ["image/1t.tif"] and len(ds.reals()) == 1
    m = ds.load_mask(ds.fakes()[0])
    assert m.dtype == bool and np.array_equal(m, SQUARE)
    assert ds.validate() == []
    assert isinstance(ds[0], Sample) and ds[0:2] == list(ds) and "1 fakes, 1 reals" in repr(ds)
    # a fake list of one's own with list_dir: the reals were dropped, unsaid (no AUC); now the
    # official real list comes from list_dir, and list_dir with both lists is refused
    mine = _write(tmp_path / "my_fakes.txt", "image/1t.tif,mask/1forged.tif\n")
    ds = load_dataset("coverage", root, fake_list=mine, list_dir=lists)
    assert len(ds.fakes()) == 1 and len(ds.reals()) == 1
    assert len(load_dataset("coverage", root, fake_list=mine).reals()) == 0  # without list_dir: the list given
    with pytest.raises(DatasetError, match="both lists given; list_dir not taken"):
        load_dataset("coverage", root, fake_list=mine, real_list=lists / "coverage_real.txt", list_dir=lists)


def test_nist16_inverted(tmp_path):
    root = tmp_path / "NC2016"
    _img(root / "probe/NC2016_1.jpg")
    _mask(root / "reference/splice/mask/NC2016_9.png", SQUARE, on=0, off=255)
    _write(root / "NIST16_fake.txt", "probe/NC2016_1.jpg,reference/splice/mask/NC2016_9.png\n")
    _img(root / "probe/NC2016_2.jpg")
    _write(root / "NIST16_real.txt", "probe/NC2016_2.jpg\n")
    ds = load_dataset("NIST16", root)  # lists found in the root
    assert np.array_equal(ds.load_mask(ds.fakes()[0]), SQUARE)


def test_dso1_layout_and_inversion(tmp_path):
    root = tmp_path / "tifs-database"
    _img(root / "DSO-1/splicing-01.png")
    _img(root / "DSO-1/normal-01.png")
    _mask(root / "DSO-1-Fake-Images-Masks/splicing-01.png", SQUARE, on=0, off=255)
    fake = _write(tmp_path / "DSO-1_fake.txt", "splicing-01.png,splicing-01.png\n")
    real = _write(tmp_path / "DSO-1_real.txt", "normal-01.png\n")
    for ds in (
        load_dataset("dso1", root, fake, real),  # by name, explicit lists
        load_dataset(fake, root, real_list=real),
    ):  # by official list file name
        assert ds.name == "DSO-1" and ds.fakes()[0].image_path == root / "DSO-1/splicing-01.png"
        assert np.array_equal(ds.load_mask(ds.fakes()[0]), SQUARE)
        assert ds.reals()[0].image_path == root / "DSO-1/normal-01.png"


def _edgemask(path: Path, spliced: np.ndarray) -> Path:
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # regular red: the other region
    rgb[spliced] = (0, 200, 0)  # regular green: spliced
    rgb[5:7, :] = np.where(spliced[5:7, :, None], (0, 255, 0), (255, 0, 0))  # bright, near the edge
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=90)  # JPEG, as the real edgemasks
    return path


def test_columbia_colour_rule(tmp_path):
    root = tmp_path / "columbia"
    _img(root / "4cam_splc/a_b_sub_01.tif")
    _edgemask(root / "4cam_splc/edgemask/a_b_sub_01_edgemask.jpg", SQUARE)
    _write(root / "columbia_fake.txt", "4cam_splc/a_b_sub_01.tif,4cam_splc/edgemask/a_b_sub_01_edgemask.jpg\n")
    ds = load_dataset("Columbia", root, fake_list=root / "columbia_fake.txt")
    m = ds.load_mask(ds[0])
    assert np.mean(m == SQUARE) > 0.98  # JPEG blends along the edge only
    assert np.array_equal(m[8:16, 10:18], np.ones((8, 8), bool)) and not m[20:, 24:].any()
    noise = root / "4cam_splc/edgemask/noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(noise)
    with pytest.raises(DatasetError, match=r"noise\.png: mask is not binary after the colour rule"):
        read_mask(noise, ds.convention)


def test_grey_thresholds_and_strict(tmp_path):
    low = _mask(tmp_path / "low.png", SQUARE, on=3)  # nonzero = forged (official > 0.1)
    assert np.array_equal(read_mask(low), SQUARE)
    with pytest.raises(
        DatasetError, match=r"low\.png: its two levels \(0 and 3\) both read as pristine at threshold 127"
    ):
        read_mask(low, MaskConvention(threshold=127))  # was an empty mask (F1 0 whatever the map), unsaid
    grey = _mask(tmp_path / "grey.png", SQUARE, on=128)
    with pytest.raises(DatasetError, match=r"grey\.png: mask is not binary \(values"):
        read_mask(grey, MaskConvention(threshold=None))
    assert np.array_equal(read_mask(_mask(tmp_path / "01.png", SQUARE, on=1), MaskConvention(threshold=None)), SQUARE)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (H, W), dtype=np.uint8)).save(photo)
    with pytest.raises(DatasetError, match=r"photo\.png: not a mask: \d+% of its pixels are mid-grey"):
        read_mask(photo)
    bilevel = tmp_path / "bilevel.png"
    Image.fromarray(SQUARE).convert("1").save(bilevel)  # 1-bit PNG
    assert np.array_equal(read_mask(bilevel, MaskConvention(threshold=None)), SQUARE)


def test_channel_rule(tmp_path):
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[SQUARE, 0] = 255
    rgb[..., 2] = 255  # blue everywhere: ignored
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert np.array_equal(read_mask(tmp_path / "c.png", MaskConvention(channel=0)), SQUARE)
    assert np.array_equal(read_mask(tmp_path / "c.png", MaskConvention(channel=0, invert=True)), ~SQUARE)
    with pytest.raises(ValueError):
        MaskConvention(channel=3)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_registry_builtins_and_typos():
    assert set(REGISTRY.names()) == {
        "CASIA1",
        "Columbia",
        "Coverage",
        "DSO-1",
        "NIST16",
        "CocoGlide",
        "VIPP",
        "OpenForensics",
    }
    assert get_spec("nist-16").name == "NIST16" and get_spec("CASIA v1").name == "CASIA1"
    assert get_spec("DSO-1").convention.invert and get_spec("NIST16").convention.invert
    assert not get_spec("Coverage").convention.invert and get_spec("Columbia").convention.colour
    with pytest.raises(DatasetError, match="did you mean 'Columbia'"):
        get_spec("Colombia")
    with pytest.raises(DatasetError, match="did you mean 'Coverage'"):
        load_dataset("Covrage", "/nonexistent")
    with pytest.raises(DatasetError, match="did you mean 'CocoGlide'"):
        get_spec("coco_glid")


def test_registry_refuses_duplicates():
    reg = DatasetRegistry()
    spec = DatasetSpec("Mine", MaskConvention(), "mine_fake.txt", None, aliases=("my-set",))
    reg.register(spec)
    with pytest.raises(DatasetError, match="already registered"):
        reg.register(spec)
    with pytest.raises(DatasetError, match="already registered"):
        reg.register(DatasetSpec("MYSET", MaskConvention(), None, None))  # alias collision
    assert "mine" in reg and len(reg) == 1


def test_missing_official_list(tmp_path):
    with pytest.raises(DatasetError, match=r"VIPP_fake\.txt: VIPP list file not found"):
        load_dataset("VIPP", tmp_path)


def test_generic_list_file(tmp_path):
    _img(tmp_path / "f.png")
    _mask(tmp_path / "f_gt.png", SQUARE)
    _img(tmp_path / "r.png")
    fake = _write(tmp_path / "mine_fake.txt", "f.png,f_gt.png\n")
    ds = load_dataset(str(fake), tmp_path, real_list=_write(tmp_path / "mine_real.txt", "r.png\n"))
    assert ds.name == "mine" and len(ds) == 2 and np.array_equal(ds.load_mask(ds.fakes()[0]), SQUARE)


# --------------------------------------------------------------------------------------------
# folder layout
# --------------------------------------------------------------------------------------------


def test_folder_dataset(tmp_path):
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    for n in ("a.png", "b.png", "c.jpg"):
        _img(imgs / n)
    _mask(masks / "a_mask.png", SQUARE)
    _mask(masks / "c_mask.png", SQUARE)
    ds = folder_dataset(imgs, masks, mask_suffix="_mask")
    assert [s.id for s in ds.fakes()] == ["a.png", "c.jpg"] and [s.id for s in ds.reals()] == ["b.png"]
    assert np.array_equal(ds.load_mask(ds.fakes()[1]), SQUARE) and ds.validate() == []
    # a fake whose mask went missing would count as real: the note counts and names such images
    assert ds.notes == ["images: 1 image(s) without a mask are labelled real (e.g. b.png)"]
    assert ds.note_lines() == ds.notes  # printed naming the dataset once ("imgs: imgs: ..." before)
    ds.notes.append("a remark without the name")
    assert ds.note_lines()[-1] == "images: a remark without the name"
    assert len(folder_dataset(imgs).reals()) == 3
    # masks next to their images
    _mask(imgs / "b_mask.png", SQUARE)
    same = folder_dataset(imgs, imgs, mask_suffix="_mask")
    assert [s.id for s in same] == ["a.png", "b.png", "c.jpg"] and [s.id for s in same.fakes()] == ["b.png"]
    with pytest.raises(DatasetError, match="need a mask_suffix"):
        folder_dataset(imgs, imgs)
    _mask(masks / "a_mask.tif", SQUARE)
    with pytest.raises(DatasetError, match=r"a\.png: several candidate masks"):
        folder_dataset(imgs, masks, mask_suffix="_mask")
    with pytest.raises(DatasetError, match="images folder not found"):
        folder_dataset(tmp_path / "nope")


def test_folder_dataset_never_turns_a_fake_into_a_real_or_counts_one_twice(tmp_path):
    """A mask that matches no image (case, suffix) would leave its fake counted as real; a mask
    shared by ``a.png`` and ``a.jpg`` would score one forgery twice; a mask next to the images
    with no image of its own would be scored as a real image. Each is an error naming the file."""
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    _img(imgs / "IMG_1.png")
    _img(imgs / "b.png")
    _mask(masks / "img_1.png", SQUARE)
    _mask(masks / "b.png", SQUARE)
    with pytest.raises(
        DatasetError, match=r"masks: 1 mask\(s\) match no image .*img_1\.png \(IMG_1\.png differs only in case\)"
    ):
        folder_dataset(imgs, masks)
    (masks / "img_1.png").rename(masks / "IMG_1.png")
    assert [s.id for s in folder_dataset(imgs, masks).fakes()] == ["IMG_1.png", "b.png"]
    _img(imgs / "b.jpg")
    with pytest.raises(DatasetError, match=r"b\.png: the mask of several images \(b\.jpg, b\.png\)"):
        folder_dataset(imgs, masks)
    same = tmp_path / "same"
    _img(same / "x.png")
    _mask(same / "x_gt.png", SQUARE)
    assert [(s.id, s.label) for s in folder_dataset(same, same, mask_suffix="_gt")] == [("x.png", 1)]
    _mask(same / "z_gt.png", SQUARE)
    with pytest.raises(DatasetError, match=r"z_gt\.png"):
        folder_dataset(same, same, mask_suffix="_gt")


def test_an_image_listed_twice_is_named(tmp_path):
    """Listed twice, or as fake and as real: ``repeated`` names it (evaluate refuses such a
    dataset, tests/test_evaluate.py)."""
    _img(tmp_path / "a.png")
    _img(tmp_path / "g.png")
    _mask(tmp_path / "a_m.png", SQUARE)
    fake = _write(tmp_path / "fake.txt", "a.png,a_m.png\n")
    assert load_dataset(str(fake), tmp_path, real_list=_write(tmp_path / "r1.txt", "g.png\n")).repeated() is None
    both = load_dataset(str(fake), tmp_path, real_list=_write(tmp_path / "real.txt", "g.png\na.png\n"))
    assert re.fullmatch(r".*a\.png: listed as fake and as real in 'fake' \(id 'a\.png'\)", both.repeated())
    twice = load_dataset(str(_write(tmp_path / "f2.txt", "a.png,a_m.png\na.png,a_m.png\n")), tmp_path)
    assert re.fullmatch(r".*a\.png: listed twice in 'f2' \(id 'a\.png'\)", twice.repeated())


# --------------------------------------------------------------------------------------------
# errors: raised by load_mask, collected by validate
# --------------------------------------------------------------------------------------------


def test_every_error(tmp_path):
    _img(tmp_path / "ok.png")
    _mask(tmp_path / "ok_m.png", SQUARE)
    _img(tmp_path / "size.png", size=(W + 1, H))
    _mask(tmp_path / "size_m.png", SQUARE)
    _img(tmp_path / "bad.png")
    (tmp_path / "bad_m.png").write_bytes(b"not a png at all")
    _img(tmp_path / "nomask.png")
    _mask(tmp_path / "noimg_m.png", SQUARE)
    _img(tmp_path / "empty.png")
    _mask(tmp_path / "empty_m.png", np.zeros_like(SQUARE))
    _img(tmp_path / "inv.png")
    _mask(tmp_path / "inv_m.png", ~SQUARE)
    fake = _write(
        tmp_path / "t_fake.txt",
        "\n".join(
            [
                "ok.png,ok_m.png",
                "size.png,size_m.png",
                "bad.png,bad_m.png",
                "nomask.png,gone.png",
                "noimg.png,noimg_m.png",
                "empty.png,empty_m.png",
                "inv.png,inv_m.png",
                "ok.png,None",
            ]
        ),
    )
    real = _write(tmp_path / "t_real.txt", "missing_real.png\n")
    ds = load_dataset(fake, tmp_path, real_list=real)
    by_id = {s.id: s for s in ds.fakes()}
    cases = {
        "size.png": r"size_m\.png: mask size 32x24 differs from image size 33x24",
        "bad.png": r"bad_m\.png: unreadable mask",
        "nomask.png": r"gone\.png: mask not found",
        "noimg.png": r"noimg\.png: image not found",
    }
    for sid, pattern in cases.items():
        with pytest.raises(DatasetError, match=pattern) as exc:
            ds.load_mask(by_id[sid])
        assert "\n" not in str(exc.value)
    with pytest.raises(DatasetError, match="sample has no mask"):
        ds.load_mask(ds.reals()[0])
    problems = ds.validate()
    assert len(problems) == 8 and all("\n" not in p for p in problems)
    joined = "\n".join(problems)
    for pattern in [
        *cases.values(),
        r"empty_m\.png: mask has no forged pixel",
        r"inv_m\.png: \d+% of the mask is forged",
        r"ok\.png: listed twice in 't' \(id 'ok\.png'\)",
        r"missing_real\.png: image not found",
    ]:
        assert any(re.search(pattern, p) for p in problems), (pattern, joined)


def test_a_mask_drawn_in_alpha_only_is_refused_not_read_empty(tmp_path):
    """Converting to grey drops alpha: a mask whose regions exist only in its transparency read
    as an all-pristine mask, silently."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 3] = 0
    rgba[8:16, 8:16, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(DatasetError, match="alpha channel only"):
        read_mask(tmp_path / "alpha.png")
    rgba[8:16, 8:16, :3] = 255  # the region also drawn in colour: read from the colour
    Image.fromarray(rgba, "RGBA").save(tmp_path / "both.png")
    assert read_mask(tmp_path / "both.png").sum() == 64


def test_official_samples_folder_reads_masks_and_names_like_a_benchmark(tmp_path):
    """0/1 masks read as empty (a fixed > 127 threshold), and 'realestate_splice.png' with a
    mask beside it was taken as pristine (the word 'real' inside another word)."""
    from trufor_lab.lab.forgeries import load_official_samples

    img = np.zeros((32, 32, 3), np.uint8)
    mask01 = np.zeros((32, 32), np.uint8)
    mask01[4:10, 4:10] = 1
    for name in ("realestate_splice", "tampered_x"):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
        Image.fromarray(mask01).save(tmp_path / f"{name}_mask.png")
    for name in ("pristine_1", "realestate"):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
    got = {f.name: (f.label, None if f.mask is None else int(f.mask.sum())) for f in load_official_samples(tmp_path)}
    assert got == {"pristine_1": (0, 0), "realestate_splice": (1, 36), "tampered_x": (1, 36)}
    # a suffix in another case: the mask file was skipped as a mask but never found as one
    # ('tampered1' forged with no mask; 'photo', with no word saying either, left out)
    for name, suffix in (("tampered1", "_GT"), ("photo", "_Mask")):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
        Image.fromarray(mask01).save(tmp_path / f"{name}{suffix}.png")
    got = {f.name: (f.label, None if f.mask is None else int(f.mask.sum())) for f in load_official_samples(tmp_path)}
    assert got["tampered1"] == (1, 36) and got["photo"] == (1, 36) and len(got) == 5, got


def test_a_list_file_saved_with_a_bom_reads_its_first_name(tmp_path):
    """Notepad writes a UTF-8 BOM: the first entry became '\\ufeffa.png: no such file'."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_bytes("\ufeffa.png\n".encode("utf-8"))
    samples = read_list(tmp_path / "list.txt", 0, tmp_path)
    assert [Path(s.image_path).name for s in samples] == ["a.png"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_mask_is_read_on_the_grid_its_image_is_analysed_on(tmp_path, orientation):
    """Pillow turns a TIFF with an EXIF orientation as it loads; the image is analysed as stored
    but its mask was read turned: orientations 2-4 scored a perfect map F1 0.31 without a word,
    5-8 were refused as 'mask size differs'."""
    from trufor_lab.inference.preprocess import load_image

    mask = np.zeros((H, W), np.uint8)
    mask[2:9, 3:20] = 255  # not symmetric under any turn
    rgb = np.repeat(mask[..., None], 3, axis=2)
    for arr, name in ((mask, "m.tif"), (rgb, "i.tif")):
        im = Image.fromarray(arr)
        ex = im.getexif()
        ex[0x0112] = orientation
        im.save(tmp_path / name, exif=ex)
    got = read_mask(tmp_path / "m.tif")
    assert got.shape == (H, W) and np.array_equal(got, mask > 0)
    assert np.array_equal(load_image(tmp_path / "i.tif").rgb[..., 0] > 0, got)  # one grid


def test_a_jpeg_saved_mask_is_refused_unless_read_at_mid_grey(tmp_path):
    """JPEG ringing around the regions counted as forged under 'any nonzero level': a 64x64 mask
    with 1225 forged pixels read as 3906 forged (95 %), so every map scored F1 1. A clean mask
    drawn in a dark colour (red reads as grey 76) is not noise."""
    m = np.zeros((64, 64), np.uint8)
    m[10:45, 10:45] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=70)
    with pytest.raises(
        DatasetError,
        match=r"m\.jpg: a JPEG-saved mask: \d+ pixel\(s\) of compression noise .* count as forged.*--mask-threshold 1[23]\d\)$",
    ):
        read_mask(tmp_path / "m.jpg")
    got = read_mask(tmp_path / "m.jpg", MaskConvention(threshold=127))
    assert np.count_nonzero(got != (m > 0)) < 0.01 * m.size
    # inverted (black = forged) masks have the same noise inside the regions, read as pristine
    with pytest.raises(
        DatasetError, match=r"compression noise .* would count as pristine \(this convention is inverted\)"
    ):
        read_mask(tmp_path / "m.jpg", MaskConvention(invert=True))
    Image.fromarray(m).save(tmp_path / "m.png")  # lossless: unchanged rule
    assert np.array_equal(read_mask(tmp_path / "m.png"), m > 0)
    red = np.zeros((64, 64, 3), np.uint8)
    red[20:28, 20:28] = (255, 0, 0)
    Image.fromarray(red).save(tmp_path / "red.jpg", quality=100, subsampling=0)
    assert np.array_equal(read_mask(tmp_path / "red.jpg"), red[..., 0] > 0)


def test_a_jpeg_mask_of_thousands_of_scans_is_refused_before_it_is_decoded(tmp_path):
    """A benchmark's mask is a file like any other: a progressive JPEG of thousands of tiny scans
    takes minutes to decode (jpeg_cut.MAX_SCANS), and an evaluation reads hundreds of masks."""
    import io

    buf = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buf, "JPEG", progressive=True, quality=50)
    data = buf.getvalue()
    tail = data[data.rindex(b"\xff\xc4") : -2]  # a Huffman table, a scan header, its coded data
    (tmp_path / "m.jpg").write_bytes(data[:-2] + tail * 600 + b"\xff\xd9")
    with pytest.raises(DatasetError, match=r"m\.jpg: refused: a JPEG of \d+ scans"):
        read_mask(tmp_path / "m.jpg", MaskConvention(threshold=127))
    (tmp_path / "ok.jpg").write_bytes(data[:-2] + tail * 100 + b"\xff\xd9")
    assert read_mask(tmp_path / "ok.jpg", MaskConvention(threshold=127)).all()


def test_a_jpeg_saved_0_1_mask_is_refused_whatever_the_convention(tmp_path):
    """A 0/1 mask saved as JPEG lost 296 of its 3600 forged pixels (edge pixels rounded to 0)
    with no error: its noise is as large as its drawing, so neither the noise check (0/255) nor
    the strict convention (levels 0/1 only) saw it. An all-black JPEG mask (nothing forged) is fine."""
    m = np.zeros((128, 128), np.uint8)
    m[30:90, 30:90] = 1
    Image.fromarray(m).save(tmp_path / "m01.jpg", quality=75)
    decoded = np.asarray(Image.open(tmp_path / "m01.jpg"))
    assert set(np.unique(decoded)) <= {0, 1} and np.count_nonzero(decoded) < 3600  # the loss itself
    for convention in (MaskConvention(), MaskConvention(threshold=None), MaskConvention(threshold=0.5)):
        with pytest.raises(DatasetError, match=r"m01\.jpg: a JPEG-saved mask drawn at levels 0-1 \(a 0/1 mask\?\)"):
            read_mask(tmp_path / "m01.jpg", convention)
    # one level, lossy: nothing (or everything) forged; the noise check crashed in Otsu's split (IndexError)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "black.jpg", quality=75)
    assert not read_mask(tmp_path / "black.jpg").any()
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "white.jpg", quality=75)
    assert read_mask(tmp_path / "white.jpg").all()


def test_cli_eval_reads_jpeg_masks_with_a_mask_threshold(tmp_path, capsys):
    from trufor_lab.cli import main

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    m = np.zeros((64, 64), np.uint8)
    m[10:45, 10:45] = 255
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"f{i}.png")
        Image.fromarray(m).save(tmp_path / "masks" / f"f{i}.jpg", quality=70)
    args = ["eval", "--images", str(tmp_path / "imgs"), "--masks", str(tmp_path / "masks"), "--method", "ela", "-q"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 1
    assert "compression noise" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "b"), "--mask-threshold", "127"]) == 0
    out = capsys.readouterr().out
    assert "over 2 mask(s)" in out and "without a usable mask" not in out
    assert main([*args, "-o", str(tmp_path / "c"), "--mask-threshold", "300"]) == 1
    assert "--mask-threshold 300.0: give a grey level" in capsys.readouterr().err


def test_cli_eval_reads_a_soft_edged_mask_at_the_level_given(tmp_path, capsys):
    """A feathered mask (7 % of its pixels mid-grey) was refused as 'not binary' whatever
    --mask-threshold said, with no way round it from the command line; the official script reads
    it at its level. Refused by default (saying how to read it), scored at the level given."""
    from scipy.ndimage import gaussian_filter

    from trufor_lab.cli import main

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    m = np.zeros((128, 128))
    m[40:90, 40:90] = 255
    soft = gaussian_filter(m, 3).round().astype(np.uint8)
    assert ((soft >= 32) & (soft <= 223)).mean() > 0.05
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "f.png")
    Image.fromarray(soft).save(tmp_path / "masks" / "f.png")
    args = ["eval", "--images", str(tmp_path / "imgs"), "--masks", str(tmp_path / "masks"), "--method", "ela", "-q"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 1
    assert "mid-grey); a soft-edged mask is read at a grey level given for it" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "b"), "--mask-threshold", "127"]) == 0
    out = capsys.readouterr().out
    assert "over 1 mask(s)" in out and "without a usable mask" not in out
    # a photo left among the masks is still no mask at the level given (it was scored as one)
    photo = gaussian_filter(rng.integers(0, 256, (128, 128)).astype(float), 2)
    photo = (64 + 128 * (photo - photo.min()) / np.ptp(photo)).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "masks" / "f.png")
    assert main([*args, "-o", str(tmp_path / "c"), "--mask-threshold", "127"]) == 1
    assert "f.png: not a mask: 100% of its pixels are mid-grey" in capsys.readouterr().err
    # in Python the refusal names the Python way (it named the command's option to a caller who gave a level)
    Image.fromarray(soft).save(tmp_path / "soft.png")
    with pytest.raises(DatasetError, match=r"MaskConvention\(threshold=127, max_grey=0\.5\)"):
        read_mask(tmp_path / "soft.png", MaskConvention(threshold=127))


def test_cli_eval_mask_threshold_is_refused_for_colour_masks(tmp_path, capsys):
    """Columbia's masks are read by colour: --mask-threshold changed nothing and said nothing."""
    from trufor_lab.cli import main

    rc = main(["eval", "Columbia", "--root", str(tmp_path), "--mask-threshold", "100", "-o", str(tmp_path / "o"), "-q"])
    assert rc == 1 and "--mask-threshold does not apply to Columbia" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# review findings: folder layouts, conventions by name, empty masks, spellings, lossy masks, alpha
# --------------------------------------------------------------------------------------------


def test_a_mask_suffix_without_a_masks_folder_reads_the_masks_among_the_images(tmp_path):
    """CASIA-style folder (``x.jpg`` beside ``x_gt.png``) with a suffix but no masks folder: the
    suffix was ignored, the mask files scored as authentic images and the fake as real."""
    d = tmp_path / "casia"
    _img(d / "Sp_a.jpg")
    _mask(d / "Sp_a_gt.png", SQUARE)
    _img(d / "Au_b.jpg")
    ds = folder_dataset(d, mask_suffix="_gt")
    assert [(s.id, s.label) for s in ds] == [("Au_b.jpg", 0), ("Sp_a.jpg", 1)]
    assert ds.fakes()[0].mask_path == d / "Sp_a_gt.png" and any("_gt files" in n for n in ds.notes)
    with pytest.raises(DatasetError, match=r"Sp_a_gt\.png: looks like the mask of Sp_a\.jpg .*--mask-suffix _gt"):
        folder_dataset(d)  # no suffix at all: refused rather than three authentic images


def test_a_mask_named_in_capitals_beside_its_image_is_refused_as_the_training_side_refuses_it(tmp_path):
    """``Sp_a_GT.png`` beside ``Sp_a.jpg`` was scored as an authentic image (the check matched
    ``_gt`` in lower case only), though a training run refused the same folder as pristine."""
    from trufor_lab.training.scenes import read_folder

    d = tmp_path / "casia"
    _img(d / "Sp_a.jpg")
    _mask(d / "Sp_a_GT.png", SQUARE)
    _img(d / "Au_b.jpg")
    with pytest.raises(DatasetError, match=r"Sp_a_GT\.png: looks like the mask of Sp_a\.jpg .*--mask-suffix _GT\)$"):
        folder_dataset(d)
    with pytest.raises(ValueError, match=r"Sp_a_GT\.png: looks like the mask of Sp_a\.jpg: a folder of pristine"):
        read_folder(d)
    ds = folder_dataset(d, mask_suffix="_GT")  # the suffix the error gives reads it
    assert [(s.id, s.label) for s in ds] == [("Au_b.jpg", 0), ("Sp_a.jpg", 1)]
    # names that only end like a mask's, with no picture of the stem beside them, are pictures
    (d / "Sp_a_GT.png").rename(d / "Sp_c_GT.png")
    assert [s.id for s in folder_dataset(d)] == ["Au_b.jpg", "Sp_a.jpg", "Sp_c_GT.png"]


def test_folder_dataset_follows_linked_subfolders_and_says_what_it_cannot_read(tmp_path):
    """eval dropped linked subfolders (Path.rglob does not follow them): a linked masks folder
    made its fakes 'real' (AUC 0.5 instead of 1.0) and a linked images folder lost its images,
    exit 0; a folder it cannot read vanished unsaid. The images side is noted, a masks folder
    that hides masks refused (its fakes would be scored as real)."""
    store = tmp_path / "elsewhere"
    _img(store / "imgs/f2.png")
    _mask(store / "masks/f2.png", SQUARE)
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    _img(imgs / "f1.png")
    _img(imgs / "r1.png")
    _mask(masks / "f1.png", SQUARE)
    (imgs / "linked").symlink_to(store / "imgs", target_is_directory=True)
    (masks / "linked").symlink_to(store / "masks", target_is_directory=True)
    (imgs / "loop").symlink_to(imgs, target_is_directory=True)  # searched once
    ds = folder_dataset(imgs, masks)
    assert [(s.id, s.label) for s in ds] == [("f1.png", 1), ("linked/f2.png", 1), ("r1.png", 0)]
    (imgs / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert any("gone.png" in n for n in folder_dataset(imgs, masks).notes)
    (masks / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DatasetError, match=r"gone\.png: .*\(its masks would label their images real\)"):
        folder_dataset(imgs, masks)
    # a masks folder linked into the images folder (and the reverse) holds masks, not images:
    # followed as a subfolder, each mask became an authentic image
    lay = tmp_path / "layout"
    _img(lay / "images/a.png")
    _img(lay / "images/b.png")
    _mask(lay / "gt/a_gt.png", SQUARE)
    (lay / "images/masks").symlink_to(lay / "gt", target_is_directory=True)
    for m in (lay / "gt", lay / "images/masks"):
        got = folder_dataset(lay / "images", m, "_gt")
        assert [(s.id, s.label) for s in got] == [("a.png", 1), ("b.png", 0)], m
    (lay / "gt/imgs").symlink_to(lay / "images", target_is_directory=True)
    got = folder_dataset(lay / "images", lay / "gt", "_gt")
    assert [(s.id, s.label) for s in got] == [("a.png", 1), ("b.png", 0)]


def test_folder_dataset_searches_subfolders(tmp_path):
    """CASIA v2-style ``Au/`` and ``Tp/`` subfolders were dropped and masks in ``masks/<class>/``
    not found (every fake scored as real), without a word."""
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    _img(imgs / "Tp/t1.tif")
    _img(imgs / "Tp/t2.png")
    _img(imgs / "Au/a1.jpg")
    _img(imgs / "top.png")
    _img(imgs / ".ipynb_checkpoints/top-checkpoint.png")  # hidden: not a sample
    _mask(masks / "t1_gt.png", SQUARE)  # flat masks, nested images: paired by stem
    _mask(masks / "splice/t2_gt.png", SQUARE)  # masks by class: paired by stem
    _mask(masks / "top_gt.png", SQUARE)
    ds = folder_dataset(imgs, masks, "_gt")
    assert [(s.id, s.label) for s in ds] == [("Au/a1.jpg", 0), ("Tp/t1.tif", 1), ("Tp/t2.png", 1), ("top.png", 1)]
    assert ds.fakes()[1].mask_path == masks / "splice/t2_gt.png" and ds.validate() == []
    # the same relative path wins over a stem elsewhere; a stem in two other folders is ambiguous
    mirror = tmp_path / "mirror"
    _img(mirror / "images/x/a.png")
    _img(mirror / "images/y/a.png")
    _mask(mirror / "masks/x/a.png", SQUARE)
    _mask(mirror / "masks/y/a.png", SQUARE)
    got = folder_dataset(mirror / "images", mirror / "masks")
    assert [(s.id, s.mask_path.relative_to(mirror).as_posix()) for s in got] == [
        ("x/a.png", "masks/x/a.png"),
        ("y/a.png", "masks/y/a.png"),
    ]
    # a mask in its image's own subfolder is that image's: the same name elsewhere has no mask
    # (Tp/x1.png with masks/Tp/x1.png beside an authentic Au/x1.png was refused as one mask of two images)
    _img(mirror / "images/a.png")
    got = folder_dataset(mirror / "images", mirror / "masks")
    assert [(s.id, s.label) for s in got] == [("a.png", 0), ("x/a.png", 1), ("y/a.png", 1)]
    assert "1 image(s) without a mask are labelled real (e.g. a.png)" in got.note_lines()[-1]
    # two masks of that name, neither in its own image's subfolder: ambiguous
    _mask(mirror / "masks/z/b.png", SQUARE)
    _mask(mirror / "masks/w/b.png", SQUARE)
    _img(mirror / "images/x/b.png")
    with pytest.raises(DatasetError, match=r"images/x/b\.png: several candidate masks \(w/b\.png, z/b\.png\)"):
        folder_dataset(mirror / "images", mirror / "masks")
    # a masks folder inside the images folder holds masks, not images
    inner = tmp_path / "inner"
    _img(inner / "f.png")
    _mask(inner / "masks/f.png", SQUARE)
    assert [(s.id, s.label) for s in folder_dataset(inner, inner / "masks")] == [("f.png", 1)]
    # masks among the images, in subfolders
    same = tmp_path / "same"
    _img(same / "Tp/s.jpg")
    _mask(same / "Tp/s_gt.png", SQUARE)
    assert [(s.id, s.label) for s in folder_dataset(same, same, "_gt")] == [("Tp/s.jpg", 1)]


def test_a_folder_named_like_a_benchmark_is_read_with_its_convention(tmp_path):
    """DSO-1 loaded as a folder got white = forged: its black = spliced masks read inverted
    (pixel AUC 0 instead of 1, 75 % forged instead of 25 %)."""
    root = tmp_path / "tifs-database"
    _img(root / "DSO-1/splicing-01.png")
    _mask(root / "DSO-1-Fake-Images-Masks/splicing-01.png", SQUARE, on=0, off=255)
    _img(root / "DSO-1/normal-01.png")
    for ds in (
        folder_dataset(root / "DSO-1", root / "DSO-1-Fake-Images-Masks"),  # the folder's own name
        folder_dataset(root / "DSO-1", root / "DSO-1-Fake-Images-Masks", name="tifs-database"),  # an alias
    ):
        assert ds.convention == get_spec("DSO-1").convention
        assert np.array_equal(ds.load_mask(ds.fakes()[0]), SQUARE) and ds.validate() == []
        assert any("named like the benchmark DSO-1" in n and "black = forged" in n for n in ds.notes)
    maskless = "DSO-1: 1 image(s) without a mask are labelled real (e.g. normal-01.png)"
    mine = folder_dataset(root / "DSO-1", root / "DSO-1-Fake-Images-Masks", name="mine")
    assert mine.convention == MaskConvention() and mine.notes == [maskless.replace("DSO-1:", "mine:")]
    explicit = folder_dataset(root / "DSO-1", root / "DSO-1-Fake-Images-Masks", convention=MaskConvention(invert=True))
    assert explicit.notes == [maskless] and np.array_equal(explicit.load_mask(explicit.fakes()[0]), SQUARE)


def test_an_authentic_image_whose_mask_marks_nothing_is_real(tmp_path):
    """Benchmarks that give every image a mask (IMD2020, DEFACTO): the authentic image's
    all-black mask made it a fake, scored F1 0 and counted on the fake side of the AUC."""
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    _img(imgs / "fake1.png")
    _mask(masks / "fake1.png", SQUARE)
    _img(imgs / "auth1.png")
    _mask(masks / "auth1.png", np.zeros_like(SQUARE))
    ds = folder_dataset(imgs, masks)
    assert [(s.id, s.label) for s in ds] == [("auth1.png", 0), ("fake1.png", 1)]
    assert ds.reals()[0].mask_path == masks / "auth1.png"
    assert any(
        re.search(r"1 image\(s\) whose mask marks no forged pixel are labelled real \(e\.g\. auth1", n)
        for n in ds.notes
    )
    assert ds.validate() == []
    # under an inverted convention an all-white mask marks nothing
    _mask(masks / "auth1.png", np.zeros_like(SQUARE), off=255)
    _mask(masks / "fake1.png", SQUARE, on=0, off=255)
    inv = folder_dataset(imgs, masks, convention=MaskConvention(invert=True))
    assert [(s.id, s.label) for s in inv] == [("auth1.png", 0), ("fake1.png", 1)]
    # an unreadable mask keeps its image fake: the evaluation names the problem
    (masks / "auth1.png").write_bytes(b"broken")
    assert folder_dataset(imgs, masks, convention=MaskConvention(invert=True)).fakes()[0].id == "auth1.png"
    # a real image whose mask marks pixels (a convention changed afterwards) is a problem
    _mask(masks / "auth1.png", np.zeros_like(SQUARE))
    ds = folder_dataset(imgs, masks)
    ds.convention = MaskConvention(invert=True)
    assert any(re.search(r"auth1\.png: the mask of a real image marks 100% forged", p) for p in ds.validate())


def test_the_same_file_under_two_spellings_is_listed_twice(tmp_path):
    """``Sp//b.jpg`` and ``Sp/b.jpg``, ``./Sp/a.jpg`` as real and ``Sp/a.jpg`` as fake: repeated()
    compared the raw strings, so the file weighed twice and sat on both sides of the AUC."""
    _img(tmp_path / "Sp/a.jpg")
    _img(tmp_path / "Sp/b.jpg")
    _img(tmp_path / "Au/r.jpg")
    for n in ("a", "b"):
        _mask(tmp_path / f"gt/{n}_gt.png", SQUARE)
    fake = _write(tmp_path / "t_fake.txt", "Sp/a.jpg,gt/a_gt.png\nSp//b.jpg,gt/b_gt.png\nSp/x/../b.jpg,gt/b_gt.png\n")
    real = _write(tmp_path / "t_real.txt", "Au/r.jpg\n./Sp/a.jpg\n")
    ds = load_dataset(fake, tmp_path, real_list=real)
    assert re.fullmatch(r".*b\.jpg: listed twice in 't' \(as 'Sp//b\.jpg' and 'Sp/x/\.\./b\.jpg'\)", ds.repeated())
    problems = ds.validate()
    assert any(
        re.fullmatch(r".*a\.jpg: listed as fake and as real in 't' \(as 'Sp/a\.jpg' and '\./Sp/a\.jpg'\)", p)
        for p in problems
    )
    assert len(ds.repeats()) == 2 and all(p in problems for p in ds.repeats())
    clean = _write(tmp_path / "c_fake.txt", "./Sp/a.jpg,gt/a_gt.png\nSp//b.jpg,gt/b_gt.png\n")
    assert load_dataset(clean, tmp_path, real_list=_write(tmp_path / "c_real.txt", "Au/r.jpg\n")).repeated() is None


def _circle(size=128) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - 61) ** 2 + (xx - 67) ** 2 < 30**2).astype(np.uint8) * 255


@pytest.mark.parametrize(
    ("name", "save", "kind"),
    [
        ("m.webp", dict(quality=90), "lossy WebP"),
        ("m.jp2", dict(quality_mode="rates", quality_layers=[40]), "JPEG 2000"),
    ],
)
def test_lossy_webp_and_jpeg2000_masks_are_checked_for_compression_noise(tmp_path, name, save, kind):
    """Only JPEG masks were checked: a lossy WebP or JPEG 2000 mask's ringing counted as forged
    (WebP q90: 517 wrong pixels, JPEG 2000: 4803 of 16384) without a word."""
    m = _circle()
    Image.fromarray(m).save(tmp_path / name, **save)
    with pytest.raises(
        DatasetError, match=rf"{re.escape(name)}: a {kind}-saved mask: \d+ pixel\(s\) of compression noise"
    ):
        read_mask(tmp_path / name)
    Image.fromarray(255 - m).save(tmp_path / f"inv_{name}", **save)
    with pytest.raises(DatasetError, match="would count as pristine"):
        read_mask(tmp_path / f"inv_{name}", MaskConvention(invert=True))


def test_a_lossless_webp_mask_is_not_taken_for_a_lossy_one(tmp_path):
    m = _circle()
    m[:, 60:62] = 128  # a grey seam: noise in a lossy file, drawn in a lossless one
    Image.fromarray(m).save(tmp_path / "m.webp", lossless=True)
    assert np.array_equal(read_mask(tmp_path / "m.webp"), m > 0)


def test_colour_under_fully_transparent_pixels_is_not_forged(tmp_path):
    """Converting to grey dropped alpha: white hidden under transparent pixels read as forged
    (62 % instead of 25 %)."""
    truth = np.zeros((32, 32), bool)
    truth[8:24, 8:24] = True
    a = np.zeros((32, 32, 4), np.uint8)
    a[:, :16, :3] = 255  # hidden colour on the left half
    a[truth] = (255, 255, 255, 255)
    Image.fromarray(a, "RGBA").save(tmp_path / "hidden.png")
    assert np.array_equal(read_mask(tmp_path / "hidden.png"), truth)
    assert np.array_equal(read_mask(tmp_path / "hidden.png", MaskConvention(channel=0)), truth)
    la = Image.fromarray(a, "RGBA").convert("LA")
    la.save(tmp_path / "hidden_la.png")
    assert np.array_equal(read_mask(tmp_path / "hidden_la.png"), truth)
    a[..., 3] = 255  # opaque everywhere: the colour is the mask, as before
    Image.fromarray(a, "RGBA").save(tmp_path / "opaque.png")
    assert read_mask(tmp_path / "opaque.png").sum() == truth.sum() + 16 * 32 - 8 * 16


def test_a_16_bit_mask_reads_like_its_8_bit_twin_and_a_text_file_is_said_in_words(tmp_path):
    """16-bit masks were refused while 16-bit images were read; a text file named .png gave
    PIL's "cannot identify image file <_io.BufferedReader name=...>"."""
    m = np.zeros((32, 40), np.uint8)
    m[8:20, 10:30] = 255
    Image.fromarray(m).save(tmp_path / "m8.png")
    Image.fromarray(m.astype(np.uint16) * 257).save(tmp_path / "m16.png")
    Image.fromarray((m > 0).astype(np.uint16)).save(tmp_path / "m16_01.png")
    want = read_mask(tmp_path / "m8.png")
    assert want.sum() == 12 * 20
    for name in ("m16.png", "m16_01.png"):
        assert Image.open(tmp_path / name).mode.startswith("I")
        assert np.array_equal(read_mask(tmp_path / name), want), name
    (tmp_path / "notes.png").write_text("not a mask")
    with pytest.raises(
        DatasetError, match=r"notes\.png: unreadable mask \(not an image file, or a format not read here\)$"
    ):
        read_mask(tmp_path / "notes.png")


def test_a_16_bit_mask_reads_faint_levels_as_the_official_reading_does_and_a_level_on_the_8_bit_scale(tmp_path):
    """A 16-bit mask's levels were rounded to the nearest 8-bit one: levels 1-128 (a faint
    anti-aliased edge) read pristine, where the official ``convert('L') > 0.1`` (Pillow clips
    16-bit levels to 255) reads any nonzero level forged; and --mask-threshold 127 read 32640,
    above 127 x 257, as pristine. Level v now reads as ceil(v / 257)."""
    a = np.zeros((48, 48), np.uint16)
    a[12:36, 12:36] = 100  # the faint edge ring
    a[13:35, 13:35] = 65535
    Image.fromarray(a).save(tmp_path / "m16.png")
    official = np.asarray(Image.open(tmp_path / "m16.png").convert("L")) > 0.1
    assert official.sum() == 24 * 24
    assert np.array_equal(read_mask(tmp_path / "m16.png"), official)
    b = np.zeros((48, 48), np.uint16)
    b[10:30, 10:30] = 65535
    b[40, :20], b[44, :20] = 127 * 257, 127 * 257 + 1  # just at and just above level 127 on the 8-bit scale
    Image.fromarray(b).save(tmp_path / "levels16.png")
    read = read_mask(tmp_path / "levels16.png", MaskConvention(threshold=127))
    assert read[10:30, 10:30].all() and not read[40].any() and read[44, :20].all()
    assert read.sum() == 20 * 20 + 20
    Image.fromarray((b > 0).astype(np.uint16)).save(tmp_path / "m16_01.png")  # a 0/1 mask saved 16-bit
    assert np.array_equal(read_mask(tmp_path / "m16_01.png"), b > 0)  # read as 0/1, not all pristine
    with pytest.raises(DatasetError, match=r"m16_01\.png: its two levels \(0 and 1\) both read as pristine") as e:
        read_mask(tmp_path / "m16_01.png", MaskConvention(threshold=127))
    assert "16-bit" not in str(e.value)  # levels at most 255 are read as they are: quoted as stored
    # a 0/300 file: its levels were quoted as '0 and 2' with no word that they are on the 8-bit scale
    Image.fromarray((b > 0).astype(np.uint16) * 300).save(tmp_path / "m16_300.png")
    with pytest.raises(DatasetError, match=r"its two levels \(0 and 2\) .* level v read as ceil\(v / 257\)\)$"):
        read_mask(tmp_path / "m16_300.png", MaskConvention(threshold=127))


def test_two_level_masks_are_binary_whatever_their_levels(tmp_path):
    """A red-on-black mask (grey level 76) covering a fifth of the picture was refused as 'not
    binary (22% mid-grey)' whatever --mask-threshold said, though the official reading scores it;
    a colour-mapped mask (matplotlib's default: background grey 30) read as all forged, so its
    F1 was 1 whatever the map. Two levels are binary; two on one side of the threshold are refused."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    big = np.zeros((H, W), bool)
    big[: H // 2, : W // 2] = True
    red = np.zeros((H, W, 3), np.uint8)
    red[big] = (255, 0, 0)
    Image.fromarray(red).save(tmp_path / "red.png")
    assert np.array_equal(read_mask(tmp_path / "red.png"), big)
    plt.imsave(tmp_path / "viridis.png", SQUARE)
    with pytest.raises(
        DatasetError, match=r"viridis\.png: its two levels \((\d+) and (\d+)\) both read as forged"
    ) as e:
        read_mask(tmp_path / "viridis.png")
    level = int(re.search(r"--mask-threshold (\d+)", str(e.value)).group(1))
    assert np.array_equal(read_mask(tmp_path / "viridis.png", MaskConvention(threshold=level)), SQUARE)


def test_a_mask_libtiff_cannot_decode_is_refused_with_libtiffs_reason(tmp_path):
    """A damaged Deflate TIFF mask was refused as 'unreadable mask (decoder error -2)', libtiff's
    reason (its own line, 'ZIPDecode: ...') lost with the terminal's file descriptor kept."""
    import io

    buf = io.BytesIO()
    mask = (np.random.default_rng(1).integers(0, 2, (32, 32)) * 255).astype(np.uint8)
    Image.fromarray(mask).save(buf, "TIFF", compression="tiff_adobe_deflate")
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as im:
        start, count = im.tag_v2[273][0], im.tag_v2[279][0]
    data[start : start + count] = bytes(range(256)) * (count // 256) + bytes(count % 256)
    path = tmp_path / "m.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"m\.tif: unreadable mask \(ZIPDecode: ") as e:
        read_mask(path)
    assert "decoder error" not in str(e.value)


def test_a_threshold_on_one_side_of_both_drawn_levels_is_refused_with_edges_or_noise(tmp_path):
    """The two-level test missed masks with more levels: a red mask (grey 76) saved as JPEG, or
    with anti-aliased edges, read at 127 (the level the help gives for JPEG masks) came out empty,
    so every fake scored F1 0 (or a folder relabelled it real); one on a grey-30 background with
    soft edges read at the default level came out all forged (F1 1 whatever the map)."""
    from scipy.ndimage import gaussian_filter

    truth = np.zeros((192, 256), bool)
    truth[40:140, 60:180] = True
    at_127 = MaskConvention(threshold=127, max_grey=0.5)  # what --mask-threshold 127 builds
    red = np.zeros((*truth.shape, 3), np.uint8)
    red[truth] = (255, 0, 0)
    Image.fromarray(red).save(tmp_path / "red.jpg", quality=90)
    with pytest.raises(DatasetError, match=r"red\.jpg: a JPEG-saved mask: \d+ pixel\(s\) .* would count as pristine;"):
        read_mask(tmp_path / "red.jpg", at_127)
    soft = gaussian_filter(np.where(truth, 76.0, 0.0), 1.5).round().astype(np.uint8)
    Image.fromarray(soft).save(tmp_path / "soft_red.png")
    with pytest.raises(DatasetError, match=r"soft_red\.png: its two drawn levels \(about 0 and 76, .*read as pristine"):
        read_mask(tmp_path / "soft_red.png", at_127)
    grey_bg = gaussian_filter(np.where(truth, 255.0, 30.0), 0.7).round().astype(np.uint8)
    assert ((grey_bg >= 32) & (grey_bg <= 223)).mean() < 0.05  # passes the soft-edge test
    Image.fromarray(grey_bg).save(tmp_path / "grey_bg.png")
    with pytest.raises(DatasetError, match=r"grey_bg\.png: its two drawn levels \(about 30 and 255, .*read as forged"):
        read_mask(tmp_path / "grey_bg.png")
    # read at the level each message names, every mask is its drawing (edges aside)
    for name, conv in (("red.jpg", at_127), ("soft_red.png", at_127), ("grey_bg.png", MaskConvention())):
        with pytest.raises(DatasetError) as e:
            read_mask(tmp_path / name, conv)
        level = int(re.search(r"--mask-threshold (\d+)", str(e.value)).group(1))
        got = read_mask(tmp_path / name, MaskConvention(threshold=level, max_grey=0.5))
        assert np.count_nonzero(got != truth) < 0.01 * truth.size, name
    # a mask with a level per region (face 1, face 2 on black) is read as before: any level forged
    faces = np.zeros((100, 100), np.uint8)
    faces[:, 10:55], faces[:, 55:] = 1, 2
    Image.fromarray(faces).save(tmp_path / "faces.png")
    assert np.array_equal(read_mask(tmp_path / "faces.png", get_spec("OpenForensics").convention), faces > 0)
    # a 0/255 JPEG mask read at 127 is still read, as drawn
    Image.fromarray(np.where(truth, 255, 0).astype(np.uint8)).save(tmp_path / "bw.jpg", quality=90)
    assert np.count_nonzero(read_mask(tmp_path / "bw.jpg", at_127) != truth) < 0.001 * truth.size


def test_a_folder_given_as_dot_keeps_its_name(tmp_path, monkeypatch):
    """``folder_dataset(".")`` (``trufor-lab eval --images .``) named the dataset '': the summary
    line began with ':' and the CSV read back under the dataset 'None'; a folder called like a
    benchmark lost its mask convention."""
    root = tmp_path / "DSO-1"
    _img(root / "images/splicing-01.png")
    _mask(root / "masks/splicing-01.png", SQUARE, on=0, off=255)
    monkeypatch.chdir(root / "images")
    assert folder_dataset(".", "../masks").name == "images"
    monkeypatch.chdir(root)
    ds = folder_dataset(".")
    assert ds.name == "DSO-1" and ds.convention == get_spec("DSO-1").convention
    from trufor_lab.cli import build_parser
    from trufor_lab.cli.eval import _cli_dataset

    args = build_parser().parse_args(["eval", "--images", ".", "-o", str(tmp_path / "out")])
    ds = _cli_dataset(args)  # the command line named it '' and read its masks white = forged
    assert ds.name == "DSO-1" and ds.convention == get_spec("DSO-1").convention


def _varied_masks(folder: Path) -> list[Path]:
    """Masks in every form the conventions meet: 0/255, 0/1, inverted, palette, RGB, 16-bit (full
    range and 8-bit values), bilevel, soft-edged, noisy, a photo, grey background, one level per
    region, all and nothing forged, JPEG, a varying alpha channel."""
    from PIL import ImageFilter

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:60, :80]
    blob = ((yy - 28) / 17.0) ** 2 + ((xx - 35) / 23.0) ** 2 < 1
    b8 = blob.astype(np.uint8)
    red = np.stack([b8 * 255, b8 * 0, b8 * 0], -1)
    pal = Image.fromarray(b8).convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    alpha = np.dstack([np.stack([b8 * 255] * 3, -1), np.where(xx > 9, 255, 0).astype(np.uint8)])
    images = {
        "b255.png": Image.fromarray(b8 * 255),
        "b01.png": Image.fromarray(b8),
        "inverted.png": Image.fromarray((1 - b8) * 255),
        "palette.png": pal,
        "red.png": Image.fromarray(red),
        "w16.png": Image.fromarray(blob.astype(np.uint16) * 65535),
        "w16_8bit.png": Image.fromarray(blob.astype(np.uint16) * 255),
        "bilevel.png": Image.fromarray(blob).convert("1"),
        "soft.png": Image.fromarray(b8 * 255).filter(ImageFilter.GaussianBlur(3)),
        "noisy.png": Image.fromarray(np.clip(b8 * 255.0 + rng.normal(0, 25, blob.shape), 0, 255).astype(np.uint8)),
        "photo.png": Image.fromarray(rng.integers(0, 256, blob.shape, dtype=np.uint8)),
        "grey30.png": Image.fromarray(np.where(blob, 255, 30).astype(np.uint8)),
        "regions.png": Image.fromarray(((xx // 20) * 60 + 10).astype(np.uint8)),
        "all.png": Image.fromarray(np.full(blob.shape, 255, np.uint8)),
        "none.png": Image.fromarray(np.zeros(blob.shape, np.uint8)),
        "alpha.png": Image.fromarray(alpha),
        "b255.jpg": Image.fromarray(b8 * 255),
    }
    for name, im in images.items():
        im.save(folder / name, **({"quality": 90} if name.endswith(".jpg") else {}))
    return [folder / name for name in images]


def test_mask_levels_counted_in_one_pass_read_every_mask_as_sorting_them_did(tmp_path, monkeypatch):
    """read_mask counts a mask's levels in one pass (sorting them was a third of its time); every
    mask form under every convention reads to the same bits, or the same error, as the sorting path."""
    import trufor_lab.lab.datasets as datasets

    conventions = [
        MaskConvention(),
        MaskConvention(threshold=None),
        MaskConvention(invert=True),
        MaskConvention(threshold=127),
        MaskConvention(threshold=127, max_grey=0.5),
        MaskConvention(threshold=40.5, invert=True),
        MaskConvention(channel=0),
        MaskConvention(channel=0, threshold=None),
    ]

    def outcome(path, convention):
        try:
            m = read_mask(path, convention)
        except DatasetError as e:
            return "error", str(e)
        return m.dtype, m.shape, m.tobytes()

    paths = _varied_masks(tmp_path)
    counted = [outcome(p, c) for p in paths for c in conventions]
    monkeypatch.setattr(datasets, "_level_counts", lambda a: None)  # the levels sorted out again
    assert [outcome(p, c) for p in paths for c in conventions] == counted
    kinds = {o[0] for o in counted}
    assert "error" in kinds and np.dtype(bool) in kinds  # both read and refused masks were compared
    assert sum(o[0] == "error" for o in counted) < len(counted) / 2
    for a in (np.where(SQUARE, 300, 0), np.where(SQUARE, 255, 20), np.where(SQUARE, 1, 0), np.where(SQUARE, 200, 40)):
        wide = a.astype(np.uint16)  # counted by level in the public apply too
        for c in conventions[:6]:
            try:
                want = c.apply(wide.astype(np.int64)).tobytes()
            except DatasetError as e:
                want = str(e)
            try:
                got = c.apply(wide).tobytes()
            except DatasetError as e:
                got = str(e)
            assert got == want
