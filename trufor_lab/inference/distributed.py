"""Scale-out analysis over a folder or a dataset with ``torch.distributed``.

    torchrun --nproc_per_node 4 --no-python trufor-lab distributed-analyze INPUT... -o OUT [--mode exact|fast]
    trufor-lab distributed-analyze INPUT... -o OUT          # one process, same outputs

Every rank expands the same inputs, sorts them and takes the share ``items[rank::world_size]``,
so the split is deterministic and no image is analysed twice. Each output is written in the
official npz format (:meth:`Result.save_npz`: a temporary file renamed into place), next to
where ``trufor-lab analyze`` puts it (``OUT/<relative path>.npz``); an existing output made
from the same input file with the same weights (sha256 recorded in the npz), mode and
precision is skipped, so an interrupted run resumes where it stopped; any other is recomputed (listed in ``recomputed``). Rank 0 gathers every rank's report
and writes ``OUT/distributed_summary.json``. Backends: NCCL when the ranks use CUDA (one GPU
per local rank), gloo on the CPU; the summary always travels over a gloo group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

from trufor_lab.common.device import resolve_device
from trufor_lab.common.files import atomic_write_json
from trufor_lab.common.paths import OutputPathError, clash_key, clash_reason, expand_inputs, output_key, output_path
from trufor_lab.inference.load import load
from trufor_lab.inference.predict import mode_label, predict_result
from trufor_lab.inference.result import computed_label, output_refusal, reuse_problem
from trufor_lab.inference.weights import sha256_of, weights_sha256

T = TypeVar("T")

SUMMARY_FILE = "distributed_summary.json"

__all__ = ["RankInfo", "SUMMARY_FILE", "distributed_analyze", "rank_info", "shard", "work_items"]


@dataclasses.dataclass(frozen=True)
class RankInfo:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def rank_info() -> RankInfo:
    """From the process group if one is running, else from torchrun's environment variables."""
    if dist.is_available() and dist.is_initialized():
        return RankInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    env = os.environ
    return RankInfo(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """This rank's share of ``items``: sorted, then every ``world_size``-th from ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    return sorted(items)[rank::world_size]


def work_items(inputs: Sequence[str | os.PathLike] | Any) -> tuple[list[tuple[str, Path]], list[str]]:
    """``(output name, image path)`` pairs and input problems, from files/folders/globs or a
    dataset (a :class:`trufor_lab.lab.datasets.Dataset`, or any sequence of samples with ``id``
    and ``image_path``: names are the sample ids). A name that would write outside the output
    folder (absolute, or with ``..``) is refused with one line, and so is one that would write
    the output of an earlier name (``a\\b`` after ``a/b``: :func:`output_key`), or one file with
    it on a case-insensitive disk (``Photo`` after ``photo``: :func:`clash_key`)."""
    if _is_samples(inputs):
        pairs, problems = [(s.id, Path(s.image_path)) for s in inputs], []
    else:
        found, problems = expand_inputs([os.fspath(i) for i in inputs])
        pairs = [(rel, path) for path, rel in found]
    items: dict[str, tuple[str, Path, str]] = {}  # clash key -> (name, path, output key)
    for name, path in pairs:
        try:
            key = output_key(name)
        except OutputPathError as e:
            problems.append(f"{path}: {e}; skipped")
            continue
        folded = clash_key(key)
        if folded not in items:
            items[folded] = (name, path, key)
        elif items[folded][2] == key:
            problems.append(f"{path}: same output name as {items[folded][1]} ({key}.npz); skipped")
        else:
            problems.append(f"{path}: {clash_reason(key, items[folded][2], str(items[folded][1]))}; skipped")
    return sorted((name, path) for name, path, _ in items.values()), problems


def _is_samples(inputs: Any) -> bool:
    return (
        not isinstance(inputs, (str, os.PathLike))
        and hasattr(inputs, "__getitem__")
        and len(inputs) > 0
        and hasattr(inputs[0], "image_path")
        and hasattr(inputs[0], "id")
    )


def _device(device: str | None, local_rank: int) -> torch.device:
    d = resolve_device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return d


def distributed_analyze(
    inputs: Sequence[str | os.PathLike] | Any,
    output: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    precision: str = "float32",
    mode: str = "exact",
    overwrite: bool = False,
    save_noiseprint: bool = False,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Analyse this rank's share of ``inputs`` into ``output``; returns the summary.

    Starts (and ends) the process group itself when run under torchrun without one. On rank 0
    the summary covers every rank and is also written to ``output/distributed_summary.json``;
    other ranks get their own report only. Failures of single images are reported, not
    raised, so that every rank reaches the final gather.
    """
    info = rank_info()
    dev = _device(device, info.local_rank)
    started_group = False
    if info.world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo",
            rank=info.rank,
            world_size=info.world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        started_group = True
    try:
        if info.rank == 0:  # an interrupted run must not leave the last run's summary beside its new outputs
            with contextlib.suppress(OSError):  # unwritable: the summary's own write says so at the end
                (Path(output) / SUMMARY_FILE).unlink()
        report = _run_share(inputs, Path(output), info, dev, weights, precision, mode, overwrite, save_noiseprint)
        reports = [report]
        if info.world_size > 1:
            group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))
            gathered: list[Any] | None = [None] * info.world_size if info.rank == 0 else None
            dist.gather_object(report, gathered, dst=0, group=group)
            if info.rank != 0:
                return report
            reports = list(gathered)  # type: ignore[arg-type]
        summary = _merge(reports)
        try:
            _write_json(Path(output) / SUMMARY_FILE, summary)
        except OSError as e:  # the images' results still reach the caller, with this said
            summary["errors"].append(f"{Path(output) / SUMMARY_FILE}: summary not written ({e.strerror or e})")
        return summary
    finally:
        if started_group:
            dist.destroy_process_group()


def _run_share(
    inputs: Any,
    output: Path,
    info: RankInfo,
    dev: torch.device,
    weights: Any,
    precision: str,
    mode: str,
    overwrite: bool,
    save_noiseprint: bool,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "rank": info.rank,
        "world_size": info.world_size,
        "host": socket.gethostname(),
        "device": str(dev),
        "assigned": [],
        "written": [],
        "skipped": [],
        "failed": [],
        "recomputed": [],
        "problems": [],
        "error": None,
    }
    try:
        items, problems = work_items(inputs)
        if info.rank == 0:
            report["problems"] = problems
        mine = shard(items, info.rank, info.world_size)
        report["assigned"] = [name for name, _ in mine]
        todo = []
        weights_digest = None
        computed = computed_label(mode_label(mode, dev if precision == "float32" else None), precision)
        for name, path in mine:
            out = output_path(output, name)
            try:
                digest = sha256_of(path)
            except OSError as e:
                report["failed"].append([name, f"{path}: cannot read ({e.strerror or e})"])
                continue
            if out.exists() and not overwrite:
                refused = output_refusal(out, path, digest, "overwrite")
                if refused:
                    report["failed"].append([name, refused])
                    continue
                # reused only when made from this same input file with these same weights
                weights_digest = weights_digest or weights_sha256(weights)
                why = reuse_problem(out, digest, weights_digest, ("np++",) if save_noiseprint else (), computed)
                if why is None:
                    report["skipped"].append(name)
                    continue
                report["recomputed"].append([name, why])
            todo.append((name, path, digest))
        if todo:  # no model is loaded by a rank with nothing left to do
            model = load(weights, device=dev, precision=precision)
            report["weights"] = getattr(getattr(model, "weights_info", None), "kind", None)
            for name, path, digest in todo:
                try:
                    predict_result(model, path, mode).save_npz(
                        output_path(output, name),
                        save_noiseprint=save_noiseprint,
                        input_sha256=digest,
                        computed=computed,
                        input_path=path,
                    )
                except (ValueError, RuntimeError, MemoryError, OSError) as e:
                    why = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                    report["failed"].append([name, why if why.startswith(str(path)) else f"{path}: {why}"])
                    continue
                report["written"].append(name)
    except Exception as e:  # noqa: BLE001 - reported so that every rank still reaches the gather
        report["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        done = {*report["written"], *report["skipped"], *(n for n, _ in report["failed"])}
        report["failed"] += [[n, f"{n}: not analyzed: {report['error']}"] for n in report["assigned"] if n not in done]
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Every rank's report in one; an input problem (one line per file, or per input that gave
    none) counts as failed, and among ``images``: ``images == written + skipped + failed``."""
    written = [n for r in reports for n in r["written"]]
    problems = [p for r in reports for p in r["problems"]]
    return {
        "world_size": len(reports),
        "images": sum(len(r["assigned"]) for r in reports) + len(problems),
        "written": len(written),
        "skipped": sum(len(r["skipped"]) for r in reports),
        "failed": sum(len(r["failed"]) for r in reports) + len(problems),
        "recomputed": [item for r in reports for item in r.get("recomputed", [])],
        "errors": [f"rank {r['rank']}: {r['error']}" for r in reports if r["error"]],
        "problems": problems,
        "duplicates": sorted(n for n, k in Counter(written).items() if k > 1),
        "ranks": sorted(reports, key=lambda r: r["rank"]),
    }


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, indent=1)
