"""The command line as a batch meets it: runs sharing an output folder, interruptions."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trufor_lab.cli import analyze as cli_analyze
from trufor_lab.cli import main
from trufor_lab.common.files import ChangedMeanwhile, atomic_write_bytes, atomic_write, file_state


def _img(path: Path, seed=0, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _another_run_writes(monkeypatch, out: Path, data: bytes, module=cli_analyze, name: str = "analyze") -> None:
    """While this run analyses (``module.name``: analyze's, eval's, distributed's predict), another
    run writes ``data`` as its output ``out``."""
    real = getattr(module, name)

    def meanwhile(*args, **kwargs):
        result = real(*args, **kwargs)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return result

    monkeypatch.setattr(module, name, meanwhile)


def test_an_output_another_run_wrote_meanwhile_is_not_replaced(tmp_path, with_weights, monkeypatch, capsys):
    """Two runs into one folder at once (float32 and float64): the second replaced every output
    the first had just reported with its own, and both said '6 analyzed, 0 failed'."""
    img = _img(tmp_path / "a.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "first"), "-q"]) == 0
    theirs = (tmp_path / "first" / "a.png.npz").read_bytes()  # a float32 output of this input
    out = tmp_path / "o"
    _another_run_writes(monkeypatch, out / "a.png.npz", theirs)
    capsys.readouterr()
    assert main(["analyze", str(img), "-o", str(out), "-q", "--precision", "float64"]) == 1
    cap = capsys.readouterr()
    assert "written meanwhile by another run (existing output computed as exact float32" in cap.err
    assert "not replaced" in cap.err and "0 analyzed, 0 skipped (output exists), 1 failed" in cap.out
    assert (out / "a.png.npz").read_bytes() == theirs
    assert sorted(os.listdir(out)) == ["a.png.npz"]  # no temporary file left


def test_an_output_another_run_wrote_alike_meanwhile_counts_as_done(tmp_path, with_weights, monkeypatch, capsys):
    img = _img(tmp_path / "a.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "first"), "-q"]) == 0
    theirs = (tmp_path / "first" / "a.png.npz").read_bytes()
    out = tmp_path / "o"
    _another_run_writes(monkeypatch, out / "a.png.npz", theirs)
    capsys.readouterr()
    assert main(["analyze", str(img), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert "a.png: output written meanwhile by another run" in cap.out
    assert "0 analyzed, 1 skipped (output exists), 0 failed" in cap.out
    assert (out / "a.png.npz").read_bytes() == theirs


def test_a_stale_output_another_run_rewrote_meanwhile_is_not_replaced(tmp_path, with_weights, monkeypatch, capsys):
    """An output this run recomputes (made in float32, asked in float64) that another float32
    run wrote again meanwhile: the other run's stays."""
    img = _img(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    theirs = (out / "a.png.npz").read_bytes() + b""  # the same bytes, written anew: a new file
    _another_run_writes(monkeypatch, out / "a.png.npz", theirs)
    os.utime(out / "a.png.npz", ns=(1, 1))
    capsys.readouterr()
    assert main(["analyze", str(img), "-o", str(out), "-q", "--precision", "float64"]) == 1
    assert "written meanwhile by another run" in capsys.readouterr().err
    assert str(np.load(out / "a.png.npz")["trufor_lab_computed"]) == "exact float32"


def test_atomic_write_with_expect_never_replaces_a_file_written_since(tmp_path):
    p = tmp_path / "x.bin"
    seen = file_state(p)
    assert seen is None

    def late(f):  # another process puts its file there while this one writes
        p.write_bytes(b"theirs")
        f.write(b"mine")

    with pytest.raises(ChangedMeanwhile):
        atomic_write(p, late, expect=seen)
    assert p.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["x.bin"]
    seen = file_state(p)
    atomic_write_bytes(tmp_path / "y", b"")  # the default replaces whatever is there
    with pytest.raises(ChangedMeanwhile):
        atomic_write(p, lambda f: (p.write_bytes(b"again"), f.write(b"mine")), expect=seen)
    assert p.read_bytes() == b"again"
    atomic_write(p, lambda f: f.write(b"mine"), expect=file_state(p))
    assert p.read_bytes() == b"mine" and sorted(os.listdir(tmp_path)) == ["x.bin", "y"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_batch_says_what_it_did_and_a_rerun_goes_on(tmp_path, with_weights, monkeypatch, capsys, sig):
    """Ctrl-C or `kill` in the middle of a batch said only 'error: interrupted': not how many
    outputs were written, nor that a rerun goes on from there; no summary line on stdout."""
    import signal

    for k in range(3):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    out = tmp_path / "o"
    real = cli_analyze.analyze
    calls = []

    def interrupted_at_the_second(model, path):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), getattr(signal, sig))
        return real(model, path)

    monkeypatch.setattr(cli_analyze, "analyze", interrupted_at_the_second)
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 130
    cap = capsys.readouterr()
    assert (
        cap.out.strip().splitlines()[-1]
        == "1 analyzed, 0 skipped (output exists), 0 failed; interrupted: 2 not analyzed"
    )
    last = cap.err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted;") and "run the same command again to go on" in last
    assert sorted(os.listdir(out)) == ["0.png.npz"]  # complete, no temporary file beside it
    assert float(np.load(out / "0.png.npz")["score"]) >= 0
    monkeypatch.setattr(cli_analyze, "analyze", real)
    assert main(["analyze", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    assert "2 analyzed, 1 skipped (output exists), 0 failed" in capsys.readouterr().out


def test_eval_and_distributed_never_replace_an_output_another_run_wrote_meanwhile(
    tmp_path, with_weights, monkeypatch, capsys
):
    """eval and distributed-analyze replaced another run's output just as analyze did."""
    from trufor_lab.cli import eval as cli_eval
    from trufor_lab.inference import distributed

    img = _img(tmp_path / "in" / "a.png")
    assert main(["analyze", str(img), "-o", str(tmp_path / "first"), "-q", "--precision", "float64"]) == 0
    theirs = (tmp_path / "first" / "a.png.npz").read_bytes()

    _another_run_writes(monkeypatch, tmp_path / "ev" / "set" / "a.png.npz", theirs, cli_eval)
    assert main(["eval", "set", "--images", str(tmp_path / "in"), "-o", str(tmp_path / "ev"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "written meanwhile by another process (existing output computed as exact float64" in err, err
    assert err.count("not replaced") == 1
    assert (tmp_path / "ev" / "set" / "a.png.npz").read_bytes() == theirs

    _another_run_writes(monkeypatch, tmp_path / "dist" / "a.png.npz", theirs, distributed, "predict_result")
    assert main(["distributed-analyze", str(img), "-o", str(tmp_path / "dist"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "written meanwhile by another process (existing output computed as exact float64" in err, err
    assert err.count("not replaced") == 1
    assert (tmp_path / "dist" / "a.png.npz").read_bytes() == theirs
    assert sorted(p.name for p in (tmp_path / "dist").iterdir() if p.suffix == ".tmp") == []


def test_eval_and_distributed_count_an_output_another_run_wrote_alike_meanwhile_as_done(
    tmp_path, with_weights, monkeypatch, capsys
):
    """Another run writing the very output this one would write (same input, weights, mode)
    while it computed: analyze counted it as skipped, eval and distributed-analyze as failed
    (exit 1)."""
    from trufor_lab.cli import eval as cli_eval
    from trufor_lab.inference import distributed

    img = _img(tmp_path / "in" / "a.png")
    ev_cmd = ["eval", "set", "--images", str(tmp_path / "in"), "-q"]
    assert main([*ev_cmd, "-o", str(tmp_path / "first")]) == 0
    theirs = (tmp_path / "first" / "set" / "a.png.npz").read_bytes()
    _another_run_writes(monkeypatch, tmp_path / "ev" / "set" / "a.png.npz", theirs, cli_eval)
    capsys.readouterr()
    assert main([*ev_cmd, "-o", str(tmp_path / "ev")]) == 0
    cap = capsys.readouterr()
    assert "error" not in cap.err and "1 images: 0 computed, 1 reused (output exists), 0 failed" in cap.out
    assert (tmp_path / "ev" / "set" / "a.png.npz").read_bytes() == theirs
    rows = [next(csv.DictReader(open(tmp_path / d / "set.per_image.csv"))) for d in ("first", "ev")]
    assert rows[0]["score"] == rows[1]["score"] and rows[1]["status"] == "ok"  # scored as theirs

    assert main(["distributed-analyze", str(img), "-o", str(tmp_path / "d1"), "-q"]) == 0
    theirs = (tmp_path / "d1" / "a.png.npz").read_bytes()
    _another_run_writes(monkeypatch, tmp_path / "dist" / "a.png.npz", theirs, distributed, "predict_result")
    capsys.readouterr()
    assert main(["distributed-analyze", str(img), "-o", str(tmp_path / "dist"), "-q"]) == 0
    cap = capsys.readouterr()
    assert "error" not in cap.err, cap.err
    assert (tmp_path / "dist" / "a.png.npz").read_bytes() == theirs


_HANGUP_SCRIPT = """
import os, signal, sys
from trufor_lab.cli import analyze as cli_analyze, main
real, calls = cli_analyze.analyze, []
def hangup_at_the_second(model, path):
    calls.append(path)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGHUP)
    return real(model, path)
cli_analyze.analyze = hangup_at_the_second
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGHUP"), reason="no SIGHUP here")
def test_a_batch_whose_terminal_closes_stops_as_interrupted(tmp_path, recipe_ckpt):
    """SIGHUP (terminal closed, ssh dropped) killed the batch outright: no summary, and a write
    in progress left its temporary file; `nohup` (SIGHUP ignored) still runs on."""
    import subprocess
    import sys

    for k in range(3):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    env = dict(os.environ, TRUFOR_WEIGHTS=str(recipe_ckpt), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _HANGUP_SCRIPT, "analyze", str(tmp_path / "in"), "-q"]
    # SIGHUP acted on as in a terminal, even where this test runs under nohup (which ignores it)
    as_in_a_terminal = [sys.executable, "-c", "import signal, subprocess, sys; "
                        "signal.signal(signal.SIGHUP, signal.SIG_DFL); sys.exit(subprocess.call(sys.argv[1:]))"]  # fmt: skip
    p = subprocess.run(
        [*as_in_a_terminal, *cmd, "-o", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 130, p.stderr
    assert p.stdout.strip().endswith("1 analyzed, 0 skipped (output exists), 0 failed; interrupted: 2 not analyzed")
    assert sorted(os.listdir(tmp_path / "o")) == ["0.png.npz"]
    ignored = [sys.executable, "-c", "import signal, subprocess, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
               "sys.exit(subprocess.call(sys.argv[1:]))", *cmd, "-o", str(tmp_path / "n")]  # fmt: skip
    p = subprocess.run(ignored, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "3 analyzed, 0 skipped (output exists), 0 failed" in p.stdout


def test_an_interrupted_eval_says_what_is_kept_and_a_rerun_reuses_it(tmp_path, with_weights, monkeypatch, capsys):
    """eval interrupted said only 'error: interrupted' (its tables were gone, its npz kept, unsaid)."""
    import signal

    from trufor_lab.cli import eval as cli_eval

    for k in range(3):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    base = ["eval", "set", "--images", str(tmp_path / "in"), "-o", str(tmp_path / "ev"), "-q"]
    real, calls = cli_eval.analyze, []

    def interrupted_at_the_second(model, path):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, path)

    monkeypatch.setattr(cli_eval, "analyze", interrupted_at_the_second)
    assert main(base) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; no tables written;") and "run the same command again" in last
    assert sorted(os.listdir(tmp_path / "ev")) == ["set"] and os.listdir(tmp_path / "ev" / "set") == ["0.png.npz"]
    monkeypatch.setattr(cli_eval, "analyze", real)
    assert main(base) == 0
    assert "3 images: 2 computed, 1 reused (output exists), 0 failed" in capsys.readouterr().out


def test_an_interrupted_distributed_run_says_what_is_kept(tmp_path, with_weights, monkeypatch, capsys):
    """distributed-analyze interrupted said only 'error: interrupted' (its summary JSON removed, unsaid)."""
    import signal

    from trufor_lab.inference import distributed

    for k in range(3):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    base = ["distributed-analyze", str(tmp_path / "in"), "-o", str(tmp_path / "d"), "-q"]
    real, calls = distributed.predict_result, []

    def interrupted_at_the_second(model, path, mode):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, path, mode)

    monkeypatch.setattr(distributed, "predict_result", interrupted_at_the_second)
    assert main(base) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; no ") and "run the same command again to go on" in last
    assert sorted(os.listdir(tmp_path / "d")) == ["0.png.npz"]
    monkeypatch.setattr(distributed, "predict_result", real)
    assert main(base) == 0
    assert "2 analyzed, 1 skipped (output exists), 0 failed" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_a_broken_link_where_an_output_goes_is_replaced_as_before(tmp_path, with_weights, capsys, link):
    """A dangling link where the output goes was refused as 'written meanwhile by another run'
    (in every rerun: the output could never be written), and a link to itself ended the batch
    with a traceback (Too many levels of symbolic links); both were replaced, as any file is."""
    img = _img(tmp_path / "a.png")
    out = tmp_path / "o"
    out.mkdir()
    (out / "a.png.npz").symlink_to(tmp_path / "gone.npz" if link == "dangling" else out / "a.png.npz")
    assert main(["analyze", str(img), "-o", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    assert "1 analyzed, 0 skipped (output exists), 0 failed" in cap.out, cap.err
    assert not (out / "a.png.npz").is_symlink() and float(np.load(out / "a.png.npz")["score"]) >= 0
    assert sorted(os.listdir(out)) == ["a.png.npz"]


def test_a_link_made_though_its_call_failed_is_the_output(tmp_path, monkeypatch):
    """NFS may make the link and still answer EEXIST (its reply lost, the call retried): the file
    there is the one written, not another process's (link(2): check whether the link got made)."""
    real = os.link

    def retried(src, dst):
        real(src, dst)
        raise FileExistsError(17, "File exists", dst)

    monkeypatch.setattr(os, "link", retried)
    p = tmp_path / "x.bin"
    atomic_write_bytes(tmp_path / "y", b"")
    atomic_write(p, lambda f: f.write(b"mine"), expect=file_state(p))
    assert p.read_bytes() == b"mine" and sorted(os.listdir(tmp_path)) == ["x.bin", "y"]


def test_an_interrupt_just_after_an_output_is_written_counts_it_once(tmp_path, with_weights, monkeypatch, capsys):
    """Ctrl-C between an image's output and the next image counted that image twice: '1 analyzed
    ...; interrupted: 3 not analyzed' for 3 images."""
    import signal

    from trufor_lab.inference.result import Result

    for k in range(3):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    real, calls = Result.summary, []

    def interrupted_once_written(self):
        calls.append(self)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self)

    monkeypatch.setattr(Result, "summary", interrupted_once_written)
    assert main(["analyze", str(tmp_path / "in"), "-o", str(tmp_path / "o")]) == 130
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "1 analyzed, 0 skipped (output exists), 0 failed; interrupted: 2 not analyzed"
    assert sorted(os.listdir(tmp_path / "o")) == ["0.png.npz"]


class _Terminal:
    """A terminal that is closed (SIGHUP) once ``closed`` is set: a write then fails with EIO."""

    def __init__(self, stream):
        self.stream, self.closed = stream, False

    def write(self, text):
        if self.closed:
            raise OSError(5, "Input/output error")
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


@pytest.mark.parametrize("which", ["stdout", "stderr"])
def test_a_batch_whose_terminal_is_gone_still_ends_as_interrupted(tmp_path, with_weights, monkeypatch, which):
    """After SIGHUP the terminal is gone: writing the summary line or the interrupted line to it
    fails (EIO), and that OSError replaced the interruption: a traceback and exit status 1, where
    the other stream (a log file: `> log`) was to get its line and the status was to be 130."""
    import signal
    import sys

    for k in range(3):
        _img(tmp_path / "in" / f"{k}.png", seed=k)
    terminal = _Terminal(getattr(sys, which))
    monkeypatch.setattr(sys, which, terminal)
    real, calls = cli_analyze.analyze, []

    def hangup_at_the_second(model, path):
        calls.append(path)
        if len(calls) == 2:
            terminal.closed = True
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, path)

    monkeypatch.setattr(cli_analyze, "analyze", hangup_at_the_second)
    assert main(["analyze", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "-q"]) == 130
    assert sorted(os.listdir(tmp_path / "o")) == ["0.png.npz"]


def test_an_output_written_meanwhile_is_said_in_words(tmp_path):
    """eval's and distributed-analyze's line read '[Errno 17] written meanwhile by another
    process: '/.../a.png.npz'' (an errno, the name quoted as Python writes it, not what happened to it)."""
    p = tmp_path / "a\x1b.npz"

    def late(f):
        p.write_bytes(b"theirs")
        f.write(b"mine")

    with pytest.raises(ChangedMeanwhile) as e:
        atomic_write(p, late, expect=None)
    assert str(e.value) == f"{tmp_path}/a\\x1b.npz: written meanwhile by another process; not replaced"


def test_a_forward_that_takes_minutes_is_said_before_it_starts(
    tmp_path, with_weights, recipe_model, monkeypatch, capsys
):
    """A 12-24 MP photo on a CPU: the progress bar sat at 0/1 for minutes, unexplained. An image
    whose forward will be memory-lean (simulated: less free memory than the plain forward's
    estimate) or larger than SLOW_ON_CPU_PIXELS on a CPU is named with its size, once, before its
    forward starts; -q says nothing; a small image nothing either."""
    import torch

    import trufor_lab.inference.predict as inf

    img = _img(tmp_path / "a.png")
    cmd = ["analyze", str(img), "-o", str(tmp_path / "o"), "--device", "cpu", "--overwrite"]
    assert main(cmd) == 0
    assert "several minutes" not in capsys.readouterr().err
    real = cli_analyze.analyze
    before = []

    def spy(model, path):
        before.append(capsys.readouterr().err)  # what was said before the forward
        return real(model, path)

    monkeypatch.setattr(cli_analyze, "analyze", spy)
    need = inf.plain_peak_bytes(recipe_model, torch.zeros(1, 3, 48, 56))
    with monkeypatch.context() as m:
        m.setattr(inf, "free_memory_bytes", lambda device: need // 2)  # the plain forward does not fit
        assert main(cmd) == 0
        after = capsys.readouterr()
        assert before[-1].count(f"{img}: 56x48, memory-lean forward: several minutes on a CPU\n") == 1, before
        assert "memory-lean" not in after.err and "1 analyzed" in after.out
        assert main([*cmd, "-q"]) == 0
        assert "memory-lean" not in before[-1] + capsys.readouterr().err
    monkeypatch.setattr(cli_analyze, "SLOW_ON_CPU_PIXELS", 56 * 48 - 1)
    assert main(cmd) == 0
    assert f"{img}: 56x48, 0.0 MP: several minutes on a CPU\n" in before[-1], before
    monkeypatch.setattr(cli_analyze, "SLOW_ON_CPU_PIXELS", 56 * 48)
    assert main(cmd) == 0
    assert "several minutes" not in before[-1] + capsys.readouterr().err
