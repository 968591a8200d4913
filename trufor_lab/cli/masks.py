"""The mask options ``eval`` and ``train`` share (``--masks``, ``--mask-suffix``, ``--mask-threshold``,
``--mask-invert``): one wording, one reading of a folder of images and masks
(:func:`trufor_lab.lab.datasets.folder_dataset`), one convention for a folder named like a benchmark."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from trufor_lab.lab.datasets import (
    REGISTRY,
    SOFT_EDGES,
    Dataset,
    DatasetError,
    MaskConvention,
    folder_convention,
    folder_dataset,
    folder_name,
)


def add_mask_options(parser: Any, masks_help: str) -> None:
    """``--masks DIR`` (with ``masks_help``), ``--mask-suffix``, ``--mask-threshold``, ``--mask-invert``."""
    parser.add_argument("--masks", default=None, metavar="DIR", help=masks_help)
    parser.add_argument(
        "--mask-suffix",
        default="",
        help="mask file stem = image stem + this suffix; without --masks, the masks lie among the images",
    )
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=None,
        metavar="LEVEL",
        help="grey level above which a mask pixel is forged (default: the benchmark's, any nonzero "
        "level for a folder, as the official scripts read masks); 127 for JPEG-saved or soft-edged masks "
        "(a level given reads mid-grey edges at it instead of refusing the mask)",
    )
    parser.add_argument(
        "--mask-invert",
        action="store_true",
        help="masks are black = forged (DSO-1, NIST16 style); a folder named like a registered "
        "benchmark gets that benchmark's convention without it",
    )


def check_threshold(args: argparse.Namespace) -> None:
    t = args.mask_threshold
    if t is not None and not 0 <= t < 255:
        raise DatasetError(f"--mask-threshold {t}: give a grey level from 0 to 254 (forged = above it)")


def _mask_options(args: argparse.Namespace) -> str:
    return " and ".join(
        o
        for o, on in (("--mask-threshold", args.mask_threshold is not None), ("--mask-invert", args.mask_invert))
        if on
    )


def overridden(convention: MaskConvention, name: str, args: argparse.Namespace) -> MaskConvention:
    """``convention`` with --mask-threshold / --mask-invert applied; the rest of the rule kept."""
    if args.mask_threshold is None and not args.mask_invert:
        return convention
    if convention.colour is not None:
        raise DatasetError(f"{_mask_options(args)} does not apply to {name}: its masks are read by colour")
    if args.mask_threshold is not None:  # a level given: soft (feathered) edges are read at it, not refused
        convention = dataclasses.replace(convention, threshold=args.mask_threshold, max_grey=SOFT_EDGES)
    return dataclasses.replace(convention, invert=True) if args.mask_invert else convention


def invert_changes_nothing(name: str, benchmark: str, rename: str) -> str:
    """The note for --mask-invert on a dataset named like a benchmark read black = forged already
    (the option was taken silently, and the benchmark's note told it would read the masks otherwise)."""
    return (
        f"{name}: named like the benchmark {benchmark}, whose masks are black = forged: --mask-invert "
        f"changes nothing; to read them white = forged, {rename}"
    )


def folder_from_args(args: argparse.Namespace, name: str | None, rename: str) -> Dataset:
    """The dataset of ``--images`` with the mask options; ``name`` (default: the folder's) picks a
    benchmark's convention; ``rename`` says how this command gives the dataset another name."""
    check_threshold(args)
    name = name or folder_name(Path(args.images))
    base, note = folder_convention(name, otherwise=rename)
    convention = overridden(base, name, args)  # labels depend on it: an empty mask is a real image
    ds = folder_dataset(args.images, args.masks, args.mask_suffix, name=name, convention=convention)
    if note and args.mask_invert:  # the option governs; said when it is the benchmark's own convention
        note = invert_changes_nothing(name, REGISTRY.get(name).name, rename) if base.invert else None
    if note:
        ds.notes.insert(0, note)
    return ds
