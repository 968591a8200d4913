"""Atomic file writing: every file the project writes goes through :func:`atomic_write`.

A file is written to a temporary name in its destination folder and renamed into place, so a
crash or a full disk never leaves a half-written output under the real name (and a reader
never sees one). What a folder takes is asked before a run's work: whether files can be made
there (:func:`unwritable_reason`), whether its disk folds letter case (:func:`folds_case`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from trufor_lab.common.errors import escaped

PathLike = str | os.PathLike

#: ``expect=`` of :func:`atomic_write_path` when anything there may be replaced (the default).
ANY = object()


class ChangedMeanwhile(FileExistsError):
    """The destination is no longer what the writer saw when it decided to write it (another
    run wrote it meanwhile): the new file was not put there, the other one stays."""

    def __str__(self) -> str:  # said in words: not '[Errno 17] ...: 'name'' (one line, the name escaped)
        return f"{escaped(str(self.filename))}: {self.strerror}; not replaced"


def file_state(path: PathLike) -> tuple[int, int, int] | None:
    """What a writer saw at ``path`` (inode, size, modification time), ``None`` when nothing is
    there: given back as ``expect=`` to :func:`atomic_write_path`, it refuses to replace a file
    that another process wrote since. A link is seen as itself, as the rename replaces it (a
    dangling link is something there; a link to itself is not an error)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def folds_case(folder: str | os.PathLike) -> bool:
    """Whether the disk that ``folder`` is (or will be) on takes names differing only in letter
    case for one file (a FAT or exFAT stick, an SMB share, an ext4 folder with casefold, on
    Linux; ``paths.folds_case`` asks only where ``paths.CASE_INSENSITIVE_DISKS`` does not say so
    already, so that no probe is made on macOS or Windows): a hidden file made in
    its nearest existing folder is looked up by its name in upper case (found: it folds), then
    removed. ``False`` where nothing can be made there (the write says why)."""
    p = Path(os.path.abspath(folder))
    while not os.path.isdir(p) and p.parent != p:
        p = p.parent
    try:
        fd, probe = tempfile.mkstemp(dir=p, prefix=".trufor_lab-case-probe-")
    except OSError:
        return False
    os.close(fd)
    try:
        head, name = os.path.split(probe)
        # a name no one else made answers: the disk folds case (its inode number is not compared:
        # a FUSE mount may number each name it is asked for apart)
        return os.path.lexists(os.path.join(head, name.upper()))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def blocking_file(path: str | os.PathLike) -> Path | None:
    """The part of ``path``'s folders that exists but is not a folder (``photo.jpg`` in
    ``photo.jpg/report.html``), so that writing ``path`` must fail; ``None`` if there is none."""
    for parent in reversed(Path(path).parents):
        if not os.path.exists(parent):  # os.path: never raises (Path.exists re-raises EACCES)
            return None
        if not os.path.isdir(parent):
            return parent
    return None


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why files cannot be created in ``folder`` (made if missing), or ``None``: checked once,
    before a run's work rather than at its first write."""
    blocker = blocking_file(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    p = Path(os.path.abspath(folder))
    while not os.path.exists(p) and p.parent != p:
        p = p.parent
    if os.path.isdir(p) and not os.access(p, os.W_OK | os.X_OK):
        return f"no permission to write in {p}" + (" (read-only)" if _read_only(p) else "")
    if os.path.isdir(p):  # os.access says yes to root everywhere (/sys, /proc): a file made and removed says
        try:
            fd, probe = tempfile.mkstemp(dir=p, prefix=".trufor_lab-probe-")
        except OSError as e:
            return f"{e.strerror or type(e).__name__} when writing in {p}"
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


def _read_only(p: Path) -> bool:
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def _same_file(a: str, b: Path) -> bool:
    """Whether ``b`` itself (not what a link there names) is the file ``a``."""
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except OSError:
        return False


def _put_in_place(tmp: str, path: Path, expect: Any) -> None:
    """Rename ``tmp`` to ``path``; with ``expect`` (a :func:`file_state`), only when ``path`` is
    still in that state: a file that appeared there meanwhile is never replaced (a hard link
    puts a new file in place only where none is, atomically)."""
    if expect is ANY:
        os.replace(tmp, path)
        return
    if expect is None:
        try:
            os.link(tmp, path)
        except FileExistsError:
            if _same_file(tmp, path):  # made though the call failed (NFS: a retried call's answer)
                os.remove(tmp)
                return
            raise ChangedMeanwhile(errno.EEXIST, "written meanwhile by another process", str(path)) from None
        except OSError:  # a file system without hard links: checked, then renamed
            if os.path.lexists(path):
                raise ChangedMeanwhile(errno.EEXIST, "written meanwhile by another process", str(path)) from None
            os.replace(tmp, path)
        else:
            os.remove(tmp)
        return
    if file_state(path) != expect:
        raise ChangedMeanwhile(errno.EEXIST, "changed meanwhile by another process", str(path))
    os.replace(tmp, path)


def _file_mode(path: Path) -> int:
    """The permissions ``path`` would get from a plain ``open``: the replaced file's own, or
    ``0o666`` less the umask (``mkstemp`` makes ``0o600`` files, private to the writer, and a
    report or a result is usually meant to be shared)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def _temp_prefix(name: str) -> str:
    """A temporary file's prefix for ``name``: hidden and at most 43 bytes, whatever the length
    of ``name`` (its first characters, up to 32 bytes, for whoever finds a leftover, and a hash
    of the whole name)."""
    head = name[:32]
    while len(os.fsencode(head)) > 32:  # whole characters only: never half of a UTF-8 sequence
        head = head[:-1]
    return f".{head}.{hashlib.sha1(os.fsencode(name)).hexdigest()[:8]}."


def leftover_temporaries(path: PathLike) -> list[Path]:
    """The temporary files that writes of ``path`` left beside it when their process was killed
    outright (SIGKILL, a power cut: no cleanup runs), by the exact name :func:`atomic_write_path`
    gives them (:func:`_temp_prefix`, ``mkstemp``'s 8 random characters, ``.tmp``); plain files
    only, never a link nor anything named otherwise. Removing them is the caller's choice: only it
    knows that no write of ``path`` is in progress."""
    path = Path(path)
    prefix = _temp_prefix(path.name)
    ours = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    found = [path.parent / n for n in names if ours.fullmatch(n)]
    return sorted(p for p in found if p.is_file() and not p.is_symlink())


def atomic_write_path(path: PathLike, write: Callable[[str], None], expect: Any = ANY) -> Path:
    """Call ``write(temporary_path)`` (for writers that take a file name, e.g. matplotlib's
    ``savefig``) beside ``path``, then rename it to ``path`` with ordinary permissions.

    Folders are created as needed; the temporary file is removed if ``write`` fails. The
    temporary name is short whatever ``path``'s (:func:`_temp_prefix`): a legal name near the
    255-byte limit must not fail for want of room for the temporary one. ``expect``: what the
    caller saw at ``path`` (:func:`file_state`) when it chose to write it; if another process
    wrote there since, :class:`ChangedMeanwhile` is raised and its file stays.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode(path))
        _put_in_place(tmp, path, expect)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None], expect: Any = ANY) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Folders are created as needed; the temporary file is removed if ``write`` fails.
    ``expect``: as :func:`atomic_write_path`'s.
    """

    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write_path(path, to_file, expect)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default, ``\\n`` line ends). A file name
    that is not valid UTF-8 (Python keeps its bytes as surrogates) is written escaped
    (``\\udce9``) rather than failing the whole table after the work is done."""
    return atomic_write_bytes(path, text.encode(encoding, errors="backslashreplace"))


def atomic_write_json(path: PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n")


def atomic_savez(path: PathLike, arrays: Mapping[str, Any], expect: Any = ANY) -> Path:
    """``np.savez`` to ``path`` atomically (the name is kept as given: no ``.npz`` appended);
    ``expect``: as :func:`atomic_write_path`'s."""
    return atomic_write(path, lambda f: np.savez(f, **arrays), expect)


def atomic_torch_save(path: PathLike, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically (plain tensors and containers: loadable with
    ``weights_only=True``)."""
    import torch  # lazy: keeps this module importable without loading torch for text outputs

    return atomic_write(path, lambda f: torch.save(obj, f))


#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string starting like a formula (a file or
    list entry named ``=HYPERLINK(...)``) gets a leading ``'``; numbers are left alone.

    A string whose leading quotes are followed by a formula character (``'=x.jpg``) gets one
    more quote too, so that :func:`csv_uncell` gives every string back exactly."""
    return "'" + v if isinstance(v, str) and v.lstrip("'").startswith(FORMULA_START) else v


def csv_uncell(v: str) -> str:
    """The text of a cell written by :func:`csv_cell` (``csv_uncell(csv_cell(s)) == s`` for every string)."""
    return v[1:] if v.startswith("'") and v.lstrip("'").startswith(FORMULA_START) else v


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with a header line (missing cells empty; formula-like text neutralised,
    :func:`csv_cell`). A row with a carriage return in a cell (a legal file name) is written
    with every cell quoted: Python's writer quotes only the line terminator's ``\\n``, and a
    bare ``\\r`` would split the row when read back."""
    buf = io.StringIO()
    kw: dict[str, Any] = {"fieldnames": list(columns), "extrasaction": "ignore", "lineterminator": "\n"}
    w = csv.DictWriter(buf, **kw)
    quoted = csv.DictWriter(buf, quoting=csv.QUOTE_ALL, **kw)
    w.writeheader()
    for r in rows:
        row = {c: csv_cell(r.get(c, "")) for c in columns}
        (quoted if any(isinstance(v, str) and "\r" in v for v in row.values()) else w).writerow(row)
    return buf.getvalue()
