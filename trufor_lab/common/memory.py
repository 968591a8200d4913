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
    """Free memory where tensors of ``device`` live: CUDA free memory; on the CPU the least of
    ``MemAvailable``, the cgroup's headroom and the address-space limit's headroom."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return min([_machine_available(), *_process_headroom()])


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
    cgroup = _cgroup_dir()
    if cgroup is not None:
        for limit, usage in (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            lim, use = _read_int(cgroup / limit), _read_int(cgroup / usage)
            if lim is not None and use is not None and lim < 1 << 60:  # cgroup v1 writes ~2^63 for "none"
                out.append(max(lim - use + _reclaimable(cgroup), 0))
                break
    return out


def _reclaimable(cgroup: Path) -> int:
    """Page cache the kernel drops before it refuses memory (counted in the cgroup's usage)."""
    try:
        for line in (cgroup / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file") and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


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
