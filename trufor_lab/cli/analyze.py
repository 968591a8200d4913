"""``trufor-lab analyze INPUT... -o OUT``: the official npz format for every image."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from trufor_lab.common.files import ChangedMeanwhile, blocking_file, file_state, unwritable_reason
from trufor_lab.common.paths import OutputPathError, expand_inputs, output_path
from trufor_lab.common.device import model_device, resolve_device
from trufor_lab.common.image_files import open_unwarned, stored_size
from trufor_lab.inference.analyze import analyze, takes_lean
from trufor_lab.inference.load import is_full_model, load
from trufor_lab.inference.preprocess import ImageError
from trufor_lab.inference.result import NonFiniteOutput
from trufor_lab.inference.stored import (
    computed_label,
    output_arrays,
    output_refusal,
    recorded_summary,
    reuse_problem,
)
from trufor_lab.inference.weights import WeightsError, select, sha256_of, weights_sha256
from trufor_lab.model import CheckpointError
from trufor_lab.cli.messages import (
    PRECISION_HELP,
    WEIGHTS_HELP,
    device_help,
    error,
    left_out_words,
    model_note,
    note,
    printable,
    weights_note,
)


def _outputs(pairs: list[tuple[Path, str]], output: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(input, output file)`` pairs, and one line per input whose name cannot be an output
    there (it would leave the folder): that file alone fails, the batch goes on."""
    if output.lower().endswith(".npz") and not os.path.isdir(output):  # an existing folder is a folder
        if len(pairs) != 1:
            raise SystemExit(
                f"error: --output {printable(output)} names one file but there are {len(pairs)} inputs; give a folder"
            )
        why = unwritable_reason(Path(output).parent)
        if why:
            raise SystemExit(f"error: --output {printable(output)}: cannot write there ({printable(why)})")
        return [(pairs[0][0], Path(output))], []
    if os.path.exists(output) and not os.path.isdir(output):  # said once, before any work
        raise SystemExit(
            f"error: --output {printable(output)} is an existing file, not a folder; give a folder or a .npz name"
        )
    why = unwritable_reason(output)
    if why:  # said once, before any image is analysed, not once per image at its write
        raise SystemExit(f"error: --output {printable(output)}: cannot write there ({printable(why)})")
    outs: list[tuple[Path, Path]] = []
    refused: list[str] = []
    for path, rel in pairs:
        try:
            out = output_path(output, rel)
        except OutputPathError as e:
            refused.append(f"{path}: {e}")
            continue
        blocker = blocking_file(out)
        if blocker is not None:  # said before the analysis, not after it at the write
            refused.append(f"{out}: cannot write output ({blocker} is a file, not a folder)")
            continue
        outs.append((path, out))
    return outs, refused


#: Pixels above which one image's forward on a CPU takes minutes (Noiseprint++ alone: ~1.1 TFLOP a megapixel).
SLOW_ON_CPU_PIXELS = 8_000_000


def _slow_forward(model: Any, path: Path) -> str | None:
    """One line for an image whose forward will take long (the memory-lean one, or more than
    :data:`SLOW_ON_CPU_PIXELS` on a CPU), from its header; ``None`` otherwise, or when the header
    does not read (its analysis says why)."""
    try:
        with open_unwarned(path) as im:
            w, h = stored_size(im)  # the grid the network reads
    except Exception:  # noqa: BLE001 - an untrusted file: the analysis refuses it in its own words
        return None
    lean = takes_lean(model, h, w)
    cpu = model_device(model).type == "cpu"
    if not lean and not (cpu and w * h > SLOW_ON_CPU_PIXELS):
        return None
    how = "memory-lean forward" if lean else f"{w * h / 1e6:.1f} MP"
    return f"{path}: {w}x{h}, {how}" + (": several minutes on a CPU" if cpu else "")


def run(args: argparse.Namespace) -> int:
    """Analyze every input; 0 all written or skipped, 1 some failed, 2 the weights could not load.

    An existing output is skipped only when it records the same input file (sha256), the same
    weights, precision and numerics, holds every array this run writes and they are still those
    written (:func:`~trufor_lab.inference.stored.reuse_problem`); otherwise it is recomputed, with a
    one-line note saying why.
    """

    if args.no_demo and args.weights is not None:  # it was accepted and ignored
        error("--no-demo chooses what answers when no TruFor checkpoint is found; --weights names one (drop one)")
        return 2
    try:  # said even when every output is reused and no model loads (a typo was taken, exit 0)
        resolve_device(args.device)
    except ValueError as e:
        error(e)
        return 2
    others: list[Path] = []
    pairs, problems = expand_inputs(args.inputs, others=others, output=args.output)
    left_out = left_out_words(others, args.output)
    outs, refused = _outputs(pairs, args.output) if pairs else ([], [])
    problems += refused
    for p in problems:  # one line per file (a clash names each of its files): the failed count counts files
        error(p)  # escaped whole: a newline in a file name must not cut the line
    if not outs:
        print(f"0 analyzed, 0 skipped (output exists), {len(problems)} failed{left_out}")
        return 1
    failed = len(problems)
    weights_digest: str | None = None
    full = True
    todo: list[tuple[Path, Path, str, Any]] = []
    skipped = 0
    computed = computed_label("exact", args.precision)
    for path, out in outs:
        try:
            digest = sha256_of(path)
        except OSError as e:
            failed += 1
            error(f"{printable(path)}: cannot read ({e.strerror or e})")
            continue
        seen = file_state(out)  # replaced only while it is what was seen: never another run's output
        if out.exists() and not args.overwrite:
            refused = output_refusal(out, path, digest, named=len(outs) == 1 and out == Path(args.output))
            if refused:
                failed += 1
                error(refused)
                continue
            if weights_digest is None:
                try:
                    weights_digest = weights_sha256(args.weights, demo=not args.no_demo)
                    full = select(args.weights, demo=not args.no_demo)[1] != "noiseprint"
                except (WeightsError, OSError) as e:
                    error(e)
                    return 2
            # an output stripped of an array the run writes is not done
            why = reuse_problem(out, digest, weights_digest, output_arrays(full, args.save_noiseprint), computed)
            if why is None:
                skipped += 1
                if not args.quiet:  # what it said (its score, how the input was read) still holds
                    said = recorded_summary(out)
                    print(printable(f"{path}: {said} (output exists)" if said else f"{path}: output exists"))
                continue
            note(f"{out}: {why}; recomputing")
        todo.append((path, out, digest, seen))
    done = 0
    if skipped and not todo:  # no model loads to say what the reused numbers were made with
        weights_note(args.weights, demo=not args.no_demo)
    if todo:
        try:
            model = load(args.weights, device=args.device, precision=args.precision, demo=not args.no_demo)
        except (CheckpointError, WeightsError, ValueError, RuntimeError) as e:
            error(e)
            return 2
        model_note(model, args.weights)
        needs = output_arrays(is_full_model(model), args.save_noiseprint)
    bar = tqdm(todo, desc="analyze", unit="img", disable=args.quiet or None, file=sys.stderr)
    before = done + skipped + failed  # each image of todo adds one to one of these, once its output is settled
    try:
        for path, out, digest, seen in bar:
            try:
                slow = None if args.quiet else _slow_forward(model, path)
                if slow:  # said before a forward that leaves the bar at 0/1 for minutes
                    tqdm.write(printable(slow), file=sys.stderr)
                result = analyze(model, path)
                result.save_npz(
                    out,
                    save_noiseprint=args.save_noiseprint,
                    input_sha256=digest,
                    computed=computed,
                    input_path=path,
                    expect=seen,
                )
            except ImageError as e:
                failed += 1
                tqdm.write(f"error: {printable(e)}", file=sys.stderr)
                continue
            except NonFiniteOutput as e:  # names the image already
                failed += 1
                tqdm.write(f"error: {printable(e)}", file=sys.stderr)
                continue
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
                failed += 1
                why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                tqdm.write(f"error: {printable(path)}: analysis failed ({printable(why)})", file=sys.stderr)
                continue
            except ChangedMeanwhile:  # two runs writing into one folder: the first one's output stays
                try:
                    weights_digest = weights_digest or weights_sha256(args.weights, demo=not args.no_demo)
                    why = reuse_problem(out, digest, weights_digest, needs, computed)
                except (WeightsError, OSError) as e:
                    why = f"cannot compare the weights: {e}"
                if why is None:  # the same as this run's: done
                    skipped += 1
                    if not args.quiet:
                        tqdm.write(printable(f"{path}: output written meanwhile by another run"), file=sys.stdout)
                    continue
                failed += 1
                tqdm.write(
                    f"error: {printable(out)}: written meanwhile by another run ({printable(why)}); not replaced "
                    "(give each run its own -o, or run this one again once the other is done)",
                    file=sys.stderr,
                )
                continue
            except OSError as e:
                failed += 1
                tqdm.write(
                    f"error: {printable(out)}: cannot write output ({printable(e.strerror or e)})", file=sys.stderr
                )
                continue
            done += 1
            if not args.quiet:
                tqdm.write(printable(result.summary()), file=sys.stdout)
    except KeyboardInterrupt:  # what was done, on the summary line a script reads, and how to go on
        bar.close()
        with contextlib.suppress(OSError):  # stdout a terminal gone (SIGHUP): stderr may still be read
            print(
                f"{done} analyzed, {skipped} skipped (output exists), {failed} failed{left_out}; "
                f"interrupted: {len(todo) - (done + skipped + failed - before)} not analyzed"
            )
        raise KeyboardInterrupt(
            "interrupted; the outputs written are complete: run the same command again to go on (they are skipped)"
        ) from None
    print(f"{done} analyzed, {skipped} skipped (output exists), {failed} failed{left_out}")
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add ``analyze`` to the subcommands."""
    a = sub.add_parser(
        "analyze",
        help="analyze images; writes the official npz format",
        description="Analyze images and write one npz per image (the official test script's format). One "
        "line per image: score (the model's probability that the image was manipulated), map max (the "
        "highest value of the localization map, each pixel's probability of being forged) and mean "
        "confidence (how far the map can be trusted, 0 to 1). Without the official checkpoint the demo "
        "model answers and a note says so.",
    )
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or globs")
    a.add_argument("-o", "--output", required=True, help="output folder, or a .npz file for a single input")
    a.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    a.add_argument("--device", default=None, help=device_help())
    a.add_argument("--precision", default="float32", choices=["float32", "float64"], help=PRECISION_HELP)
    a.add_argument(
        "--no-demo",
        action="store_true",
        help="without a TruFor checkpoint, give Noiseprint++ only instead of the demo model",
    )
    a.add_argument("--save-noiseprint", action="store_true", help="also store the Noiseprint++ map as 'np++'")
    a.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    a.add_argument("-q", "--quiet", action="store_true", help="no line per image, no progress bar")
    a.set_defaults(func=run)
