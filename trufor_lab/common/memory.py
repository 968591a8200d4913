"""How much memory a new tensor may take: the device's free memory, bounded on the CPU by what
this process may still allocate (a container's cgroup limit, ``ulimit -v``), not only by what
the whole machine has free."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import torch

GiB = 1 << 30


def free_memory_bytes(device: torch.device | str) -> int:
    """Free memory where tensors of ``device`` live: on a GPU, its free memory plus what
    PyTorch's caching allocator holds unused (freed tensors it keeps for reuse: after one large
    image, the next would otherwise look short of memory); on the CPU the least of
    ``MemAvailable``, the cgroup's headroom and the address-space limit's headroom."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free) + max(int(cached), 0)
    return min([_machine_available(), *_process_headroom()])


def free_memory_measured(device: torch.device | str) -> bool:
    """Whether :func:`free_memory_bytes` of ``device`` is a measurement (a GPU's, Linux's
    ``MemAvailable``, a cgroup or ``ulimit -v`` headroom) rather than a guess: elsewhere (macOS,
    Windows) it falls back on the free pages or on 4 GiB, too rough to refuse an image on."""
    if torch.device(device).type == "cuda":
        return True
    try:
        with open("/proc/meminfo") as f:
            if any(line.startswith("MemAvailable:") for line in f):
                return True
    except OSError:
        pass
    return bool(_process_headroom())


def _machine_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * GiB


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _process_headroom() -> list[int]:
    """What this process may still allocate under each limit that applies (none: empty)."""
    out = []
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = 0
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        out.append(max(soft - used, 0))
    out += _cgroup_headroom()
    return out


def _cgroup_headroom() -> list[int]:
    """What the memory cgroups this process belongs to still allow: cgroup v2 checks every folder
    up to the root (a limit may sit on a parent: a systemd slice, a pod), v1 reads the
    hierarchical limit. Page cache the kernel can drop first counts as free."""
    d = _cgroup_dir()
    if d is None:
        return []
    if (d / "memory.max").is_file():  # v2
        out, cur = [], d
        while True:
            lim, use = _read_int(cur / "memory.max"), _read_int(cur / "memory.current")
            if lim is not None and use is not None:
                out.append(max(lim - use + _stat(cur).get("inactive_file", 0), 0))
            if cur == Path("/sys/fs/cgroup") or cur.parent == cur or not (cur.parent / "memory.max").is_file():
                return out
            cur = cur.parent
    stat = _stat(d)
    use = _read_int(d / "memory.usage_in_bytes")  # v1: its own limit, and the tightest of its parents'
    limits = [x for x in (_read_int(d / "memory.limit_in_bytes"), stat.get("hierarchical_memory_limit")) if x]
    if use is None or not limits or min(limits) >= 1 << 60:  # v1 writes ~2^63 for "no limit"
        return []
    return [max(min(limits) - use + stat.get("total_inactive_file", stat.get("inactive_file", 0)), 0)]


def _stat(cgroup: Path) -> dict[str, int]:
    try:
        lines = (cgroup / "memory.stat").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _cgroup_dir() -> Path | None:
    """This process's memory cgroup folder (v2 unified, else v1's memory controller)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        root = None
        if hierarchy == "0" and controllers == "":
            root = Path("/sys/fs/cgroup")
        elif "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory")
        if root is None:
            continue
        for d in (root / path.lstrip("/"), root):  # inside a container the path may not be mounted
            if (d / "memory.max").is_file() or (d / "memory.limit_in_bytes").is_file():
                return d
    return None


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says memory ran out: Python's MemoryError, CUDA's ``torch.OutOfMemoryError``
    or the CPU allocator's RuntimeError ("can't allocate memory") - not any RuntimeError."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
