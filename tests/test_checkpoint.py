"""Checkpoints are untrusted input: strict loading, refusal of code, finding and downloading."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import trufor_lab as tl
from trufor_lab.inference import weights as W
from trufor_lab.model import CheckpointError, Noiseprint, TruFor, extract_state_dict, read_checkpoint, strict_load


def test_strict_load_lists_missing_unexpected_and_shape_errors(recipe_state):
    bad = dict(recipe_state)
    del bad["backbone.norm1.weight"]
    bad["backbone.extra_thing.weight"] = torch.zeros(3)
    bad["decode_head.linear_pred.weight"] = torch.zeros(3, 512, 1, 1)
    model = TruFor()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        strict_load(model, bad, "bad.pth")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("bad.pth:")
    assert "1 missing [backbone.norm1.weight]" in msg
    assert "1 unexpected [backbone.extra_thing.weight]" in msg
    assert "decode_head.linear_pred.weight: checkpoint (3, 512, 1, 1) vs model (2, 512, 1, 1)" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "nothing loaded on error"


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_is_refused_and_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Evil(str(marker))}, ckpt)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(ckpt)
    assert "refused" in str(e.value) and str(ckpt) in str(e.value) and "\n" not in str(e.value)
    assert "run or import code" in str(e.value)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        tl.load(ckpt)
    assert not marker.exists()
    # a plain pickle.dump of protocol 0 (printable) or 1: never unpickled, and called a pickle
    # (protocol 0 was "a text file ... a download that returned a web page?")
    for proto in (0, 1):
        old = tmp_path / f"proto{proto}.pth"
        old.write_bytes(pickle.dumps({"state_dict": {}, "payload": _Evil(str(marker))}, protocol=proto))
        with pytest.raises(CheckpointError, match=rf"proto{proto}\.pth: a pickle of protocol 0 or 1 .*not unpickled"):
            tl.load(old)
    assert not marker.exists()


def test_a_pytorch_with_an_unsafe_weights_only_loader_reads_no_checkpoint(shared_dir, monkeypatch):
    """PyTorch 2.5.1 and earlier could run code from a crafted file despite weights_only=True
    (CVE-2025-32434): no checkpoint is read there, whatever it holds; 2.6 on is read."""
    from trufor_lab.model import checkpoint as C

    path = shared_dir / "weights" / "noiseprint++.th"
    assert C._torch_version("2.5.1+cu121") == (2, 5) and C._torch_version("2.10.0a0") == (2, 10)
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu121")
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "CVE-2025-32434" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    assert "network" in read_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all", b"PK\x03\x04garbage", b"garbage" * 10, bytes(range(256)) * 4, b"hello world"],
)
def test_garbage_checkpoint_gives_one_line_error(tmp_path, content):
    """Random bytes are called what they are, not code the file asks to run."""
    p = tmp_path / "junk.pth"
    p.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    assert "run or import code" not in str(e.value), str(e.value)


def test_a_checkpoint_config_is_checked_before_anything_is_built(tmp_path):
    """A checkpoint's own 'config' was trusted: unknown entries or zero heads gave tracebacks,
    and a 2 KB file claiming 1024-wide stages made the loader build a 3.7 GB network before
    comparing it with the weights. Now: one line, checked on the meta device first."""
    import resource

    from trufor_lab.inference.load import load_trufor
    from trufor_lab.model import TruForConfig

    small = TruForConfig(embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), decoder_embed_dim=16)
    sd = TruFor(small).state_dict()
    big = dict(small.to_dict(), embed_dims=[1024] * 4, num_heads=[1] * 4, depths=[8] * 4)
    wide = dict(small.to_dict(), decoder_embed_dim=4096)  # same encoder, a decoder the weights lack
    per_stage = ("embed_dims", "depths", "num_heads", "mlp_ratios", "sr_ratios", "patch_sizes", "strides")
    cases = {
        "unknown": (dict(small.to_dict(), bogus=1), "unknown entries: bogus"),
        "heads": (dict(small.to_dict(), num_heads=[0] * 4), "outside 1..64"),
        "text": (dict(small.to_dict(), depths="abcd"), "list of integers"),
        # a float in a list of integers passed, then failed inside torch.empty (a TypeError traceback)
        "float_ratio": (dict(small.to_dict(), mlp_ratios=[4.5, 4, 4, 4]), "mlp_ratios must be a list of integers"),
        "float_dims": (dict(small.to_dict(), embed_dims=[8.0, 16, 24, 32]), "embed_dims must be a list of integers"),
        # loaded, then every image failed as "not finite", blaming the input
        "mean2": (dict(small.to_dict(), rgb_mean=[0.5, 0.5]), r"rgb_mean must have 3 entries"),
        "std0": (dict(small.to_dict(), rgb_std=[0.0, 0.0, 0.0]), r"standard deviations of RGB/255 lie in \(0, 1\]"),
        "eps_nan": (dict(small.to_dict(), decoder_bn_eps=float("nan")), "decoder_bn_eps must be finite"),
        "eps_neg": (dict(small.to_dict(), decoder_bn_eps=-1.0), r"eps lies in \(0, 1\]"),
        # loaded; every image then failed on an empty max() (a traceback in the CLI)
        "no_stages": ({k: [] for k in per_stage}, "embed_dims is empty: the encoder needs at least one stage"),
        # math.isfinite(10**400) raised a bare OverflowError (a traceback in the CLI)
        "huge_int": (dict(small.to_dict(), embed_dims=[10**400, 16, 24, 32]), "embed_dims must be finite"),
        "huge_mean": (dict(small.to_dict(), rgb_mean=[10**400, 0, 0]), "rgb_mean must be finite"),
        "big": (big, "another TruFor size .* than its own 'config' entry says"),
        "wide": (wide, "does not match the model"),
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, (cfg, why) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save({"state_dict": sd, "config": cfg, "kind": "custom"}, path)
        with pytest.raises(CheckpointError, match=why) as e:
            load_trufor(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    # a key with a 5000-digit block index: int() refused it inside stage_sizes (a ValueError
    # naming no file); now the strict load reports it as unexpected, naming the file
    path = tmp_path / "long_index.pt"
    long_key = "backbone.block1." + "9" * 5000 + ".x"
    torch.save({"state_dict": {**sd, long_key: torch.zeros(1)}, "config": small.to_dict()}, path)
    with pytest.raises(CheckpointError, match="unexpected") as e:
        load_trufor(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 1000, grown_mib  # building the claimed network would take ~3.7 GB
    nested: list = [8]
    for _ in range(100_000):  # printing it (the error message) overflowed the recursion limit
        nested = [nested]
    with pytest.raises(ValueError, match="embed_dims must be a list of integers") as e:
        TruForConfig.from_dict({"embed_dims": nested})
    assert len(str(e.value)) < 200


def test_a_pytorch_file_with_compressed_members_is_not_expanded(recipe_state, tmp_path):
    """torch.load expands a deflated member whole before anything can look at it: a 1 MB file
    became a 1 GiB tensor. torch.save never compresses, so such a file is refused unread."""
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1000)}, plain)
    packed = tmp_path / "packed.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert torch.equal(read_checkpoint(plain)["w"], torch.zeros(1000))
    with pytest.raises(CheckpointError, match="members are compressed") as e:
        read_checkpoint(packed)
    assert str(e.value).startswith(f"{packed}:") and "\n" not in str(e.value)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        read_checkpoint(empty)
    # a copy cut short: torch's "failed finding central directory", cut at 200 characters
    cut = tmp_path / "cut.pt"
    cut.write_bytes(plain.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"cut\.pt: cut short or damaged .*: copy it again$"):
        read_checkpoint(cut)


def test_a_folder_given_as_checkpoint_is_called_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)


def test_load_finds_checkpoint_from_env(recipe_ckpt, monkeypatch):
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
    m = tl.load(device="cpu")
    assert isinstance(m, TruFor) and not m.training
    assert m.weights_info.kind == "custom" and not m.weights_info.verified
    assert m.weights_info.sha256 == hashlib.sha256(recipe_ckpt.read_bytes()).hexdigest()
    m64 = tl.load(recipe_ckpt, precision="float64")
    assert next(m64.parameters()).dtype == torch.float64


def test_load_without_checkpoint_gives_noiseprint_only(monkeypatch, tmp_path):
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path))  # empty: no full checkpoint there
    m = tl.load(demo=False)
    assert isinstance(m, Noiseprint)
    assert m.weights_info.kind == "noiseprint" and m.weights_info.verified
    assert m.weights_info.sha256 == W.NOISEPRINT_SHA256
    with pytest.raises(W.WeightsError, match="no TruFor checkpoint"):
        tl.load(fallback=False)


def test_missing_explicit_or_env_checkpoint_is_an_error(monkeypatch, tmp_path):
    with pytest.raises(W.WeightsError, match=r"nope\.pth\.tar: no such file"):
        tl.load(tmp_path / "nope.pth.tar")
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(tmp_path / "gone.pth.tar"))
    with pytest.raises(W.WeightsError, match="TRUFOR_WEIGHTS"):
        tl.load()


def test_shipped_noiseprint_weights_are_the_official_file(shared_dir):
    shipped = W.repo_weights_dir() / W.NOISEPRINT_FILE
    assert W.sha256_of(shipped) == W.NOISEPRINT_SHA256 == W.sha256_of(shared_dir / "weights" / "noiseprint++.th")
    assert (W.repo_weights_dir() / W.LICENSE_FILE).is_file()


def test_other_noiseprint_weights_load_but_are_not_verified(tmp_path, shared_dir):
    sd = read_checkpoint(shared_dir / "weights" / "noiseprint++.th")["network"]
    sd = {k: v * 1.01 if v.is_floating_point() else v for k, v in sd.items()}
    p = tmp_path / "np_other.th"
    torch.save({"network": sd}, p)
    net = tl.load_noiseprint(p)
    assert not net.weights_info.verified
    # the banner said only "Noiseprint++ only: ...", as for the official file
    assert "unverified Noiseprint++ weights (np_other.th" in str(tl.banner(net))
    assert "unverified" not in str(tl.banner(tl.load_noiseprint()))


def _zip_with_checkpoint(tmp_path: Path, state) -> tuple[Path, str]:
    buf = io.BytesIO()
    torch.save({"state_dict": state}, buf)
    z = tmp_path / "TruFor_weights.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("weights/trufor.pth.tar", buf.getvalue())
    return z, hashlib.md5(z.read_bytes()).hexdigest()


def test_download_verifies_md5_places_atomically_and_records(tmp_path, recipe_state, monkeypatch):
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))  # its signing key lives there
    z, md5 = _zip_with_checkpoint(tmp_path, recipe_state)
    dest = tmp_path / "w"
    other = W.download_trufor(tmp_path / "other", url=z.as_uri(), md5=md5, progress=False)
    info = W.describe(other, "official")  # a verified download of another archive: not official
    assert info.kind == "custom" and not info.verified
    monkeypatch.setattr(W, "TRUFOR_ZIP_MD5", md5)  # from here on, the stand-in is the official archive
    with pytest.raises(W.WeightsError, match="MD5"):
        W.download_trufor(dest, url=z.as_uri(), md5="0" * 32, progress=False)
    assert not (dest / W.TRUFOR_FILE).exists() and not list(dest.glob("*.part"))
    p = W.download_trufor(dest, url=z.as_uri(), md5=md5, progress=False)
    assert p == dest / W.TRUFOR_FILE
    info = W.describe(p, "official")
    assert info.kind == "official" and info.verified
    m = tl.load(p)
    assert m.weights_info.kind == "official"
    assert sorted(os.listdir(dest)) == ["trufor.pth.tar", "trufor.pth.tar.json"]
    assert W.describe(other, "official").verified  # its record names the official archive now


def test_a_forged_download_record_does_not_make_weights_official(tmp_path, recipe_ckpt, monkeypatch):
    """Anyone could write trufor.pth.tar.json with the published zip MD5 and the file's sha256:
    random MiT-B2 weights then loaded as 'official, verified' with no banner. A record counts
    only when this installation's download signed it; a file calling itself the demo model
    without the demo's checksum is custom too."""
    from trufor_lab.inference.load import model_notice

    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "mirror" / W.TRUFOR_FILE
    fake.parent.mkdir()
    fake.write_bytes(recipe_ckpt.read_bytes())
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    record = {"source": "https://example.invalid", "zip_md5": W.TRUFOR_ZIP_MD5, "sha256": digest}
    for forged in (record, dict(record, mac="0" * 64)):
        fake.with_name(fake.name + ".json").write_text(json.dumps(forged))
        info = W.describe(fake, "official")
        assert info.kind == "custom" and not info.verified
        m = tl.load(fake)
        assert m.weights_info.kind == "custom" and "unverified" in model_notice(m)
    demo_like = tmp_path / "demo_like.pt"
    obj = torch.load(W.find_demo(), weights_only=True)
    obj["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    torch.save(obj, demo_like)
    from trufor_lab.inference.load import load_trufor

    m = load_trufor(demo_like, kind="demo")
    said = model_notice(m)  # its own config entry: trufor_lab's training, never the official file
    assert m.weights_info.kind == "custom" and "trained or exported with trufor_lab" in said
    assert "not the official TruFor weights" in said and "if this checkpoint is the official" not in said


def test_an_unverified_cached_noiseprint_does_not_shadow_the_shipped_one(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / W.NOISEPRINT_FILE).write_bytes(b"half a download")
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(cache))
    monkeypatch.delenv("TRUFOR_NOISEPRINT_WEIGHTS", raising=False)
    p = W.find_noiseprint()
    assert p.parent.resolve() == W.repo_weights_dir().resolve() and W.describe(p, "noiseprint").verified


def test_weights_download_into_a_folder_that_is_not_searched_says_how_to_use_it(tmp_path, monkeypatch, capsys):
    from trufor_lab.cli import main

    def fake(dest, progress=True):
        p = tmp_path / "elsewhere" / W.TRUFOR_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        return p

    monkeypatch.setattr(W, "download_trufor", fake)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    assert main(["weights", "download", "--dir", str(tmp_path / "elsewhere"), "--skip-noiseprint", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"TRUFOR_LAB_WEIGHTS_DIR={tmp_path / 'elsewhere'}" in out and "is not searched" in out
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "elsewhere"))
    assert main(["weights", "download", "--dir", str(tmp_path / "elsewhere"), "--skip-noiseprint", "-q"]) == 0
    assert "is not searched" not in capsys.readouterr().out


def test_download_noiseprint_checks_sha256(tmp_path, shared_dir):
    src = shared_dir / "weights" / "noiseprint++.th"
    p = W.download_noiseprint(tmp_path, url=src.as_uri(), progress=False)
    assert W.sha256_of(p) == W.NOISEPRINT_SHA256
    with pytest.raises(W.WeightsError, match="checksum"):
        W.download_noiseprint(tmp_path / "x", url=src.as_uri(), sha256="1" * 64, progress=False)


def test_download_when_offline_says_so_in_one_line(tmp_path):
    with pytest.raises(W.WeightsError) as e:
        W.download_trufor(tmp_path, url=(tmp_path / "missing.zip").as_uri(), progress=False)
    assert "cannot download" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / W.TRUFOR_FILE).exists()
    # what to do next, not the command that just failed
    assert "weights install TruFor_weights.zip" in str(e.value) and "weights download" not in str(e.value)


def test_weights_install_takes_a_zip_copied_from_another_machine(tmp_path, recipe_state, monkeypatch, capsys):
    """Offline machines: `trufor-lab weights install ZIP` checks the official MD5 and installs
    the checkpoint as a download would (signed record: official, verified)."""
    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    z, md5 = _zip_with_checkpoint(tmp_path, recipe_state)
    assert main(["weights", "install", str(z), "-q"]) == 1  # not the official archive
    err = capsys.readouterr().err.strip()
    assert "is not the official TruFor_weights.zip's" in err and len(err.splitlines()) == 1
    assert "checkpoint itself" not in err
    # the checkpoint given in place of the zip: said so, with where it goes instead
    ckpt = tmp_path / "trufor.pth.tar"
    torch.save({"network": recipe_state}, ckpt)
    assert main(["weights", "install", str(ckpt), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "it is a checkpoint itself, not the zip: use it with --weights" in err
    assert not (tmp_path / "cache" / W.TRUFOR_FILE).exists()
    monkeypatch.setattr(W, "TRUFOR_ZIP_MD5", md5)  # the stand-in is the official archive from here on
    assert main(["weights", "install", str(z), "-q"]) == 0
    p = tmp_path / "cache" / W.TRUFOR_FILE
    assert W.describe(p, "official").verified and tl.load(p).weights_info.kind == "official"
    capsys.readouterr()
    # $TRUFOR_WEIGHTS wins over every copy: an install that it overrides says so (was 'verified', unsaid)
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(tmp_path / "older.pth"))
    assert main(["weights", "install", str(z), "-q"]) == 0
    assert "$TRUFOR_WEIGHTS=" in capsys.readouterr().err
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(p))
    assert main(["weights", "install", str(z), "-q"]) == 0 and "TRUFOR_WEIGHTS" not in capsys.readouterr().err
    assert main(["weights", "install"]) == 2 and "give the zip" in capsys.readouterr().err
    assert main(["weights", "install", str(tmp_path / "nope.zip")]) == 1
    assert "nope.zip: no such file" in capsys.readouterr().err


def test_a_copy_of_the_installed_official_file_is_verified_as_the_same_bytes(tmp_path, recipe_state, monkeypatch):
    """The advice for an unverified checkpoint is to install the official archive; the file named by
    $TRUFOR_WEIGHTS or --weights stayed unverified after it (only the cache's copy had a record),
    so following the advice looped. The same sha256 is the same bytes; another file is not."""
    from trufor_lab.cli import main

    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    z, md5 = _zip_with_checkpoint(tmp_path, recipe_state)
    monkeypatch.setattr(W, "TRUFOR_ZIP_MD5", md5)
    mine = tmp_path / "mine" / W.TRUFOR_FILE
    mine.parent.mkdir()
    with zipfile.ZipFile(z) as zf:
        mine.write_bytes(zf.read("weights/trufor.pth.tar"))
    info = W.describe(mine, "official")
    assert info.kind == "custom" and not info.verified and "weights install" in info.note
    assert main(["weights", "install", str(z), "-q"]) == 0
    info = W.describe(mine, "official")
    assert info.kind == "official" and info.verified
    other = tmp_path / "other.pth.tar"
    torch.save({"state_dict": {**recipe_state, "detection.3.bias": recipe_state["detection.3.bias"] + 1}}, other)
    assert not W.describe(other, "official").verified


def test_weights_download_does_not_fetch_the_noiseprint_that_ships(tmp_path, monkeypatch, capsys):
    """The official Noiseprint++ ships in weights/: downloading it again failed first when offline."""
    from trufor_lab.cli import main

    def fake_trufor(dest, progress=True):
        p = tmp_path / "cache" / W.TRUFOR_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        return p

    def no_noiseprint(*a, **k):
        raise AssertionError("Noiseprint++ downloaded again")

    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRUFOR_NOISEPRINT_WEIGHTS", raising=False)
    monkeypatch.setattr(W, "download_trufor", fake_trufor)
    monkeypatch.setattr(W, "download_noiseprint", no_noiseprint)
    assert main(["weights", "download", "-q"]) == 0
    assert "nothing to download" in capsys.readouterr().out


def test_a_negative_batchnorm_variance_is_refused_at_load(recipe_state):
    """A running variance below zero loaded, then every image failed one by one as "the network's
    output is not finite", the weights never blamed."""
    bad = dict(recipe_state)
    key = next(k for k in bad if k.endswith("running_var"))
    bad[key] = bad[key].clone()
    bad[key][0] = -1.0
    model = TruFor()
    with pytest.raises(CheckpointError, match=rf"^damaged\.pth: negative BatchNorm variance in {key}$"):
        strict_load(model, bad, "damaged.pth")


@pytest.mark.parametrize("damage", ["nan", "inf", "int", "complex", "sparse", "meta", "float8", "huge", "expanded"])
def test_damaged_weights_are_refused_not_loaded(recipe_state, damage):
    """NaN/Inf weights (a diverged run) and float parameters given integers or complex numbers
    would load silently (PyTorch casts) and answer NaN or a wrong map: refused, nothing loaded.
    Sparse, meta and float8 tensors failed inside PyTorch (a multi-kilobyte dispatcher message)."""
    bad = dict(recipe_state)
    key = "backbone.block1.0.attn.q.weight"
    w = bad[key].clone()
    if damage == "nan":
        w[0, 0] = float("nan")
    elif damage == "inf":
        w[3, 1] = float("-inf")
    elif damage == "int":
        w = w.round().to(torch.int32)
    elif damage == "complex":
        w = w.to(torch.complex64)
    elif damage == "sparse":
        w = w.to_sparse()
    elif damage == "meta":
        w = torch.empty_like(w, device="meta")
    elif damage == "float8":
        w = w.to(torch.float8_e4m3fn)
    elif damage == "huge":  # finite in float64, Inf once cast to the model's float32
        w = w.double()
        w[1, 2] = 1e300
    else:  # a few stored bytes for a whole tensor (a 109 KB file built a 1.27 GiB network)
        w = torch.zeros(()).expand_as(w)
    bad[key] = w
    model = TruFor()
    before = model.state_dict()[key].clone()
    with pytest.raises(CheckpointError) as e:
        strict_load(model, bad, "damaged.pth")
    msg = str(e.value)
    assert msg.startswith("damaged.pth:") and key in msg and "\n" not in msg
    assert ("not finite" in msg) == (damage in ("nan", "inf")), msg
    assert ("dtype mismatch" in msg) == (damage in ("int", "complex")), msg
    assert ("not plain weights" in msg) == (damage in ("sparse", "meta", "float8", "expanded")), msg
    assert ("would become Inf" in msg) == (damage == "huge"), msg
    assert torch.equal(model.state_dict()[key], before), "nothing loaded on error"


def test_bare_weights_of_another_size_name_the_sizes(tmp_path):
    """A state dict of a smaller TruFor saved without its config: one line naming both sizes,
    not hundreds of missing keys."""
    from trufor_lab.model import MIT_B0, stage_sizes

    sd = TruFor(MIT_B0).state_dict()
    assert stage_sizes(sd) == (MIT_B0.embed_dims, MIT_B0.depths)
    p = tmp_path / "small.pth"
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError) as e:
        tl.load_trufor(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p))
    assert "dims 32/64/160/256, depths 2/2/2/2" in msg and "expected 64/128/320/512, depths 3/4/6/3" in msg
    assert "missing" not in msg
    torch.save({"state_dict": sd, "config": MIT_B0.to_dict()}, p)  # with its config it loads
    assert tl.load_trufor(p).backbone.cfg == MIT_B0


def test_a_damaged_shipped_noiseprint_gives_way_to_a_verified_download(tmp_path, shared_dir, monkeypatch):
    """The damaged shipped file's error said to run `weights download`; the download landed in
    the cache, but the shipped copy was still preferred: the same error again, for ever."""
    shipped, cache = tmp_path / "shipped", tmp_path / "cache"
    shipped.mkdir()
    (shipped / W.NOISEPRINT_FILE).write_bytes(b"damaged")
    monkeypatch.setattr(W, "repo_weights_dir", lambda: shipped)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(cache))
    monkeypatch.delenv("TRUFOR_NOISEPRINT_WEIGHTS", raising=False)
    with pytest.raises(W.WeightsError, match="file corrupted"):
        W.describe(W.find_noiseprint(), "noiseprint")
    assert W.shipped_noiseprint_verified() is None  # so `weights download` fetches it
    W.download_noiseprint(cache, url=(shared_dir / "weights" / "noiseprint++.th").as_uri(), progress=False)
    p = W.find_noiseprint()
    assert p == cache / W.NOISEPRINT_FILE and W.describe(p, "noiseprint").verified


def test_the_official_container_with_numpy_scalars_loads_and_arrays_do_not(recipe_ckpt, recipe_state, tmp_path):
    """The official trufor.pth.tar (written by its training script under numpy 1) keeps its best
    validation metric as a numpy float64: the safe loader refused the file as one that 'asks to
    run code', so the official weights could not be used at all."""
    from trufor_lab.model import extract_state_dict

    obj = read_checkpoint(recipe_ckpt)  # the conftest's official-style container (numpy 2 names)
    assert isinstance(obj["best_value"], np.floating) and obj["epoch"] == 81
    sd = extract_state_dict(obj, str(recipe_ckpt))
    assert sd.keys() == recipe_state.keys() and all(torch.equal(sd[k], recipe_state[k]) for k in sd)
    # as numpy 1 names it (the official file's pickle)
    old = tmp_path / "numpy1.pth.tar"
    with zipfile.ZipFile(recipe_ckpt) as src, zipfile.ZipFile(old, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                assert b"numpy._core.multiarray\nscalar" in data
                data = data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
            dst.writestr(info, data)
    m = tl.load_trufor(old, device="cpu")
    assert m.weights_info.kind == "custom" and torch.equal(
        m.state_dict()["detection.3.bias"], recipe_state["detection.3.bias"]
    )
    # numpy arrays (a reconstruct call) are still not weights
    torch.save({"state_dict": {"a": torch.zeros(1)}, "stats": np.zeros(3)}, tmp_path / "arr.pth")
    with pytest.raises(CheckpointError, match=r"arr\.pth: refused to load: .*numpy.*_reconstruct"):
        read_checkpoint(tmp_path / "arr.pth")


def test_float64_weights_load_unrounded_in_float64(recipe_state, tmp_path):
    """precision='float64' built a float32 model, loaded, then widened: float64 weights were
    rounded to float32 on the way (all 927 float tensors off by up to 5.5e-10)."""
    sd = {k: (v.double() * (1 + 1e-9) if v.is_floating_point() else v) for k, v in recipe_state.items()}
    torch.save({"state_dict": sd}, tmp_path / "f64.pth")
    m = tl.load_trufor(tmp_path / "f64.pth", device="cpu", precision="float64")
    got = m.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())
    np64 = tl.load_noiseprint(tmp_path / "f64.pth", device="cpu", precision="float64")
    assert torch.equal(np64.state_dict()["0.weight"], sd["dncnn.0.weight"])


def test_noiseprint_weights_given_as_a_full_checkpoint_say_so(shared_dir, tmp_path, capsys):
    from trufor_lab.cli import main

    path = shared_dir / "weights" / "noiseprint++.th"
    with pytest.raises(CheckpointError, match=r"noiseprint\+\+\.th: Noiseprint\+\+ weights alone .*load_noiseprint"):
        tl.load_trufor(path)
    # the same weights under a full model's names (dncnn.*) said "858 missing [backbone...]"
    from trufor_lab.model import extract_state_dict

    prefixed = tmp_path / "dncnn_prefixed.pt"
    torch.save({f"dncnn.{k}": v for k, v in extract_state_dict(read_checkpoint(path), str(path)).items()}, prefixed)
    with pytest.raises(CheckpointError, match=r"dncnn_prefixed\.pt: Noiseprint\+\+ weights alone"):
        tl.load_trufor(prefixed)
    folder = tmp_path / "weights_folder"
    folder.mkdir()
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(img)
    for weights, why in ((path, "Noiseprint++ weights alone"), (folder, "is a folder, not a file")):
        assert main(["analyze", str(img), "-o", str(tmp_path / "out"), "--weights", str(weights), "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], err


def test_archives_are_named_not_fed_to_the_unpickler(recipe_ckpt, tmp_path):
    """--weights TruFor_weights.zip said 'RuntimeError: Expected hasRecord("version")'; a tar
    repeated PyTorch's advice to rerun with its safe loader off, cut mid-word."""
    import tarfile

    z = tmp_path / "TruFor_weights.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.write(recipe_ckpt, "TruFor_weights/trufor.pth.tar")
    with pytest.raises(
        CheckpointError, match=r"TruFor_weights\.zip: a zip archive holding checkpoints .*weights install"
    ):
        read_checkpoint(z)
    t = tmp_path / "w.tar"
    with tarfile.open(t, "w") as f:
        f.add(recipe_ckpt, "trufor.pth.tar")
    with pytest.raises(CheckpointError, match=r"w\.tar: a tar archive") as e:
        read_checkpoint(t)
    assert "weights_only" not in str(e.value)
    import pickle

    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch's warning before the refusal is not shown
        with pytest.raises(CheckpointError, match=r"raw\.pkl: refused to load"):
            read_checkpoint(tmp_path / "raw.pkl")


class _Reduces:
    """Pickles as ``fn(*args)``: what a crafted checkpoint can ask the unpickler to call."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_numpy_numbers_are_allowed_but_not_what_numpy_can_be_made_to_build(tmp_path):
    """Allowing numpy's scalar constructor and dtype as they are let an 800-byte checkpoint
    segfault the process (an object scalar from no bytes) or allocate gigabytes (a 1 GB void)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar
    ok = {"epoch": np.int64(81), "best": np.float64(0.87), "flag": np.bool_(True), "h": np.float16(2)}
    torch.save(ok, tmp_path / "ok.pth")
    assert read_checkpoint(tmp_path / "ok.pth") == ok
    hostile = {
        "void": _Reduces(scalar, np.dtype("V1000000"), b""),
        "object": _Reduces(scalar, np.dtype([("a", "O")])),
        "record": _Reduces(np.dtype, "V1000000", False, True),
        "short": _Reduces(scalar, np.dtype("f8"), b"\0\0"),
    }
    for name, obj in hostile.items():
        torch.save({"x": obj}, tmp_path / f"{name}.pth")
        with pytest.raises(CheckpointError, match=rf"{name}\.pth: refused to load"):
            read_checkpoint(tmp_path / f"{name}.pth")


def _deny_reading(monkeypatch, path) -> None:
    """``open(path)`` fails as for a file without read permission (root ignores the mode bits)."""
    real_open = open

    def no_permission(file, *a, **k):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", no_permission)


def test_an_unreadable_checkpoint_is_one_line(tmp_path, monkeypatch):
    p = tmp_path / "locked.pth"
    torch.save({"a": torch.zeros(1)}, p)
    _deny_reading(monkeypatch, p)
    with pytest.raises(CheckpointError, match=r"locked\.pth: not readable \(Permission denied\)"):
        read_checkpoint(p)


def test_weights_storing_noiseprint_in_half_precision_say_so(recipe_state, shared_dir, tmp_path):
    """A file whose Noiseprint++ part is float16 loads exactly, but its Noiseprint++ map is not the
    float32 one (correlation ~0.95, map moved by up to 0.12): the banner said only 'custom'."""
    sd = {k: (v.half() if k.startswith("dncnn.") and v.is_floating_point() else v) for k, v in recipe_state.items()}
    torch.save({"state_dict": sd}, tmp_path / "half_np.pth")
    m = tl.load_trufor(tmp_path / "half_np.pth")
    assert m.weights_info.noiseprint_dtype == "float16"
    assert "Noiseprint++ stored in float16" in str(tl.banner(m))
    np_sd = {k[len("dncnn.") :]: v for k, v in sd.items() if k.startswith("dncnn.")}
    torch.save({"network": np_sd}, tmp_path / "np_half.th")
    assert "Noiseprint++ stored in float16" in str(tl.banner(tl.load_noiseprint(tmp_path / "np_half.th")))
    assert tl.load_noiseprint().weights_info.noiseprint_dtype == "float32"
    assert "stored in" not in str(
        tl.banner(tl.load_trufor(W.find_demo(), kind="demo"))
    )  # float16 model, float32 Noiseprint++


def test_loading_weights_leaves_the_callers_random_numbers_alone():
    """tl.load() and tl.load_noiseprint() drew PyTorch's initial values from the global RNG
    before the weights replaced them: a seeded experiment gave other numbers once it loaded a
    model (untrained() already restored it)."""
    import trufor_lab as tl

    torch.manual_seed(0)
    want = torch.rand(3)
    for loader in (tl.load, tl.load_noiseprint):
        torch.manual_seed(0)
        loader(device="cpu")
        assert torch.equal(torch.rand(3), want), loader.__name__


def test_untrained_seeds_its_own_weights_only(monkeypatch):
    """untrained() seeded every GPU's generator (torch.manual_seed) and restored only the CPU's:
    a later GPU experiment started from its seed. Its weights still follow its seed."""
    import trufor_lab as tl

    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    a, b = tl.untrained(seed=3, device="cpu"), tl.untrained(seed=3, device="cpu")
    assert seeded == []
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = tl.untrained(seed=4, device="cpu")
    assert not torch.equal(a.decode_head.linear_c4.proj.weight, c.decode_head.linear_c4.proj.weight)


def test_foreign_layouts_and_long_keys_are_named_in_one_bounded_line(tmp_path, recipe_state):
    """A TorchScript archive was called 'a PyTorch file whose members are compressed'; a container
    keeping its weights under another key ('state_dict_ema') was 'a state dict with non-tensor
    entries'; a crafted 100 000-character key made a 100 KB error line."""

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x)

    with warnings.catch_warnings():  # torch.jit.save is deprecated; users still have such files
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Tiny()), tmp_path / "script.pt")
    with pytest.raises(CheckpointError, match=r"script\.pt: .*a TorchScript archive \(torch\.jit\.save"):
        read_checkpoint(tmp_path / "script.pt")
    torch.save({"epoch": 3, "state_dict_ema": recipe_state}, tmp_path / "ema.pt")
    with pytest.raises(
        CheckpointError, match=r"ema\.pt: holds no state dict \(top-level entries: epoch, state_dict_ema;"
    ):
        tl.load(tmp_path / "ema.pt")
    # a zip with a data.pkl but not torch.save's layout: PyTorch's own line, without its request for reports
    with zipfile.ZipFile(tmp_path / "layout.pt", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(CheckpointError, match=r"layout\.pt: not a readable PyTorch checkpoint") as e:
        tl.load(tmp_path / "layout.pt")
    assert "Could this error message be improved" not in str(e.value), str(e.value)
    # four levels down: the message called the entries at level 3 "top-level"
    torch.save({"model": {"model": {"model": {"network": recipe_state}}}}, tmp_path / "deep.pt")
    with pytest.raises(CheckpointError, match=r"deep\.pt: .*\(entries under model/model/model: network; .*3 levels"):
        tl.load(tmp_path / "deep.pt")
    long = dict(recipe_state)
    long["x" * 100_000] = torch.zeros(1)
    torch.save({"state_dict": long}, tmp_path / "long.pt")
    with pytest.raises(CheckpointError, match=r"1 unexpected \[x+\u2026\]") as e:
        tl.load(tmp_path / "long.pt")
    assert len(str(e.value)) < 500


@pytest.mark.parametrize("call", ["load", "noiseprint"])
def test_an_empty_weights_path_is_refused_not_read_as_the_current_folder(call, monkeypatch, tmp_path):
    """`--weights "$UNSET"`: Path('') is '.', so the error said '.: is a folder'; and an empty
    Noiseprint++ path silently fell back to the shipped file."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(W.WeightsError, match=r"path is empty \(an unset variable\?\)"):
        tl.load("") if call == "load" else W.find_noiseprint("")


def test_a_shipped_noiseprint_damaged_inside_its_zip_says_its_checksum(tmp_path, shared_dir, monkeypatch):
    """One flipped byte in the zip's directory of the shipped file: load_noiseprint said PyTorch's
    'Expected hasRecord("version") to be true ... (Could this error message be improved?)' while
    `weights info` said the checksum was wrong and what to run."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    data = bytearray((shared_dir / "weights" / "noiseprint++.th").read_bytes())
    data[-100] ^= 0xFF
    (shipped / W.NOISEPRINT_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(W, "repo_weights_dir", lambda: shipped)
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRUFOR_NOISEPRINT_WEIGHTS", raising=False)
    with pytest.raises(
        W.WeightsError, match=r"is not the official .*file corrupted\?\); run `trufor-lab weights download`"
    ):
        tl.load_noiseprint()


def test_a_checkpoint_with_a_flipped_bit_is_refused_as_damaged(recipe_state, tmp_path):
    """torch.load reads no checksum: one bit flipped in the detection head's bias (a bad copy or
    download) loaded silently and moved every score (0.193 -> 0.000). The zip members' CRC-32s are
    checked first; the same file undamaged still loads."""
    path = tmp_path / "bare.pt"
    torch.save(recipe_state, path)
    assert set(read_checkpoint(path)) == set(recipe_state)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 4)
    data = bytearray(path.read_bytes())
    header = 30 + int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    header += int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    data[info.header_offset + header + 3] ^= 0x40  # a float32's exponent byte
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"flipped\.pt: damaged: .*data/.* fails its checksum \(CRC-32\)"):
        read_checkpoint(bad)
    # a file written without checksums (torch.serialization.set_crc32_options(False)) is not "damaged"
    if hasattr(torch.serialization, "set_crc32_options"):
        nocrc = tmp_path / "nocrc.pt"
        torch.serialization.set_crc32_options(False)
        try:
            torch.save(recipe_state, nocrc)
        finally:
            torch.serialization.set_crc32_options(True)
        assert set(read_checkpoint(nocrc)) == set(recipe_state)


def test_a_safetensors_file_and_a_twice_nested_state_dict(recipe_state, tmp_path):
    """A .safetensors file was 'not a PyTorch checkpoint (it starts with bytes 70 84 01 00 ...)';
    {'model': {'state_dict': sd}} was refused as holding no state dict while naming 'state_dict'."""
    from trufor_lab.model.checkpoint import extract_state_dict

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    st = tmp_path / "model.safetensors"
    st.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: a safetensors file"):
        read_checkpoint(st)
    nested = tmp_path / "nested.pt"
    torch.save({"model": {"state_dict": recipe_state}, "epoch": 3}, nested)
    sd = extract_state_dict(read_checkpoint(nested))
    assert set(sd) == set(recipe_state) and all(torch.equal(sd[k], recipe_state[k]) for k in sd)


def test_weights_saved_from_a_wrapper_load_exactly_and_others_stay_refused(recipe_state, shared_dir, tmp_path):
    """A state dict of a torch.compile'd model ('_orig_mod.' before every key), of DDP around it, or
    of a training wrapper (Lightning's 'model.') was refused with 952 missing and 952 unexpected
    keys; files of PyTorch before 0.4.1 (no BatchNorm 'num_batches_tracked', which PyTorch's own
    loader fills in) were refused too. They load exactly; a prefix that does not leave exactly
    the model's keys is still refused."""
    np_sd = extract_state_dict(read_checkpoint(shared_dir / "weights" / "noiseprint++.th"))
    for prefix in ("_orig_mod.", "module._orig_mod.", "_orig_mod.module.", "model.", "net.model."):
        path = tmp_path / "wrapped.pt"
        torch.save({"state_dict": {prefix + k: v for k, v in recipe_state.items()}}, path)
        got = tl.load_trufor(path).state_dict()
        assert all(torch.equal(got[k], v) for k, v in recipe_state.items()), prefix
        torch.save({"network": {prefix + k: v for k, v in np_sd.items()}}, path)
        got = tl.load_noiseprint(path).state_dict()
        assert all(torch.equal(got[k], v) for k, v in np_sd.items()), prefix
    counts = [k for k in recipe_state if k.endswith("num_batches_tracked")]
    old = {k: v for k, v in recipe_state.items() if k not in counts}
    torch.save({"state_dict": old}, tmp_path / "old.pt")
    got = tl.load_trufor(tmp_path / "old.pt").state_dict()
    assert len(counts) == 25 and all(torch.equal(got[k], v) for k, v in old.items())
    assert all(int(got[k]) == 0 for k in counts)
    # refused: a prefix on some keys only, a key of the model missing under a prefix, a missing
    # count of a BatchNorm without momentum (its count is its averaging)
    half = {("model." + k if i % 2 else k): v for i, (k, v) in enumerate(recipe_state.items())}
    short = {"model." + k: v for k, v in recipe_state.items() if k != "detection.3.bias"}
    for name, sd in (("half", half), ("short", short)):
        torch.save({"state_dict": sd}, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=rf"{name}\.pt: does not match the model: .*missing"):
            tl.load_trufor(tmp_path / f"{name}.pt")
    net = Noiseprint()
    net[3].momentum = None
    np_old = {k: v for k, v in np_sd.items() if k != "3.num_batches_tracked"}
    with pytest.raises(CheckpointError, match=r"^np: does not match the model: 1 missing \[3\.num_batches_tracked\]$"):
        strict_load(net, np_old, "np")


def test_a_zip_of_a_million_members_is_refused_before_its_directory_is_read(tmp_path):
    """A 108 MB zip of a million empty members took 21 s and 1.1 GB of memory to be read (and then
    held no state dict); 100 000 tiny tensors took 10 s. The end record says how many members and
    how big the directory is: refused from that, in a moment; a ZIP64 file is counted too."""
    import time

    for count in (70_000, 300):  # more than 65 535: a ZIP64 end record; and a plain one
        path = tmp_path / f"many{count}.pt"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
            z.writestr("archive/version", "3\n")
            for i in range(count):
                z.writestr(f"archive/x/{i}", b"")
        if count < 65_535:  # a crafted end record that claims few members: its directory size still tells
            data = bytearray(path.read_bytes())
            at = data.rfind(b"PK\x05\x06")
            data[at + 10 : at + 12] = (1).to_bytes(2, "little")
            data[at + 12 : at + 16] = (60_000 * 256).to_bytes(4, "little")
            path.write_bytes(bytes(data))
        t0 = time.perf_counter()
        with pytest.raises(CheckpointError, match=rf"many{count}\.pt: a zip of \d+ members .* far more than") as e:
            read_checkpoint(path)
        assert time.perf_counter() - t0 < 1 and "\n" not in str(e.value)
    small = tmp_path / "fine.pt"
    torch.save({f"t{i}": torch.zeros(1) for i in range(3000)}, small)  # a training state's size: read
    assert len(read_checkpoint(small)) == 3000


def test_pytorch_s_long_reasons_are_cut_at_a_sentence(tmp_path):
    """A member missing from the zip: PyTorch's reason was cut at 200 characters, ending "... your
    checkpoint file is corrupted. This)"."""
    whole = tmp_path / "whole.pt"
    torch.save({"a": torch.zeros(1), "b": torch.ones(1)}, whole)
    cut = tmp_path / "member_missing.pt"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(cut, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/1"):
                dst.writestr(info, src.read(info))
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(cut)
    msg = str(e.value)
    assert msg.startswith(f"{cut}: not a readable PyTorch checkpoint (RuntimeError: ") and "data/1" in msg
    assert msg.endswith(".)") and "\n" not in msg, msg


def test_a_pipe_or_an_unreadable_noiseprint_file_is_named_with_its_reason(tmp_path, shared_dir, monkeypatch):
    """read_checkpoint said "no such checkpoint file" of a FIFO that was there; load_noiseprint of a
    file it may not read raised a bare PermissionError (its checksum was taken first)."""
    fifo = tmp_path / "weights.pipe"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=r"weights\.pipe: not a regular file \(a device, pipe or socket\)$"):
        read_checkpoint(fifo)
    p = tmp_path / "locked.th"
    p.write_bytes((shared_dir / "weights" / "noiseprint++.th").read_bytes())
    _deny_reading(monkeypatch, p)
    with pytest.raises(CheckpointError, match=r"locked\.th: not readable \(Permission denied\)$"):
        tl.load_noiseprint(p)
    shipped_name = tmp_path / "copy" / W.NOISEPRINT_FILE  # hashed first (a damaged shipped copy says so)
    shipped_name.parent.mkdir()
    p.rename(shipped_name)
    p = shipped_name
    _deny_reading(monkeypatch, p)
    with pytest.raises(CheckpointError, match=r"noiseprint\+\+\.th: not readable \(Permission denied\)$"):
        tl.load_noiseprint(p)


def test_a_huge_file_given_as_noiseprint_weights_is_refused_before_it_is_hashed(tmp_path, monkeypatch):
    """load_noiseprint took the sha256 of whatever it was given before reading it: a 50 GB video
    given as weights was hashed whole (a minute) before being called not a checkpoint."""
    video = tmp_path / "holiday.mp4"
    with open(video, "wb") as f:
        f.write(b"\x00\x00\x00\x20ftypisom")
        f.truncate(4 << 30)  # sparse: 4 GiB on no disk
    hashed = []
    monkeypatch.setattr(W, "file_digest", lambda path, *a, **k: hashed.append(path) or "0" * 64)
    with pytest.raises(CheckpointError, match=r"holiday\.mp4: not a PyTorch checkpoint \(it starts with bytes"):
        tl.load_noiseprint(video)
    assert hashed == []


def test_a_zip_with_two_members_of_one_name_is_refused(tmp_path):
    """A torch.save file given a second 'data/0' loaded: PyTorch took one copy and Python's zip
    reader (which checks the CRC-32s) the other, so the checked bytes were not the loaded ones.
    torch.save never writes that: refused as ambiguous; the file without the copy still loads."""
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.arange(4.0)}, plain)
    with zipfile.ZipFile(plain) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    stored = next(n for n, _ in members if n.endswith("/data/0"))
    twice = tmp_path / "twice.pt"
    with warnings.catch_warnings(), zipfile.ZipFile(twice, "w") as z:
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name"
        for name, data in members:
            z.writestr(name, data)
        z.writestr(stored, np.full(4, 9.0, np.float32).tobytes())
    with zipfile.ZipFile(twice) as z:  # the two readers disagree
        assert z.read(stored) != torch.load(twice, weights_only=True)["w"].numpy().tobytes()
    with pytest.raises(CheckpointError, match=rf"^{twice}: a zip holding two members named plain/data/0 \("):
        read_checkpoint(twice)
    assert torch.equal(read_checkpoint(plain)["w"], torch.arange(4.0))


def test_a_batch_count_given_as_a_float_loads_only_when_whole(shared_dir):
    """PyTorch's loader casts a float 'num_batches_tracked' silently (3.7 became 3, 1e30 became
    -2**63); a whole number loads as that number, anything else is refused naming the key."""
    sd = extract_state_dict(read_checkpoint(shared_dir / "weights" / "noiseprint++.th"))
    net = Noiseprint()
    strict_load(net, {**sd, "3.num_batches_tracked": torch.tensor(5.0)}, "np")
    assert int(net.state_dict()["3.num_batches_tracked"]) == 5
    for value in (3.7, 1e30, float(2**63)):
        with pytest.raises(CheckpointError, match=r"^np: .*1 dtype mismatch \[3\.num_batches_tracked: .*not whole"):
            strict_load(Noiseprint(), {**sd, "3.num_batches_tracked": torch.tensor(value, dtype=torch.float64)}, "np")


def test_an_old_format_file_of_many_tiny_tensors_is_refused_before_it_is_loaded(tmp_path):
    """A file in PyTorch's format before 1.6 (a pickle, no zip directory to count) of 100 000 tiny
    tensors took 6 s to load before anything could refuse it. Its stored tensors are counted first
    (an unpickler that imports and calls nothing) and refused past the zip's member limit."""
    import time

    from trufor_lab.model.checkpoint import MAX_MEMBERS

    many = tmp_path / "many.pt"
    torch.save({f"t{i}": torch.zeros(1) for i in range(MAX_MEMBERS + 1)}, many, _use_new_zipfile_serialization=False)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"^{many}: a PyTorch file of the format before 1\.6 storing more than"):
        read_checkpoint(many)
    assert time.perf_counter() - t0 < 2
    fine = tmp_path / "fine.pt"
    torch.save({f"t{i}": torch.full((2,), float(i)) for i in range(3000)}, fine, _use_new_zipfile_serialization=False)
    got = read_checkpoint(fine)
    assert len(got) == 3000 and torch.equal(got["t2999"], torch.full((2,), 2999.0))


def test_counting_an_old_format_file_calls_nothing_even_with_a_registered_pickle_extension(tmp_path, capsys):
    """The tensor count before loading a pre-1.6 file must never call the file's code. Python's
    unpickler resolves an EXT opcode through copyreg's process-wide cache, past ``find_class``:
    once any code in the process had registered an extension code (``copyreg.add_extension``)
    and an ordinary unpickle had used it, the count called the real function with the file's
    arguments; with the cache still empty the count stored its stand-in there, and later ordinary
    unpickles of that code got the stand-in. The file is refused in one line, the cache untouched."""
    import copyreg

    # torch.save's header in its format before 1.6: magic number, protocol version, system sizes
    sizes = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sizes))
    calls = tmp_path / "calls.pt"  # its main pickle: EXT1 0xF1 (print), 'called from the file', REDUCE
    calls.write_bytes(header + b"\x80\x02\x82\xf1Vcalled from the file\n\x85R.")
    stubs = tmp_path / "stubs.pt"
    stubs.write_bytes(header + b"\x80\x02\x82\xf2.")
    copyreg.add_extension("builtins", "print", 0xF1)
    copyreg.add_extension("builtins", "len", 0xF2)
    try:
        assert pickle.loads(b"\x80\x02\x82\xf1.") is print  # an ordinary unpickle: print now cached
        with pytest.raises(CheckpointError, match=rf"^{calls}: refused to load: "):
            read_checkpoint(calls)
        assert "called from the file" not in capsys.readouterr().out
        with pytest.raises(CheckpointError, match=rf"^{stubs}: refused to load: "):
            read_checkpoint(stubs)
        assert pickle.loads(b"\x80\x02\x82\xf2.") is len  # not the count's stand-in
    finally:
        copyreg.remove_extension("builtins", "print", 0xF1)
        copyreg.remove_extension("builtins", "len", 0xF2)
