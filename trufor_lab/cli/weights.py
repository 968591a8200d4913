"""``trufor-lab weights info | download``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from trufor_lab.inference import weights as W
from trufor_lab.cli.messages import error


def run(args: argparse.Namespace) -> int:
    """Show where checkpoints are looked for, or download them."""
    if args.action == "info":
        print(f"download folder: {W.weights_dir()} (per-user cache; $TRUFOR_LAB_WEIGHTS_DIR overrides)")
        for var in ("TRUFOR_WEIGHTS", "TRUFOR_NOISEPRINT_WEIGHTS"):
            print(f"${var}: {os.environ.get(var) or '(not set)'}")
        print("searched, in order (Noiseprint++ alone: the shipped folder first):")
        for folder, found in W.searched():
            print(f"  {folder}: {', '.join(found) if found else 'nothing'}")
        for what, where, status in W.installed():
            print(f"{what:<14} {status}\n{'':<14} {where}")
        return 0
    try:
        dest = args.dir
        if not args.skip_noiseprint:
            p = W.download_noiseprint(dest, progress=not args.quiet)
            print(f"Noiseprint++: {p} (sha256 verified)")
        p = W.download_trufor(dest, progress=not args.quiet)
        print(f"TruFor: {p} (zip MD5 verified)")
        if not any(os.path.samefile(d, p.parent) for d in W.search_dirs() if d.is_dir()):
            print(
                f"note: {p.parent} is not searched: set TRUFOR_LAB_WEIGHTS_DIR={p.parent} "
                f"(or TRUFOR_WEIGHTS={p}), or pass --weights {p}"
            )
    except W.WeightsError as e:
        error(str(e))
        return 1
    except OSError as e:  # e.g. the download folder is not writable, or the disk is full
        error(f"{getattr(e, 'filename', None) or args.dir or W.weights_dir()}: cannot write ({e.strerror or e})")
        return 1
    return 0


def register(sub: Any) -> None:
    """Add ``weights`` to the subcommands."""
    w = sub.add_parser("weights", help="show or download checkpoints")
    w.add_argument("action", choices=["info", "download"])
    w.add_argument("--dir", default=None, help="where to put downloads (default: the weights folder)")
    w.add_argument("--skip-noiseprint", action="store_true")
    w.add_argument("-q", "--quiet", action="store_true")
    w.set_defaults(func=run)
