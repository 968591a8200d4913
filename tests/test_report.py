"""The HTML report: plain_reading's rule, self-containment, escaping, the CLI, headless Chromium."""

from __future__ import annotations

import dataclasses

import html
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

import trufor_lab
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.cli import main
from trufor_lab.forensics.provenance import read_provenance
from trufor_lab.casebook.report import (
    CONF_LOW,
    build_report,
    map_stats,
    numbers_rows,
    plain_reading,
    save_pdf,
    weights_line,
    write_report,
)
from trufor_lab.inference.weights import WeightsInfo

REPO = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert("exif")</script><img src=x onerror=alert(1)>'
HOSTILE_NAME = '"><img src=y onerror=alert(2)>.jpg'
OFFICIAL = WeightsInfo("official", "/secret/folder/trufor.pth.tar", "ab" * 32, True)


def synth(
    m: np.ndarray | None,
    conf: np.ndarray | None = None,
    score: float | None = None,
    weights: WeightsInfo | None = OFFICIAL,
    name: str = "synthetic.png",
) -> Result:
    """A Result with chosen maps (no model needed)."""
    h, w = (64, 64) if m is None else m.shape
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 4) % 256, (yy * 4) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
    return Result(
        image=img,
        noiseprint=np.random.default_rng(0).normal(size=(h, w)).astype(np.float32),
        map=m,
        conf=conf,
        score=score,
        name=name,
        weights=weights,
    )


def square(value: float, background: float = 0.0, size: int = 64, side: int = 16) -> np.ndarray:
    a = np.full((size, size), background, np.float32)
    a[8 : 8 + side, 8 : 8 + side] = value
    return a


# --------------------------------------------------------------------------- plain_reading


def test_plain_reading_noiseprint_only():
    text = plain_reading(synth(None, weights=WeightsInfo("noiseprint", "n.th", "0" * 64, True)))
    assert "Noiseprint++ only" in text and "official TruFor checkpoint" in text


def test_plain_reading_of_a_classic_detector_or_a_map_without_score(shared_dir):
    """A classic detector's Result (a map, no score) was read as 'Noiseprint++ only: no
    localization map', which is false; its map is a rescaled filter output, never a verdict."""
    from trufor_lab.lab.classic import detect

    text = plain_reading(detect(shared_dir / "images" / "pristine1.jpg", "ela"))
    assert text.startswith("The classic detector ela highlights") and "not evidence" in text
    assert "Noiseprint++ only" not in text and "manipulation found" not in text
    text = plain_reading(synth(square(0.95), square(0.9, 0.8), None))
    assert text.startswith("This analysis highlights 6.2% of the image.") and "Noiseprint++ only" not in text


def test_plain_reading_no_evidence():
    text = plain_reading(synth(np.zeros((64, 64), np.float32), np.full((64, 64), 0.9, np.float32), 0.08))
    assert text.startswith("No evidence of manipulation found")
    assert "not prove" in text and "illustrative" not in text


def test_plain_reading_strong():
    text = plain_reading(synth(square(0.95), square(0.9, 0.8), 0.93))
    assert text.startswith("Strong evidence of manipulation")
    assert "6.2%" in text  # 16*16 / 64*64


def test_plain_reading_moderate():
    text = plain_reading(synth(square(0.9), square(0.9, 0.8), 0.6))
    assert "some regions look manipulated (moderate confidence)" in text.lower()


def test_plain_reading_low_confidence_in_flagged_region_is_unreliable():
    # strong score, flagged region, but the model is not confident there: never "strong"
    r = synth(square(0.95), square(CONF_LOW - 0.2, 0.95), 0.97)
    text = plain_reading(r)
    assert "unreliable" in text and "Strong" not in text and "manipulated" not in text
    assert map_stats(r).conf_flagged == pytest.approx(0.3)


def test_plain_reading_high_score_without_region_is_inconclusive():
    text = plain_reading(synth(np.full((64, 64), 0.1, np.float32), np.ones((64, 64), np.float32), 0.9))
    assert text.startswith("Inconclusive") and "no region" in text


def test_plain_reading_whole_image_flagged_is_inconclusive():
    text = plain_reading(synth(np.full((64, 64), 0.8, np.float32), np.ones((64, 64), np.float32), 0.95))
    assert text.startswith("Inconclusive") and "almost the whole image" in text


def test_plain_reading_weak_and_tiny_regions():
    weak = plain_reading(synth(square(0.9), square(0.9, 0.9), 0.3))
    assert weak.startswith("Weak evidence")
    tiny = synth(square(0.9, side=2), np.ones((64, 64), np.float32), 0.2)  # 0.1% of the area
    assert plain_reading(tiny).startswith("No evidence")


VERDICT_WORDS = (
    "evidence of manipulation",
    "Strong evidence",
    "Weak evidence",
    "look manipulated",
    "No evidence",
    "Inconclusive",
)


@pytest.mark.parametrize(
    "kind,verified", [("demo", False), ("custom", False), ("untrained", False), ("official", False)]
)
@pytest.mark.parametrize("case", ["strong", "none", "whole"])
def test_plain_reading_never_words_a_non_official_result_as_evidence(kind, verified, case):
    """Demo, custom, untrained or unverified weights: what the model flags, that it cannot judge
    a real photo, and where the official weights are; never the official verdict words."""
    maps = {
        "strong": (square(0.95), square(0.9, 0.8), 0.93),
        "none": (np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32), 0.05),
        "whole": (np.full((64, 64), 0.8, np.float32), np.ones((64, 64), np.float32), 0.95),
    }[case]
    info = WeightsInfo(kind, "model.pt", "cd" * 32, verified)
    text = plain_reading(synth(*maps, weights=info))
    assert not any(w.lower() in text.lower() for w in VERDICT_WORDS), text
    assert "cannot judge a real photo" in text and "trufor-lab weights download" in text
    # its score is this model's output: the words "integrity score" belong to the official model
    assert f"its score (this model's output, not an integrity score) is {maps[2]:.2f}" in text
    official = plain_reading(synth(*maps))
    assert any(w in official for w in VERDICT_WORDS)


def test_plain_reading_with_demo_weights_describes_the_flagged_area():
    demo = WeightsInfo("demo", "trufor_demo.pt", "cd" * 32, False)
    text = plain_reading(synth(square(0.95), square(0.9, 0.8), 0.93, weights=demo))
    assert text.startswith("The demo model") and "flags 6.2% of the image" in text


def test_map_stats_numbers():
    st = map_stats(synth(square(1.0), square(0.5, 1.0), 0.7))
    assert st.map_max == 1.0 and st.flagged_fraction == pytest.approx(256 / 4096)
    assert st.map_mean == pytest.approx(256 / 4096) and st.conf_flagged == pytest.approx(0.5)
    assert st.conf_mean == pytest.approx((256 * 0.5 + 3840) / 4096)


def test_weights_line():
    assert weights_line(OFFICIAL) == (
        f"Weights: official TruFor — trufor.pth.tar, sha256 {'ab' * 32}, file checksum verified"
    )
    assert "NOT the official" in weights_line(WeightsInfo("demo", "d/trufor_demo.pt", "0" * 64, False))
    assert "NOT verified" in weights_line(WeightsInfo("custom", "c.pth", "0" * 64, False))


# --------------------------------------------------------------------------- the document


def hostile_jpeg() -> bytes:
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Evil & <b>Co</b>"
    ex[ExifTags.Base.Software] = HOSTILE
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG", quality=85, exif=ex)
    return buf.getvalue()


def assert_self_contained(doc: str) -> None:
    low = doc.lower()
    assert "<script" not in low and "<link" not in low and "<iframe" not in low
    assert "@import" not in low and "url(" not in low
    assert not re.search(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:|//)""", low)
    srcs = re.findall(r"""\ssrc\s*=\s*["']([^"']*)""", doc)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "@media print" in doc and "page-break-inside:avoid" in doc


def test_report_is_self_contained_and_escaped(tmp_path):
    r = synth(square(0.95), square(0.9, 0.8), 0.93, name=f"/home/reporter/{HOSTILE_NAME}")
    prov = read_provenance(hostile_jpeg())
    prov.name = HOSTILE_NAME
    doc = build_report(r, prov)
    assert_self_contained(doc)
    assert html.escape(HOSTILE) in doc and HOSTILE not in doc
    assert html.escape("Evil & <b>Co</b>") in doc and "<b>Co</b>" not in doc
    assert html.escape(HOSTILE_NAME) in doc and HOSTILE_NAME not in doc
    assert "/home/reporter" not in doc and "/secret/folder" not in doc  # base names only
    assert html.escape(weights_line(OFFICIAL)) in doc
    assert f"trufor_lab {trufor_lab.__version__}" in doc
    assert "How to read this" in doc and "evidence, not proof" in doc
    assert "Strong evidence of manipulation" in doc
    for label in ("integrity score", "map maximum", "map mean", "mean confidence", "area flagged"):
        assert label in doc
    out = write_report(tmp_path / "sub" / "r.html", doc)
    assert out.read_text(encoding="utf-8") == doc
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]  # no temporary file left


def test_a_low_score_on_a_messenger_copy_is_not_read_as_a_clean_bill(shared_dir):
    """A photo re-shared through a messenger (resized, saved again at quality 78, EXIF
    stripped) with a low official score read 'No evidence of manipulation found' beside a
    caveat that recompression 'lowers reliability', and nowhere that it can erase an edit's
    traces: a fact-checker took the low score for a clean bill. The caveats say it."""
    photo = Image.open(shared_dir / "images" / "pristine2.jpg").convert("RGB")
    buf = io.BytesIO()
    photo.resize((1600, 1385), Image.LANCZOS).save(buf, "JPEG", quality=78, subsampling="4:2:0")
    prov = read_provenance(buf.getvalue())
    assert "recompressed" in {s.code for s in prov.signs}
    h, w = 96, 96
    doc = html.unescape(build_report(synth(np.zeros((h, w), np.float32), np.ones((h, w), np.float32), 0.04), prov))
    assert "No evidence of manipulation found" in doc and "does not prove the image is authentic" in doc
    caveats = doc[doc.index("How to read this") :]
    assert "can erase the traces of an edit" in caveats
    assert "a low score or an empty map does not clear the image" in caveats


def test_report_without_localization(shared_dir):
    from trufor_lab.inference.load import load_noiseprint

    model = load_noiseprint(shared_dir / "weights" / "noiseprint++.th", device="cpu")
    img = np.asarray(Image.open(shared_dir / "images" / "tampered2.png").convert("RGB"))[:64, :64]
    r = analyze(model, img, name="np_only.png")
    doc = build_report(r, None)
    assert_self_contained(doc)
    assert "needs the official TruFor checkpoint" in doc
    assert "Noiseprint++ only (no localization, no score)" in doc
    assert "Provenance: not available" in doc


def test_write_report_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "r.html"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_report(target, "<html>new</html>")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_save_pdf(tmp_path):
    r = synth(square(0.95), square(0.9, 0.8), 0.93)
    out = save_pdf(tmp_path / "r.pdf", r, read_provenance(hostile_jpeg()))
    assert out.read_bytes()[:5] == b"%PDF-"


# --------------------------------------------------------------------------- the CLI


@pytest.fixture()
def images(tmp_path, tampered2):
    a = tmp_path / "viral.png"
    Image.fromarray(tampered2[80:144, 80:144]).save(a)
    b = tmp_path / "earlier.jpg"
    Image.fromarray(tampered2[70:166, 70:166]).resize((48, 48)).save(b, quality=90)
    return a, b


@pytest.mark.slow
def test_cli_report_writes_file(tmp_path, images, recipe_ckpt, monkeypatch, capsys):
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    out = tmp_path / "out" / "report.html"
    rc = main(["report", str(images[0]), "-o", str(out), "--device", "cpu", "--compare", str(images[1])])
    assert rc == 0, capsys.readouterr().err
    doc = out.read_text(encoding="utf-8")
    assert_self_contained(doc)
    assert "TruFor checkpoint not verified as the official one — trufor_recipe.pth.tar" in doc
    assert "Comparison with another version" in doc and "earlier.jpg" in doc
    assert f"trufor_lab {trufor_lab.__version__}" in doc
    assert "report written" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_cli_report_without_checkpoint_and_pdf(tmp_path, images, monkeypatch, capsys):
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    out = tmp_path / "r.html"
    assert main(["report", str(images[1]), "-o", str(out), "--device", "cpu", "--pdf", "-q", "--no-demo"]) == 0
    doc = out.read_text(encoding="utf-8")
    assert_self_contained(doc)
    assert "Noiseprint++ only" in doc and "earlier.jpg" in doc
    assert out.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert "note: Noiseprint++ only" in capsys.readouterr().err


def test_cli_report_bad_image(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a JPEG")
    out = tmp_path / "report.html"
    assert main(["report", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bad.jpg" in err[0]
    assert not out.exists()
    assert main(["report", str(tmp_path / "missing.png"), "-o", str(out)]) == 1
    assert "missing.png" in capsys.readouterr().err and not out.exists()


def test_cli_report_into_a_folder_it_cannot_write_fails_before_the_analysis(tmp_path, images, monkeypatch, capsys):
    """A read-only output folder: the model was loaded and the image analysed, then the write
    failed. Said up front now (no permission is pretended: tests run as root here)."""
    import trufor_lab.cli.report as cli_report

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: os.fspath(p) != str(locked) and real_access(p, mode, **k))
    monkeypatch.setattr(cli_report, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    out = locked / "r.html"
    assert main(["report", str(images[1]), "-o", str(out), "--device", "cpu", "-q"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: {out}: cannot write the report (no permission to write in {locked})"


# --------------------------------------------------------------------------- headless Chromium


def _chromium() -> tuple[str | None, str | None]:
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    return browser, shutil.which("chromedriver")


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    browser, driver_path = _chromium()
    if browser is None or driver_path is None:
        pytest.skip("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    r = synth(square(0.95), square(0.9, 0.8), 0.93, name="photo.jpg")
    page = write_report(tmp_path / "report.html", build_report(r, read_provenance(hostile_jpeg())))

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        driver.get(page.resolve().as_uri())
        assert "TruFor report" in driver.title
        sizes = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        assert len(sizes) >= 2 and all(c and w > 0 and h > 0 for c, w, h in sizes), sizes
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert fetched == []  # nothing loaded besides the file itself
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(artifacts / "report.png"))
    finally:
        driver.quit()
    assert (artifacts / "report.png").stat().st_size > 1000


def test_pdf_with_tex_in_the_metadata_and_ordinary_file_modes(tmp_path):
    """EXIF text is text: '$\\nosuchcmd{x}$' in Software made matplotlib's mathtext raise and
    the PDF was lost. Reports are written with ordinary permissions (mkstemp's 0600 made a
    report meant to be shared unreadable to others)."""
    exif = Image.Exif()
    exif[0x0131] = "Editor $\\nosuchcmd{x}$ v1"
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    prov = read_provenance(io.BytesIO(buf.getvalue()))
    assert any("nosuchcmd" in str(v) for _, _, v in prov.rows())
    r = synth(square(0.95), square(0.9, 0.8), 0.93)
    old = os.umask(0o022)
    try:
        out = save_pdf(tmp_path / "r.pdf", r, prov)
        html = write_report(tmp_path / "r.html", "<html></html>")
    finally:
        os.umask(old)
    assert out.read_bytes()[:5] == b"%PDF-"
    assert (out.stat().st_mode & 0o777) == (html.stat().st_mode & 0o777) == 0o644


def test_cli_report_pdf_named_output_keeps_the_html(tmp_path, images, monkeypatch, capsys):
    """``-o case.pdf --pdf`` wrote the HTML to case.pdf and then the PDF over it."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    out = tmp_path / "case.pdf"
    assert main(["report", str(images[1]), "-o", str(out), "--device", "cpu", "--pdf", "-q", "--no-demo"]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    assert "earlier.jpg" in (tmp_path / "case.html").read_text(encoding="utf-8")
    # -o alone.pdf without --pdf wrote HTML into the .pdf (PDF viewers refuse it): a PDF now
    alone = tmp_path / "alone.pdf"
    assert main(["report", str(images[1]), "-o", str(alone), "--device", "cpu", "-q", "--no-demo"]) == 0
    assert alone.read_bytes()[:5] == b"%PDF-" and (tmp_path / "alone.html").is_file()
    # a PDF that cannot be written is named as such (the error named the HTML, which was written)
    (tmp_path / "r.pdf").mkdir()
    capsys.readouterr()
    rc = main(["report", str(images[1]), "-o", str(tmp_path / "r.html"), "--device", "cpu", "--pdf", "-q", "--no-demo"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'r.pdf'}: cannot write the PDF")
    err = err[0]
    assert "the HTML report is written" in err and (tmp_path / "r.html").is_file()


def test_a_demo_report_never_calls_its_numbers_probabilities_or_evidence():
    """The Reading was right, but the same demo report called its score a 'probability of
    manipulation', coloured the map 'likely manipulated' and said 'a score is evidence'."""
    demo = WeightsInfo("demo", "w/trufor_demo.pt", "cd" * 32, True, note="demo")
    r = synth(square(0.95), square(0.9, 0.8), 0.93)
    official_doc = build_report(r)
    assert "probability of manipulation" in official_doc and "evidence, not proof" in official_doc
    r = dataclasses.replace(r, weights=demo)
    doc = build_report(r)
    for phrase in ("probability of manipulation", "likely manipulated", "A score is evidence"):
        assert phrase not in doc, phrase
    assert "score (this model&#x27;s output)" in doc and "red: flagged by this model" in doc
    assert "not evidence either way" in doc and "file checksum verified" in doc
    # its 'How to read this' said that without the official checkpoint only Noiseprint++ is
    # shown (the same report showed the demo map and score) and spoke of 'traces of editing'
    assert "only Noiseprint++ is shown" not in doc and "traces of editing" not in doc
    assert "they cannot judge a real photo" in doc and "shows what this model flags" in doc
    np_only = dataclasses.replace(r, map=None, conf=None, score=None)
    said = build_report(np_only)
    assert "only Noiseprint++ is shown" in said and "they cannot judge a real photo" not in said


def test_thousands_of_metadata_rows_are_capped(tmp_path):
    """A PNG with 3,000 text chunks made a 3,028-row table (1.3 MB HTML, a 55-page PDF)."""
    from PIL import PngImagePlugin

    from trufor_lab.casebook.report import MAX_METADATA_ROWS, provenance_rows

    info = PngImagePlugin.PngInfo()
    for i in range(3000):
        info.add_text(f"k{i}", "v")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "many.png", pnginfo=info)
    rows = provenance_rows(read_provenance(tmp_path / "many.png"))
    assert len(rows) == MAX_METADATA_ROWS + 1 and rows[-1][1].endswith("more rows")
    doc = build_report(synth(square(0.95), square(0.9, 0.8), 0.93), read_provenance(tmp_path / "many.png"))
    assert len(doc) < 400_000 and "more rows" in doc


@pytest.mark.parametrize("case", ["same-path", "dot-slash", "symlink", "compare-image", "pdf-over-image"])
def test_cli_report_refuses_to_write_over_an_input_image(tmp_path, monkeypatch, capsys, case):
    """``report photo.jpg -o photo.jpg`` replaced the evidence photo with HTML, without a word."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    monkeypatch.chdir(tmp_path)
    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save("photo.jpg", quality=90)
    Image.fromarray(rgb).save("earlier.png")
    Image.fromarray(rgb).save("case.pdf", "PNG")  # an image whatever its name: --pdf writes case.pdf
    if case == "symlink":
        os.symlink("photo.jpg", "link.html")
    image, out, extra, clash = {  # clash: the input the refused output would replace
        "same-path": ("photo.jpg", "photo.jpg", [], "photo.jpg"),
        "dot-slash": ("photo.jpg", "./photo.jpg", [], "photo.jpg"),
        "symlink": ("photo.jpg", "link.html", [], "photo.jpg"),
        "compare-image": ("photo.jpg", str(tmp_path / "earlier.png"), ["--compare", "earlier.png"], "earlier.png"),
        "pdf-over-image": ("case.pdf", "case.html", ["--pdf"], "case.pdf"),
    }[case]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    rc = main(["report", image, "-o", out, "--device", "cpu", "--no-demo", "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert (
        err[0].startswith("error:") and "refusing to write" in err[0] and err[0].endswith(f"{clash}; choose another -o")
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before  # nothing written


def test_cli_report_compare_says_how_the_other_version_was_read(tmp_path, tampered2, monkeypatch, capsys):
    """B's notes (a CMYK conversion, an orientation) were dropped from the comparison and the
    terminal; an emoji in a file name printed a two-line matplotlib warning."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_official"))  # the demo model
    a = tmp_path / "viral \U0001f4f7.png"
    Image.fromarray(tampered2[80:144, 80:144]).save(a)
    b = tmp_path / "earlier.jpg"
    Image.fromarray(tampered2[80:144, 80:144]).convert("CMYK").save(b, quality=95)
    out = tmp_path / "r.html"
    assert main(["report", str(a), "-o", str(out), "--device", "cpu", "--compare", str(b)]) == 0
    cap = capsys.readouterr()
    doc = out.read_text(encoding="utf-8")
    assert "<b>B:</b>" in doc and "converted from CMYK by Pillow" in doc.split("<b>B:</b>")[1].split("</p>")[0]
    assert "earlier.jpg" in cap.out and "converted from CMYK" in cap.out
    assert "Glyph" not in cap.err and "UserWarning" not in cap.err, cap.err


def test_cli_report_shows_a_phone_photo_as_viewers_do(tmp_path, tampered2, monkeypatch, capsys):
    """Maps and picture of a photo with an EXIF orientation are turned as viewers show it; the
    network read the stored grid (the note says both)."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_official"))
    ex = Image.Exif()
    ex[0x0112] = 6
    a = tmp_path / "portrait.jpg"
    Image.fromarray(tampered2[0:64, 0:96]).save(a, quality=90, exif=ex)
    out = tmp_path / "r.html"
    assert main(["report", str(a), "-o", str(out), "--device", "cpu", "--no-demo", "-q"]) == 0
    doc = out.read_text(encoding="utf-8")
    assert "EXIF orientation 6: analysed as stored, then image and maps turned 90° clockwise as viewers show it" in doc
    assert "not applied" not in doc
    import trufor_lab.casebook.report as R

    pages: list[str] = []
    real = R._text_pages
    monkeypatch.setattr(R, "_text_pages", lambda lines: pages.extend(lines) or real(lines))
    assert main(["report", str(a), "-o", str(tmp_path / "r2.html"), "--pdf", "--device", "cpu", "--no-demo", "-q"]) == 0
    text = " ".join(pages)  # the PDF says how the input was read (its figures are turned)
    assert "How the input was read: EXIF orientation 6: analysed as stored" in text


@pytest.mark.parametrize("kind", ["official", "demo"])
def test_numbers_in_the_reading_never_round_across_its_thresholds(kind):
    """Score 0.4996 read "the integrity score is low (0.50)" (and "high (0.50)" at 0.5); a
    confidence of 0.4996 was "low (0.50)"; the table showed 0.500 beside the word "low"."""
    info = None if kind == "official" else WeightsInfo("demo", "model.pt", "cd" * 32, False)
    weights = {} if info is None else {"weights": info}
    low = plain_reading(synth(np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32), 0.4996, **weights))
    assert "0.4996" in low and "(0.50)" not in low and "0.50." not in low, low
    unsure = plain_reading(synth(square(0.95), square(0.4996, 0.4996), 0.93, **weights))
    assert "0.4996" in unsure, unsure
    rows = dict(numbers_rows(synth(np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32), 0.4996, **weights)))
    assert "0.4996" in rows[next(k for k in rows if "score" in k)]


@pytest.mark.parametrize(
    "score,cut", [(np.float32(0.49999997), 0.5), (np.nextafter(np.float32(0.8), np.float32(0)), 0.8)]
)
def test_a_score_a_float32_step_below_a_threshold_is_not_shown_on_it(score, cut):
    """A float32 score 0.49999997 read "the integrity score is low (0.500000)", and 0.79999995
    was "moderate ... integrity score 0.800000": six decimals were the most the reading gave."""
    half = np.zeros((100, 100), np.float32)
    half[:50] = 0.9
    r = synth(half, np.full((100, 100), 0.9, np.float32), float(score))
    text = plain_reading(r)
    shown = dict(numbers_rows(r))["integrity score (probability of manipulation)"]
    assert float(shown) < cut and shown in text, (shown, text)
    assert ("Weak evidence" if cut == 0.5 else "Some regions look manipulated") in text


def test_the_reading_calls_suspicious_exactly_what_the_evaluation_counts_as_detected():
    """The reading used score >= 0.5 and map >= 0.5 while the evaluation counts score > 0.5 as
    fake and map > 0.5 as forged: a score of exactly 0.5 read "Some regions look manipulated"
    for an image the evaluation counted as missed. One rule now, from lab.metrics."""
    from trufor_lab.lab.metrics import detection_metrics

    assert detection_metrics([0.5, 0.1], [1, 0]).tpr == 0.0  # the evaluation: 0.5 is not detected
    text = plain_reading(synth(square(0.9), square(0.9, 0.8), 0.5))
    assert text.startswith("Weak evidence") and "integrity score is low (0.50)" in text, text
    above = float(np.nextafter(np.float32(0.5), np.float32(1)))
    assert detection_metrics([above, 0.1], [1, 0]).tpr == 1.0
    text = plain_reading(synth(square(0.9), square(0.9, 0.8), above))
    assert text.startswith("Some regions look manipulated") and "integrity score 0.5000001." in text, text
    assert plain_reading(synth(np.zeros((64, 64), np.float32), square(0.9, 0.8), 0.5)).startswith("No evidence")
    # a float64 score that float32 (the evaluation's reading) rounds to 0.5 is not "moderate" either
    assert plain_reading(synth(square(0.9), square(0.9, 0.8), 0.5 + 1e-12)).startswith("Weak evidence")
    # map values of exactly 0.5 are not forged at 0.5 for the evaluation, nor flagged here
    on_cut = synth(square(0.5), square(0.9, 0.8), 0.2)
    assert map_stats(on_cut).flagged_fraction == 0.0
    assert dict(numbers_rows(on_cut))["area flagged (map > 0.5)"] == "0.0%"


def test_a_large_image_flagging_just_under_the_cut_is_not_shown_at_it():
    """11,249 of 2.25 million pixels (0.499956 %) showed as "0.5000%" beside "too little to
    single out a region": four decimals were the most the share got."""
    m = np.zeros((1500, 1500), np.float32)
    m.flat[:11249] = 0.9
    text = plain_reading(synth(m, np.ones((1500, 1500), np.float32), 0.2))
    assert "only 0.49996% of the image" in text and "too little to single out a region" in text, text


@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_a_score_that_is_not_a_number_gets_no_reading(score):
    """A NaN score read "the integrity score is high" (NaN < 0.5 is False)."""
    with pytest.raises(
        ValueError, match=r"^synthetic\.png: its score is (nan|inf), not a number in 0\.\.1: no reading$"
    ):
        plain_reading(synth(square(0.95), square(0.9, 0.8), score))


@pytest.mark.parametrize("kind", ["official", "demo"])
def test_a_few_flagged_pixels_are_not_called_no_region(kind):
    """40 of 10,000 pixels flagged (0.4 %, under the 0.5 % that singles out a region): the
    reading said "flags no region" beside a table row "area flagged: 0.4%"."""
    info = None if kind == "official" else WeightsInfo("demo", "model.pt", "cd" * 32, False)
    weights = {} if info is None else {"weights": info}
    m = np.zeros((100, 100), np.float32)
    m.flat[:40] = 0.9
    r = synth(m, np.ones((100, 100), np.float32), 0.2, **weights)
    text = plain_reading(r)
    assert "no region" not in text and "only 0.4% of the image" in text and "too little to single out a region" in text
    assert dict(numbers_rows(r))["area flagged (map > 0.5)"] == "0.4%"
    m.flat[:49] = 0.9  # 0.49 %: shown so, not rounded up to the 0.5 % cut beside "too little"
    assert "only 0.49% of the image" in plain_reading(synth(m, np.ones((100, 100), np.float32), 0.2, **weights))
    nothing = plain_reading(synth(np.zeros((100, 100), np.float32), np.ones((100, 100), np.float32), 0.2, **weights))
    assert "no region" in nothing


def test_report_refuses_an_image_too_small_for_the_network_before_loading_it(tmp_path, monkeypatch, capsys):
    """A 5000x1 strip (or --compare with one) was refused only after the model had loaded."""

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trufor_lab.cli.report.load", no_load)
    strip = tmp_path / "strip.png"
    Image.fromarray(np.zeros((1, 5000, 3), np.uint8)).save(strip)
    ok = tmp_path / "ok.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(ok)
    for argv in ([str(strip)], [str(ok), "--compare", str(strip)]):
        assert main(["report", *argv, "-o", str(tmp_path / "r.html"), "-q"]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "strip.png: image is 5000x1; TruFor needs at least 29 pixels on each side" in line, line
    assert not (tmp_path / "r.html").exists()


def test_the_pdf_says_what_the_html_comparison_section_says(array_result):
    """The PDF left out B's reading, the difference numbers and the 'not reported' row of a
    comparison: only the figure had them, B's score without 'this model's output'."""
    from trufor_lab.casebook.compare import compare
    from trufor_lab.casebook.report import comparison_rows, pdf_text, plain_reading

    a = array_result(40, 48, name="viral.png")
    b = dataclasses.replace(array_result(40, 48, name="earlier.jpg"), map=np.zeros((40, 48), np.float32), score=0.1)
    comp = compare(a, b)
    text = "\n".join(pdf_text(a, None, comp))
    assert "Comparison with another version" in text
    for k, v in comparison_rows(comp):
        assert f"{k}: {v}" in text, (k, v)
    assert " ".join(("B: " + plain_reading(b)).split()) in " ".join(text.split())
    # the figure: B's score is this model's (no weights given), NaN map pixels visible, not blank
    nan_map = a.map.copy()
    nan_map[:8] = np.nan
    fig = compare(dataclasses.replace(a, map=nan_map), b).plot()
    titles = {ax.get_title(): ax for ax in fig.axes}
    assert "A: localization map, this model's score 0.40" in titles
    bad = [im for im in titles["A: localization map, this model's score 0.40"].images[1:]]
    assert bad and bad[0].get_cmap()(1.0)[:3] == (1.0, 0.0, 1.0)  # magenta over the NaN pixels


def test_cli_report_keeps_an_unrelated_html_beside_the_pdf_and_takes_a_folder_ending_in_a_slash(
    tmp_path, images, monkeypatch, capsys
):
    """`report post.jpg -o post.pdf` replaced someone's saved `post.html` (the HTML goes beside
    the PDF) without a word; `-o newdir/` wrote the report as a file named `newdir`."""
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    saved = tmp_path / "post.html"
    saved.write_text("<html>my saved post</html>")
    rc = main(["report", str(images[1]), "-o", str(tmp_path / "post.pdf"), "-q", "--no-demo"])
    assert rc == 1 and saved.read_text() == "<html>my saved post</html>"
    assert "post.html: exists and is not a report written here" in capsys.readouterr().err
    assert not (tmp_path / "post.pdf").exists()
    rc = main(["report", str(images[1]), "-o", str(tmp_path / "newdir") + os.sep, "-q", "--no-demo"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "newdir" / "report.html").read_bytes().startswith(b"<!DOCTYPE html>")
    # a report of ours beside the PDF is replaced, as before
    assert main(["report", str(images[1]), "-o", str(tmp_path / "again.pdf"), "-q", "--no-demo"]) == 0
    assert main(["report", str(images[1]), "-o", str(tmp_path / "again.pdf"), "-q", "--no-demo"]) == 0


def test_every_pdf_line_fits_the_page_whatever_the_file_name(array_result):
    """A 244-character file name ran off the page in the title and the comparison rows."""
    from trufor_lab.casebook.compare import compare
    from trufor_lab.casebook.report import pdf_text

    long = "viral_" + "x" * 230 + ".png"
    a = array_result(40, 48, name=long)
    lines = pdf_text(a, None, compare(a, array_result(40, 48, name="b_" + "y" * 200 + ".jpg")))
    assert max(len(ln) for ln in lines) <= 100
    joined = "".join(ln.strip() for ln in lines)
    assert long in joined  # cut into lines, never cut off


def test_a_comparison_out_of_memory_leaves_the_report_of_both_analyses(tmp_path, images, monkeypatch, capsys):
    """compare() needs ~127 bytes a pixel: its MemoryError was 'A.png: analysis failed' and no
    report, both analyses done. Now the report goes out without the comparison, with a note."""

    def no_memory(*a, **k):
        raise MemoryError("Unable to allocate 12.0 GiB")

    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    monkeypatch.setattr("trufor_lab.cli.report.compare", no_memory)
    out = tmp_path / "r.html"
    assert main(["report", str(images[0]), "--compare", str(images[1]), "-o", str(out), "-q", "--no-demo"]) == 0
    assert "not enough memory to compare the two versions" in capsys.readouterr().err
    assert "Comparison with another version" not in out.read_text(encoding="utf-8")


def test_capped_metadata_keeps_every_problem_row():
    """The cap kept the first 200 rows and the problems come last: a PNG with 200 text chunks and
    a damaged EXIF chunk had its problems in the provenance but not in the report or the PDF."""
    import dataclasses as dc

    from trufor_lab.casebook.report import MAX_METADATA_ROWS, provenance_rows
    from trufor_lab.forensics.provenance import Provenance

    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, "PNG")
    base = read_provenance(buf.getvalue())
    many = dc.replace(base, png_text={f"k{i}": "v" for i in range(400)}, problems=["EXIF: Corrupt EXIF data", "x"])
    assert isinstance(many, Provenance)
    rows = provenance_rows(many)
    assert [r for r in rows if r[0] == "Problems"] == [
        ("Problems", "problem", "EXIF: Corrupt EXIF data"),
        ("Problems", "problem", "x"),
    ]
    assert len(rows) <= MAX_METADATA_ROWS + 1 and any(r[1].endswith("more rows") for r in rows)


def test_the_report_names_a_classic_detectors_raw_output(tmp_path, tampered2):
    """A classic detector's raw output was titled and captioned 'Noiseprint++' in the report."""
    from trufor_lab.casebook.report import noiseprint_section_html
    from trufor_lab.lab.classic import detect

    Image.fromarray(tampered2[:128, :128]).save(tmp_path / "x.png")
    r = detect(str(tmp_path / "x.png"), "noise")
    shown = r.captures["shown"]
    assert shown != "Noiseprint++"
    html = noiseprint_section_html(r, dpi=40)
    assert f"{shown} map, local variance" in html and "Noiseprint++ map, local" not in html


def test_cli_report_decodes_each_picture_once_and_analyses_what_it_read(tmp_path, images, monkeypatch, capsys):
    """The report read both pictures to refuse a bad one before the model loads, then decoded each
    again to analyse it (a 12 MP photo: a fraction of a second each): the analysis takes the
    pictures read first, and gives what it gives from the files."""
    import trufor_lab.inference.preprocess as P
    from trufor_lab.inference.load import load
    from trufor_lab.inference.preprocess import load_image

    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    decodes, decode = [], P._from_file
    monkeypatch.setattr(P, "_from_file", lambda *a, **k: decodes.append(a[1]) or decode(*a, **k))
    out = tmp_path / "r.html"
    argv = ["report", str(images[0]), "--compare", str(images[1]), "-o", str(out), "-q", "--no-demo"]
    assert main([*argv, "--device", "cpu"]) == 0, capsys.readouterr().err
    assert decodes == [str(images[0]), str(images[1])]
    model = load(device="cpu", demo=False)
    for p in images:
        once, twice = analyze(model, load_image(p), name="x"), analyze(model, p, name="x")
        np.testing.assert_array_equal(once.noiseprint, twice.noiseprint)
        assert (once.name, once.notes, once.exif_orientation) == (twice.name, twice.notes, twice.exif_orientation)
