"""One bench case, as the child process of ``python -m bench`` runs it: the input picture, the
model (recipe weights or the demo model), and the timing and peak-memory measurement of one mode
(see bench/cli.py for the driver and what the modes are)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


# -- inputs and model --------------------------------------------------------------------------
def image_size(mp: float) -> tuple[int, int]:
    """(H, W) of a 4:3 image of ``mp`` megapixels."""
    w = round(math.sqrt(mp * 1e6 * 4 / 3))
    return round(w * 3 / 4), w


def shared_dir() -> Path:
    return Path(os.environ.get("TRUFOR_LAB_SHARED", REPO.parent / "shared"))


def synthetic_image(h: int, w: int, shared: Path):
    """A deterministic ``h x w`` RGB uint8 image: an official sample, mirrored out to size."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shared / "images" / "tampered1.png").convert("RGB"))
    return np.ascontiguousarray(
        np.pad(img, ((0, max(0, h - img.shape[0])), (0, max(0, w - img.shape[1])), (0, 0)), mode="symmetric")[:h, :w]
    )


def build_model(shared: Path, weights: str = "recipe"):
    """TruFor (MiT-B2) with the recipe weights of ../shared/README.md (or the embedded demo
    model, ``weights='demo'``), eval mode."""
    if weights == "demo":
        from trufor_lab.inference.load import load_trufor
        from trufor_lab.inference.weights import find_demo

        return load_trufor(find_demo(), kind="demo", device="cpu")
    from trufor_lab.model import TruFor, extract_state_dict, read_checkpoint, strict_load
    from trufor_lab.model.recipe import manifest_shapes, recipe_state_dict

    shapes = manifest_shapes(shared / "fixtures" / "trufor_parity" / "trufor_state_dict_manifest.json")
    np_path = REPO / "weights" / "noiseprint++.th"
    if not np_path.is_file():
        np_path = shared / "weights" / "noiseprint++.th"
    model = TruFor()
    strict_load(model, recipe_state_dict(shapes, extract_state_dict(read_checkpoint(np_path))), "recipe")
    return model.eval()


# -- one case, in its own process -------------------------------------------------------------
def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc keeps it resident): building the model frees
    its random initial weights, and a forward reusing that memory would not raise the measured
    peak (~160 MiB of noise between identical processes)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_case(
    mode: str,
    h: int,
    w: int,
    device: str,
    repeat: int,
    warmup: int,
    compile_: bool,
    save: str | None,
    budget_bytes: int | None = None,
    weights: str = "recipe",
) -> dict[str, Any]:
    """Time ``mode`` on an ``h x w`` image; returns the measurements (and saves the outputs)."""
    import numpy as np
    import torch

    from trufor_lab.inference.predict import attention_override, plain_fits, predict
    from trufor_lab.inference.preprocess import to_tensor
    from trufor_lab.model.lean import LeanConfig
    from trufor_lab.model.precision import cpu_has_native_bf16

    dev = torch.device(device)
    shared = shared_dir()
    model = build_model(shared, weights).to(dev)
    x = to_tensor(synthetic_image(h, w, shared), device=dev)
    modes = inference_modes(compile_, LeanConfig(budget_bytes=budget_bytes), lean=True if budget_bytes else None)
    m = modes.get(mode)
    # which forward runs, decided as predict decides it (the mode's choice, else whether the whole
    # image fits), so that the report says it; the mode is left as a user passes it
    lean = m is not None and (
        m.lean if m.lean is not None else not plain_fits(model, x, m.chunks.attention, m.chunks.onednn)
    )

    def baseline():
        # the official code: plain modules, PyTorch defaults (oneDNN on), attention as written;
        # on CUDA its test configuration switches cuDNN off (trufor.yaml: CUDNN.ENABLED false)
        off = torch.backends.cudnn.flags(enabled=False) if dev.type == "cuda" else contextlib.nullcontext()
        with torch.no_grad(), attention_override(model, "plain", None), off:
            return model(x)

    fn = baseline if m is None else lambda: predict(model, x, m)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    gc.collect()
    _trim_heap()
    if dev.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        reset = True
    else:
        reset = _reset_peak_rss()
        base = (_proc_status_kib("VmRSS") or 0) * 1024
    times, out = [], None
    for i in range(warmup + repeat):
        out = None
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
        name = torch.cuda.get_device_name(dev)
    else:
        hwm = _proc_status_kib("VmHWM") if reset else None
        peak = hwm * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        name = (
            f"{_cpu_model()} ({torch.backends.cpu.get_cpu_capability()}"
            f"{', native bf16' if cpu_has_native_bf16() else ''}), {torch.get_num_threads()} threads"
        )
    if save:
        np.savez(
            save,
            map=out.map[0].float().cpu().numpy(),
            conf=out.conf[0].float().cpu().numpy(),
            score=np.float64(out.score[0]),
            noiseprint=out.noiseprint[0, 0].float().cpu().numpy(),
        )
    return {
        "time_s": min(times),
        "times_s": times,
        "peak_bytes": int(peak),
        "baseline_bytes": int(base),
        "peak_above_baseline_bytes": int(peak - base),
        "peak_reset": reset,
        "lean": lean,
        "device_name": name,
        "torch": torch.__version__,
    }


def inference_modes(compile_: bool = False, chunks: Any = None, lean: bool | None = None) -> dict[str, Any]:
    """The ``predict`` modes the bench runs, by name (every one but ``baseline``); ``lean``: as
    ``InferenceMode.lean`` (``True`` with ``--budget-mib``: the budget bounds only the lean forward)."""
    import dataclasses

    from trufor_lab.inference.predict import InferenceMode
    from trufor_lab.model.lean import LeanConfig

    chunks = chunks or LeanConfig()
    fast = InferenceMode.fast(compile=compile_, chunks=chunks, lean=lean)
    return {
        "exact": InferenceMode.exact(chunks=chunks, lean=lean),
        "fast": fast,
        "fast32": dataclasses.replace(fast, amp_dtype=None),
        "fast-bf16": dataclasses.replace(fast, amp_on_cpu=None),
    }
