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


@pytest.mark.parametrize("method", ["ela", "dq_aligned", "dq_nonaligned"])
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
    assert rows["**all**"].rstrip(" |").endswith("no (1 failed)"), rows["**all**"]

    # a run of some notebooks gets a block of its own: the full run's block stays
    capsys.readouterr()
    rc = main(["notebooks", "--dir", str(tmp_path), "--time", "--results", str(md), "--only", "01", "99"])
    assert rc == 0 and "--only 99: no notebook" in capsys.readouterr().err
    text = md.read_text()
    assert text.count("| 02_bad |") == 1 and text.count("| 01_ok |") == 2 and "(only 01 99)" in text
    assert "`python -m trufor_lab.notebooks --time --only 01 99`" in text


def test_runner_without_nbclient_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "NotebookClient", None)
    assert main(["notebooks", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: running notebooks needs nbclient") and len(err.splitlines()) == 1


@pytest.mark.parametrize("when", ["running", "kernel starting"])
def test_runner_stops_on_ctrl_c(tmp_path, when):
    """Ctrl-C stops the run (exit 130): the interrupted notebook is not recorded as a failure and
    the next one does not start (nbclient turned the interrupt into a notebook error, or, while
    the kernel started, into a CancelledError traceback)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    slow = "open('started', 'w').close()\nimport time\ntime.sleep(120)"  # runs in the notebook's folder
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
    )
    try:
        if when == "running":
            deadline = time.time() + 120
            while time.time() < deadline and not (tmp_path / "started").exists():
                time.sleep(0.2)
            time.sleep(1)
        else:
            seen = ""
            while "01_slow ..." not in seen:  # printed just before its kernel starts
                ch = proc.stdout.read(1)
                assert ch, (seen, proc.stderr.read())
                seen += ch
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "error: interrupted" in err and "02_next" not in out and not (tmp_path / "ran_02").exists()
    assert not md.exists() or "01_slow" not in md.read_text()
