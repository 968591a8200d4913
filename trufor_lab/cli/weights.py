"""``trufor-lab weights info | download | install ZIP``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Any

from trufor_lab.inference import weights as W
from trufor_lab.cli.messages import error, note, printable


@contextlib.contextmanager
def _unsigned_said():
    """The library's warning that an install cannot be marked verified: said up front already."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*cannot be marked verified", UserWarning)
        yield


def run(args: argparse.Namespace) -> int:
    """Show where checkpoints are looked for, or download them."""
    if args.action == "info" and args.zip is not None:  # `weights info extra` printed info as if asked plainly
        error(f"{printable(args.zip)}: only `install` takes a file")
        return 2
    ignored = [
        o for o, given in (("--dir", args.dir is not None), ("--skip-noiseprint", args.skip_noiseprint)) if given
    ]
    if args.action == "info" and ignored or args.action == "install" and args.skip_noiseprint:  # were ignored, unsaid
        shown = ignored if args.action == "info" else ["--skip-noiseprint"]
        error(f"{' and '.join(shown)}: not an option of `weights {args.action}`")
        return 2
    if args.action == "info":
        print(f"download folder: {W.weights_dir()} (per-user cache; $TRUFOR_LAB_WEIGHTS_DIR overrides)")
        for var in ("TRUFOR_WEIGHTS", "TRUFOR_NOISEPRINT_WEIGHTS"):
            print(f"${var}: {os.environ.get(var) or '(not set)'}")
        print("searched, in order (Noiseprint++ alone: the shipped folder first):")
        for folder, found in W.searched():
            print(f"  {folder}: {', '.join(found) if found else 'nothing'}")
        for what, where, status in W.installed():
            print(f"{what:<14} {status}\n{'':<14} {where}")
        for t, size, age in W.leftovers():  # a killed download's or install's; the next one removes it a day on
            print(
                f"leftover download: {t} ({size} bytes, {age / 3600:.1f} h old; removed by a download or install once a day old)"
            )
        return 0
    if (args.action == "install") != (args.zip is not None):
        error(
            "give the zip to install: `trufor-lab weights install TruFor_weights.zip`"
            if args.zip is None
            else f"{args.zip}: only `install` takes a file"
        )
        return 2
    try:
        dest = args.dir
        unsigned = W.unsigned_reason() if dest is not None else None  # before anything is downloaded
        if unsigned:  # installed all the same, as unverified (into the default cache it fails anyway)
            target = os.path.join(dest, W.TRUFOR_FILE)
            print(f"warning: {printable(target)}: cannot be marked verified: {printable(unsigned)}", file=sys.stderr)
        if args.action == "install":
            with _unsigned_said():
                p = W.install_trufor_zip(args.zip, dest)
        else:
            override = None if args.skip_noiseprint else W.noiseprint_env_override()
            shipped = None if args.skip_noiseprint or override else W.shipped_noiseprint_verified()
            if override:  # a download would change nothing: the variable wins over every copy
                note(override)
            elif shipped is not None:
                print(f"Noiseprint++: {shipped} (official, sha256 verified; nothing to download)")
            elif not args.skip_noiseprint:
                p = W.download_noiseprint(dest, progress=not args.quiet)
                print(f"Noiseprint++: {p} (sha256 verified)")
            with _unsigned_said():
                p = W.download_trufor(dest, progress=not args.quiet)
        print(f"TruFor: {p} (zip MD5 verified)")
        late = None if unsigned else W.unsigned_reason()  # into the default cache: not said up front
        if late:
            print(
                f"warning: {printable(str(p))}: installed but not marked verified: {printable(late)}", file=sys.stderr
            )
        env = os.environ.get("TRUFOR_WEIGHTS")
        if env and not (os.path.exists(env) and os.path.samefile(env, p)):  # the variable wins over every copy
            note(f"$TRUFOR_WEIGHTS={env} overrides the installed checkpoint; unset it (or set it to {p}) to use it")
        if not any(os.path.samefile(d, p.parent) for d in W.search_dirs() if d.is_dir()):
            print(
                # not TRUFOR_LAB_WEIGHTS_DIR: the key that signs the download record stays in the
                # per-user cache, and the install would then show as unverified
                f"note: {p.parent} is not searched: set TRUFOR_WEIGHTS={p}, or pass --weights {p} "
                f"(TRUFOR_LAB_WEIGHTS_DIR={p.parent} finds it too, but as unverified: "
                f"the key that signs its record stays in {W.weights_dir()})"
            )
    except W.WeightsError as e:
        error(str(e))
        return 1
    except OSError as e:  # e.g. the download folder is not writable, or the disk is full
        where = getattr(e, "filename", None) or args.dir or W.weights_dir()
        folder = args.dir or str(W.weights_dir())
        if os.path.exists(folder) and not os.path.isdir(folder):  # 'cannot write (File exists)'
            error(f"--dir {folder} is an existing file, not a folder; give a folder")
        else:
            error(f"{where}: cannot write ({e.strerror or e})")
        return 1
    return 0


def register(sub: Any) -> None:
    """Add ``weights`` to the subcommands."""
    w = sub.add_parser(
        "weights",
        help="show, download or install checkpoints",
        description="info: where checkpoints are looked for; download: fetch the official TruFor checkpoint "
        "(and Noiseprint++ when no official copy is installed); install ZIP: a TruFor_weights.zip copied "
        "from another machine (MD5 checked).",
    )
    w.add_argument("action", choices=["info", "download", "install"])
    w.add_argument("zip", nargs="?", default=None, help="install: the TruFor_weights.zip file")
    w.add_argument(
        "--dir",
        default=None,
        help="where to put the TruFor checkpoint, and Noiseprint++ when `download` fetches it "
        "(default: the per-user cache, see `weights info`)",
    )
    w.add_argument("--skip-noiseprint", action="store_true", help="download: never fetch Noiseprint++")
    w.add_argument("-q", "--quiet", action="store_true")
    w.set_defaults(func=run)
