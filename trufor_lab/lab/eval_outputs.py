"""Where an evaluation writes each image's output (the official npz), and which images it must
refuse before any work: an id that leaves the output folder, two images that would write one
file (``a/b.png`` and ``a\\b.png``; ``A.png`` and ``a.png`` on a disk that folds letter case)."""

from __future__ import annotations

import os
from pathlib import Path

from trufor_lab.common.paths import OutputPathError, clash_key, clash_reason, folds_case, safe_part
from trufor_lab.common.paths import output_path as common_output_path
from trufor_lab.lab.datasets import Dataset, Sample


def output_path(out_dir: str | os.PathLike, dataset: Dataset, sample: Sample) -> Path:
    """``out_dir/<dataset name>/<image path relative to the root>.npz``, or, for an image not
    under the root, its whole path when it is listed by that absolute path (a list file's
    ``/data/x.png``: ``out_dir/<name>/data/x.png.npz``, as ``--root /`` named it), else the listed
    id; through :func:`trufor_lab.common.paths.output_path`, so another id that is absolute or
    climbs out with ``..`` raises :class:`OutputPathError` (one line)."""
    image = Path(sample.image_path)
    try:
        rel = image.resolve().relative_to(Path(dataset.root).resolve()).as_posix()
    except ValueError:
        rel = sample.id
        if Path(sample.id).is_absolute() and Path(sample.id) == image:  # taken as is
            whole = image.resolve()
            rel = whole.relative_to(whole.anchor).as_posix()
    return common_output_path(Path(out_dir) / safe_part(dataset.name), rel)


def output_paths(out_dir: str | os.PathLike, dataset: Dataset) -> dict[int, Path | str]:
    """Each sample's npz (by ``id(sample)``), or why it has none: an id that leaves ``out_dir``,
    or two samples that would write one file (``a/b.png`` and ``a\\b.png``; on case-insensitive
    disks ``A.png`` and ``a.png``): both refused, as ``trufor-lab analyze`` refuses them (they
    overwrote each other's output, and both rows pointed at the one left)."""
    out: dict[int, Path | str] = {}
    by_key: dict[str, list[tuple[Sample, str]]] = {}
    folding = folds_case(out_dir)  # the disk asked: a FAT stick on Linux folds case
    for sample in dataset:
        try:
            npz = output_path(out_dir, dataset, sample)
        except OutputPathError as e:
            out[id(sample)] = f"{sample.image_path}: {e}"
            continue
        out[id(sample)] = npz
        key = npz.relative_to(out_dir).as_posix()
        by_key.setdefault(clash_key(key, folding), []).append((sample, key))
    for group in by_key.values():
        for sample, key in group if len(group) > 1 else ():
            others = [(o, k) for o, k in group if o is not sample]
            names = ", ".join(str(o.image_path) for o, _ in others)
            out[id(sample)] = f"{sample.image_path}: {clash_reason(key, others[0][1], names)}; not analysed"
    return out
