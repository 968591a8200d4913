"""``trufor-lab casebook``: the casebook as a small web app on this computer (Voila, sources hidden).

    trufor-lab casebook [--port 8866] [--no-browser] [--weights CKPT] [--device cpu|cuda|cuda:N|mps|auto] [-v]

Prints the address (Voila's own log only with ``-v``) and serves until interrupted (Ctrl-C, or the terminal closed, or a plain
``kill``: the server and its temporary files go in every case). The page has the upload button,
the tabs (Result, Classic filters, Noiseprint++, Provenance, Compare) and a report download link;
no code is shown. It is this user's only: it listens on 127.0.0.1 (other computers cannot reach
it), the address carries a secret token (other users of this computer cannot use it), and only
local host names are served (a web page cannot reach it by DNS rebinding). Uploads up to
200 MB (:data:`trufor_lab.casebook.app.UPLOAD_LIMIT`; larger ones are refused with a message up to
800 MB, beyond which the browser's connection drops); a page left closed for :data:`IDLE_KERNEL_S` seconds frees its kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import webbrowser
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from trufor_lab.casebook.app import WEBSOCKET_LIMIT, app_notebook
from trufor_lab.inference.load import load
from trufor_lab.inference.weights import WeightsError, select
from trufor_lab.model import CheckpointError
from trufor_lab.cli.messages import WEIGHTS_HELP, device_help

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


#: A kernel whose page is gone is stopped after this long idle (every page load starts one).
IDLE_KERNEL_S = 300


def voila_command(notebook: Path, host: str, port: int) -> list[str]:
    """Voila serving ``notebook``; the browser is opened by this command (with the token)."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        f"--port={port}",
        f"--Voila.ip={host}",
        "--strip_sources=True",
        "--theme=light",
        "--no-browser",
    ]


def voila_config(token: str) -> dict[str, Any]:
    """Voila's settings, written as ``voila.json`` in its private working folder (not on the
    command line, where ``ps`` would show the token to other users)."""
    return {
        "VoilaConfiguration": {"file_allowlist": []},  # no file of the folder is served
        "Voila": {
            "token": token,
            # one websocket message carries a whole upload: Tornado's default (10 MiB) would drop
            # a 12 MP PNG or TIFF without a word
            "tornado_settings": {"allow_remote_access": False, "websocket_max_message_size": WEBSOCKET_LIMIT},
        },
        "MappingKernelManager": {"cull_idle_timeout": IDLE_KERNEL_S, "cull_interval": 30, "cull_connected": False},
    }


def _stop_on(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the terminal closed or a plain kill: stop as Ctrl-C does


def run(args: Any) -> int:
    if find_spec("voila") is None:
        print("error: the casebook app needs Voila: pip install voila", file=sys.stderr)
        return 2
    host = "127.0.0.1"
    if not 1 <= args.port <= 65535:
        print(f"error: port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    try:  # bad weights or device are said here, not later as an error page without a reason
        select(args.weights)
        load(args.weights, device=args.device)  # freed again: the page's kernel loads its own
    except (CheckpointError, WeightsError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    if not _port_free(host, args.port):
        print(f"error: port {args.port} is in use; choose another with --port", file=sys.stderr)
        return 1
    # "Ctrl-C to stop" holds even when this process was started with SIGINT ignored (a background
    # job of a non-interactive shell, nohup): Python then keeps it ignored unless told otherwise;
    # SIGTERM and SIGHUP take the same way out, so the server and its files never outlive us
    stops = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _stop_on}
    if hasattr(signal, "SIGHUP"):
        stops[signal.SIGHUP] = _stop_on
    previous = {sig: signal.signal(sig, handler) for sig, handler in stops.items()}
    try:
        return _serve(args, host)
    except KeyboardInterrupt:  # arrived between the server's end and ours
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(args: Any, host: str) -> int:
    with tempfile.TemporaryDirectory(prefix="trufor_casebook_") as tmp:  # private (0700)
        nb = app_notebook(Path(tmp) / "TruFor casebook.ipynb", weights=args.weights, device=args.device)
        token = secrets.token_urlsafe(24)
        (Path(tmp) / "voila.json").write_text(json.dumps(voila_config(token)), encoding="utf-8")
        env = {
            **os.environ,
            "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p),
        }
        # Voila's own log (with its own address, token elided, which would not open the app)
        # goes to a file unless asked for; its last line is the reason when the server fails
        log_path = Path(tmp) / "voila.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                voila_command(nb, host, args.port),
                cwd=tmp,
                env=env,
                stdout=None if args.verbose else log,
                stderr=subprocess.STDOUT if not args.verbose else None,
                start_new_session=True,  # a closed terminal reaches only us; we stop it cleanly
            )
        url = f"http://{host}:{args.port}/?token={token}"
        try:
            deadline = time.time() + 120
            while not _listening(host, args.port):
                if proc.poll() is not None or time.time() > deadline:
                    why = "no answer in 120 s" if proc.poll() is None else _last_line(log_path)
                    print(f"error: the casebook app did not start: {why}", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print(f"TruFor casebook: {url}  (open it in a browser; Ctrl-C to stop)", flush=True)
            if args.browser:
                webbrowser.open(url)
            rc = _wait(proc)
            if rc:
                print(f"error: the casebook app stopped (exit {rc}): {_last_line(log_path)}", file=sys.stderr)
            return rc
        except KeyboardInterrupt:
            print("stopping the casebook app", flush=True)
            return 0
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop Voila as Ctrl-C would (it then stops its kernels and removes its files); harder if
    it does not go."""
    for send, wait in ((lambda: proc.send_signal(signal.SIGINT), 20), (proc.terminate, 10), (proc.kill, 10)):
        if proc.poll() is not None:
            return
        send()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _last_line(log_path: Path) -> str:
    """The last line of Voila's log that says something (``-v`` shows the whole log)."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        lines = []
    said = [ln for ln in lines if ln]
    return (said[-1][:300] if said else "Voila said nothing") + " (run with -v to see Voila's log)"


def _wait(proc: subprocess.Popen) -> int:
    rc = proc.wait()
    return 0 if rc in (0, -15) else rc


def register(subparsers: Any) -> None:
    """Add ``casebook`` to the ``trufor-lab`` subcommands."""
    p = subparsers.add_parser(
        "casebook",
        help="the casebook as a web app on this computer (upload, tabs, report)",
        description=__doc__.splitlines()[0].replace("``", ""),
    )
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="do not open a browser")
    p.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    p.add_argument("--device", default=None, help=device_help())
    p.add_argument("-v", "--verbose", action="store_true", help="show Voila's own log (hidden by default)")
    p.add_argument(
        "-q", "--quiet", action="store_true", help=argparse.SUPPRESS
    )  # the default now; kept for old scripts
    p.set_defaults(func=run)
