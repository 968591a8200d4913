"""The casebook's "Classic filters" tab (ELA, noise level, JPEG ghosts, double-JPEG map)."""

from __future__ import annotations

import io
from html import escape as e

import numpy as np
import pytest
from PIL import Image

from trufor_lab.casebook.casebook import CLASSIC_TAB, Casebook
from trufor_lab.casebook.classic_tab import FILTERS, classic_filters, classic_section_html
from trufor_lab.lab import forgeries as F


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    """The best installed model (the demo TruFor in a checkout): the tab is shown next to its answer."""
    from trufor_lab.inference.load import load

    return load(device="cpu")


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return F.demo_images(128)["chelsea"]


def test_filters_keep_the_jpeg_tables_and_say_when_not_applicable(picture):
    jpeg = classic_filters(encode(picture, "JPEG", quality=80))
    png = classic_filters(encode(picture, "PNG"))
    assert list(jpeg) == [f[0] for f in FILTERS] == ["ela", "noise", "jpeg_ghost", "dq_aligned"]
    # a JPEG saved once has its tables (so no "needs a JPEG") but no double quantization to show
    assert "needs a JPEG" not in jpeg["dq_aligned"].notice and "no double-quantization" in jpeg["dq_aligned"].notice
    assert not png["dq_aligned"].captures["applicable"]
    html = classic_section_html(png)
    assert "Not applicable here" in html and "needs a JPEG" in html
    assert html.count("<h4") == 4 and "Misleads when" in html and "data:image/png;base64," in html


def test_casebook_shows_classic_filters_next_to_trufor(model, picture):
    cb = Casebook(model)
    cb.analyze_bytes(encode(picture, "JPEG", quality=85), "viral.jpg")
    if cb.tabs is not None:
        titles = [cb.tabs.get_title(i) for i in range(len(cb.tabs.children))]
        assert titles[:2] == ["Result", CLASSIC_TAB] and len(titles) == 5
        assert "Error level analysis" in cb.classic_html.value and "TruFor" in cb.classic_html.value
    assert sorted(cb.classic) == sorted(f[0] for f in FILTERS)
    assert CLASSIC_TAB in cb.static_html()
    assert CLASSIC_TAB not in Casebook(model, classic=False).static_html()


def test_an_upload_is_called_by_its_name_everywhere(model, picture):
    """An upload was "<bytes>" in the classic tab's notes (static_html, the app) and in the
    too-small error the API raised; only the widget's status line said its name."""
    from trufor_lab.inference.preprocess import ImageError

    cb = Casebook(model)
    cb.analyze_bytes(encode(np.ascontiguousarray(picture[:30, :40]), "JPEG", quality=85), "holiday.jpg")
    assert "holiday.jpg is 40x30" in cb.classic["dq_aligned"].notice
    assert "&lt;bytes&gt;" not in cb.static_html() and "<bytes>" not in cb.static_html()
    with pytest.raises(ImageError, match=r"^tiny\.png: image is 2x2; TruFor needs at least"):
        cb.analyze_bytes(encode(np.zeros((2, 2, 3), np.uint8), "PNG"), "tiny.png")


def _decoded(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_tab_says_which_way_round_its_maps_are(shared_dir):
    """The tab said JPEG ghosts show up dark and the double-JPEG map gives the probability of a
    *double* compression: both maps are the other way round (bright ghost; bright = the block
    compressed only once, the pasted part). Checked on forgeries of a real photo."""
    with Image.open(shared_dir / "images" / "pristine2.jpg") as im:
        src = np.asarray(im.convert("RGB"))[600:984, 600:984].copy()
    text = {name: (what, limits) for name, _, what, limits in FILTERS}
    # a ghost: one region first saved at quality 60, the whole then saved at 90
    ghost = src.copy()
    ghost[128:256, 128:256] = _decoded(encode(src, "JPEG", quality=60))[128:256, 128:256]
    m = classic_filters(encode(ghost, "JPEG", quality=90), ("jpeg_ghost",))["jpeg_ghost"].map
    assert m[144:240, 144:240].mean() > m[:, 300:].mean() + 0.2
    assert "bright" in text["jpeg_ghost"][0] and "dark" not in text["jpeg_ghost"][0]
    # double JPEG: the photo saved at 60, an uncompressed region pasted in, saved again at 90
    pasted = _decoded(encode(src, "JPEG", quality=60))
    pasted[128:256, 128:256] = src[128:256, 128:256]
    d = classic_filters(encode(pasted, "JPEG", quality=90), ("dq_aligned",))["dq_aligned"].map
    assert d[144:240, 144:240].mean() > d[:, 300:].mean() + 0.2
    assert "compressed only once" in text["dq_aligned"][0] and "bright = single" in text["dq_aligned"][0]
    # camera originals (a Fujifilm FinePix REAL 3D W3, a Konica Minolta DiMAGE Z5: custom tables,
    # firmware as Software, EXIF size and dates as written) show a double-quantization effect
    # (z 12.1 and 8.9, cutoff 8) and a map that follows texture: the caveat says so
    assert "Untouched files of some cameras" in text["dq_aligned"][1], text["dq_aligned"][1]


def test_a_failed_filter_still_displays(picture):
    """A filter that fails (noise level on an 8x8 image) gave a Result without an image, whose
    summary, plot and HTML crashed; it now holds the image and empty maps, and says why."""
    tiny = encode(picture[:8, :8], "JPEG", quality=90)
    out = classic_filters(tiny)
    bad = [r for r in out.values() if not r.captures.get("applicable", True)]
    assert bad and all(r.image is not None and r.image.shape == (8, 8, 3) for r in bad)
    for r in bad:
        assert r.notice and r.summary() and "<img" in r._repr_html_()
    assert "Not applicable here" in classic_section_html(out)


def test_the_tab_words_the_demo_model_as_this_model_not_as_trufor_evidence(model, picture):
    """With the demo weights the tab titled the map "TruFor (score ..)" and captioned it
    "red = likely manipulated", which only the official checkpoint's numbers mean."""
    import dataclasses

    from trufor_lab.inference.weights import WeightsInfo

    cb = Casebook(model)
    r = cb.analyze_bytes(encode(picture, "JPEG", quality=85), "viral.jpg")
    assert r.weights.kind == "demo"
    demo_html = classic_section_html(cb.classic, r)
    assert "likely manipulated" not in demo_html and "flagged by it" in demo_html
    assert "not the official TruFor" in demo_html
    official = dataclasses.replace(r, weights=WeightsInfo("official", "trufor.pth.tar", "0" * 64, True))
    assert "TruFor: red = likely manipulated" in classic_section_html(cb.classic, official)
    # an unverified file may be the official one: never said not to be (it was "not the official TruFor")
    unverified = dataclasses.replace(r, weights=WeightsInfo("custom", "trufor.pth.tar", "0" * 64, False))
    html = classic_section_html(cb.classic, unverified)
    assert "not verified as the official TruFor" in html and "not the official TruFor" not in html
    untrained = dataclasses.replace(r, weights=WeightsInfo("untrained", "(random)", "0" * 64, False))
    html = classic_section_html(cb.classic, untrained)
    assert "not the official TruFor" in html and "not verified as" not in html


def test_filters_too_large_for_free_memory_are_skipped_with_a_note(picture, monkeypatch):
    """About 0.5 GiB per megapixel and no cap: a 48 MP photo would have needed ~25 GiB."""
    import trufor_lab.casebook.classic_tab as tab

    monkeypatch.setattr(tab, "free_memory_bytes", lambda device: 2 * picture.shape[0] * picture.shape[1] * 100)
    out = classic_filters(encode(picture, "JPEG", quality=90))
    assert sorted(out) == sorted(f[0] for f in FILTERS)
    for r in out.values():
        assert not r.captures["applicable"] and r.notice.startswith("skipped: a 0 MP picture needs about")
    assert classic_section_html(out).count("Not applicable here: skipped") == len(FILTERS)


def test_a_filter_out_of_memory_does_not_lose_the_others(picture, monkeypatch):
    import trufor_lab.casebook.classic_tab as tab

    real = tab.detect

    def detect(src, name):
        if name == "noise":
            raise MemoryError("cannot allocate")
        return real(src, name)

    monkeypatch.setattr(tab, "detect", detect)
    out = classic_filters(encode(picture, "JPEG", quality=90))
    assert out["noise"].notice == "noise failed: cannot allocate"
    assert out["ela"].captures.get("applicable", True) and out["ela"].map.any()


def test_the_tab_shows_each_filters_own_notes():
    """The tab showed only a not-applicable notice, never what a filter said about the picture
    (a mostly flat picture for the noise map, ELA's fallback quality, an empty map)."""
    x = np.full((256, 256, 3), 200, np.uint8)  # a flat graphic with one noisy patch
    x[96:160, 96:160] = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = classic_filters(encode(x, "PNG"), ("noise",))
    said = [n for n in out["noise"].notes if n.startswith("noise:")]
    assert said and any("tiles are flat" in n for n in said)
    html = classic_section_html(out)
    assert all(e(n) in html for n in said)


def test_the_tab_says_once_when_the_jpeg_tables_are_custom(tmp_path):
    """Phone photos use their own tables: 'its own quality' is then only the nearest IJG one. The
    source said so in every filter's notes, but the tab showed only notes starting with a filter's
    name, so the caveat never reached the page; it is shown once, without the file's folders."""
    x = np.asarray(Image.open(io.BytesIO(encode(np.full((128, 128, 3), 90, np.uint8), "PNG"))))
    x = x.copy()
    x[32:96, 32:96] = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / "secret_folder" / "phone.jpg"
    path.parent.mkdir()
    Image.fromarray(x).save(path, qtables=[[2 + (i * 7) % 11 for i in range(64)]] * 2)
    html = classic_section_html(classic_filters(path))
    assert html.count("the file uses custom tables") == 1
    assert "phone.jpg: JPEG quality" in html and "secret_folder" not in html
    png = path.with_suffix(".png")
    Image.fromarray(x).save(png)  # not-applicable notices named the full path too
    html = classic_section_html(classic_filters(png))
    assert "Not applicable here" in html and "phone.png" in html and "secret_folder" not in html


def test_the_ela_text_says_which_quality_it_falls_back_to():
    """The tab said ELA re-saves at 95 when the file's own quality gives back the same pixels;
    for a file at 95 or more it re-saves at 85."""
    x = np.full((64, 64), 128, np.uint8)
    x[16:48, 16:48] = 40
    once = np.asarray(Image.open(io.BytesIO(encode(x, "JPEG", quality=95))).convert("RGB"))
    r = classic_filters(encode(once, "JPEG", quality=95), ("ela",))["ela"]
    assert r.captures["quality"] == 85
    assert "85 for a file saved at 95" in FILTERS[0][2]


def test_an_upload_is_decoded_once_and_its_figures_drawn_once(model, picture, monkeypatch, tmp_path):
    """The casebook decoded an upload three times (a check before the model loads, the analysis,
    the filters) and drew its figures twice (the tabs, then the web app's report link): at 12 MP
    each decode takes a fraction of a second and each drawing seconds. What the tabs, the filters
    and the report show is what separate reads and drawings give."""
    import re

    import trufor_lab.casebook.report as R
    import trufor_lab.casebook.classic_tab as C
    import trufor_lab.inference.preprocess as P
    from trufor_lab.casebook.app import report_link_html
    from trufor_lab.casebook.report import build_report

    decodes, drawn = [], []
    decode, plot_np, to_png = P._from_file, R.plot_noiseprint, C.fig_to_data_uri
    monkeypatch.setattr(P, "_from_file", lambda *a, **k: decodes.append(1) or decode(*a, **k))
    monkeypatch.setattr(R, "plot_noiseprint", lambda *a, **k: drawn.append("noiseprint") or plot_np(*a, **k))
    monkeypatch.setattr(C, "fig_to_data_uri", lambda *a, **k: drawn.append("classic") or to_png(*a, **k))
    cb = Casebook(model)
    links = []
    cb.listeners.append(lambda c: links.append(report_link_html(c)))
    data = encode(picture, "JPEG", quality=85)
    cb.analyze_bytes(data, "viral.jpg")
    static = cb.static_html()
    saved = cb.save_report(tmp_path / "case.html").read_text(encoding="utf-8")
    path = tmp_path / "viral.jpg"
    path.write_bytes(data)
    cb.analyze_path(path)
    assert len(decodes) == 2, "one decode per analysed image"
    assert drawn == ["noiseprint", "classic", "noiseprint", "classic"], "figures drawn once per image"
    assert len(links) == 2 and "casebook-report" in links[0]

    monkeypatch.setattr(P, "_from_file", decode)
    cb.analyze_bytes(data, "viral.jpg")
    fresh = classic_filters(data, name="viral.jpg")  # read on their own, as before
    assert sorted(fresh) == sorted(cb.classic)
    for k, r in fresh.items():
        s = cb.classic[k]
        assert s.name == r.name and s.notes == r.notes and s.notice == r.notice and s.score == r.score
        np.testing.assert_array_equal(s.map, r.map)
        np.testing.assert_array_equal(s.image, r.image)
    assert classic_section_html(cb.classic, cb.result) in static
    when = re.compile(r"Generated [^<]*? by")  # the minute it was made
    same = build_report(cb.result, cb.provenance)
    assert when.sub("", saved) == when.sub("", same)


def test_the_tab_draws_a_large_map_at_screen_size(monkeypatch):
    """The tab drew five 12 MP maps at full size for panels a few hundred pixels wide (about a
    second each): each is averaged over blocks to <= 2048 pixels a side."""
    import trufor_lab.casebook.classic_tab as C
    from trufor_lab.inference.result import Result

    figs = []
    monkeypatch.setattr(C, "fig_to_data_uri", lambda fig, dpi=100: figs.append(fig) or "data:image/png;base64,")
    m = np.random.default_rng(0).random((64, 4100)).astype(np.float32)
    r = Result(image=np.zeros((64, 4100, 3), np.uint8), noiseprint=m, map=m, label="classic:ela", name="x.png")
    classic_section_html({"ela": r})
    (panel,) = [im for ax in figs[0].axes for im in ax.images]
    h, w = 22, 1367  # blocks of 3, the last ones partial
    padded = np.full((3 * h, 3 * w), np.nan)
    padded[:64, :4100] = m
    np.testing.assert_allclose(panel.get_array(), np.nanmean(padded.reshape(h, 3, w, 3), axis=(1, 3)), rtol=1e-6)
    assert panel.get_clim() == (0, 1)
