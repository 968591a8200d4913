"""Weights that change under us, downloads that fail half way, archives with stray members.

Nothing here touches the network: stand-in "official" zips (``TRUFOR_ZIP_MD5`` monkeypatched),
``file://`` URLs and a raw HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from trufor_lab.inference import load as L
from trufor_lab.inference import weights as W
from trufor_lab.model import CheckpointError


def _official_zip(tmp_path: Path, monkeypatch, payload: bytes) -> Path:
    """A zip holding ``payload`` as trufor.pth.tar, made "the official archive" for this test."""
    z = tmp_path / "TruFor_weights.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("weights/trufor.pth.tar", payload)
    monkeypatch.setattr(W, "TRUFOR_ZIP_MD5", hashlib.md5(z.read_bytes()).hexdigest())
    return z


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    monkeypatch.delenv("TRUFOR_NOISEPRINT_WEIGHTS", raising=False)
    return tmp_path / "cache"


# -- 1: a remembered digest must not outlive the file ------------------------------------------
def test_a_file_replaced_with_the_same_size_and_mtime_is_not_still_official(tmp_path, cache, monkeypatch):
    ck = W.install_trufor_zip(_official_zip(tmp_path, monkeypatch, os.urandom(4096)))
    st = ck.stat()
    assert W.describe(ck, "official").verified
    other = tmp_path / "finetuned.pth.tar"  # same size, mtime kept (cp -p, shutil.copy2, unzip)
    other.write_bytes(os.urandom(4096))
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, ck)
    info = W.describe(ck, "official")
    assert info.sha256 == W.sha256_of(ck) and not info.verified and info.kind == "custom"
    assert W.weights_sha256(ck) == W.sha256_of(ck)


# -- 2: the label describes the bytes loaded ---------------------------------------------------
def _replacing_reader(monkeypatch, path: Path, new_bytes: bytes) -> None:
    """read_checkpoint that, once it has read ``path``, sees the file replaced (another process)."""
    real = L.read_checkpoint

    def read_then_replaced(p):
        obj = real(p)
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(new_bytes)
        os.replace(tmp, path)
        return obj

    monkeypatch.setattr(L, "read_checkpoint", read_then_replaced)


def test_a_checkpoint_replaced_while_it_loads_is_refused(tmp_path, cache, monkeypatch, recipe_ckpt):
    ck = cache / W.TRUFOR_FILE
    ck.parent.mkdir(parents=True)
    shutil.copyfile(recipe_ckpt, ck)  # someone's (custom) weights
    z = _official_zip(tmp_path, monkeypatch, os.urandom(1000))
    real = L.read_checkpoint

    def read_then_install(p):
        obj = real(p)
        W.install_trufor_zip(z)  # a concurrent `trufor-lab weights install` lands now
        return obj

    monkeypatch.setattr(L, "read_checkpoint", read_then_install)
    with pytest.raises(CheckpointError) as e:
        L.load()
    msg = str(e.value)
    assert msg == f"{ck}: changed while it was being loaded; load again"


def test_noiseprint_weights_replaced_while_they_load_are_refused(tmp_path, cache, monkeypatch, shared_dir):
    p = tmp_path / W.NOISEPRINT_FILE
    shutil.copyfile(shared_dir / "weights" / W.NOISEPRINT_FILE, p)
    _replacing_reader(monkeypatch, p, b"other bytes")
    with pytest.raises(CheckpointError, match="changed while it was being loaded; load again") as e:
        L.load_noiseprint(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


# -- 3: a full disk is not a network problem ---------------------------------------------------
class _FullDisk:
    def __init__(self, *a, **kw):
        pass

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_full_disk_while_downloading_says_cannot_write_not_offline(tmp_path, cache, monkeypatch):
    src = tmp_path / "TruFor_weights.zip"
    src.write_bytes(os.urandom(4096))
    monkeypatch.setattr(W, "open", _FullDisk, raising=False)  # the module's open(dest, "wb")
    dest = tmp_path / "dest"
    with pytest.raises(W.WeightsError) as e:
        W.download_trufor(dest, url=src.as_uri(), progress=False)
    msg = str(e.value)
    assert msg == f"cannot write {dest}: No space left on device"
    assert W.OFFLINE_HINT not in msg and not (dest / W.TRUFOR_FILE).exists()


# -- 4: protocol failures are one line; a short body is called short ---------------------------
@pytest.fixture()
def raw_server():
    """``serve(bytes) -> url``: answers every request with exactly these bytes, then closes."""
    socks: list[socket.socket] = []

    def serve(resp: bytes) -> str:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        socks.append(s)

        def loop():
            while True:
                try:
                    c, _ = s.accept()
                except OSError:
                    return
                with c:
                    c.recv(65536)
                    c.sendall(resp)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{s.getsockname()[1]}/TruFor_weights.zip"

    yield serve
    for s in socks:
        s.close()


@pytest.mark.parametrize(
    "resp",
    [
        b"SSH-2.0-OpenSSH_9\r\n\r\n",  # a garbled status line (proxy, captive portal)
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",  # a broken chunked body
    ],
    ids=["bad-status-line", "broken-chunked"],
)
def test_http_protocol_errors_are_one_line_download_failures(tmp_path, cache, raw_server, resp):
    url = raw_server(resp)
    with pytest.raises(W.WeightsError) as e:
        W.download_trufor(tmp_path / "d", url=url, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"cannot download {url}: ") and "\n" not in msg
    assert not (tmp_path / "d" / W.TRUFOR_FILE).exists()


def test_a_truncated_download_says_how_much_came(tmp_path, cache, raw_server):
    url = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nhello")
    with pytest.raises(W.WeightsError, match=r"incomplete download \(got 5 of 1000000 bytes\)") as e:
        W.download_trufor(tmp_path / "d", url=url, progress=False)
    assert "MD5" not in str(e.value) and "\n" not in str(e.value)


# -- 5: archive members and symlinks -------------------------------------------------------------
def test_install_takes_the_real_checkpoint_not_an_appledouble_stub(tmp_path, cache):
    z = tmp_path / "rezipped_on_mac.zip"
    real = b"REAL CHECKPOINT" * 100
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("__MACOSX/weights/._trufor.pth.tar", b"\x00\x05\x16\x07AppleDouble")
        zf.writestr("__MACOSX/weights/trufor.pth.tar", b"stub")
        zf.writestr("weights/not_trufor.pth.tar", b"other")
        zf.writestr("weights/trufor.pth.tar", real)
    p = W.install_trufor_zip(z, tmp_path / "a", md5=hashlib.md5(z.read_bytes()).hexdigest())
    assert p.read_bytes() == real


def test_install_refuses_an_archive_with_two_checkpoints(tmp_path, cache):
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/trufor.pth.tar", b"one")
        zf.writestr("b/trufor.pth.tar", b"two")
    with pytest.raises(W.WeightsError, match="2 copies of trufor.pth.tar") as e:
        W.install_trufor_zip(z, tmp_path / "a", md5=hashlib.md5(z.read_bytes()).hexdigest())
    assert str(z) in str(e.value) and not (tmp_path / "a" / W.TRUFOR_FILE).exists()


def test_a_symlink_to_a_verified_install_is_verified(tmp_path, cache, monkeypatch):
    ck = W.install_trufor_zip(_official_zip(tmp_path, monkeypatch, os.urandom(999)))
    link = tmp_path / "my_trufor.pth.tar"
    link.symlink_to(ck)
    info = W.describe(link, "official")
    assert info.kind == "official" and info.verified and info.path == str(link)


# -- r3: the note after `install --dir X` leads to a verified install ---------------------------
def test_install_into_another_folder_suggests_what_keeps_it_verified(tmp_path, cache, monkeypatch, capsys):
    from trufor_lab.cli import main

    z = _official_zip(tmp_path, monkeypatch, os.urandom(1000))
    where = tmp_path / "elsewhere"
    assert main(["weights", "install", str(z), "--dir", str(where), "-q"]) == 0
    out = capsys.readouterr().out
    p = where / W.TRUFOR_FILE
    assert f"is not searched: set TRUFOR_WEIGHTS={p}," in out
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(p))  # following the advice
    assert W.describe(W.find_checkpoint(), "official").verified


# -- r6: an unverified $TRUFOR_NOISEPRINT_WEIGHTS is said, not "fixed" by a download it hides ----
def _fake_trufor_download(cache: Path):
    def fake(dest=None, progress=True):
        p = cache / W.TRUFOR_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        return p

    return fake


def test_download_says_an_unverified_noiseprint_env_file_wins_instead_of_fetching(
    tmp_path, cache, monkeypatch, capsys, shared_dir
):
    from trufor_lab.cli import main

    bad = tmp_path / "my_noiseprint.th"
    data = bytearray((shared_dir / "weights" / W.NOISEPRINT_FILE).read_bytes())
    data[-100] ^= 1
    bad.write_bytes(data)
    monkeypatch.setenv("TRUFOR_NOISEPRINT_WEIGHTS", str(bad))

    def no_noiseprint(*a, **k):
        raise AssertionError("downloaded a Noiseprint++ that $TRUFOR_NOISEPRINT_WEIGHTS hides")

    monkeypatch.setattr(W, "download_noiseprint", no_noiseprint)
    monkeypatch.setattr(W, "download_trufor", _fake_trufor_download(cache))
    assert main(["weights", "download", "-q"]) == 0
    out, err = capsys.readouterr()
    assert (
        f"$TRUFOR_NOISEPRINT_WEIGHTS={bad} overrides the official copy and its checksum is not the official one; "
        "unset it to use the official weights"
    ) in err
    assert "Noiseprint++" not in out and len(err.strip().splitlines()) == 1
    # the shipped copy is judged on its own, whatever the variable names
    shipped = W.shipped_noiseprint_verified()
    assert shipped is not None and shipped.parent.resolve() == W.repo_weights_dir().resolve()


def test_a_verified_noiseprint_env_file_needs_no_download(tmp_path, cache, monkeypatch, capsys, shared_dir):
    from trufor_lab.cli import main

    good = tmp_path / "copy.th"
    shutil.copyfile(shared_dir / "weights" / W.NOISEPRINT_FILE, good)
    monkeypatch.setenv("TRUFOR_NOISEPRINT_WEIGHTS", str(good))
    monkeypatch.setattr(W, "download_noiseprint", lambda *a, **k: pytest.fail("downloaded again"))
    monkeypatch.setattr(W, "download_trufor", _fake_trufor_download(cache))
    assert main(["weights", "download", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "nothing to download" in out and err == ""


# -- r8: an unwritable default cache does not stop an install elsewhere ---------------------------
@pytest.fixture()
def unwritable_cache(tmp_path, monkeypatch) -> Path:
    """The default cache cannot be created (a read-only $HOME; here: a file where its parent should be)."""
    blocker = tmp_path / "readonly_home"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRUFOR_LAB_WEIGHTS_DIR", str(blocker / "weights"))
    monkeypatch.delenv("TRUFOR_WEIGHTS", raising=False)
    return blocker / "weights"


def test_install_elsewhere_with_an_unwritable_cache_installs_and_warns(tmp_path, unwritable_cache, monkeypatch, capsys):
    from trufor_lab.cli import main

    z = _official_zip(tmp_path, monkeypatch, os.urandom(1000))
    where = tmp_path / "scratch"
    assert main(["weights", "install", str(z), "--dir", str(where), "-q"]) == 0
    out, err = capsys.readouterr()
    p = where / W.TRUFOR_FILE
    assert p.is_file() and f"TruFor: {p}" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {p}: cannot be marked verified: cannot write ")
    assert str(unwritable_cache) in lines[0]
    assert not W.describe(p, "official").verified
    with pytest.warns(UserWarning, match="cannot be marked verified") as rec:  # the library says it too
        W.install_trufor_zip(z, tmp_path / "lib")
    assert len(rec) == 1 and "\n" not in str(rec[0].message) and (tmp_path / "lib" / W.TRUFOR_FILE).is_file()


def test_download_elsewhere_with_an_unwritable_cache_warns_before_downloading(
    tmp_path, unwritable_cache, monkeypatch, capsys
):
    from trufor_lab.cli import main

    def offline(dest=None, progress=True):
        raise W.WeightsError("cannot download x: offline")

    monkeypatch.setattr(W, "download_trufor", offline)
    where = tmp_path / "scratch"
    assert main(["weights", "download", "--dir", str(where), "--skip-noiseprint", "-q"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[1] == "error: cannot download x: offline"
    assert lines[0].startswith(f"warning: {where / W.TRUFOR_FILE}: cannot be marked verified: ")


# -- r9: killed downloads leave marked folders, removed once stale --------------------------------
def test_stale_download_folders_are_listed_and_removed_by_the_next_download(tmp_path, cache, monkeypatch, capsys):
    import time

    from trufor_lab.cli import main

    z = _official_zip(tmp_path, monkeypatch, os.urandom(2000))
    stale, fresh = cache / (W.TMP_PREFIX + "killed"), cache / (W.TMP_PREFIX + "running")
    for folder, size in ((stale, 3000), (fresh, 10)):
        folder.mkdir(parents=True)
        (folder / "TruFor_weights.zip").write_bytes(b"x" * size)
    old = time.time() - 2 * 86400
    for p in (stale / "TruFor_weights.zip", stale):
        os.utime(p, (old, old))
    assert main(["weights", "info"]) == 0
    out = capsys.readouterr().out
    assert f"leftover download: {stale} (3000 bytes" in out and f"leftover download: {fresh} (10 bytes" in out
    seen = []
    real = W._fetch

    def fetch(url, dest, *a, **k):
        seen.append(dest.parent)
        return real(url, dest, *a, **k)

    monkeypatch.setattr(W, "_fetch", fetch)
    W.download_trufor(url=z.as_uri(), md5=W.TRUFOR_ZIP_MD5, progress=False)
    assert seen and seen[0].parent == cache and seen[0].name.startswith(W.TMP_PREFIX)
    assert not stale.exists() and fresh.exists()  # a concurrent download's folder is young: kept
    assert [t for t, _, _ in W.leftovers()] == [fresh]


# -- s25: the signing key, crafted records, leftovers of installs, folders in the way ----------
@pytest.mark.parametrize("left", [b"", b"3f2a"])
def test_a_signing_key_left_empty_by_a_full_disk_is_made_again(tmp_path, cache, monkeypatch, capsys, left):
    """A disk that filled up (or a process killed) while the key was written left an empty key
    file: every later install printed "zip MD5 verified" and was silently unverified for ever
    (`weights info`: "present, unverified"), and the advice to install again changed nothing."""
    from trufor_lab.cli import main

    key = cache / ".trufor_lab_record_key"
    z = _official_zip(tmp_path, monkeypatch, os.urandom(3000))
    cache.mkdir(parents=True)
    key.write_bytes(left)
    assert main(["weights", "install", str(z), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert W.describe(cache / W.TRUFOR_FILE, "official").verified
    assert len(key.read_text()) == 64
    # a full disk while the key is written leaves no key file at all: the next install makes one
    key.unlink()
    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert "No space left on device" in W.unsigned_reason()
    assert not list(cache.glob(key.name + "*"))  # neither an empty key nor a temporary file
    monkeypatch.setattr(os, "fsync", real)
    assert W.unsigned_reason() is None
    # a key that cannot be read or made (a folder in its place): the CLI says the install is unverified
    key.unlink()
    key.mkdir()
    assert main(["weights", "install", str(z), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "installed but not marked verified" in err[0] and "not a usable signing key" in err[0]


def test_a_crafted_record_beside_a_checkpoint_is_not_one(tmp_path, cache, monkeypatch, recipe_ckpt):
    """A record nested 200 000 deep beside someone's checkpoint made tl.load raise RecursionError
    (the CLI: "error: maximum recursion depth exceeded ...", naming no file)."""
    folder = tmp_path / "shared_folder"
    folder.mkdir()
    ck = folder / W.TRUFOR_FILE
    shutil.copy(recipe_ckpt, ck)
    W.unsigned_reason()  # this installation has a key
    for text in ("[" * 200_000 + "]" * 200_000, "[1, 2]", '{"sha256": ' + " " * 100_000 + "1}", "\udce9"):
        (folder / (W.TRUFOR_FILE + ".json")).write_text(text, errors="surrogateescape")
        info = W.describe(ck, "official")
        assert info.kind == "custom" and not info.verified
    assert L.load_trufor(ck, device="cpu").weights_info.kind == "custom"


def test_an_interrupted_install_is_cleaned_by_the_next_install(tmp_path, cache, monkeypatch, capsys):
    """A killed install left its 250 MB temporary folder; only a download removed such folders."""
    import time

    from trufor_lab.cli import main

    z = _official_zip(tmp_path, monkeypatch, os.urandom(2000))
    stale = cache / (W.TMP_PREFIX + "killed")
    stale.mkdir(parents=True)
    (stale / (W.TRUFOR_FILE + ".part")).write_bytes(b"x" * 3000)
    old = time.time() - 2 * 86400
    for p in (stale / (W.TRUFOR_FILE + ".part"), stale):
        os.utime(p, (old, old))
    assert main(["weights", "install", str(z), "-q"]) == 0
    assert not stale.exists() and W.leftovers() == []


def test_install_failures_name_the_folder_not_a_temporary_file(tmp_path, cache, monkeypatch, capsys):
    """A folder named trufor.pth.tar in the cache: "cache/.trufor-download-x/trufor.pth.tar.part:
    cannot write (Is a directory)", naming a temporary file that no longer existed; a read-only
    folder was named by the temporary folder that could not be made in it."""
    import tempfile

    from trufor_lab.cli import main

    z = _official_zip(tmp_path, monkeypatch, os.urandom(2000))
    (cache / W.TRUFOR_FILE).mkdir(parents=True)
    assert main(["weights", "install", str(z), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {cache / W.TRUFOR_FILE}: is a folder, where the checkpoint goes: move it away; nothing installed"
    ]
    (cache / W.TRUFOR_FILE).rmdir()

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(str(cache), W.TMP_PREFIX + "x1y2"))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    assert main(["weights", "install", str(z), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {cache}: cannot write (Read-only file system)"]
