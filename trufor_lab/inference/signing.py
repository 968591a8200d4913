"""The per-user key that signs install records, and the check of a record.

A record (``trufor.pth.tar.json`` beside an installed checkpoint) says which archive the file came
from; it is believed only when this installation signed it: a record shipped beside someone
else's file, claiming the official checksum, is not. Records are untrusted files like the
checkpoints they describe: one that is too big, deeply nested or not a record is simply not one.

The key is written whole or not at all (a temporary file, then a hard link that fails where a key
exists): a full disk or a killed process while it was being written left an empty key, and every
later install was silently unverified.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

#: The key's file name in the per-user cache folder.
KEY_FILE = ".trufor_lab_record_key"
#: A record is ~250 bytes: anything much bigger is not one (and is not read whole).
MAX_RECORD_BYTES = 64 * 1024


def _read_key(path: Path) -> bytes | None:
    """The key stored at ``path``: at least 16 bytes written as hex, else ``None``."""
    try:
        with open(path, "rb") as f:
            text = f.read(1024).decode("ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError):
        return None
    return key if len(key) >= 16 else None


def _make_key(folder: Path, path: Path) -> None:
    """Write a new key to ``path``, whole: one made meanwhile by another process is kept; one that
    is not a usable key (empty, cut short) is replaced, as no record can have been signed with it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=KEY_FILE + ".")  # mode 0o600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        if os.path.lexists(path) and not path.is_dir():  # an unusable key: an empty or truncated file
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # fails where a key (or anything) exists: the first one made is kept
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not os.path.lexists(path):
                os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def record_key(folder: Path, create: bool) -> bytes | None:
    """This installation's signing key in ``folder``; ``create``: make it where there is no usable
    one (``OSError`` where the folder is not writable)."""
    path = folder / KEY_FILE
    key = _read_key(path)
    if key is None and create:
        _make_key(folder, path)
        key = _read_key(path)
    return key


def unsigned_reason(folder: Path) -> str | None:
    """Why an install cannot be marked verified now, or ``None``: the key can be made and read."""
    try:
        if record_key(folder, create=True):
            return None
    except OSError as e:
        return f"cannot write {folder} ({e.strerror or e}), where the key that signs install records is kept"
    return f"{folder / KEY_FILE}: not a usable signing key (a folder? remove it)"


def record_mac(key: bytes, zip_md5: str, digest: str) -> str:
    return hmac.new(key, f"{zip_md5}:{digest}".encode(), hashlib.sha256).hexdigest()


def record_verifies(rec: Path, digest: str, zip_md5: str, folder: Path) -> bool:
    """Whether ``rec`` records ``digest`` as extracted from the archive of ``zip_md5`` (a record of
    another zip is not) and was signed with the key in ``folder`` (a forged record has no valid mac)."""
    key = record_key(folder, create=False)
    if key is None:
        return False
    try:
        if not rec.is_file():  # not a FIFO, which would block the read
            return False
        with open(rec, "rb") as f:
            data = f.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            return False
        record = json.loads(data)
        mac = record_mac(key, zip_md5, digest)
        return bool(
            isinstance(record, dict)
            and record.get("sha256") == digest
            and record.get("zip_md5") == zip_md5
            and hmac.compare_digest(str(record.get("mac", "")), mac)
        )
    except (OSError, ValueError, TypeError, RecursionError):  # nested ten thousand deep: not a record
        return False
