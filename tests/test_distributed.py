"""Scale-out: two gloo ranks on 127.0.0.1 share a folder; each output is written once; resume skips."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trufor_lab.cli.distributed import run as cmd_distributed_analyze
from trufor_lab.inference.distributed import SUMMARY_FILE, shard, work_items


def test_shard_is_deterministic_disjoint_and_complete():
    items = [f"img{i:02d}" for i in (7, 3, 11, 0, 5)]
    shares = [shard(items, r, 3) for r in range(3)]
    assert shares == [shard(list(reversed(items)), r, 3) for r in range(3)]
    assert sorted(sum(shares, [])) == sorted(items)
    assert shares[0] == ["img00", "img07"]
    with pytest.raises(ValueError):
        shard(items, 3, 3)


def test_cli_subcommand_is_registered():
    from trufor_lab.cli import build_parser

    args = build_parser().parse_args(["distributed-analyze", "in", "-o", "out", "--mode", "fast"])
    assert args.func is cmd_distributed_analyze and args.mode == "fast"


@pytest.fixture()
def folder(tmp_path, tampered2) -> Path:
    """Five 64x64 images, one in a subfolder."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        crop = tampered2[20 * i : 20 * i + 64, 30 * i : 30 * i + 64]
        Image.fromarray(crop).save(src / ("sub" if i == 4 else ".") / f"im{i}.png")
    return src


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(folder: Path, out: Path, ckpt: Path) -> dict:
    env = {
        **os.environ,
        "TRUFOR_WEIGHTS": str(ckpt),
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "MASTER_ADDR": "127.0.0.1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "trufor_lab.cli.distributed",
        str(folder),
        "-o",
        str(out),
        "--device",
        "cpu",
        "-q",
    ]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert "skipped (output exists)" in p.stdout
    # the recipe checkpoint is custom, unverified: its numbers never go out bare
    assert "note: these results were made with custom weights (trufor_recipe.pth.tar)" in p.stderr
    return json.loads((out / SUMMARY_FILE).read_text())


def test_two_ranks_write_every_output_once_and_resume(folder, tmp_path, recipe_ckpt):
    out = tmp_path / "out"
    names, problems = work_items([folder])
    names = [n for n, _ in names]
    assert not problems and len(names) == 5 and "sub/im4.png" in names

    s = _torchrun(folder, out, recipe_ckpt)
    assert s["world_size"] == 2 and s["written"] == 5 and s["failed"] == 0 and not s["errors"]
    assert not s["duplicates"]
    per_rank = [r["written"] for r in s["ranks"]]
    assert per_rank == [shard(names, 0, 2), shard(names, 1, 2)]  # each rank its own share
    assert sorted(per_rank[0] + per_rank[1]) == sorted(names)
    for n in names:
        z = np.load(out / (n + ".npz"))
        assert z["map"].shape == (64, 64) and z["conf"].shape == (64, 64) and tuple(z["imgsize"]) == (64, 64)
        assert 0 <= float(z["score"]) <= 1
    assert not list(out.rglob("*.tmp"))

    # resume: nothing is recomputed except the output that went missing
    mtimes = {n: (out / (n + ".npz")).stat().st_mtime_ns for n in names}
    (out / "im2.png.npz").unlink()
    s2 = _torchrun(folder, out, recipe_ckpt)
    assert s2["written"] == 1 and s2["skipped"] == 4
    assert [r["written"] for r in s2["ranks"]] == [["im2.png"], []]  # sorted: im0 im1 im2 im3 sub/im4
    for n in names:
        if n != "im2.png":
            assert (out / (n + ".npz")).stat().st_mtime_ns == mtimes[n]


def test_escaping_ids_are_refused_with_one_line_and_the_rest_goes_on(tmp_path, tampered2, recipe_ckpt, monkeypatch):
    from types import SimpleNamespace

    from trufor_lab.inference.distributed import distributed_analyze

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    img = tmp_path / "im.png"
    Image.fromarray(tampered2[:64, :64]).save(img)
    other = tmp_path / "im2.png"
    Image.fromarray(tampered2[64:128, :64]).save(other)
    samples = [
        SimpleNamespace(id="../evil", image_path=img),
        SimpleNamespace(id=str(tmp_path / "abs"), image_path=img),
        SimpleNamespace(id="good/one", image_path=img),
    ]
    out = tmp_path / "out"
    s = distributed_analyze(samples, out, device="cpu")
    assert s["written"] == 1 and (out / "good" / "one.npz").is_file()
    assert len(s["problems"]) == 2 and all(len(p.splitlines()) == 1 for p in s["problems"])
    assert any("'../evil'" in p for p in s["problems"]) and any("abs" in p for p in s["problems"])
    assert not (tmp_path / "evil.npz").exists() and not (tmp_path / "abs.npz").exists()
    # reuse: the same input and weights are skipped; another file under the same id is refused
    # (its output was replaced, unsaid), unless overwrite; the same file edited is recomputed
    s = distributed_analyze(samples[2:], out, device="cpu")
    assert s["skipped"] == 1 and s["written"] == 0
    s = distributed_analyze([SimpleNamespace(id="good/one", image_path=other)], out, device="cpu")
    assert s["written"] == 0 and s["failed"] == 1
    assert "holds the analysis of another input file" in str(s["ranks"][0]["failed"])
    Image.fromarray(tampered2[64:128, 64:128]).save(img)
    s = distributed_analyze(samples[2:], out, device="cpu")
    assert s["written"] == 1 and s["recomputed"] == [
        ["good/one", "existing output was made from a different input file"]
    ]
    s = distributed_analyze([SimpleNamespace(id="good/one", image_path=other)], out, device="cpu", overwrite=True)
    assert s["written"] == 1 and s["skipped"] == 0
    # another mode: recomputed (the fast outputs were reused by an exact run before)
    from trufor_lab.model.winograd import nnpack_available

    fast_cpu = "fast[encoder float32, noiseprint winograd]" if nnpack_available() else "fast[encoder float32]"
    s = distributed_analyze([SimpleNamespace(id="good/one", image_path=other)], out, device="cpu", mode="fast")
    assert s["written"] == 1 and s["recomputed"] == [
        ["good/one", f"existing output computed as exact float32 (now {fast_cpu} float32)"]
    ]
    assert str(np.load(out / "good" / "one.npz")["trufor_lab_computed"]) == f"{fast_cpu} float32"
    # a fast mode with other settings is another computation: not the preset's output
    from trufor_lab.inference.predict import InferenceMode, mode_label

    f32 = InferenceMode.fast(amp_dtype=None)
    assert mode_label("fast") == "fast" and mode_label(InferenceMode.fast()) == "fast"
    assert mode_label(f32) == "fast(amp_dtype=None)" and mode_label(InferenceMode.exact(lean=True)) == "exact"
    from trufor_lab.model.lean import LeanConfig

    assert mode_label(InferenceMode.exact(chunks=LeanConfig(budget_bytes=2**20, rows=3))) == "exact"  # pieces only
    assert mode_label(InferenceMode.exact(chunks=LeanConfig(onednn=False))) == "exact(chunks.onednn=False)"
    # with the device, what the encoder ran in: a GPU's bfloat16 "fast" output is not a CPU's
    import trufor_lab.inference.modes as modes_mod

    for native, want in ((True, "fast[encoder bfloat16]"), (False, "fast[encoder float32]")):
        monkeypatch.setattr(modes_mod, "cuda_bf16_native", lambda dev, native=native: native)
        assert mode_label("fast", "cuda:0") == want
    # on a CPU, whether the Noiseprint++ convolutions were Winograd's (NNPACK) or oneDNN's
    import trufor_lab.model.winograd as winograd_mod

    real = winograd_mod.nnpack_available
    for nnpack, ran in ((True, ", noiseprint winograd"), (False, "")):
        monkeypatch.setattr(winograd_mod, "nnpack_available", lambda nnpack=nnpack: nnpack)
        assert mode_label("fast", "cpu") == f"fast[encoder float32{ran}]" and mode_label("exact", "cpu") == "exact"
        assert mode_label(InferenceMode.fast(noiseprint_winograd=False), "cpu") == (
            "fast(noiseprint_winograd=False)[encoder float32]"
        )
        assert mode_label(InferenceMode.fast(amp_on_cpu=True), "cpu") == f"fast(amp_on_cpu=True)[encoder bfloat16{ran}]"
    monkeypatch.setattr(winograd_mod, "nnpack_available", real)
    s = distributed_analyze([SimpleNamespace(id="good/one", image_path=other)], out, device="cpu", mode=f32)
    f32_cpu = "fast(amp_dtype=None)" + ("[noiseprint winograd]" if nnpack_available() else "")
    assert s["written"] == 1 and f"now {f32_cpu} float32" in s["recomputed"][0][1]
    # a GPU's bfloat16 output under the same mode name is recomputed, not reused, on the CPU
    np.savez(
        out / "good" / "one.npz",
        **{**np.load(out / "good" / "one.npz"), "trufor_lab_computed": "fast[encoder bfloat16] float32"},
    )
    s = distributed_analyze([SimpleNamespace(id="good/one", image_path=other)], out, device="cpu", mode="fast")
    assert s["written"] == 1 and "computed as fast[encoder bfloat16] float32" in s["recomputed"][0][1]


def test_someone_elses_npz_is_not_overwritten_and_a_failed_rank_counts_its_images(tmp_path, tampered2, recipe_ckpt):
    """A same-named npz without a map is another program's data: kept, reported as failed (it was
    overwritten). Weights that do not load: every image counts as failed, not "0 failed"."""
    from types import SimpleNamespace

    from trufor_lab.inference.distributed import distributed_analyze

    img = tmp_path / "im.png"
    Image.fromarray(tampered2[:64, :64]).save(img)
    out = tmp_path / "out"
    out.mkdir()
    np.savez(out / "mine.npz", labels=np.arange(3))
    items = [SimpleNamespace(id="mine", image_path=img), SimpleNamespace(id="other", image_path=img)]
    s = distributed_analyze(items, out, device="cpu", weights=recipe_ckpt)
    assert s["written"] == 1 and s["failed"] == 1
    assert np.load(out / "mine.npz").files == ["labels"]
    (failure,) = [f for r in s["ranks"] for f in r["failed"]]
    assert failure[0] == "mine" and "not an analysis output" in failure[1]
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    s = distributed_analyze(
        items[1:] + [SimpleNamespace(id="third", image_path=img)], out / "b", device="cpu", weights=bogus
    )
    assert s["failed"] == 2 and s["written"] == 0 and s["errors"], s


def test_the_totals_line_counts_unreadable_inputs_as_failed(tmp_path, tampered2, recipe_ckpt, monkeypatch, capsys):
    """An input that could not be read printed an error line but the totals said "0 failed"
    (``trufor-lab analyze`` counts it)."""
    from trufor_lab.cli.distributed import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(tampered2[:64, :64]).save(src / "good.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    missing = tmp_path / "missing.png"  # an input problem, found before any rank starts
    assert main([str(src), str(missing), "-o", str(tmp_path / "out"), "--device", "cpu", "-q"]) == 1
    cap = capsys.readouterr()
    assert "broken.png" in cap.err and "missing.png" in cap.err
    assert "1 analyzed, 0 skipped (output exists), 2 failed" in cap.out, (cap.out, cap.err)
    (broken,) = [ln for ln in cap.err.splitlines() if "broken.png" in ln]
    assert broken.count("broken.png") == 1, broken  # 'error: in/broken.png: in/broken.png: ...'
    # INPUT and --dataset together: the list won and INPUT was dropped, unsaid, exit 0
    assert main([str(src), "--dataset", str(src), "--root", str(src), "-o", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err.strip() == "error: give INPUT paths or --dataset, not both"


def test_an_existing_file_as_output_is_refused_before_any_image_is_analyzed(tmp_path, tampered2, monkeypatch, capsys):
    """'-o results.txt' (an existing file) ran the model on every image, then failed with
    '[Errno 17] File exists'; `analyze` says so up front."""
    from trufor_lab.cli.distributed import main

    def load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trufor_lab.inference.distributed.load", load)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(tampered2[:64, :64]).save(src / "good.png")
    taken = tmp_path / "results.txt"
    taken.write_text("someone's notes")
    for out, why in ((taken, "is an existing file, not a folder"), (taken / "sub", f"{taken} is a file, not a folder")):
        assert main([str(src), "-o", str(out), "--device", "cpu", "-q"]) == 2
        cap = capsys.readouterr()
        (line,) = cap.err.strip().splitlines()
        assert line.startswith(f"error: --output {out}") and why in line, line
    assert taken.read_text() == "someone's notes"


def test_a_summary_that_cannot_be_written_leaves_the_image_lines_and_counts(
    tmp_path, tampered2, recipe_ckpt, monkeypatch, capsys
):
    """Writing distributed_summary.json failed after every image was analysed: one line of
    '[Errno ...]', no per-image lines, no counts."""
    import trufor_lab.inference.distributed as D
    from trufor_lab.cli.distributed import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(tampered2[:64, :64]).save(src / "good.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

    def refuse(path, _summary):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(D, "_write_json", refuse)
    assert main([str(src), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 1
    cap = capsys.readouterr()
    assert "broken.png" in cap.err and "summary not written (Permission denied)" in cap.err
    assert "1 analyzed, 0 skipped (output exists), 1 failed on 1 rank(s); summary not written" in cap.out
    assert (tmp_path / "out" / "good.png.npz").is_file()


def test_an_interrupted_run_leaves_no_summary_of_the_run_before(tmp_path, tampered2, recipe_ckpt, monkeypatch):
    """distributed_summary.json of a complete run stayed after a later run was interrupted,
    its counts contradicting the outputs beside it."""
    import trufor_lab.inference.distributed as D

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(tampered2[:64, :64]).save(src / "good.png")
    out = tmp_path / "out"
    D.distributed_analyze([src / "good.png"], out, device="cpu", weights=recipe_ckpt)
    assert (out / D.SUMMARY_FILE).is_file()

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(D, "_run_share", interrupted)
    with pytest.raises(KeyboardInterrupt):
        D.distributed_analyze([src / "good.png"], out, device="cpu", weights=recipe_ckpt)
    assert not (out / D.SUMMARY_FILE).exists() and (out / "good.png.npz").is_file()


_RANK_SCRIPT = """
import os, sys
from pathlib import Path
import trufor_lab.inference.distributed as D
if os.environ["RANK"] == "1":  # this rank's own listing differs (a file arrived between the two listings)
    real = D.work_items
    def late(inputs, **kw):
        items, problems = real(inputs, **kw)
        return sorted(items + [("im0a.png", Path(os.environ["EXTRA_IMAGE"]))]), problems
    D.work_items = late
from trufor_lab.cli.distributed import main
sys.exit(main())
"""


def _by_hand(args: list[str], env: dict[str, str], ranks=(0, 1), script: str | None = None) -> list[tuple]:
    """Ranks started by hand (as srun or a shell loop would): ``(exit status, stdout, stderr)`` each."""
    base = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    base.update({"WORLD_SIZE": "2", "MASTER_PORT": str(_free_port()), **env})
    base.pop("TORCHELASTIC_RUN_ID", None)
    script = script or "import sys\nfrom trufor_lab.cli.distributed import main\nsys.exit(main())"
    cmd = [sys.executable, "-c", script]  # not -m: its runpy warning is a line on stderr
    procs = [
        subprocess.Popen(
            cmd + args,
            env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ranks
    ]
    done = [p.communicate(timeout=240) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, done)]


def test_the_ranks_share_rank_0s_list_and_only_rank_0_exits_1_for_bad_images(tmp_path, tampered2, recipe_ckpt):
    """Each rank listed the inputs itself: a file arriving between two listings shifted the shares,
    so images were analysed twice or never, and the summary said "0 failed". And a bad image
    made its own rank exit 1 too (torchrun then blamed a rank with a long traceback)."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        Image.fromarray(tampered2[16 * i : 16 * i + 48, :48]).save(src / f"im{i}.png")
    (src / "im0b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # rank 1's, in the one list
    extra = tmp_path / "late.png"
    Image.fromarray(tampered2[:48, 48:96]).save(extra)
    out = tmp_path / "out"
    env = {"TRUFOR_WEIGHTS": str(recipe_ckpt), "EXTRA_IMAGE": str(extra)}
    (rc0, out0, err0), (rc1, _, err1) = _by_hand(
        [str(src), "-o", str(out), "--device", "cpu", "-q"], env, script=_RANK_SCRIPT
    )
    s = json.loads((out / SUMMARY_FILE).read_text())
    written = [n for r in s["ranks"] for n in r["written"]]
    assert sorted(written) == [f"im{i}.png" for i in range(4)], (written, err0, err1)
    assert s["written"] == 4 and s["failed"] == 1 and not s["duplicates"] and not (out / "im0a.png.npz").exists()
    assert s["ranks"][1]["failed"][0][0] == "im0b_broken.png"
    assert "4 analyzed, 0 skipped (output exists), 1 failed on 2 rank(s)" in out0
    assert (rc0, rc1) == (1, 0), (err0, err1)
    assert err0.count("im0b_broken.png") == 1 and "Traceback" not in err0 + err1


def test_a_missing_rank_is_named_after_the_timeout(tmp_path, tampered2):
    """Started by hand with a peer missing, a rank waited 30 minutes without a word."""
    Image.fromarray(tampered2[:48, :48]).save(tmp_path / "im.png")
    args = [str(tmp_path / "im.png"), "-o", str(tmp_path / "out"), "--device", "cpu", "--timeout", "2"]
    for rank, missing in ((0, "rank(s) 1 did not join"), (1, "rank 0 did not answer")):
        ((rc, out, err),) = _by_hand(args, {}, ranks=(rank,))
        assert rc == 2 and not out, (out, err)
        waiting, said = err.strip().splitlines()  # said at once, then one line: no traceback
        assert waiting.startswith(f"note: rank {rank} of 2: waiting up to 2 s for ")
        assert said.startswith(f"error: rank {rank} of 2: ") and missing in said and "within 2 s" in said
    assert not (tmp_path / "out" / "im.png.npz").exists()


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"RANK": "1"}, "RANK=1 is set but WORLD_SIZE is not"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set but RANK is not"),
        ({"LOCAL_RANK": ""}, "LOCAL_RANK='' is not a whole number"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is outside WORLD_SIZE=2"),
        ({"RANK": "0", "WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not a whole number"),
    ],
)
def test_a_bad_launch_environment_is_one_line_before_any_work(tmp_path, tampered2, monkeypatch, capsys, env, said):
    """RANK=1 alone ran, said "ValueError: rank 1 outside a world of 1", then "0 failed" (the
    image was neither analysed nor counted); LOCAL_RANK= said "invalid literal for int()"."""
    from trufor_lab.cli.distributed import main

    def load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trufor_lab.inference.distributed.load", load)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    Image.fromarray(tampered2[:48, :48]).save(tmp_path / "im.png")
    assert main([str(tmp_path / "im.png"), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
    cap = capsys.readouterr()
    assert (
        cap.err.strip()
        == f"error: {said}"
        + (" (ranks are 0 to 1)" if "outside" in said else "")
        + ("; set both (torchrun does)" if "set but" in said else "")
        and not cap.out
    )


def test_failure_lines_name_the_file_once_and_keep_the_reason(tmp_path, recipe_ckpt, monkeypatch, capsys):
    """A name with a newline was said twice ('N/a\\nb.png: N/a\\nb.png: not an image file'): the
    escaped name in the error did not match the name; a long path was cut before the reason."""
    from trufor_lab.cli.distributed import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    src = tmp_path / "in"
    deep = src / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    (src / "a\nb.png").write_bytes(b"no image here")
    (deep / "long.png").write_bytes(b"no image here")
    assert main([str(src), "-o", str(tmp_path / "out"), "--device", "cpu", "-q"]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2, lines
    odd, long = sorted(lines, key=len)
    assert odd.count("a\\nb.png") == 1 and long.count("long.png") == 1, lines
    reason = odd.split("a\\nb.png: ", 1)[1]
    assert reason and long.endswith(reason), lines  # the same reason, whole, after the long name


def test_an_output_blocked_by_a_file_is_refused_before_the_analysis(tmp_path, tampered2, monkeypatch, capsys):
    """'OUT/sub' a file: the model analysed sub/im.png, then the write failed with '[Errno 17]
    File exists'; `analyze` refuses it first. A refusal said '(overwrite to replace)' where the
    option is --overwrite. Files that are not images were left out unsaid."""
    from trufor_lab.cli.distributed import main

    def load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("trufor_lab.inference.distributed.load", load)
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    out.mkdir()
    Image.fromarray(tampered2[:48, :48]).save(src / "sub" / "im.png")
    Image.fromarray(tampered2[:48, :48]).save(src / "mine.png")
    (src / "notes.txt").write_text("not an image")
    (out / "sub").write_text("in the way")
    np.savez(out / "mine.png.npz", labels=np.arange(3))
    assert main([str(src), "-o", str(out), "--device", "cpu", "-q"]) == 1
    cap = capsys.readouterr()
    assert (
        f"error: {out / 'sub' / 'im.png.npz'}: cannot write output ({out / 'sub'} is a file, not a folder)" in cap.err
    )
    assert "not overwritten (--overwrite to replace)" in cap.err
    assert cap.out.strip().endswith("; 1 other file left out (notes.txt): not recognised as images"), cap.out
    assert "0 analyzed, 0 skipped (output exists), 2 failed" in cap.out


def test_a_benchmark_with_its_lists_elsewhere_is_analyzed_with_list_dir(tmp_path, recipe_ckpt, monkeypatch, capsys):
    """distributed-analyze --dataset told the user to pass '--list-dir', an option it did not have."""
    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    root, lists = tmp_path / "coverage", tmp_path / "lists"
    (root / "image").mkdir(parents=True)
    lists.mkdir()
    for name in ("1t.tif", "1.tif"):
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8)).save(root / "image" / name)
    (lists / "coverage_fake.txt").write_text("image/1t.tif,None\n")
    (lists / "coverage_real.txt").write_text("image/1.tif\n")
    base = ["distributed-analyze", "--dataset", "coverage", "--root", str(root), "-o", str(tmp_path / "out"), "-q"]
    assert main(base) == 2
    assert "--list-dir on the command line" in capsys.readouterr().err
    assert main([*base, "--list-dir", str(lists)]) == 0
    assert len(list((tmp_path / "out").rglob("*.npz"))) == 2
    assert main(["distributed-analyze", "x.png", "-o", str(tmp_path / "o2"), "--list-dir", str(lists)]) == 2
    assert "--list-dir goes with --dataset" in capsys.readouterr().err
