"""What C libraries write straight to the terminal, kept as text instead.

libtiff prints its own errors and warnings on file descriptor 2, naming a file that does not
exist (``tempfile.tif: WEBP compression support is not configured.``, Pillow's name for the
data it hands over), before the reader's one line that names the real file. Python's
``sys.stderr`` cannot catch that: the descriptor itself is pointed at a temporary file while a
file is decoded, and pointed back after.

File descriptor 2 belongs to the whole process. Threads that decode at the same time share one
capture (the first one in redirects, the last one out restores, under a lock); a line written
while captures of two threads overlap cannot be told apart, so those captures give back
nothing (kept off the terminal all the same) rather than another file's words. Anything else
written to stderr during a capture (another thread's log line) is caught with it. Descriptor 2
is restored on every path, exceptions included.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

__all__ = ["native_stderr_kept"]

#: What is kept of one capture at most (a decoder that loops on a warning must not fill memory).
MAX_KEPT = 4096

_lock = threading.Lock()


class _Holder:
    """One caller inside the capture: its thread, where its text starts, whether another
    thread's capture overlapped it."""

    def __init__(self, start: int) -> None:
        self.thread, self.start, self.shared = threading.get_ident(), start, False


class _Capture:
    """The capture running: its temporary file, fd 2's copy to restore, who is inside."""

    def __init__(self, file: IO[bytes], saved: int) -> None:
        self.file, self.saved = file, saved
        self.holders: list[_Holder] = []


_running: list[_Capture] = []  # at most one


@contextmanager
def native_stderr_kept() -> Iterator[list[str]]:
    """Within the block, what is written on file descriptor 2 goes to a temporary file; the
    list yielded is filled, on leaving, with its non-empty lines (none where another thread's
    capture overlapped). Where fd 2 cannot be redirected (closed, or no temporary file) nothing
    is caught and the block runs as it would."""
    lines: list[str] = []
    holder = _enter()
    try:
        yield lines
    finally:
        if holder is not None:
            lines += _leave(holder)


def _enter() -> _Holder | None:
    """Redirect fd 2, or join the capture running."""
    with _lock:
        if _running:
            cap = _running[0]
            holder = _Holder(os.fstat(cap.file.fileno()).st_size)
            others = [h for h in cap.holders if h.thread != holder.thread]
            for h in others + [holder] * bool(others):  # whose line is whose cannot be told
                h.shared = True
            cap.holders.append(holder)
            return holder
        try:
            sys.stderr.flush()  # Python's text already written goes where it was meant to
        except (OSError, ValueError, AttributeError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon): nothing to catch
            return None
        try:
            file = tempfile.TemporaryFile()
            os.dup2(file.fileno(), 2)
        except OSError:
            os.close(saved)
            return None
        cap = _Capture(file, saved)
        holder = _Holder(0)
        cap.holders.append(holder)
        _running.append(cap)
        return holder


def _read(fd: int, start: int, end: int) -> bytes:
    """Bytes ``start``..``end`` of the file, at most :data:`MAX_KEPT`; fd 2 shares its offset,
    which must stay at the end (where writes go), so it is not moved."""
    n = min(end - start, MAX_KEPT)
    if n <= 0:
        return b""
    if hasattr(os, "pread"):
        return os.pread(fd, n, start)
    here = os.lseek(fd, 0, os.SEEK_CUR)  # Windows: no pread
    try:
        os.lseek(fd, start, os.SEEK_SET)
        return os.read(fd, n)
    finally:
        os.lseek(fd, here, os.SEEK_SET)


def _leave(holder: _Holder) -> list[str]:
    """The holder's lines; fd 2 restored when it is the last one inside. The holder is taken
    out and fd 2 restored whatever reading its text raises (an interrupt), or fd 2 would stay
    pointed at the file and every later capture would join this stale one."""
    text = b""
    with _lock:
        cap = _running[0]
        try:
            if not holder.shared:
                fd = cap.file.fileno()
                text = _read(fd, holder.start, os.fstat(fd).st_size)
        finally:
            cap.holders.remove(holder)
            if not cap.holders:
                _running.clear()
                try:
                    os.dup2(cap.saved, 2)
                finally:
                    os.close(cap.saved)
                    cap.file.close()
    return [line.strip() for line in text.decode("utf-8", "replace").splitlines() if line.strip()]
