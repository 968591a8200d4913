"""``trufor-lab eval --method NAME`` (classic detectors evaluated like TruFor) and the notebook runner."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from trufor_lab.cli import main
from trufor_lab.cli import notebooks as runner
from trufor_lab.forensics.jpeg import jpeg_bytes
from trufor_lab.lab import forgeries as F


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny folder: one pristine JPEG, one aligned double-JPEG forgery with its mask, one PNG splice."""
    root = tmp_path_factory.mktemp("classic_eval")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    imgs = F.demo_images(128)
    (root / "images" / "pristine.jpg").write_bytes(jpeg_bytes(imgs["chelsea"], 90))
    f = F.double_jpeg(imgs["coffee"], seed=2, q1=60, q2=90, area=(0.1, 0.2))
    (root / "images" / "djpeg.jpg").write_bytes(jpeg_bytes(f.image, 90))
    Image.fromarray(f.mask.astype(np.uint8) * 255).save(root / "masks" / "djpeg.png")
    s = F.splice(imgs["astronaut"], imgs["rocket"], seed=0, area=(0.1, 0.2))
    Image.fromarray(s.image).save(root / "images" / "splice.png")
    Image.fromarray(s.mask.astype(np.uint8) * 255).save(root / "masks" / "splice.png")
    return root


@pytest.mark.parametrize("method", ["ela", "dq_nonaligned"])
def test_eval_classic_method_like_trufor(folder, tmp_path, capsys, method):
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            "--images",
            str(folder / "images"),
            "--masks",
            str(folder / "masks"),
            "--method",
            method,
            "-o",
            str(out),
            "-q",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    [per_image] = out.glob(f"*.{method}.per_image.csv")
    rows = list(csv.DictReader(per_image.open()))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert {r["label"] for r in rows} == {"0", "1"}
    assert all(0 <= float(r["score"]) <= 1 for r in rows)
    assert len(list((out / method).rglob("*.npz"))) == 3, "a classic method's outputs stay in OUT/<method>"
    summary = json.loads(next(out.glob(f"*.{method}.summary.json")).read_text())
    assert summary
    forged = [r for r in rows if r["label"] == "1"]
    assert all(0 <= float(r["f1_best"]) <= 1 for r in forged), forged
    err = capsys.readouterr().err
    assert ("defines no global score" in err) == (method != "dq_nonaligned")


def test_eval_a_classic_method_that_cannot_judge_an_image_does_not_score_it(folder, tmp_path, capsys):
    """dq_aligned finds no double quantization in these small pictures (and none in the PNG):
    each was scored as an empty map with score 0, and the summary gave an F1 (the all-forged F1
    that the max over the inverted map earns) and exit 0, as if the method had run."""
    out = tmp_path / "out"
    argv = ["eval", "--images", str(folder / "images"), "--masks", str(folder / "masks"), "-o", str(out), "-q"]
    rc = main([*argv, "--method", "dq_aligned"])
    cap = capsys.readouterr()
    assert rc == 1
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "dq_aligned is not applicable to 3 image(s), not scored, counted as failed" in errors[0]
    rows = list(csv.DictReader(next(out.glob("*.dq_aligned.per_image.csv")).open()))
    assert all(
        r["status"] == "error" and r["error"].endswith("; not scored") and r["f1_best"] == "nan" for r in rows
    ), rows
    assert not list((out / "dq_aligned").rglob("*.npz"))  # nothing to reuse: a later run judges again
    assert "no scores" in cap.out and "3 failed" in cap.out and "F1" not in cap.out, cap.out


def test_eval_unknown_method_is_refused(folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--images", str(folder / "images"), "--method", "elaa", "-o", str(tmp_path), "-q"])
    assert "invalid choice" in capsys.readouterr().err


def test_runner_records_one_block_per_device(tmp_path, monkeypatch):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n## Other section\n\ntext\n")
    t = [runner.Timing("01_a", 12.3, True), runner.Timing("02_b", 200.0, True), runner.Timing("03_c", 5, False, "boom")]
    runner.record(md, runner.results_block(t, "CPU: 2 cores, X"))
    runner.record(md, runner.results_block(t[:1], "GPU: H100"))
    runner.record(md, runner.results_block(t[:2], "CPU: 2 cores, X", note="shared"))
    text = md.read_text()
    assert text.count(runner.SECTION) == 1 and "## Other section" in text
    assert text.count("### CPU: 2 cores, X") == 1 and text.count("### GPU: H100") == 1
    cpu = text.split("### CPU: 2 cores, X")[1].split("###")[0]
    assert "| 02_b | 200 | nan | 180 | no |" in cpu and "shared" in cpu and "03_c" not in cpu
    # a write that fails half-way (disk full, Ctrl-C) leaves the results file as it was
    import trufor_lab.common.files as files

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError):
        runner.record(md, runner.results_block(t[:1], "GPU: H200"))
    assert md.read_text() == text and [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]


def test_runner_runs_a_notebook_and_reports_errors(tmp_path, capsys):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    ok = tmp_path / "01_ok.ipynb"
    bad = tmp_path / "02_bad.ipynb"
    nbformat.write(
        new_notebook(cells=[new_code_cell("import os, trufor_lab\nprint(os.environ['TRUFOR_LAB_OUTPUT'])")]), ok
    )
    stale = new_code_cell("y = 2")  # an error output saved in the file is not this run's failure
    stale.outputs = [nbformat.v4.new_output("error", ename="OldError", evalue="from last week", traceback=[])]
    cells = [new_code_cell("x = 1"), new_code_cell("raise ValueError('broken | on purpose\\nsecond line')"), stale]
    nbformat.write(new_notebook(cells=cells), bad)
    (tmp_path / "03_not_json.ipynb").write_text("garbage")  # a failure of its own, not a traceback
    assert [p.name for p in runner.find_notebooks(tmp_path, ["02"])] == ["02_bad.ipynb"]
    md = tmp_path / "R.md"
    rc = main(["notebooks", "--dir", str(tmp_path), "--time", "--results", str(md), "--timeout", "120"])
    assert rc == 1
    text = md.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "01_ok" in rows
    # the failing cell, the exception's type, its first line; a '|' in it does not break the table
    assert "code cell 2: ValueError: broken \\| on purpose" in rows["02_bad"] and "second line" not in text
    assert "OldError" not in text
    assert all(line.replace("\\|", "").count("|") == 6 for line in rows.values()), rows
    assert "cannot read the notebook: NotJSONError" in rows["03_not_json"]
    assert rows["**all**"].rstrip(" |").endswith("no (2 failed)"), rows["**all**"]

    # a run of some notebooks gets a block of its own: the full run's block stays
    capsys.readouterr()
    rc = main(["notebooks", "--dir", str(tmp_path), "--time", "--results", str(md), "--only", "01", "99"])
    assert rc == 0 and "--only 99: no notebook" in capsys.readouterr().err
    text = md.read_text()
    assert (
        text.count("| 02_bad |") == 1
        and text.count("| 01_ok |") == 2
        and "03_not_json" in text
        and "(only 01 99)" in text
    )
    assert f"`python -m trufor_lab.notebooks --time --only 01 99 --dir {tmp_path}`" in text


def test_results_that_cannot_take_the_timings_are_refused_before_any_notebook(tmp_path, capsys):
    """``--results`` a folder or an unwritable place gave a traceback after every notebook had
    run; an unrelated file (notes.txt) got a Markdown section appended."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nbformat.write(new_notebook(cells=[new_code_cell("open('ran', 'w').write('x')")]), tmp_path / "01_x.ipynb")
    notes = tmp_path / "notes.md"
    notes.write_text("my own notes\n")
    (tmp_path / "dir.md").mkdir()
    for target, why in (
        (tmp_path / "notes.txt", "not a Markdown file"),
        (tmp_path / "dir.md", "is a folder"),
        (tmp_path / "nowhere" / "R.md", "does not exist"),
        (notes, "not a results page"),
    ):
        rc = main(["notebooks", "--dir", str(tmp_path), "--time", "--results", str(target)])
        err = capsys.readouterr().err
        assert rc == 2 and why in err and "Traceback" not in err, err
    assert notes.read_text() == "my own notes\n" and not list(tmp_path.rglob("ran"))
    # --results without --time was ignored, unsaid (the notebooks ran, nothing was recorded)
    rc = main(["notebooks", "--dir", str(tmp_path), "--results", str(tmp_path / "R.md")])
    assert (
        rc == 2 and "error: --results is where --time records its timings: give --time too" in capsys.readouterr().err
    )
    assert not list(tmp_path.rglob("ran"))


def test_runner_without_nbclient_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "REQUIRES", ("nbformat", "trufor_lab_no_such_module"))
    assert main(["notebooks", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: running notebooks needs nbclient") and len(err.splitlines()) == 1


@pytest.mark.parametrize("when", ["running", "kernel starting"])
def test_runner_stops_on_ctrl_c(tmp_path, when):
    """Ctrl-C stops the run (exit 130) with one line: the interrupted notebook is not recorded as a
    failure, the next one does not start and the kernel does not outlive the run. (nbclient's own
    handling raced the kernel's start: a notebook recorded as failed and the run going on, a
    CancelledError or KeyboardInterrupt traceback, or the runner killed by the signal.)"""
    import os
    import signal
    import subprocess
    import sys
    import time

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    # runs in the notebook's folder; the kernel writes its process id
    slow = "import os, time\nopen('started', 'w').write(str(os.getpid()))\ntime.sleep(120)"
    nbformat.write(new_notebook(cells=[new_code_cell(slow)]), tmp_path / "01_slow.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell("open('ran_02', 'w').close()")]), tmp_path / "02_next.ipynb")
    md = tmp_path / "R.md"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trufor_lab.notebooks", "--dir", str(tmp_path), "--time", "--results", str(md)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        # as from a terminal: a suite started in the background (a shell's `&`) ignores SIGINT,
        # and an ignored signal stays ignored in its children
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        if when == "running":
            deadline = time.time() + 120
            started = tmp_path / "started"
            while time.time() < deadline and not (started.exists() and started.read_text()):
                time.sleep(0.2)
            time.sleep(0.5)
        else:
            seen = ""
            while "01_slow ..." not in seen:  # printed just before its process and kernel start
                ch = proc.stdout.read(1)
                assert ch, (seen, proc.stderr.read())
                seen += ch
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.strip() == "error: interrupted", err
    assert "02_next" not in out and not (tmp_path / "ran_02").exists()
    assert not md.exists() or "01_slow" not in md.read_text()
    if when == "running":
        kernel = int((tmp_path / "started").read_text())
        deadline = time.time() + 10
        while time.time() < deadline and _alive(kernel):
            time.sleep(0.2)
        assert not _alive(kernel), "the kernel outlived the run"


def test_a_ctrl_c_while_a_notebooks_process_starts_stops_that_process(tmp_path, monkeypatch):
    """Blocking SIGINT around the start did not hold it back (torch's threads took it): a Ctrl-C
    inside Popen left ``proc`` unknown and the notebook's process running, unsupervised."""
    import os
    import signal
    import subprocess
    import threading
    import time

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled in the main thread only")
    stub = tmp_path / "stub.py"
    stub.write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setattr(runner, "PROCESS", stub)
    started = []

    class Interrupted(subprocess.Popen):
        def _execute_child(self, *a, **k):
            super()._execute_child(*a, **k)
            started.append(self.pid)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the fork, before Popen returns
            time.sleep(0.2)

    monkeypatch.setattr(runner.subprocess, "Popen", Interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_notebook(tmp_path / "x.ipynb", tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert started and not _alive(started[0]), "the notebook's process was left running"


def _alive(pid):
    """Whether process ``pid`` runs (a zombie no longer does)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _noise(path, seed=0, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _box(path, white_forged=True, size=48, empty=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size, size), np.uint8)
    if not empty:
        m[12:36, 12:36] = 255
    Image.fromarray(m if white_forged else 255 - m).save(path)


def _rows(out):
    [per_image] = out.glob("*.per_image.csv")
    return {r["id"]: r for r in csv.DictReader(per_image.open())}


def test_eval_mask_suffix_without_masks_reads_the_masks_among_the_images(tmp_path, capsys):
    """``--images DIR --mask-suffix _gt`` without ``--masks``: the suffix was ignored, the
    ``_gt`` masks were scored as authentic images and the fake too ('0 fake, 3 real')."""
    d = tmp_path / "casia"
    _noise(d / "Sp_a.png", 1)
    _box(d / "Sp_a_gt.png")
    _noise(d / "Au_b.png", 2)
    rc = main(["eval", "--images", str(d), "--mask-suffix", "_gt", "--method", "ela", "-o", str(tmp_path / "o"), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "(1 fake, 1 real)" in captured.out and "masks are the *_gt files here" in captured.err
    assert {k: r["label"] for k, r in _rows(tmp_path / "o").items()} == {"Sp_a.png": "1", "Au_b.png": "0"}
    rc = main(["eval", "--images", str(d), "--method", "ela", "-o", str(tmp_path / "p"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "Sp_a_gt.png: looks like the mask of Sp_a.png" in err and len(err.strip().splitlines()) == 1
    rc = main(["eval", "CASIA1", "--root", str(d), "--mask-suffix", "_gt", "-o", str(tmp_path / "q"), "-q"])
    assert rc == 1 and "--mask-suffix goes with --images" in capsys.readouterr().err


def test_eval_mask_invert_and_a_folder_named_like_a_benchmark(tmp_path, capsys):
    """DSO-1's black = spliced masks evaluated as a folder were read white = forged: there was
    no --mask-invert, and the benchmark's own convention was not applied to a folder of its name."""
    imgs, masks = tmp_path / "DSO-1", tmp_path / "masks"
    _noise(imgs / "splicing-01.png", 1)
    _box(masks / "splicing-01.png", white_forged=False)
    _noise(imgs / "normal-01.png", 2)
    base = ["eval", "--images", str(imgs), "--masks", str(masks), "--method", "ela", "-q"]
    assert main([*base, "-o", str(tmp_path / "a")]) == 0  # named DSO-1 (the folder's name)
    assert "named like the benchmark DSO-1" in capsys.readouterr().err
    assert float(_rows(tmp_path / "a")["splicing-01.png"]["mask_fraction"]) == pytest.approx(0.25)
    assert main(["eval", "mine", *base[1:], "--mask-invert", "-o", str(tmp_path / "b")]) == 0
    assert "named like" not in capsys.readouterr().err
    assert float(_rows(tmp_path / "b")["splicing-01.png"]["mask_fraction"]) == pytest.approx(0.25)
    assert main(["eval", "mine", *base[1:], "-o", str(tmp_path / "c")]) == 0  # the default, white = forged
    capsys.readouterr()
    assert float(_rows(tmp_path / "c")["splicing-01.png"]["mask_fraction"]) == pytest.approx(0.75)
    # an all-white mask is empty under --mask-invert: its image is real
    _box(masks / "normal-01.png", white_forged=False, empty=True)
    assert main(["eval", "mine", *base[1:], "--mask-invert", "-o", str(tmp_path / "d")]) == 0
    assert "whose mask marks no forged pixel are labelled real" in capsys.readouterr().err
    assert _rows(tmp_path / "d")["normal-01.png"]["label"] == "0"
    rc = main(["eval", "Columbia", "--root", str(tmp_path), "--mask-invert", "-o", str(tmp_path / "e"), "-q"])
    assert rc == 1 and "--mask-invert does not apply to Columbia" in capsys.readouterr().err


def test_mask_invert_on_a_dataset_named_like_an_inverted_benchmark_is_said_to_change_nothing(tmp_path, capsys):
    """A folder named DSO-1 is read black = forged; its note offered --mask-invert as a way to read
    the masks otherwise (it reads them the same), and with --mask-invert nothing was said at all."""
    imgs, masks = tmp_path / "DSO-1", tmp_path / "masks"
    _noise(imgs / "splicing-01.png", 1)
    _box(masks / "splicing-01.png", white_forged=False)
    _noise(imgs / "normal-01.png", 2)
    base = ["eval", "--images", str(imgs), "--masks", str(masks), "--method", "ela", "-q"]
    rename = "give the dataset another name (trufor-lab eval NAME --images DIR ...)"
    assert main([*base, "-o", str(tmp_path / "a")]) == 0
    (note,) = [line for line in capsys.readouterr().err.splitlines() if "named like" in line]
    assert note == (
        "note: DSO-1: named like the benchmark DSO-1: its masks are read with its convention (black = forged); "
        f"to read them otherwise, {rename}"
    )
    assert main([*base, "--mask-invert", "-o", str(tmp_path / "b")]) == 0
    (note,) = [line for line in capsys.readouterr().err.splitlines() if "named like" in line]
    assert note == (
        "note: DSO-1: named like the benchmark DSO-1, whose masks are black = forged: --mask-invert changes "
        f"nothing; to read them white = forged, {rename}"
    )
    same = ("label", "mask_fraction", "mask_convention", "f1_best")
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert {k: [r[c] for c in same] for k, r in a.items()} == {k: [r[c] for c in same] for k, r in b.items()}
    assert float(_rows(tmp_path / "b")["splicing-01.png"]["mask_fraction"]) == pytest.approx(0.25)
    # read as the benchmark itself, from its list
    (tmp_path / "DSO-1_fake.txt").write_text("splicing-01.png,splicing-01.png\n")
    rc = main(
        ["eval", str(tmp_path / "DSO-1_fake.txt"), "--root", str(tmp_path), "--mask-root", str(masks)]
        + ["--mask-invert", "--method", "ela", "-o", str(tmp_path / "c"), "-q"]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "note: DSO-1: its masks are black = forged already: --mask-invert changes nothing" in err
    # another name: --mask-invert governs, and no benchmark is named
    assert main(["eval", "mine", *base[1:], "--mask-invert", "-o", str(tmp_path / "d")]) == 0
    assert "named like" not in capsys.readouterr().err


def test_an_interrupted_eval_leaves_no_tables_of_the_run_before(tmp_path, monkeypatch, capsys):
    """The per-image CSV and summary of a complete run stayed in the folder after a later run
    over other images was interrupted, and read as if they described the outputs there."""
    d = tmp_path / "imgs"
    _noise(d / "a.png", 1)
    _noise(d / "b.png", 2)
    out = tmp_path / "o"
    base = ["eval", "mine", "--images", str(d), "--method", "ela", "-o", str(out), "-q"]
    assert main(base) == 0
    tables = sorted(p.name for p in (out).iterdir() if p.is_file())
    assert tables == ["mine.ela.per_image.csv", "mine.ela.summary.csv", "mine.ela.summary.json"], tables
    capsys.readouterr()

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("trufor_lab.cli.eval.evaluate", interrupted)
    assert main(base) == 130
    assert not [p for p in out.iterdir() if p.is_file()]  # the old tables are gone
    assert (out / "ela" / "mine" / "a.png.npz").is_file()  # the outputs stay: the next run reuses them
    monkeypatch.undo()
    assert main(base) == 0 and (out / "mine.ela.summary.json").is_file()


def _png_header_only(path, w, h):
    """A PNG whose header claims w x h pixels (a decompression bomb: the data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )
    return path


def test_a_decompression_bomb_image_or_mask_fails_alone(tmp_path, capsys):
    """A header claiming 60000 x 60000 pixels, as an image or as a mask, ended the whole eval
    with PIL's DecompressionBombError traceback."""
    imgs, masks = tmp_path / "imgs", tmp_path / "masks"
    _noise(imgs / "a.png", 1)
    _box(masks / "a.png")
    _noise(imgs / "b.png", 2)
    _box(masks / "b.png")
    _png_header_only(imgs / "big.png", 60000, 60000)
    _png_header_only(masks / "b.png", 60000, 60000)  # b's mask replaced by a bomb
    (imgs / "bad\nname.png").write_bytes(b"garbage")  # its line named it twice (once with the newline as a space)
    rc = main(
        [
            "eval",
            "mine",
            "--images",
            str(imgs),
            "--masks",
            str(masks),
            "--method",
            "ela",
            "-o",
            str(tmp_path / "o"),
            "-q",
        ]
    )
    cap = capsys.readouterr()
    assert rc == 1, cap.err
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 3 and sum("3600000000 pixels is more than max_pixels" in ln for ln in errors) == 2, errors
    assert any("big.png" in ln for ln in errors) and any("masks/b.png" in ln for ln in errors), errors
    (bad,) = [ln for ln in errors if "name.png" in ln]
    assert bad.count("name.png") == 1, bad
    rows = _rows(tmp_path / "o")
    assert set(rows) == {"a.png", "b.png", "big.png", "bad\nname.png"} and rows["a.png"]["error"] == ""


def test_an_earlier_versions_not_applicable_output_is_not_reused(tmp_path, capsys):
    """Outputs written before a not-applicable image stopped being scored hold an empty map
    (score 0, recorded as 'not applicable: score 0'): reused as they were, they kept scoring.
    Those versions recorded no numerics version nor digest: recomputed as an earlier version's."""
    from trufor_lab.inference.stored import ARRAYS_SHA256_KEY, NUMERICS_KEY, SUMMARY_KEY

    d = tmp_path / "imgs"
    _noise(d / "a.png", 1)
    out = tmp_path / "o"
    argv = ["eval", "mine", "--images", str(d), "--method", "ela", "-o", str(out), "-q"]
    assert main(argv) == 0
    (npz,) = (out / "ela").rglob("a.png.npz")
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[SUMMARY_KEY] = np.str_(str(arrays[SUMMARY_KEY]) + " [not applicable: score 0]")
    arrays["map"], arrays["score"] = np.zeros_like(arrays["map"]), np.float64(0.0)  # what those versions wrote
    np.savez(npz, **{k: v for k, v in arrays.items() if k not in (ARRAYS_SHA256_KEY, NUMERICS_KEY)})
    capsys.readouterr()
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "1 computed, 0 reused" in cap.out and "computed by an earlier trufor_lab" in cap.err, (cap.out, cap.err)


def test_an_eval_whose_weights_do_not_load_leaves_the_last_runs_tables(tmp_path, capsys):
    """A rerun with weights that cannot evaluate (Noiseprint++ alone) exited 2 having deleted the
    previous run's per-image CSV and summaries: a run that does nothing now leaves them."""
    from pathlib import Path

    d = tmp_path / "imgs"
    _noise(d / "a.png", 1)
    out = tmp_path / "o"
    base = ["eval", "mine", "--images", str(d), "-o", str(out), "-q"]
    assert main(base) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert sorted(before) == ["mine.per_image.csv", "mine.summary.csv", "mine.summary.json"]
    capsys.readouterr()
    noiseprint_only = Path(__file__).resolve().parents[1] / "weights" / "noiseprint++.th"
    assert main([*base, "--overwrite", "--weights", str(noiseprint_only)]) == 2
    assert "error:" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing hidden left either


def test_eval_counts_masks_left_with_one_class_and_gives_no_balanced_accuracy_of_one_class(tmp_path, capsys):
    """A fake whose mask reads all forged scores F1 1 whatever the map (and one with no forged
    pixel left after the erosion 0): each entered the mean unsaid. And a fakes-only folder's
    summary.json held a balanced accuracy that its own line refuses to give."""
    from pathlib import Path

    d, m = tmp_path / "images", tmp_path / "masks"
    for i, name in enumerate(("a", "b", "c")):
        _noise(d / f"{name}.png", i)
    _box(m / "a.png")
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(m / "b.png")  # all forged
    tiny = np.zeros((48, 48), np.uint8)
    tiny[20:26, 20:26] = 255  # 6 px: nothing left after the 15x15 erosion
    Image.fromarray(tiny).save(m / "c.png")
    out = tmp_path / "o"
    assert main(["eval", "mine", "--images", str(d), "--masks", str(m), "--method", "ela", "-o", str(out), "-q"]) == 0
    line = capsys.readouterr().out
    assert "2 mask(s) with no forged pixel after the official erosion, or no pristine one" in line, line
    s = json.loads((out / "mine.ela.summary.json").read_text())["mine"]
    assert s["n_mask_one_class"] == 2 and s["n_fake"] == 3 and s["n_real"] == 0
    assert s["balanced_accuracy"] is None and s["tpr"] is not None
    rows = {Path(r["image_path"]).stem: r for r in _rows(out).values()}
    assert (float(rows["b"]["f1_best"]), float(rows["c"]["f1_best"])) == (1.0, 0.0)  # the official numbers, kept
