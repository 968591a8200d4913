"""``trufor-lab``: a thin command line over the same functions a notebook calls.

    trufor-lab analyze INPUT... -o OUT [--weights CKPT] [--device cpu|cuda] [--precision float32|float64]
                                [--save-noiseprint] [--overwrite]
    trufor-lab weights info | download
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm",
                    ".pnm", ".jfif", ".jp2", ".heic"}


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def expand_inputs(inputs: Sequence[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, output name relative to its input root) pairs, and input problems.

    A folder is searched recursively for images; a glob is expanded (relative to the part of
    the pattern before its first wildcard); a plain file is taken as given, whatever its suffix.
    """
    found: list[tuple[Path, str]] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                problems.append(f"{item}: folder holds no images")
            found += [(f, str(f.relative_to(p))) for f in files]
        elif p.is_file():
            found.append((p, p.name))
        elif glob.has_magic(item):
            parts = Path(item).parts
            lead = next(i for i, part in enumerate(parts) if glob.has_magic(part))
            base = Path(*parts[:lead]) if lead else Path(".")
            files = sorted(Path(f) for f in glob.glob(item, recursive=True) if Path(f).is_file())
            if not files:
                problems.append(f"{item}: pattern matches no file")
            for f in files:
                try:
                    found.append((f, str(f.relative_to(base))))
                except ValueError:
                    found.append((f, f.name))
        else:
            problems.append(f"{item}: no such file or folder")
    seen, unique = set(), []
    for f, rel in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, rel))
    return unique, problems


def _outputs(pairs: list[tuple[Path, str]], output: str) -> list[Path]:
    if output.endswith(".npz"):
        if len(pairs) != 1:
            raise SystemExit(f"error: --output {output} names one file but there are {len(pairs)} inputs; "
                             "give a folder")
        return [Path(output)]
    return [Path(output) / (rel + ".npz") for _, rel in pairs]


def cmd_analyze(args: argparse.Namespace) -> int:
    from trufor_lab.inference.analyze import analyze
    from trufor_lab.inference.load import load, model_notice
    from trufor_lab.model import CheckpointError
    from trufor_lab.inference.preprocess import ImageError
    from trufor_lab.inference.weights import WeightsError

    pairs, problems = expand_inputs(args.inputs)
    for p in problems:
        _err(p)
    if not pairs:
        print(f"0 analyzed, 0 skipped, {len(problems)} failed")
        return 1
    outs = _outputs(pairs, args.output)
    try:
        model = load(args.weights, device=args.device, precision=args.precision, demo=not args.no_demo)
    except (CheckpointError, WeightsError, ValueError, RuntimeError) as e:
        _err(str(e).splitlines()[0])
        return 2
    notice = model_notice(model)
    if notice:
        print(f"note: {notice}", file=sys.stderr)
    from tqdm.auto import tqdm
    done = skipped = 0
    failed = len(problems)
    bar = tqdm(list(zip(pairs, outs)), desc="analyze", unit="img", disable=args.quiet or None, file=sys.stderr)
    for (path, _), out in bar:
        if out.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            result = analyze(model, path)
            result.save_npz(out, save_noiseprint=args.save_noiseprint)
        except ImageError as e:
            failed += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
            continue
        except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
            failed += 1
            tqdm.write(f"error: {path}: analysis failed ({str(e).splitlines()[0][:200]})", file=sys.stderr)
            continue
        except OSError as e:
            failed += 1
            tqdm.write(f"error: {out}: cannot write output ({e.strerror or e})", file=sys.stderr)
            continue
        done += 1
        if not args.quiet:
            tqdm.write(result.summary(), file=sys.stdout)
    print(f"{done} analyzed, {skipped} skipped (output exists), {failed} failed")
    return 1 if failed else 0


def cmd_weights(args: argparse.Namespace) -> int:
    from trufor_lab.inference import weights as W
    if args.action == "info":
        print(f"weights folder: {W.weights_dir()}")
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
    except W.WeightsError as e:
        _err(str(e))
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="trufor-lab", description="TruFor forgery detection and analysis")
    sub = ap.add_subparsers(dest="command", required=True)

    a = sub.add_parser("analyze", help="analyze images; writes the official npz format")
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or globs")
    a.add_argument("-o", "--output", required=True, help="output folder, or a .npz file for a single input")
    a.add_argument("--weights", default=None, help="TruFor checkpoint (default: $TRUFOR_WEIGHTS, then weights/)")
    a.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    a.add_argument("--precision", default="float32", choices=["float32", "float64"])
    a.add_argument("--no-demo", action="store_true",
                   help="without a TruFor checkpoint, give Noiseprint++ only instead of the demo model")
    a.add_argument("--save-noiseprint", action="store_true", help="also store the Noiseprint++ map as 'np++'")
    a.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    a.add_argument("-q", "--quiet", action="store_true")
    a.set_defaults(func=cmd_analyze)

    w = sub.add_parser("weights", help="show or download checkpoints")
    w.add_argument("action", choices=["info", "download"])
    w.add_argument("--dir", default=None, help="where to put downloads (default: the weights folder)")
    w.add_argument("--skip-noiseprint", action="store_true")
    w.add_argument("-q", "--quiet", action="store_true")
    w.set_defaults(func=cmd_weights)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return ap


#: Other modules add subcommands here (eval, report, bench): functions taking the subparsers.
_EXTRA_COMMANDS: list = []


def _load_extra_commands() -> None:
    import importlib
    for mod in ("trufor_lab.lab.evaluate", "trufor_lab.casebook.casebook", "trufor_lab.inference.distributed", "trufor_lab.training.loop",
                "bench.cli"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        reg = getattr(m, "register_cli", None)
        if reg is not None and reg not in _EXTRA_COMMANDS:
            _EXTRA_COMMANDS.append(reg)


def main(argv: Sequence[str] | None = None) -> int:
    _load_extra_commands()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
