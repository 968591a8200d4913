"""``trufor-lab casebook``: the casebook as a small web app on this computer (Voila, sources hidden).

    trufor-lab casebook [--port 8866] [--no-browser] [--weights CKPT] [--device cpu|cuda]

Prints the address and serves until interrupted (Ctrl-C). The page has the upload button, the
tabs (Result, Classic filters, Noiseprint++, Provenance, Compare) and a report download link;
no code is shown. It listens on 127.0.0.1 only: other computers cannot reach it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from trufor_lab.casebook.app import app_notebook

#: The package's parent folder: the app's kernel imports the same trufor_lab as this command.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> bool:
    try:  # a TCP connect only: requesting the page would start a kernel
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def voila_command(notebook: Path, host: str, port: int, browser: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        f"--port={port}",
        f"--Voila.ip={host}",
        "--strip_sources=True",
        "--theme=light",
        "--VoilaConfiguration.file_allowlist=[]",
    ]
    if not browser:
        cmd.append("--no-browser")
    return cmd


def run(args: Any) -> int:
    if find_spec("voila") is None:
        print("error: the casebook app needs Voila: pip install voila", file=sys.stderr)
        return 2
    host = "127.0.0.1"
    if not _port_free(host, args.port):
        print(f"error: port {args.port} is in use; choose another with --port", file=sys.stderr)
        return 1
    # "Ctrl-C to stop" holds even when this process was started with SIGINT ignored (a background
    # job of a non-interactive shell, nohup): Python then keeps it ignored unless told otherwise
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _serve(args, host)
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve(args: Any, host: str) -> int:
    with tempfile.TemporaryDirectory(prefix="trufor_casebook_") as tmp:
        nb = app_notebook(Path(tmp) / "TruFor casebook.ipynb", weights=args.weights, device=args.device)
        env = {
            **os.environ,
            "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p),
        }
        proc = subprocess.Popen(
            voila_command(nb, host, args.port, args.browser),
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL if args.quiet else None,
            stderr=subprocess.STDOUT if args.quiet else None,
        )
        url = f"http://{host}:{args.port}/"
        try:
            deadline = time.time() + 120
            while not _listening(host, args.port):
                if proc.poll() is not None or time.time() > deadline:
                    print("error: the casebook app did not start (run without -q to see why)", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print(f"TruFor casebook: {url}  (open it in a browser; Ctrl-C to stop)", flush=True)
            return _wait(proc)
        except KeyboardInterrupt:
            print("stopping the casebook app", flush=True)
            return 0
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _wait(proc: subprocess.Popen) -> int:
    rc = proc.wait()
    return 0 if rc in (0, -15) else rc


def register(subparsers: Any) -> None:
    """Add ``casebook`` to the ``trufor-lab`` subcommands."""
    p = subparsers.add_parser(
        "casebook",
        help="the casebook as a web app on this computer (upload, tabs, report)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="do not open a browser")
    p.add_argument("--weights", default=None, help="TruFor checkpoint (default: $TRUFOR_WEIGHTS, then weights/)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA when available)")
    p.add_argument("-q", "--quiet", action="store_true", help="hide Voila's log")
    p.set_defaults(func=run)
