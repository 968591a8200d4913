"""The casebook widget driven from code, provenance integration, and two-version comparison."""

from __future__ import annotations

import io
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import ExifTags, Image, PngImagePlugin, features

from trufor_lab.casebook.casebook import Casebook, Comparison, compare, estimate_translation
from trufor_lab.inference.preprocess import ImageError


@pytest.fixture(scope="module")
def np_model(shared_dir):
    """Noiseprint++ alone (what load() gives without a TruFor checkpoint): fast."""
    from trufor_lab.inference.load import load_noiseprint

    return load_noiseprint(shared_dir / "weights" / "noiseprint++.th", device="cpu")


@pytest.fixture()
def picture(tampered2) -> np.ndarray:
    return tampered2[40:136, 60:156].copy()


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def camera_exif() -> Image.Exif:
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Canon"
    ex[ExifTags.Base.Model] = "Canon EOS 5D"
    ex[ExifTags.Base.Software] = "Adobe Photoshop 25.0"
    ex[ExifTags.Base.DateTime] = "2024:05:02 18:00:00"
    ex.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:01 09:30:00"
    return ex


def upload_entry(name: str, data: bytes) -> dict:
    return {
        "name": name,
        "type": "image/*",
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(timezone.utc),
    }


# --------------------------------------------------------------------------- provenance integration


def _png_with_text(arr: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "GIMP 2.10")
    return encode(arr, "PNG", pnginfo=info)


CASES = {
    "exif.jpg": (lambda a: encode(a, "JPEG", quality=90, exif=camera_exif()), "JPEG", True),
    "plain.jpg": (lambda a: encode(a, "JPEG", quality=75), "JPEG", False),
    "shot.png": (_png_with_text, "PNG", False),
    "post.webp": (lambda a: encode(a, "WEBP", quality=80), "WEBP", False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_provenance_integration(name, np_model, picture):
    make, fmt, has_exif = CASES[name]
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    cb = Casebook(np_model)
    r = cb.analyze_bytes(make(picture), name)
    p = cb.provenance
    assert r is cb.result and r.map is None and r.name == name
    assert p.name == name and p.format == fmt and p.size == (96, 96) and p.exif_present is has_exif
    result_tab, np_tab, prov_tab, _ = (h.value for h in cb.tab_html)
    assert "needs the official TruFor checkpoint" in result_tab and "data:image/png;base64," in result_tab
    assert "Noiseprint++" in np_tab and "data:image/png;base64," in np_tab
    assert name in prov_tab and fmt in prov_tab
    if has_exif:
        assert p.make == "Canon" and "Canon EOS 5D" in prov_tab and "Adobe Photoshop" in prov_tab
        assert any("photoshop" in (s.observation + s.meaning).lower() for s in p.signs)
    if name == "plain.jpg":
        assert p.jpeg_quality.quality == 75 and "estimated quality" in prov_tab
    if fmt == "PNG":
        assert p.png_text.get("Software") == "GIMP 2.10" and "GIMP 2.10" in prov_tab


# --------------------------------------------------------------------------- the widget


@pytest.mark.slow
def test_widget_upload_fills_tabs(recipe_model, picture, tmp_path):
    cb = Casebook(recipe_model)
    picture = picture[:64, :64]  # TruFor on 2 CPU cores: keep it small
    data = encode(picture, "JPEG", quality=92, exif=camera_exif())
    cb.upload.value = (upload_entry("viral <1>.jpg", data),)  # what the browser does
    assert cb.error is None
    r = cb.result
    assert r is not None and r.map is not None and r.map.shape == (64, 64) and 0 <= r.score <= 1
    assert cb.progress.value == cb.progress.max
    assert cb.tabs.get_title(0) == "Result" and len(cb.tabs.children) == 5  # Classic filters is the 2nd
    result_tab = cb.tab_html[0].value
    assert "Reading:" in result_tab and "integrity score" in result_tab
    assert "viral &lt;1&gt;.jpg" in result_tab and "viral <1>" not in result_tab
    assert "Canon" in cb.tab_html[2].value
    bundle = cb._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "data:image/png" in bundle["text/html"]

    out = cb.save_report(tmp_path / "case.html")
    assert "Reading:" in out.read_text(encoding="utf-8")


def test_widget_path_and_bad_input(np_model, picture, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(picture).save(good)
    cb = Casebook(np_model)
    cb.path_text.value = str(good)
    cb._on_path()  # the button's handler
    assert cb.error is None and cb.result.name == "good.png"
    before = cb.result

    # compare with the "earlier post" (a smaller copy) from the Compare tab
    earlier = tmp_path / "earlier.jpg"
    Image.fromarray(picture).resize((48, 48)).save(earlier, quality=90)
    cb.compare_text.value = str(earlier)
    cb._on_compare()
    cmp = cb.comparison
    assert cb.error is None and cmp is not None and cmp.result_b.name == "earlier.jpg"
    assert any("resized from 48×48" in n for n in cmp.notes)
    assert "earlier.jpg" in cb.tab_html[3].value and "data:image/png" in cb.tab_html[3].value
    doc = cb.save_report(tmp_path / "case.html").read_text(encoding="utf-8")
    assert "Comparison with another version" in doc and "<script" not in doc.lower()

    cb.upload.value = (upload_entry("broken.jpg", b"\xff\xd8 not really a jpeg"),)
    assert cb.result is before  # nothing replaced, no exception escaped the handler
    assert "broken.jpg" in cb.error and "error" in cb.status.value and cb.progress.value == 0
    with pytest.raises(ImageError, match="missing.png"):
        cb.analyze_path(tmp_path / "missing.png")


def test_static_fallback_without_ipywidgets(np_model, picture, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    cb = Casebook(np_model)
    assert cb.tabs is None and cb.widget is None
    assert "no image analyzed yet" in cb._repr_html_()
    cb.analyze_bytes(encode(picture, "PNG"), "x.png")
    bundle = cb._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert "data:image/png;base64," in bundle["text/html"] and "Provenance" in bundle["text/html"]
    assert cb.save_report(tmp_path / "r.html").is_file()


def test_save_report_needs_a_result(np_model, tmp_path):
    with pytest.raises(RuntimeError, match="analyze"):
        Casebook(np_model).save_report(tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- comparison


def test_estimate_translation_recovers_shift(tampered2):
    a = tampered2[50:146, 50:146]
    b = tampered2[53:149, 55:151]  # B's frame starts 3 px lower and 5 px further right
    (dy, dx), peak = estimate_translation(a, b)
    assert (dy, dx) == (3, 5) and peak > 0.3
    c = compare(a, b)
    assert c.shift == (3, 5) and any("translated" in n for n in c.notes)
    ok = np.isfinite(c.diff)
    assert not ok[:3].any() and not ok[:, :5].any() and ok[3:, 5:].all()
    assert c.mean_diff < 1e-6 and c.changed_fraction == 0.0


def test_compare_resize_crop_and_unrelated(tampered2):
    a = tampered2[0:96, 0:96]
    small = np.asarray(Image.fromarray(a).resize((64, 64), Image.BICUBIC))
    c = compare(a, small)
    assert c.b_aligned.shape == a.shape and any("resized from 64×64" in n for n in c.notes)
    assert c.mean_diff < 0.05
    wide = np.asarray(Image.fromarray(tampered2[0:96, 0:128]).resize((100, 75), Image.BICUBIC))  # 4:3, rescaled
    c = compare(a, wide)
    assert c.b_aligned.shape == a.shape and any("centre-cropped" in n for n in c.notes)
    noise = np.random.default_rng(0).integers(0, 256, a.shape, dtype=np.uint8)
    c = compare(a, noise)
    assert c.shift == (0, 0) and not c.reliable and "no reliable alignment" in c.summary()
    assert "pixels differ" not in c.summary()


def test_compare_places_a_same_scale_crop_and_turns_a_turned_copy(tampered2):
    """A viral copy cropped by 20 px left and 10 px top was centre-cropped and stretched to A's
    size ("30.4% of pixels differ"), and a copy stored turned by 90 degrees without an EXIF tag
    read "72.7% of pixels differ": neither was a change of the picture."""
    a = np.ascontiguousarray(tampered2[20:212, :])  # 256x192
    crop = np.ascontiguousarray(a[10:, 20:])
    c = compare(a, crop)
    assert c.reliable and c.shift == (10, 20) and c.mean_diff < 1e-6 and c.changed_fraction == 0
    assert np.isfinite(c.diff).sum() == crop.shape[0] * crop.shape[1]
    assert any("same-scale crop of A" in n for n in c.notes)
    c = compare(crop, a)  # the other way round: A is the crop
    assert c.reliable and c.mean_diff < 1e-6 and any("A is a same-scale crop of B" in n for n in c.notes)
    turned = np.ascontiguousarray(np.rot90(a))
    c = compare(a, turned)
    assert c.reliable and c.mean_diff < 1e-6 and any("B turned by 90°" in n for n in c.notes)
    # B's maps turn with it (the panels below line up with B's), and no turn when no alignment is asked
    from trufor_lab.inference.result import Result

    ramp = np.tile(np.linspace(0, 1, a.shape[1], dtype=np.float32), (a.shape[0], 1))
    ra = Result(image=a, noiseprint=ramp, map=ramp, conf=ramp, score=0.1, name="a")
    rb = Result(
        image=turned,
        noiseprint=np.rot90(ramp).copy(),
        map=np.rot90(ramp).copy(),
        conf=np.rot90(ramp).copy(),
        score=0.1,
        name="b",
    )
    c = compare(ra, rb)
    assert np.array_equal(c.result_b.map, ramp) and c.result_b.image.shape == a.shape
    assert compare(a, turned, estimate_shift=False).b_aligned.shape == a.shape
    assert not any("turned" in n for n in compare(a, turned, estimate_shift=False).notes)
    edited = a.copy()
    edited[50:100, 100:180] = 255 - edited[50:100, 100:180]  # a real change is still one
    c = compare(a, np.ascontiguousarray(edited[10:, 20:]))
    assert c.reliable and 0.05 < c.changed_fraction < 0.15


def test_compare_does_not_move_small_pictures_on_a_chance_peak(shared_dir):
    """A fixed peak bar (0.08) let chance peaks through below ~64 px: unrelated crops were
    'translated' most of the time, and an edited copy (nothing moved) was shifted by a few
    pixels, which marked the wrong pixels as changed."""
    photos = [
        np.asarray(Image.open(shared_dir / "images" / n).convert("RGB")) for n in ("pristine1.jpg", "pristine2.jpg")
    ]
    rng = np.random.default_rng(0)
    for n in (16, 32, 48):
        for _ in range(12):
            src, other = photos[rng.integers(0, 2)], photos[rng.integers(0, 2)]
            y, x = rng.integers(0, src.shape[0] - n), rng.integers(0, src.shape[1] - n)
            a = np.ascontiguousarray(src[y : y + n, x : x + n])
            y2, x2 = rng.integers(0, other.shape[0] - n), rng.integers(0, other.shape[1] - n)
            unrelated = compare(a, np.ascontiguousarray(other[y2 : y2 + n, x2 : x2 + n]))
            edited = a.copy()
            p = n // 4
            edited[p : 2 * p, p : 2 * p] = other[y2 : y2 + p, x2 : x2 + p]
            assert unrelated.shift == (0, 0) and compare(a, edited).shift == (0, 0), n
    a = photos[1][100:148, 200:248]
    b = photos[1][102:150, 203:251]  # a real move is still found at 48 px
    assert compare(a, b).shift == (2, 3)


def test_the_chance_level_is_what_unrelated_pictures_reach(shared_dir):
    """The note quoted a 'chance level' that was the bar divided by a factor the bar did not
    use (0.08 where chance reached 0.03)."""
    from trufor_lab.casebook.align import CHANCE_MARGIN, _correlation, chance_level, shift_threshold

    rng = np.random.default_rng(3)
    for n in (32, 128):
        a, b = (rng.integers(0, 256, (n, n, 3), dtype=np.uint8) for _ in range(2))
        r = _correlation(a, b)
        level = chance_level(r)
        assert 0.6 < np.abs(r).max() / level < 1.6, n  # the noise's own maximum, near the estimate
        assert shift_threshold(r) == max(0.08, CHANCE_MARGIN * level)
        note = compare(a, b).notes[-1]
        assert f"needs {shift_threshold(r):.2f}: chance reaches {level:.2f} at this size" in note, note


def test_compare_says_when_b_cannot_be_cropped_to_a_shape(tampered2):
    """A 4000x9 strip against an 8x8 picture: B could only be cut to one row (aspect 8, not
    444), yet the note said it had been cropped to A's aspect ratio."""
    a = np.zeros((9, 400, 3), np.uint8)
    c = compare(a, tampered2[:8, :8])
    assert any("more than cropping B can fix" in n for n in c.notes) and not any("to A's aspect" in n for n in c.notes)
    assert c.b_aligned.shape == a.shape


def test_compare_plots_results_without_a_score(shared_dir):
    """A classic detector's Result (no global score) raised a raw TypeError in Comparison.plot."""
    import matplotlib.pyplot as plt

    from trufor_lab.lab.classic import detect

    r = detect(shared_dir / "images" / "pristine1.jpg", "ela")
    fig = compare(r, r).plot()
    assert any("no global score" in ax.get_title() for ax in fig.axes)
    plt.close(fig)


def test_compare_with_model_and_plot(np_model, tampered2):
    import matplotlib.pyplot as plt

    a = tampered2[0:96, 0:96]
    b = tampered2[2:98, 0:96]
    c = compare(a, b, np_model, names=("earlier.jpg", "viral.jpg"))
    assert isinstance(c, Comparison) and c.result_a.noiseprint.shape == (96, 96)
    assert c.result_b.name == "viral.jpg" and "earlier.jpg vs viral.jpg" in c.summary()
    fig = c.plot()
    assert len(fig.axes) >= 6
    plt.close(fig)
    assert "data:image/png;base64," in c._repr_html_()


def test_casebook_app_is_this_users_only_and_leaves_nothing_behind(tmp_path):
    """The web app: without the printed token no page (and no kernel), a foreign Host header
    (DNS rebinding) refused; a plain ``kill`` stops the server and removes its files, as Ctrl-C
    does (before: no token at all, and SIGTERM orphaned Voila and its kernels)."""
    import http.client
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("voila")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "trufor_lab.cli", "casebook", f"--port={port}", "--no-browser", "-q", "--device=cpu"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/?token=" in line, line
        token = line.split("token=")[1].split()[0]
        assert len(token) >= 24 and list(tmpdir.glob("trufor_casebook_*"))

        def status(path: str, host: str = f"127.0.0.1:{port}") -> int:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", path, headers={"Host": host})
            return c.getresponse().status

        assert status("/") in (302, 403)  # to the login page: no notebook, no kernel
        assert status(f"/?token={token}", host=f"evil.example:{port}") == 403
        assert status("/voila/files/voila.json") in (302, 403, 404)
        # no file of the app's folder is served, even with the token (Voila serves images by default)
        (folder,) = tmpdir.glob("trufor_casebook_*")
        Image.new("RGB", (8, 8)).save(folder / "x.png")
        assert status(f"/voila/files/x.png?token={token}") == 403
    finally:
        proc.send_signal(signal.SIGTERM)  # a plain kill
        try:
            out = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("trufor-lab casebook did not stop on SIGTERM")
    assert "stopping the casebook app" in out and proc.returncode == 0
    deadline = time.time() + 15
    while list(tmpdir.iterdir()) and time.time() < deadline:
        time.sleep(0.2)
    assert not list(tmpdir.iterdir()), "the app's temporary files are removed"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server is gone"


def test_a_failed_drawing_keeps_the_previous_case_and_names_the_file(np_model, picture, tmp_path, monkeypatch):
    """'$...$' in a file name is text (mathtext raised, leaving the new result beside the old
    tabs, the comparison lost, and 'error: ' with no reason); and whatever fails while the new
    case is drawn, the previous case stays whole and the error names the file."""
    good, other = tmp_path / "good.png", tmp_path / "b.png"
    Image.fromarray(picture).save(good)
    Image.fromarray(picture).resize((48, 48)).save(other)
    cb = Casebook(np_model)
    cb.analyze_path(good)
    cb.compare(other)
    cb.upload.value = (upload_entry("x$^$.png", encode(picture, "PNG")),)
    assert cb.error is None and cb.result.name == "x$^$.png" and "x$^$.png" in cb.tab_html[0].value
    assert cb.save_report(tmp_path / "case.html").is_file()
    before = (cb.result, cb.provenance, cb.comparison, dict(cb.classic), cb.tab_html[0].value)
    cb.compare(other)

    import trufor_lab.casebook.report as R

    def broken(result):
        raise ValueError("\n\nmathtext could not draw it\nmore detail")

    monkeypatch.setattr(R, "result_section_html", broken)
    cb.upload.value = (upload_entry("new.png", encode(picture[:48, :48], "PNG")),)
    assert cb.error == "new.png: mathtext could not draw it"
    assert cb.result is before[0] and cb.provenance is before[1] and cb.classic == before[3]
    assert cb.comparison is not None and cb.comparison.result_b.name == "b.png"
    assert cb.tab_html[0].value == before[4]


def test_the_status_names_what_the_tabs_show_and_uploads_stay_within_the_limit(recipe_model, picture, tmp_path):
    """A failed or refused upload left the previous image's tabs and report link on the page with
    nothing saying so; an upload above the app's limit never arrived and the page went dead; an
    error from the model said '<bytes>'; a sender's bidi characters reached the status line."""
    cb = Casebook(recipe_model, classic=False)
    first = encode(picture, "PNG")
    cb.max_upload_bytes = 2**20 // 8
    cb.upload.value = (upload_entry("first.png", first),)
    assert cb.error is None and cb.status.value.startswith("done: first.png")
    big = encode(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8), "PNG")
    cb.upload.value = (upload_entry("viral.png", big),)
    assert cb.error == "viral.png is 0.2 MB; the limit is 0.125 MB" and cb.result.name == "first.png"
    assert "still show the previous image, first.png" in cb.status.value
    cb.max_upload_bytes = None
    cb.upload.value = (upload_entry("strip.png", encode(picture[:1, :50], "PNG")),)
    assert cb.error.startswith("strip.png:") and "<bytes>" not in cb.error
    assert "still show the previous image, first.png" in cb.status.value
    fresh = Casebook(recipe_model, classic=False)  # Compare before any analysis names no upload
    fresh.upload.value = (upload_entry("B.png", b"not an image"),)
    with pytest.raises(RuntimeError, match="analyze an image first"):
        fresh.compare(tmp_path / "other.png")
    fresh._fail(RuntimeError("analyze an image first"))
    assert fresh.error == "analyze an image first"
    cb.upload.value = (upload_entry("a\u202egpj.png", encode(picture, "PNG")),)
    assert cb.error is None and "\u202e" not in cb.status.value and "a?gpj.png" in cb.status.value
    assert "previous image" not in cb.status.value


def test_casebook_command_refuses_bad_weights_or_device_before_serving(tmp_path, capsys):
    """Junk weights or an unknown device started the server anyway; the page then said only
    'There was an error when executing cell [1]'."""
    from trufor_lab.cli import main

    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    for extra in (["--weights", str(junk)], ["--device", "bogus"]):
        assert main(["casebook", "--no-browser", "--port", "18999", "-q", *extra]) == 2
        out = capsys.readouterr()
        assert "casebook:" not in out.out and len(out.err.strip().splitlines()) == 1, out
        assert out.err.startswith("error: ")


def _fake_voila(code: str):
    """A stand-in for Voila's command line: ``code`` runs with ``port`` set."""

    def command(notebook, host, port):
        return [sys.executable, "-c", f"port = {port}\n" + code]

    return command


def test_casebook_command_keeps_voilas_log_out_of_the_way_and_says_why_it_failed(monkeypatch, capfd):
    """Voila's log came first by default, with Voila's own address (token elided: it does not
    open the app); now it is shown with -v only, and a server that fails says why in one line."""
    import socket

    import trufor_lab.cli.casebook as C
    from trufor_lab.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = (
        "import socket, sys, time\n"
        "print('[Voila] Voila is running at: http://localhost:%d/' % port, file=sys.stderr, flush=True)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen(); time.sleep(1.5)\n"
    )
    monkeypatch.setattr(C, "voila_command", _fake_voila(serve))
    assert main(["casebook", "--no-browser", "--port", str(port), "--device=cpu"]) == 0
    out = capfd.readouterr()
    assert f"http://127.0.0.1:{port}/?token=" in out.out and "Voila is running" not in out.out + out.err
    assert main(["casebook", "--no-browser", "--port", str(port), "--device=cpu", "-v"]) == 0
    assert "Voila is running" in "".join(capfd.readouterr())

    crash = "import sys\nprint('Traceback ...', file=sys.stderr)\nprint('OSError: no kernel spec found', file=sys.stderr)\nsys.exit(3)\n"
    monkeypatch.setattr(C, "voila_command", _fake_voila(crash))
    assert main(["casebook", "--no-browser", "--port", str(port), "--device=cpu", "-q"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not start: OSError: no kernel spec found" in err[0] and "-v" in err[0], err

    late = serve + "print('RuntimeError: the kernel died', file=sys.stderr)\nsys.exit(4)\n"
    monkeypatch.setattr(C, "voila_command", _fake_voila(late))
    assert main(["casebook", "--no-browser", "--port", str(port), "--device=cpu"]) == 4
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stopped (exit 4): RuntimeError: the kernel died" in err[0], err


def test_a_phone_photo_and_its_upright_repost_are_compared_as_viewers_show_them(np_model, tampered2, tmp_path):
    """A platform turns a phone photo's pixels upright and drops its EXIF orientation: compared
    on the stored grid the two looked unrelated (B centre-cropped to the wrong aspect)."""
    stored = tampered2[0:96, 0:128]  # stored landscape, shown portrait (orientation 6)
    original = tmp_path / "original.jpg"
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(stored).save(original, quality=95, exif=ex)
    repost = tmp_path / "repost.jpg"
    Image.fromarray(np.rot90(stored, -1).copy()).save(repost, quality=85)
    c = compare(original, repost, np_model)
    assert c.a.shape == (128, 96, 3) and c.b_aligned.shape == c.a.shape
    assert not any("aspect" in n or "resized" in n for n in c.notes), c.notes
    assert c.mean_diff < 0.02
    plain = tl_analyze(np_model, original)
    assert c.result_a.shown and np.array_equal(c.result_a.noiseprint, np.rot90(plain.noiseprint, -1))
    assert c.result_b.noiseprint.shape == (128, 96)
    from trufor_lab.lab.classic import detect

    on_stored = detect(original, "noiseprint", noiseprint=plain)
    given_shown = detect(original, "noiseprint", noiseprint=c.result_a)  # turned back to the stored grid
    assert np.array_equal(given_shown.map, on_stored.map)


def tl_analyze(model, image, **kw):
    from trufor_lab import analyze

    return analyze(model, image, **kw)


def test_the_casebook_shows_a_turned_photo_as_viewers_do_with_its_filters(recipe_model, tampered2, tmp_path):
    stored = tampered2[0:96, 0:128]
    path = tmp_path / "portrait.jpg"
    ex = Image.Exif()
    ex[0x0112] = 8
    Image.fromarray(stored).save(path, quality=90, exif=ex)
    cb = Casebook(recipe_model)
    r = cb.analyze_path(path)
    plain = tl_analyze(recipe_model, path)
    assert r.image.shape == (128, 96, 3) and r.score == plain.score
    assert np.array_equal(r.map, np.rot90(plain.map, 1))
    assert any("turned 90° counter-clockwise as viewers show it" in n for n in r.notes)
    assert cb.classic and all(f.map.shape == (128, 96) and f.image.shape == r.image.shape for f in cb.classic.values())
    from trufor_lab.lab.classic import detect

    ela = detect(path, "ela")  # computed on the stored grid (the JPEG blocks), then turned
    assert np.array_equal(cb.classic["ela"].map, np.rot90(ela.map, 1))


@pytest.fixture(scope="module")
def scene(shared_dir) -> Image.Image:
    src = Image.open(shared_dir / "images" / "pristine2.jpg").convert("RGB")
    return src.resize((256, 221), Image.LANCZOS).crop((0, 0, 256, 192))


def test_a_copy_resized_by_two_percent_is_resized_back_not_placed_as_a_crop(scene):
    """A 0.98x re-upload was 'a same-scale crop of A placed at (2, 4)' with 6.8 % of its pixels
    'changed' (the misplacement); resized back it differs by nothing."""
    for f in (0.96, 0.98, 1.02):
        b = scene.resize((round(256 * f), round(192 * f)), Image.BICUBIC)
        c = compare(np.asarray(scene), np.asarray(b), names=("A", "B"))
        assert c.reliable and c.changed_fraction < 0.01 and c.mean_diff < 0.01, (f, c.summary(), c.notes)
        assert not any("same-scale crop" in n for n in c.notes)
    crop = compare(np.asarray(scene), np.asarray(scene.crop((40, 30, 216, 162))), names=("A", "B"))
    assert crop.reliable and crop.shift == (30, 40) and crop.mean_diff < 1e-6  # a true crop is still placed


def test_a_copy_zoomed_a_little_and_framed_again_is_zoomed_back(shared_dir, tmp_path):
    """A copy enlarged by 1-4 % and cropped back to its frame (or reduced, showing more) was
    'lined up' unzoomed, its misaligned edges counted as 8-33 % of its pixels 'changed'. Zoomed
    back, only JPEG's own difference is left; an edit in a zoomed copy still shows, alone."""
    src = Image.open(shared_dir / "images" / "pristine2.jpg").convert("RGB")
    src = src.resize((400, round(400 * src.height / src.width)), Image.LANCZOS)
    box = (60, 40, 316, 232)  # A: 256 x 192
    a = np.asarray(src.crop(box))
    for s in (1.015, 1.04, 1.08, 0.97):
        big = src.resize((round(src.width * s), round(src.height * s)), Image.BICUBIC)
        cx, cy = 150, 120  # zoomed about a point off the centre
        x0, y0 = round(cx * s - (cx - box[0])), round(cy * s - (cy - box[1]))
        b = np.array(big.crop((x0, y0, x0 + 256, y0 + 192)))
        if s == 1.04:
            b[80:120, 100:150] = 255 - b[80:120, 100:150]  # an edit: 4 % of the picture
        Image.fromarray(b).save(tmp_path / "b.jpg", quality=85)
        c = compare(a, np.asarray(Image.open(tmp_path / "b.jpg")), names=("A", "B"))
        assert c.reliable and any(("zoomed in" if s > 1 else "zoomed out") in n for n in c.notes), (s, c.notes)
        outside = c.diff.copy()
        if s == 1.04:
            assert np.nanmean(c.diff[82:118, 102:148] > 0.1) > 0.8
            outside[75:125, 95:155] = np.nan
        assert np.nanmean(outside > 0.1) < 0.01, (s, c.summary(), c.notes)
    # zoomed by 3 % and halved: the note gives the zoom (was 'reduced by 48.6 % (zoomed out')
    big = src.resize((round(src.width * 1.03), round(src.height * 1.03)), Image.BICUBIC)
    x0, y0 = round(150 * 1.03 - 90), round(120 * 1.03 - 80)
    half = big.crop((x0, y0, x0 + 256, y0 + 192)).resize((128, 96), Image.LANCZOS)
    c = compare(a, np.asarray(half), names=("A", "B"))
    (note,) = [n for n in c.notes if "zoomed in" in n and "resized to 128×96" in n]
    assert c.reliable and 2.0 <= float(note.split("enlarged by ")[1].split(" %")[0]) <= 4.0, c.notes


def test_a_smaller_repost_lines_up_with_its_original_in_either_order(shared_dir, tmp_path):
    """The original first and its smaller repost second (the pair a fact-checker holds) was 'no
    reliable alignment' (the repost enlarged to the original's size has no fine detail: the
    correlation stayed under the fixed bar), with no note saying why; when it did line up, the
    detail the repost never had counted as 'changed'. In the other order it lined up. A is now
    compared at B's resolution; an edit in the repost still shows."""
    src = Image.open(shared_dir / "images" / "pristine2.jpg").convert("RGB")
    a = np.asarray(src)
    small = src.resize((src.width // 3, src.height // 3), Image.LANCZOS)
    small.save(tmp_path / "repost.jpg", quality=85)
    b = np.asarray(Image.open(tmp_path / "repost.jpg"))
    for first, second in ((a, b), (b, a)):
        c = compare(first, second, names=("A", "B"))
        assert c.reliable and c.changed_fraction < 0.005, (c.summary(), c.notes)
    edited = b.copy()
    h, w = edited.shape[:2]
    edited[h // 4 : h // 2, w // 4 : w // 2] = 255 - edited[h // 4 : h // 2, w // 4 : w // 2]
    c = compare(a, edited, names=("A", "B"))
    H, W = a.shape[:2]
    assert c.reliable and np.nanmean(c.diff[H // 4 + 4 : H // 2 - 4, W // 4 + 4 : W // 2 - 4] > 0.1) > 0.8
    unrelated = np.asarray(Image.open(shared_dir / "images" / "pristine1.jpg").convert("RGB").resize(small.size))
    c = compare(a, unrelated, names=("A", "B"))
    assert not c.reliable and c.notes, c.notes


def test_a_mirrored_copy_is_not_turned_and_a_square_one_is_turned_back(shared_dir, scene):
    """A mirrored copy was 'turned by 180 degrees' and lined up, with 26 % of its pixels 'changed'
    (it is now flipped back and said to be a mirror: tests/test_casebook_compare.py);
    a square picture turned by 90 degrees was never turned back (only non-square ones were)."""
    from PIL import ImageOps

    s = Image.open(shared_dir / "images" / "tampered1.png").convert("RGB")
    a = s.crop((1348, 407, 1748, 707)).resize((160, 120))
    mirrored = compare(np.asarray(a), np.asarray(ImageOps.mirror(a)), names=("A", "B"))
    assert not any("turned by" in n for n in mirrored.notes), mirrored.notes  # flipped back as a mirror instead
    assert mirrored.reliable and mirrored.mean_diff < 1e-6 and "mirrored left-right" in mirrored.notes[0]
    turned = compare(np.asarray(a), np.asarray(a.rotate(180)), names=("A", "B"))
    assert turned.reliable and turned.mean_diff < 1e-6 and "turned by 180°" in turned.notes[0]
    square = scene.crop((32, 0, 224, 192))
    c = compare(np.asarray(square), np.asarray(square.rotate(90, expand=True)), names=("A", "B"))
    assert c.reliable and c.mean_diff < 1e-6 and "turned by 90°" in c.notes[0], c.notes
    # turned and re-framed by a few pixels: turned back and moved (both, or neither)
    a2 = np.asarray(scene)
    moved = np.zeros_like(a2)
    moved[4:, 4:] = a2[:-4, :-4]
    c = compare(a2, np.rot90(moved, 1).copy(), names=("A", "B"))
    assert c.reliable and c.shift == (-4, -4) and c.changed_fraction < 0.01, (c.summary(), c.notes)


def test_a_one_pixel_offset_after_recompression_is_undone(shared_dir, tmp_path):
    """Both the unmoved and the moved match passed the bar, and the unmoved one vetoed the move:
    'no reliable translation found (peak 0.51, needs 0.08)', 5 % of the pixels 'changed'."""
    big = Image.open(shared_dir / "images" / "pristine2.jpg").convert("RGB").resize((270, 233), Image.LANCZOS)
    a, b = big.crop((6, 6, 262, 198)), big.crop((6, 5, 262, 197))
    b.save(tmp_path / "b.jpg", quality=70)
    c = compare(np.asarray(a), np.asarray(Image.open(tmp_path / "b.jpg")), names=("A", "B"))
    assert c.reliable and c.shift == (-1, 0) and c.changed_fraction < 0.01, (c.summary(), c.notes)


def test_save_report_never_replaces_the_analysed_image(np_model, picture, tmp_path):
    """Casebook.save_report('victim.png') wrote the HTML report over the image it analysed."""
    victim = tmp_path / "victim.png"
    Image.fromarray(picture).save(victim)
    before = victim.read_bytes()
    cb = Casebook(np_model, classic=False)
    cb.analyze_path(victim)
    with pytest.raises(ValueError, match=r"victim\.png: refusing to write the report over the analysed image"):
        cb.save_report(victim)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes\.txt: exists and is not a report"):
        cb.save_report(tmp_path / "notes.txt")
    assert victim.read_bytes() == before and (tmp_path / "notes.txt").read_text() == "mine"
    assert cb.save_report(tmp_path / "case.html").read_bytes().startswith(b"<!DOCTYPE html>")


def test_compare_without_a_shift_search_still_checks_that_b_lines_up(tampered2):
    """``estimate_shift=False`` skipped every check and kept ``reliable=True``: a copy moved by
    (15, 25) px was "lined up", its misaligned edges reported as changes. It is still checked as it
    stands (not moved), and a re-saved copy that does line up is still compared."""
    a = np.ascontiguousarray(tampered2[20:212, :])
    moved = np.zeros_like(a)
    moved[15:, 25:] = a[:-15, :-25]
    c = compare(a, moved, estimate_shift=False)
    assert not c.reliable and "no reliable alignment" in c.summary()
    assert any("estimate_shift=False" in n for n in c.notes), c.notes
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=85)
    resaved = np.asarray(Image.open(buf).convert("RGB"))
    c = compare(a, resaved, estimate_shift=False)
    assert c.reliable and c.shift == (0, 0) and not any("line up" in n for n in c.notes)


def test_pictures_too_small_to_check_are_not_called_lined_up():
    """Under 8 px a side no correlation was computed and ``reliable`` stayed True."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    c = compare(a, 255 - a)
    assert not c.reliable and any("cannot be checked" in n for n in c.notes)


def test_comparison_plot_draws_large_pictures_averaged_to_screen_size():
    """Comparison.plot (casebook --compare, the Compare tab) drew all five panels at full size (a
    12 MP pair: five 12 MP images); they are averaged over blocks to <= 2048 px, as plot_result."""
    from trufor_lab.inference.result import Result
    from trufor_lab.viz.figures import display_mean

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2100, 300, 3), dtype=np.uint8)
    b = a.copy()
    b[500:900, 100:200] = 255 - b[500:900, 100:200]
    noise = rng.standard_normal((2100, 300)).astype(np.float32)
    ramp = np.tile(np.linspace(0, 1, 300, dtype=np.float32), (2100, 1))
    ra = Result(image=a, noiseprint=noise, map=ramp, conf=ramp, score=0.1, name="a")
    rb = Result(image=b, noiseprint=noise, map=None, conf=None, score=None, name="b")
    c = compare(ra, rb, estimate_shift=False)
    panels = {ax.get_title().split(" (")[0]: ax.images[0] for ax in c.plot().axes if ax.images}
    assert len(panels) == 5 and {p.get_array().shape[:2] for p in panels.values()} == {(1050, 150)}
    np.testing.assert_allclose(np.ma.getdata(panels["|A − B|"].get_array()), display_mean(c.diff, 2), rtol=1e-6)
    np.testing.assert_allclose(panels["B: Noiseprint++"].get_array(), display_mean(noise, 2), rtol=1e-12)
    assert panels["B: Noiseprint++"].get_clim() == tuple(np.percentile(noise, [1, 99]))  # the whole map's


def test_comparison_plot_scales_a_noiseprint_with_nan_by_its_finite_values():
    """One NaN pixel in B's Noiseprint++ made both grey limits NaN (np.percentile): the panel was
    drawn blank; the limits come from the finite values, as every other Noiseprint++ panel's."""
    from trufor_lab.inference.result import Result

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    noise = rng.standard_normal((64, 64)).astype(np.float32)
    holed = noise.copy()
    holed[3, 5] = np.nan
    ra = Result(image=a, noiseprint=noise, map=None, conf=None, score=None, name="a")
    rb = Result(image=a, noiseprint=holed, map=None, conf=None, score=None, name="b")
    panels = {
        ax.get_title().split(" (")[0]: ax.images[0]
        for ax in compare(ra, rb, estimate_shift=False).plot().axes
        if ax.images
    }
    lo, hi = panels["B: Noiseprint++"].get_clim()
    assert np.isfinite([lo, hi]).all() and lo < 0 < hi
    np.testing.assert_allclose((lo, hi), np.percentile(noise[np.isfinite(holed)], [1, 99]))


def test_the_app_notebook_is_written_atomically(tmp_path, monkeypatch):
    """app_notebook wrote with Path.write_text: a failed write left a truncated notebook."""
    import json
    import os

    from trufor_lab.casebook.app import app_notebook

    path = app_notebook(tmp_path / "app.ipynb", weights="official")
    before = path.read_bytes()
    assert json.loads(before)["cells"][0]["source"][1].startswith("casebook_app(weights='official'")

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        app_notebook(path, weights="other")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["app.ipynb"]
