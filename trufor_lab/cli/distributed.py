"""``trufor-lab distributed-analyze``; under torchrun: ``torchrun --nproc_per_node N --no-python trufor-lab
distributed-analyze ...`` (``-m trufor_lab.cli.distributed`` works too, with a harmless runpy warning).

Exit status: rank 0 prints the summary and exits 1 when an image failed; the other ranks exit 0
unless they themselves broke (so that torchrun does not blame a rank for a bad image); 2 when the
launch is wrong (the environment, a rank missing after --timeout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from trufor_lab.cli.messages import (
    left_out_words,
    PRECISION_HELP,
    WEIGHTS_HELP,
    device_help,
    error,
    note,
    output_folder_problem,
    positive_seconds,
    printable,
    run_command,
    weights_note,
)
from trufor_lab.inference.distributed import SUMMARY_FILE, distributed_analyze
from trufor_lab.lab.datasets import DatasetError, load_dataset

#: ``--help``'s description (the first line of this module's docstring stops mid-sentence).
DESCRIPTION = (
    "Analyze images (files, folders, globs, or a benchmark's list) on every rank of torch.distributed, each "
    "writing its share of the npz outputs (resumable); launch with torchrun --nproc_per_node N --no-python "
    "trufor-lab distributed-analyze INPUT -o OUT."
)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``distributed-analyze`` (shared by the subcommand and ``python -m``)."""
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders (recursive) or globs")
    p.add_argument("-o", "--output", required=True, help="output folder (OUT/<relative path>.npz)")
    p.add_argument(
        "--dataset",
        default=None,
        help="a registered benchmark name or a fake-list file (instead of INPUT; needs --root)",
    )
    p.add_argument("--root", default=None, help="dataset root for --dataset")
    p.add_argument(
        "--list-dir", default=None, help="folder holding a benchmark's official list files (default: --root)"
    )
    p.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    p.add_argument(
        "--device", default=None, help=device_help("; cuda and auto give each rank its own GPU, cuda:LOCAL_RANK")
    )
    p.add_argument("--precision", default="float32", choices=["float32", "float64"], help=PRECISION_HELP)
    p.add_argument(
        "--mode",
        default="exact",
        choices=["exact", "fast"],
        help="exact (default): what the official code computes (the memory-lean forward where an image does "
        "not fit); fast: approximate, see bench/",
    )
    p.add_argument("--save-noiseprint", action="store_true", help="also store the Noiseprint++ map as 'np++'")
    p.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=300.0,
        metavar="SECONDS",
        help="how long a rank waits for the others to join at the start (default 300); then it stops, "
        "naming the missing ranks",
    )
    p.add_argument(
        "--gather-timeout",
        type=positive_seconds,
        default=86400.0,
        metavar="SECONDS",
        help="how long the ranks wait at the end for the slowest one to finish its share (default 86400, "
        "a day: a rank that dies is noticed at once, this is for one that hangs)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.dataset and args.inputs:  # the list would win and INPUT be dropped unsaid
        error("give INPUT paths or --dataset, not both")
        return 2
    if args.dataset:
        if not args.root:
            print("error: --dataset needs --root", file=sys.stderr)
            return 2
        try:
            inputs: Any = load_dataset(args.dataset, args.root, list_dir=args.list_dir)
        except DatasetError as e:
            error(str(e))
            return 2
    elif args.root or args.list_dir:  # taken only with --dataset: ignored, unsaid
        error(f"{'--root' if args.root else '--list-dir'} goes with --dataset (INPUT paths are read as given)")
        return 2
    elif args.inputs:
        inputs = args.inputs
    else:
        print("error: give INPUT paths or --dataset", file=sys.stderr)
        return 2
    problem = output_folder_problem(args.output)
    if problem is not None:  # said once, before any rank works
        error(problem)
        return 2
    try:
        summary = distributed_analyze(
            inputs,
            args.output,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            mode=args.mode,
            overwrite=args.overwrite,
            save_noiseprint=args.save_noiseprint,
            timeout_s=args.timeout,
            gather_timeout_s=args.gather_timeout,
            overwrite_hint="--overwrite",
            on_wait=note,
        )
    except (ValueError, RuntimeError, OSError) as e:  # a bad --device or environment, a missing rank
        error(e)
        return 2
    except KeyboardInterrupt:  # said only 'interrupted': what is kept, what is not, and how to go on
        raise KeyboardInterrupt(
            f"interrupted; no {SUMMARY_FILE} written; the outputs written are complete: "
            "run the same command again to go on (they are skipped)"
        ) from None
    if "ranks" not in summary:  # not rank 0: its failed images are rank 0's to report (and to exit 1 for)
        return 1 if summary["error"] else 0
    # file names are escaped (error, note): a newline or a terminal escape in one must not reach the terminal raw
    for line in summary["problems"] + summary["errors"]:
        error(line)
    for name in summary["duplicates"]:
        error(f"{name}: written by more than one rank")
    for name, why in summary.get("recomputed", []):
        note(f"{name}: {why}; recomputed")
    for r in summary["ranks"]:
        for _, msg in r["failed"]:  # each message names its file (input, or the output in the way)
            error(msg)
        if not args.quiet:
            print(
                f"rank {r['rank']} ({r['device']}): {len(r['written'])} written, {len(r['skipped'])} skipped, "
                f"{len(r['failed'])} failed in {r['seconds']:.1f} s"
            )
    # the summary's own counts (input problems among the failed, as in `analyze`): the line and the JSON agree
    print(
        printable(
            f"{summary['written']} analyzed, {summary['skipped']} skipped (output exists), {summary['failed']} "
            f"failed on {summary['world_size']} rank(s); "
            + (
                f"summary: {Path(args.output) / SUMMARY_FILE}"
                if not any("summary not written" in e for e in summary["errors"])
                else "summary not written"
            )
            + left_out_words([Path(f) for f in summary["others"]], args.output)
        )
    )
    if summary["written"] or summary["skipped"]:
        weights_note(args.weights)
    bad = summary["failed"] or summary["errors"] or summary["problems"] or summary["duplicates"]
    return 1 if bad else 0


def register(subparsers: Any) -> None:
    """Add ``trufor-lab distributed-analyze``."""
    add_arguments(
        subparsers.add_parser(
            "distributed-analyze",
            help="analyze a folder/dataset with torch.distributed (launch with torchrun)",
            description=DESCRIPTION,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trufor_lab.cli.distributed`` / ``torchrun -m trufor_lab.cli.distributed``."""
    p = add_arguments(argparse.ArgumentParser(prog="trufor_lab.cli.distributed", description=DESCRIPTION))
    return run_command(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
