"""One notebook, executed in a process of its own for ``trufor-lab notebooks``.

    python notebook_process.py NOTEBOOK RESULT_JSON TIMEOUT RUNNER_PID

The runner starts this file by its path (importing the package would load torch for every
notebook) in a session of its own, so a Ctrl-C in the terminal reaches the runner alone; the
runner then stops this process with SIGTERM, on which nbclient shuts the kernel down. Should the
runner die, this process notices (its parent changes) and stops the same way. Writes the
notebook's wall time (kernel start included), the kernel's CPU time and its first error as JSON.
Imports nothing from ``trufor_lab``.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def failure(nb: Any, exc: BaseException, cell_index: int | None) -> str:
    """One line: the failing code cell (counted from 1, as a reader counts them), the exception's
    type and the first line of its message."""
    where = ""
    if cell_index is not None:
        number = sum(c.cell_type == "code" for c in nb.cells[: cell_index + 1])
        where = f"code cell {number}: "
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename is None:  # not a cell's error: a timeout, a dead kernel
        ename, evalue = type(exc).__name__, str(exc)
    first = _first_line(str(evalue))
    return where + f"{ename}" + (f": {first}" if first else "")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if ln.strip()), "")


def execute(path: Path, timeout: int) -> dict[str, Any]:
    """Run ``path`` top to bottom (its saved outputs discarded); the timing as a JSON-ready dict."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # not JSON, not a notebook, unreadable: a result like a broken cell's
        why = f"cannot read the notebook: {type(e).__name__}: {_first_line(str(e))}"
        return {"seconds": 0.0, "ok": False, "error": why, "cpu_seconds": math.nan}
    for c in nb.cells:  # outputs saved in the file are not this run's
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    started: list[int] = []
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=lambda cell, cell_index: started.append(cell_index),
    )
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        client.execute()
        ok, error = True, ""
    except Exception as e:  # a cell's error, a timeout, a dead kernel: the notebook's result
        ok, error = False, failure(nb, e, started[-1] if started else None)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel has exited and been waited for
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"seconds": wall, "ok": ok, "error": error, "cpu_seconds": cpu if cpu > 0 else math.nan}


def _stop_when_orphaned(runner_pid: int) -> None:
    """SIGTERM to this process once the runner is gone (killed, or its terminal closed)."""

    def watch() -> None:
        while os.getppid() == runner_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    # whoever started the runner may have blocked SIGINT: the kernel must take interrupts
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    notebook, result, timeout, runner_pid = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3])
    _stop_when_orphaned(runner_pid)
    timing = execute(notebook, timeout)
    result.write_text(json.dumps(timing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
