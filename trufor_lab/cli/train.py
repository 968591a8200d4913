"""``trufor-lab train``: train TruFor (a phase, or all three) on synthetic forgeries, and on one's
own forgeries with their masks (``--images DIR --masks DIR``, the mask options of ``trufor-lab eval``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from typing import Any, Sequence

from trufor_lab.cli.masks import add_mask_options, folder_from_args
from trufor_lab.cli.messages import device_help, error, output_folder_problem, run_command
from trufor_lab.lab.datasets import Dataset, DatasetError
from trufor_lab.model import MIT_B0, MIT_B2, CheckpointError
from trufor_lab.training.loop import NAN_ADVICE, PHASES, TrainConfig, train, train_phases


def run(args: Any) -> int:
    """Train; a bad setting, path or checkpoint is one line on stderr (exit 2), never a traceback."""
    problem = output_folder_problem(args.output)
    if problem is not None:  # '[Errno 17] File exists' said nothing of a file in the way
        error(problem)
        return 2
    # the folders this run makes; one it stops (an error, Ctrl-C) before writing into is removed
    inside = [os.path.join(args.output, name) for name in (*PHASES, "cache")]  # --phase all's folders
    made = [p for p in (args.output, *inside) if not os.path.exists(p)]
    try:
        return _run(args)
    except (ValueError, OSError, RuntimeError, CheckpointError, FloatingPointError) as e:
        # the library's words for its options, as this command spells them
        error(
            _OPTION_NAMES.sub(lambda m: "--" + m[1].replace("_", "-"), str(e))
            .replace("use another out_dir, or resume=False", "use another -o, or --restart")
            .replace(
                "TrainConfig.model (leave model=None to take its own)", "--model (leave --model out to take its own)"
            )
            .replace(NAN_ADVICE, "start again with a lower --lr (--restart, or another -o)")
            .replace("give init (", "give --init (")
        )
        return 2
    finally:
        for folder in reversed(made):  # those inside first; a folder with anything in it stays
            with contextlib.suppress(OSError):
                os.rmdir(folder)


#: A setting named as the config calls it ("batch_size 1 needs ...", "steps must be ..."), spelled
#: as this command's option.
_OPTION_NAMES = re.compile(r"(?<![\w.-])(batch_size|steps|crop|lr|seed|precompute)(?= (?:must|needs|\d))")


def _forgeries(args: Any) -> list[Dataset]:
    """``--images DIR`` with ``--masks`` / ``--mask-suffix``: a dataset of forgeries and their masks, read
    as ``trufor-lab eval`` reads it; an image without a mask is refused (it would train as authentic)."""
    if args.masks is None and not args.mask_suffix:
        given = [
            o
            for o, on in (("--mask-invert", args.mask_invert), ("--mask-threshold", args.mask_threshold is not None))
            if on
        ]
        if given:  # read no mask: ignored, unsaid
            raise DatasetError(
                f"{' and '.join(given)}: no masks to read (give --masks DIR or --mask-suffix S with --images)"
            )
        return []
    if args.images is None:
        raise DatasetError("--masks and --mask-suffix go with --images DIR (the forgeries the masks belong to)")
    ds = folder_from_args(args, None, "give the folder another name")
    maskless = [s.id for s in ds if s.mask_path is None]
    if maskless:  # eval counts them as authentic; training on them as authentic teaches the opposite, unsaid
        shown = ", ".join(maskless[:3]) + (f" and {len(maskless) - 3} more" if len(maskless) > 3 else "")
        raise DatasetError(
            f"{args.images}: {len(maskless)} image(s) without a mask ({shown}): with masks, every picture needs "
            "its own (an authentic one: a mask that marks nothing), else it would be trained as authentic"
        )
    return [ds]  # its notes (how the masks are read, empty masks: authentic) are said as the run reads it


def _run(args: Any) -> int:
    model = {"b0": MIT_B0, "b2": MIT_B2, None: None}[args.model]  # None: the checkpoint's own, else b0
    datasets = _forgeries(args)
    cfg = TrainConfig(
        phase="localization" if args.phase == "all" else args.phase,
        out_dir=args.output,
        model=model,
        init=args.init,
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        pristine=None if datasets else args.images,
        datasets=datasets,
        precompute=args.precompute,
        # one pool for the three phases of --phase all (each computed the same pool again)
        cache_dir=os.path.join(args.output, "cache") if args.phase == "all" else None,
        device=args.device or "auto",
        seed=args.seed,
        resume=not args.restart,
        progress=not args.quiet,
    )
    results = train_phases(cfg) if args.phase == "all" else {cfg.phase: train(cfg)}
    if not args.quiet:
        for phase, r in results.items():
            print(f"{phase}: step {r.step}, loss {r.final_loss:.4f}, checkpoint {r.checkpoint}")
    last = list(results.values())[-1] if results else None
    missing = [p for p in PHASES if getattr(last, "trained", None) is not None and p not in last.trained]
    if missing:  # even with -q: a model loaded from it gives the score of random weights
        nxt = missing[0]
        print(
            f"note: {last.checkpoint}: its {' and '.join(missing)} phase{'s were' if len(missing) > 1 else ' was'} "
            f"never trained: a model loaded from it gives the "
            f"{' and '.join({'confidence': 'confidence map', 'detection': 'score'}[p] for p in missing)} of random weights; "
            f"train {'them' if len(missing) > 1 else 'it'} with --phase {nxt} --init {last.checkpoint} -o ANOTHER_RUN"
            + (" (then the next), or --phase all" if len(missing) > 1 else ""),
            file=sys.stderr,
        )
    return 0


def register(subparsers: Any) -> None:
    """Add ``train`` to the ``trufor-lab`` subcommands."""
    t = subparsers.add_parser(
        "train",
        help="train TruFor (a phase, or all three) on synthetic forgeries or your own with masks",
        description="Train the paper's phases (localization, confidence, detection; Noiseprint++ frozen) on "
        "forgeries made on the fly from the built-in or your own pristine pictures, or on your own forgeries "
        "with --masks; Ctrl-C saves the step in progress and a rerun resumes.",
    )
    t.add_argument(
        "--phase",
        default="localization",
        choices=list(PHASES) + ["all"],
        help="the paper's training phase (default: localization; all: the three in turn)",
    )
    t.add_argument("-o", "--output", required=True, help="run folder (checkpoints, log.jsonl)")
    t.add_argument(
        "--model",
        default=None,
        choices=["b0", "b2"],
        help="architecture size (b2 = official; default: that of --init or of the run resumed, else b0)",
    )
    t.add_argument("--init", default=None, help="checkpoint to start from (previous phase)")
    t.add_argument(
        "--images",
        default=None,
        metavar="DIR",
        help="folder of pristine images, no masks (default: built-in); with --masks or --mask-suffix, your "
        "forgeries with their masks, mixed half and half with forgeries made from the built-in pictures",
    )
    add_mask_options(
        t,
        "masks of the --images forgeries: same stem (+ --mask-suffix), read as trufor-lab eval reads them; every "
        "image needs one (an authentic picture: a mask that marks nothing)",
    )
    t.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="optimizer steps (default 1000; --phase all: confidence and detection take a quarter each)",
    )
    t.add_argument("--batch-size", type=int, default=8, help="examples per step (default 8)")
    t.add_argument("--crop", type=int, default=256, help="training crop side, a multiple of 8 (default 256)")
    t.add_argument("--lr", type=float, default=2e-4, help="peak learning rate, AdamW (default 2e-4)")
    t.add_argument(
        "--precompute", type=int, default=0, help="precompute Noiseprint++ for N examples (default 0: all on the fly)"
    )
    t.add_argument("--device", default=None, help=device_help())
    t.add_argument("--seed", type=int, default=0, help="seed of the examples and the initial weights (default 0)")
    t.add_argument(
        "--restart",
        action="store_true",
        help="start over: the run's last.pt and log.jsonl are removed (default: resume from last.pt)",
    )
    t.add_argument("-q", "--quiet", action="store_true")
    t.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trufor_lab.cli.train ...`` (same options as ``trufor-lab train``)."""
    ap = argparse.ArgumentParser(prog="python -m trufor_lab.cli.train")
    register(ap.add_subparsers(dest="command", required=True))
    return run_command(ap.parse_args(["train", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
