"""Scale-out analysis over a folder or a dataset with ``torch.distributed``.

    torchrun --nproc_per_node 4 --no-python trufor-lab distributed-analyze INPUT... -o OUT [--mode exact|fast]
    trufor-lab distributed-analyze INPUT... -o OUT          # one process, same outputs

Rank 0 expands the inputs, sorts them and sends the list to every rank; each takes the share
``items[rank::world_size]`` of that one list, so the split is deterministic and no image is
analysed twice or left out, even when files arrive in the folder while the ranks start. Each
output is written in the official npz format (:meth:`Result.save_npz`: a temporary file renamed
into place), next to where ``trufor-lab analyze`` puts it (``OUT/<relative path>.npz``); an
existing output made from the same input file with the same weights (sha256 recorded in the
npz), mode and precision is skipped, so an interrupted run resumes where it stopped; any other
is recomputed (listed in ``recomputed``). Rank 0 gathers every rank's report and writes
``OUT/distributed_summary.json``. Backends: NCCL when the ranks use CUDA (one GPU per local
rank), gloo on the CPU; the input list and the summary always travel over a gloo group.
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
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

from trufor_lab.common.device import resolve_device
from trufor_lab.common.errors import escaped
from trufor_lab.common.files import ChangedMeanwhile, atomic_write_json, blocking_file, file_state
from trufor_lab.common.paths import (
    OutputPathError,
    clash_key,
    clash_reason,
    expand_inputs,
    folds_case,
    output_key,
    output_path,
)
from trufor_lab.inference.load import load
from trufor_lab.inference.predict import mode_label, predict_result
from trufor_lab.inference.stored import computed_label, output_arrays, output_refusal, reuse_problem
from trufor_lab.inference.weights import WeightsError, select, sha256_of, weights_sha256

T = TypeVar("T")

SUMMARY_FILE = "distributed_summary.json"

__all__ = [
    "DistributedSetupError",
    "RankInfo",
    "SUMMARY_FILE",
    "distributed_analyze",
    "rank_info",
    "shard",
    "work_items",
]


@dataclasses.dataclass(frozen=True)
class RankInfo:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


class DistributedSetupError(ValueError):
    """The launch itself is wrong (the environment, or the other ranks): one line, before any work."""


def rank_info() -> RankInfo:
    """From the process group if one is running, else from torchrun's environment variables
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), checked: a bad one stops the run with one line
    naming it (:class:`DistributedSetupError`) instead of a rank that takes no images."""
    local = _env_int("LOCAL_RANK", 0, 0)
    if dist.is_available() and dist.is_initialized():
        return RankInfo(dist.get_rank(), dist.get_world_size(), local)
    world, rank = _env_int("WORLD_SIZE", 1, 1), _env_int("RANK", 0, 0)
    if world > 1 and "RANK" not in os.environ:
        raise DistributedSetupError(f"WORLD_SIZE={world} is set but RANK is not; set both (torchrun does)")
    if rank > 0 and "WORLD_SIZE" not in os.environ:
        raise DistributedSetupError(f"RANK={rank} is set but WORLD_SIZE is not; set both (torchrun does)")
    if rank >= world:
        raise DistributedSetupError(f"RANK={rank} is outside WORLD_SIZE={world} (ranks are 0 to {world - 1})")
    return RankInfo(rank, world, local)


def _env_int(name: str, default: int, least: int) -> int:
    """The whole number in environment variable ``name`` (``default`` when unset), at least ``least``."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DistributedSetupError(f"{name}={raw!r} is not a whole number") from None
    if value < least:
        raise DistributedSetupError(f"{name}={value} is below {least}")
    return value


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """This rank's share of ``items``: sorted, then every ``world_size``-th from ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    return sorted(items)[rank::world_size]


def work_items(
    inputs: Sequence[str | os.PathLike] | Any,
    *,
    others: list[Path] | None = None,
    output: str | os.PathLike | None = None,
) -> tuple[list[tuple[str, Path]], list[str]]:
    """``(output name, image path)`` pairs and input problems, from files/folders/globs or a
    dataset (a :class:`trufor_lab.lab.datasets.Dataset`, or any sequence of samples with ``id``
    and ``image_path``: names are the sample ids). A name that would write outside the output
    folder (absolute, or with ``..``) is refused with one line, and so is one that would write
    the output of an earlier name (``a\\b`` after ``a/b``: :func:`output_key`), or one file with
    it on a case-insensitive disk (``Photo`` after ``photo``: :func:`clash_key`; ``output``'s disk,
    when given, is asked: :func:`folds_case`). The files in
    the input folders that are not images go to ``others`` when given (to be counted)."""
    if _is_samples(inputs):
        pairs, problems = [(s.id, Path(s.image_path)) for s in inputs], []
    else:
        found, problems = expand_inputs([os.fspath(i) for i in inputs], others=others, output=output)
        pairs = [(rel, path) for path, rel in found]
    folding = len(pairs) > 1 and output is not None and folds_case(output)
    items: dict[str, tuple[str, Path, str]] = {}  # clash key -> (name, path, output key)
    for name, path in pairs:
        try:
            key = output_key(name)
        except OutputPathError as e:
            problems.append(f"{path}: {e}; skipped")
            continue
        folded = clash_key(key, folding)
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
    timeout_s: float = 300.0,
    gather_timeout_s: float = 86400.0,
    overwrite_hint: str = "overwrite",
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Analyse this rank's share of ``inputs`` into ``output``; returns the summary.

    Starts (and ends) the process group itself when run under torchrun, or by hand with
    ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``, without one: the ranks wait
    ``timeout_s`` for each other to join (``on_wait`` is told once which ones are awaited), then
    a :class:`DistributedSetupError` names the missing ones. Rank 0 lists the inputs and sends
    the list to every rank, so that the shares come from one list (a file that appears during
    the start is in it or not, for all ranks alike). At the end every rank waits up to
    ``gather_timeout_s`` for the slowest one to finish its share (a rank that dies closes its
    connection, which the others notice at once; the limit is for one that hangs). On rank 0
    the summary covers every rank and is also written to ``output/distributed_summary.json``;
    other ranks get their own report only. Failures of single images are reported, not
    raised, so that every rank reaches the final gather. ``overwrite_hint``: how the caller
    names the option that replaces an output that is refused (``--overwrite`` on the command line).
    """
    info = rank_info()
    dev = _device(device, info.local_rank)
    started_group = False
    if info.world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        _start_group("nccl" if dev.type == "cuda" else "gloo", info, timeout_s, on_wait)
        started_group = True
    try:
        group = None
        if info.world_size > 1:  # made now, while every rank is known to be there
            group = dist.new_group(backend="gloo", timeout=timedelta(seconds=gather_timeout_s))
        if info.rank == 0:  # an interrupted run must not leave the last run's summary beside its new outputs
            with contextlib.suppress(OSError):  # unwritable: the summary's own write says so at the end
                (Path(output) / SUMMARY_FILE).unlink()
        listing = _shared_listing(inputs, Path(output), info, group)
        report = _run_share(
            listing, Path(output), info, dev, weights, precision, mode, (overwrite, overwrite_hint), save_noiseprint
        )
        reports = [report]
        if group is not None:
            gathered: list[Any] | None = [None] * info.world_size if info.rank == 0 else None
            _collective(lambda: dist.gather_object(report, gathered, dst=0, group=group), info, "final gather")
            if info.rank != 0:
                return report
            reports = list(gathered)  # type: ignore[arg-type]
        summary = _merge(reports, listing)
        try:
            _write_json(Path(output) / SUMMARY_FILE, summary)
        except OSError as e:  # the images' results still reach the caller, with this said
            summary["errors"].append(f"{Path(output) / SUMMARY_FILE}: summary not written ({e.strerror or e})")
        return summary
    finally:
        if started_group:
            dist.destroy_process_group()


def _start_group(backend: str, info: RankInfo, timeout_s: float, on_wait: Callable[[str], None] | None) -> None:
    """The default process group; outside torchrun through a store of our own, so that a rank
    that does not come is named (torch's rendezvous only counts those that came)."""
    timeout = timedelta(seconds=timeout_s)
    if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun's agents met already, and it stops all on a failure
        _collective(
            lambda: dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, timeout=timeout),
            info,
            "start",
        )
        return
    store = _rendezvous(info, timeout_s, on_wait)
    _collective(
        lambda: dist.init_process_group(
            backend, store=store, rank=info.rank, world_size=info.world_size, timeout=timeout
        ),
        info,
        "start",
    )


def _rendezvous(info: RankInfo, timeout_s: float, on_wait: Callable[[str], None] | None) -> dist.Store:
    """Rank 0's store at ``MASTER_ADDR:MASTER_PORT``, once every rank has joined it; the ranks
    that have not joined within ``timeout_s`` are named in the error."""
    host = os.environ.get("MASTER_ADDR", "")
    if not host:
        raise DistributedSetupError(f"MASTER_ADDR is not set (WORLD_SIZE={info.world_size} outside torchrun)")
    port = _env_int("MASTER_PORT", -1, 1)
    if port < 0:
        raise DistributedSetupError(f"MASTER_PORT is not set (WORLD_SIZE={info.world_size} outside torchrun)")
    me, where = f"rank {info.rank} of {info.world_size}", f"{host}:{port}"
    timeout = timedelta(seconds=timeout_s)
    deadline = time.monotonic() + timeout_s
    if info.rank != 0 and not _answers(host, port):  # polled here: torch's own wait logs a C++ stack
        if on_wait is not None:
            on_wait(f"{me}: waiting up to {timeout_s:g} s for rank 0 at {where}")
        while not _answers(host, port):
            if time.monotonic() > deadline:
                raise DistributedSetupError(f"{me}: rank 0 did not answer at {where} within {timeout_s:g} s")
            time.sleep(0.2)
    try:
        store = dist.TCPStore(host, port, info.world_size, info.rank == 0, timeout, wait_for_workers=False)
    except RuntimeError as e:  # DistNetworkError and its kin; their text is a C++ stack
        if info.rank == 0:
            raise DistributedSetupError(f"{me}: cannot listen at {where} ({first_line(e)})") from None
        raise DistributedSetupError(f"{me}: rank 0 did not answer at {where} within {timeout_s:g} s") from None
    keys = [f"trufor_lab/joined/{r}" for r in range(info.world_size)]
    store.set(keys[info.rank], "1")
    said = False
    while missing := [r for r, k in enumerate(keys) if not store.check([k])]:
        if time.monotonic() > deadline:
            names = ", ".join(map(str, missing))
            raise DistributedSetupError(f"{me}: rank(s) {names} did not join at {where} within {timeout_s:g} s")
        if not said and on_wait is not None:
            on_wait(f"{me}: waiting up to {timeout_s:g} s for rank(s) {', '.join(map(str, missing))} at {where}")
            said = True
        time.sleep(0.1)
    return store


def _answers(host: str, port: int) -> bool:
    """Whether something listens at ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _collective(step: Callable[[], Any], info: RankInfo, what: str) -> Any:
    """``step()`` (a rendezvous or a collective call), a timeout or a lost peer said in one line."""
    try:
        return step()
    except (RuntimeError, TimeoutError) as e:  # torch's DistError family: text with a C++ stack
        raise DistributedSetupError(
            f"rank {info.rank} of {info.world_size}: {what} failed: another rank did not answer ({first_line(e)})"
        ) from None


def _shared_listing(inputs: Any, output: Path, info: RankInfo, group: Any) -> dict[str, Any]:
    """The work list, made by rank 0 alone and sent to every rank: ``items`` (name, path),
    ``problems`` (rank 0 reports them), ``others`` (files in the input folders that are not
    images) and ``error`` (the listing itself failed)."""
    listing: dict[str, Any] = {"items": [], "problems": [], "others": [], "error": None}
    if info.rank == 0:
        others: list[Path] = []
        try:
            listing["items"], listing["problems"] = work_items(inputs, others=others, output=output)
        except Exception as e:  # noqa: BLE001 - sent on, so that every rank still reaches the gather
            listing["error"] = f"{type(e).__name__}: {first_line(e)}"
        listing["others"] = [str(f) for f in others]
    if group is not None:
        box = [listing]
        _collective(lambda: dist.broadcast_object_list(box, src=0, group=group), info, "sharing the input list")
        listing = box[0]
    return listing


def _run_share(
    listing: dict[str, Any],
    output: Path,
    info: RankInfo,
    dev: torch.device,
    weights: Any,
    precision: str,
    mode: str,
    replace: tuple[bool, str],
    save_noiseprint: bool,
) -> dict[str, Any]:
    """This rank's report on its share of ``listing``; ``replace``: whether to replace
    existing outputs, and how the caller names that option in a refusal."""
    t0 = time.perf_counter()
    overwrite, hint = replace
    mine = shard(listing["items"], info.rank, info.world_size)
    report: dict[str, Any] = {
        "rank": info.rank,
        "world_size": info.world_size,
        "host": socket.gethostname(),
        "device": str(dev),
        "assigned": [name for name, _ in mine],
        "written": [],
        "skipped": [],
        "failed": [],
        "recomputed": [],
        "problems": listing["problems"] if info.rank == 0 else [],
        "error": listing["error"] if info.rank == 0 else None,
    }
    try:
        todo = []
        weights_digest, full = None, True
        computed = computed_label(mode_label(mode, dev if precision == "float32" else None), precision)
        for name, path in mine:
            out = output_path(output, name)
            blocker = blocking_file(out)
            if blocker is not None:  # said before the analysis, not after it at the write
                report["failed"].append([name, f"{out}: cannot write output ({blocker} is a file, not a folder)"])
                continue
            try:
                digest = sha256_of(path)
            except OSError as e:
                report["failed"].append([name, f"{path}: cannot read ({e.strerror or e})"])
                continue
            seen = file_state(out)  # replaced only while it is what was seen: never another run's output
            if out.exists() and not overwrite:
                refused = output_refusal(out, path, digest, hint)
                if refused:
                    report["failed"].append([name, refused])
                    continue
                # reused only when made from this same input file with these same weights
                if weights_digest is None:
                    weights_digest, full = weights_sha256(weights), select(weights)[1] != "noiseprint"
                # an output stripped of an array the run writes is not done
                why = reuse_problem(out, digest, weights_digest, output_arrays(full, save_noiseprint), computed)
                if why is None:
                    report["skipped"].append(name)
                    continue
                report["recomputed"].append([name, why])
            todo.append((name, path, digest, seen))
        if todo:  # no model is loaded by a rank with nothing left to do
            model = load(weights, device=dev, precision=precision)
            report["weights"] = getattr(getattr(model, "weights_info", None), "kind", None)
            for name, path, digest, seen in todo:
                try:
                    out = output_path(output, name)
                    predict_result(model, path, mode).save_npz(
                        out,
                        save_noiseprint=save_noiseprint,
                        input_sha256=digest,
                        computed=computed,
                        input_path=path,
                        expect=seen,
                    )
                except ChangedMeanwhile as e:  # another run wrote it meanwhile: theirs stays
                    try:
                        if weights_digest is None:
                            weights_digest, full = weights_sha256(weights), select(weights)[1] != "noiseprint"
                        why = reuse_problem(out, digest, weights_digest, output_arrays(full, save_noiseprint), computed)
                    except (WeightsError, OSError) as w:
                        why = f"cannot compare the weights: {w}"
                    if why is None:  # what this run would have written: done, as analyze counts it
                        report["skipped"].append(name)
                    else:
                        said = _reason(e, path).removesuffix("; not replaced")
                        report["failed"].append([name, f"{path}: {said} ({why}); not replaced"])
                    continue
                except (ValueError, RuntimeError, MemoryError, OSError) as e:
                    report["failed"].append([name, f"{path}: {_reason(e, path)}"])
                    continue
                report["written"].append(name)
    except Exception as e:  # noqa: BLE001 - reported so that every rank still reaches the gather
        report["error"] = f"{type(e).__name__}: {first_line(e)[:300]}"
        done = {*report["written"], *report["skipped"], *(n for n, _ in report["failed"])}
        report["failed"] += [[n, f"{n}: not analyzed: {report['error']}"] for n in report["assigned"] if n not in done]
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def first_line(e: BaseException) -> str:
    """The first non-empty line of ``e``'s text (torch's errors go on with a C++ stack), or its type's name."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _reason(e: BaseException, path: Path) -> str:
    """``e``'s first line without the file name it may start with (written as given, or
    escaped by the project's one-line errors), cut to 300 characters: the name is said once,
    by the caller, and never cut."""
    text = first_line(e)
    for name in (str(path), escaped(str(path))):
        if text.startswith(name + ": "):
            text = text[len(name) + 2 :]
            break
    return text[:300]


def _merge(reports: list[dict[str, Any]], listing: dict[str, Any]) -> dict[str, Any]:
    """Every rank's report in one; an input problem (one line per file, or per input that gave
    none) counts as failed, and among ``images``: ``images == written + skipped + failed``.
    ``others``: the files in the input folders that are not images (left out, counted)."""
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
        "others": listing["others"],
        "duplicates": sorted(n for n, k in Counter(written).items() if k > 1),
        "ranks": sorted(reports, key=lambda r: r["rank"]),
    }


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, indent=1)
