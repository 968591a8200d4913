"""Reading checkpoints safely and loading them strictly.

Checkpoints are untrusted input. They are read with ``torch.load(weights_only=True)``: only
tensors, containers and plain numbers are rebuilt (numpy's numeric scalars too: the official
``trufor.pth.tar`` stores its training's best metric as one); a pickle that would import or
call anything else is refused with :class:`CheckpointError` and nothing in it runs.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import re
import tarfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from trufor_lab.common.errors import OneLineError

try:  # numpy's scalar constructor, which pickled numpy numbers call
    from numpy._core.multiarray import scalar as _np_scalar  # numpy 2
except ImportError:  # numpy 1
    from numpy.core.multiarray import scalar as _np_scalar  # type: ignore[no-redef]


class CheckpointError(OneLineError, ValueError):
    """A checkpoint file that cannot be used; the message is one line naming file and reason."""


#: The first PyTorch whose ``weights_only`` loader is safe on crafted files (CVE-2025-32434:
#: 2.5.1 and earlier could be made to run code).
SAFE_TORCH = (2, 6)


def _torch_version(version: str | None = None) -> tuple[int, int]:
    parts = (version or torch.__version__).split("+")[0].split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _numeric_dtype(code: Any, *flags: Any) -> np.dtype:
    """``numpy.dtype`` as a checkpoint may call it: a plain bool, integer, float or complex type
    only (no fields, sub-arrays, objects or raw bytes)."""
    dt = np.dtype(code) if isinstance(code, str) and len(code) <= 4 else None
    if dt is None or dt.kind not in "biufc" or dt.fields is not None or dt.subdtype is not None:
        raise pickle.UnpicklingError(f"numpy dtype {code!r} is not a plain number type")
    return dt


def _numeric_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's scalar constructor for a number of such a dtype from exactly its bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or type(data) is not bytes:
        raise pickle.UnpicklingError("numpy scalar that is not a plain number")
    if len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("numpy scalar whose bytes do not match its type")
    return _np_scalar(dtype, data)


def _numpy_scalars() -> list[Any]:
    """What unpickling a numpy number needs beyond ``weights_only``'s defaults: numpy's scalar
    constructor (under numpy 1's and numpy 2's module names) and ``numpy.dtype``, each through a
    check that admits plain numbers only, and the numeric dtype classes (their pickled state is
    applied to them). A training loop's ``best_value`` or ``epoch`` often is one (the official
    checkpoint's is a float64)."""
    numeric = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}  # bool, ints, floats, complex
    return [
        (_numeric_scalar, "numpy.core.multiarray.scalar"),
        (_numeric_scalar, "numpy._core.multiarray.scalar"),
        (_numeric_dtype, "numpy.dtype"),
        *sorted(numeric, key=lambda t: t.__name__),
    ]


def _archive_kind(path: str) -> str | None:
    """Why an archive that is not a PyTorch file cannot be read as one (``None`` for anything else)."""
    if tarfile.is_tarfile(path):  # first: a tar of a checkpoint also looks like a zip from its end
        return "a tar archive, not a checkpoint this loader reads (unpack it, or re-save the weights with torch.save)"
    if zipfile.is_zipfile(path):
        members, directory = _zip_directory_size(path)
        if members > MAX_MEMBERS or directory > MAX_MEMBERS * 256:
            return (
                f"a zip of {members} members ({directory} bytes of directory), far more than a TruFor "
                f"checkpoint holds (at most {MAX_MEMBERS}): not read"
            )
        try:
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
                names = [i.filename for i in infos]
        except (zipfile.BadZipFile, OSError, ValueError):
            return None  # let torch.load say what is wrong
        twice = next((n for n, c in Counter(names).items() if c > 1), None)
        if twice is not None:  # PyTorch's reader and Python's (the checksums) may take different copies
            return f"a zip holding two members named {_k(twice)} (which one is read is ambiguous; torch.save never writes that): not read"
        if any(n.endswith("data.pkl") for n in names):
            if any("/code/" in n or n.endswith("/constants.pkl") for n in names):  # torch.jit.save's layout
                return (
                    "a TorchScript archive (torch.jit.save: code and weights), not a weights checkpoint: "
                    "save the weights with torch.save(model.state_dict(), path)"
                )
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
                # torch.save stores its members; a deflated one is read by expanding it whole (a
                # 1 MB file became 1 GiB before any check could refuse it)
                return "a PyTorch file whose members are compressed (torch.save never writes those): not expanded"
            return _damaged_member(path)  # PyTorch's own zip format, checked: torch.load reads no checksum
        if any(n.endswith((".pth.tar", ".pth", ".pt", ".th")) for n in names):
            return (
                "a zip archive holding checkpoints (the TruFor_weights.zip download?), not a checkpoint: "
                "install it with `trufor-lab weights install ZIP`, or unpack it and pass the .pth.tar"
            )
        return "a zip archive, not a PyTorch checkpoint"
    with open(path, "rb") as f:
        head = f.read(64)
    if head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 100_000_000:  # a JSON header's length
        return (
            "a safetensors file: this loader reads torch.save checkpoints (load it with safetensors, then torch.save)"
        )
    if head[:4] == b"PK\x03\x04":  # not a readable zip (is_zipfile looks for the directory at the end)
        return "cut short or damaged (a zip, as torch.save writes, without its directory at the end): copy it again"
    if head[:1] == b"\x80" and _legacy_storages(path, MAX_MEMBERS) > MAX_MEMBERS:
        return (
            f"a PyTorch file of the format before 1.6 storing more than {MAX_MEMBERS} tensors, far more "
            f"than a TruFor checkpoint holds: not read"
        )
    if head[:1] != b"\x80":  # neither pickle protocol 2+ nor a zip: what is it?
        if _OLD_PICKLE.match(head):  # printable too: say what it is, not "a web page?"
            return "a pickle of protocol 0 or 1 (plain pickle.dump, never torch.save's format): not unpickled"
        if _looks_like_text(head):
            return "a text file, not a PyTorch checkpoint (a download that returned a web page?)"
        return f"not a PyTorch checkpoint (it starts with bytes {head[:8].hex(' ')})"
    return None


#: More zip members than any TruFor checkpoint holds (~1 000 tensors; a training state with its
#: optimizer's a few thousand): a 108 MB file of a million empty members took 21 s and 1.1 GB to
#: read before anything could refuse it.
MAX_MEMBERS = 50_000


def _zip_directory_size(path: str) -> tuple[int, int]:
    """(members, bytes of the central directory) that a zip's end record declares (ZIP64's too), read
    without parsing the directory: a crafted count is bounded by the size, which the parse follows."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (65535 + 22))  # the end record and its comment
        f.seek(start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return 0, 0
        members = int.from_bytes(tail[at + 10 : at + 12], "little")
        directory = int.from_bytes(tail[at + 12 : at + 16], "little")
        if at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":  # the ZIP64 end record's locator
            f.seek(int.from_bytes(tail[at - 12 : at - 4], "little"))
            rec = f.read(56)
            if rec[:4] == b"PK\x06\x06" and len(rec) == 56:
                members = max(members, int.from_bytes(rec[32:40], "little"))
                directory = max(directory, int.from_bytes(rec[40:48], "little"))
    return members, directory


class _Stub:
    """What :class:`_Counting` builds for anything a pickle names: nothing is imported or called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Counting(pickle.Unpickler):
    """An unpickler that only counts the stored tensors (persistent ids) of a file in PyTorch's
    format before 1.6: every name a pickle asks for becomes :class:`_Stub`, nothing else is
    reachable. It stops past ``limit``: in C, a tenth of the time ``torch.load`` takes."""

    def __init__(self, f: Any, limit: int) -> None:
        super().__init__(f)
        self.count, self.limit = 0, limit

    def find_class(self, module: str, name: str) -> Any:
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise _TooMany
        return _Stub()


class _TooMany(Exception):
    pass


#: The number ``torch.save`` pickled first in its format before 1.6.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _legacy_storages(path: str, limit: int) -> int:
    """How many tensors a file in PyTorch's format before 1.6 stores (counted up to ``limit + 1``;
    0 for any other pickle, or one this count cannot read: ``torch.load`` then says why). 100 000
    tiny tensors took 6 s to load before anything could refuse them.

    Not counted (0) while this process has a pickle extension code registered: Python's unpickler
    resolves an EXT opcode through copyreg's process-wide cache, past ``find_class`` (it would
    hand the file a real function, or store the count's stand-in for later unpickles); the
    ``weights_only`` loader refuses EXT opcodes."""
    if copyreg._inverted_registry or copyreg._extension_cache:
        return 0
    with open(path, "rb") as f:
        try:
            if _Counting(f, limit).load() != _LEGACY_MAGIC:
                return 0
            _Counting(f, limit).load()  # the format's version, then the system's sizes
            _Counting(f, limit).load()
            counter = _Counting(f, limit)
            counter.load()
        except _TooMany:
            return limit + 1
        except Exception:  # noqa: BLE001 - damaged or foreign: torch.load's own error names it
            return 0
    return counter.count


def _damaged_member(path: str) -> str | None:
    """Why a PyTorch zip file is damaged (a member whose bytes fail their CRC-32: one flipped bit in
    a copy loaded silently and moved every score), or ``None`` when every member checks."""
    try:
        with zipfile.ZipFile(path) as z:
            if all(i.CRC == 0 for i in z.infolist()):  # torch.serialization.set_crc32_options(False): none written
                return None
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None  # let torch.load say what is wrong
    return None if bad is None else f"damaged: {_k(bad)} fails its checksum (CRC-32): copy the file again"


#: How a protocol 0/1 pickle opens: a dict, list or tuple mark, or a global (``cmodule\nname\n``).
_OLD_PICKLE = re.compile(rb"\((?:dp\d|lp\d|t|S'|V|I-?\d|F-?\d|[KJMX])|c[A-Za-z_][\w.]*\n[A-Za-z_]\w*\n|[}\]][q(]")


def _looks_like_text(head: bytes) -> bool:
    """Printable UTF-8 (the read may end inside a character)."""
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return all(c.isprintable() or c in "\t\r\n" for c in text.lstrip("\ufeff"))
    return False


def is_torch_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a torch.save file (its zip layout with a ``data.pkl``, or a pickle)."""
    try:
        with open(path, "rb") as f:
            if f.read(1) == b"\x80":
                return True
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/data.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with ``weights_only=True`` on the CPU; refuse anything else (and refuse to
    read at all with a PyTorch whose ``weights_only`` loader is unsafe)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        there = os.path.exists(path)  # a device or a pipe (/dev/zero, a FIFO) is there, but not a file
        raise CheckpointError(
            f"{path}: " + ("not a regular file (a device, pipe or socket)" if there else "no such checkpoint file")
        )
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if _torch_version() < SAFE_TORCH:
        raise CheckpointError(
            f"{path}: not read: PyTorch {torch.__version__} can run code from a crafted checkpoint even with "
            f"weights_only=True (CVE-2025-32434); install PyTorch {SAFE_TORCH[0]}.{SAFE_TORCH[1]} or later"
        )
    try:
        archive = _archive_kind(path)
    except OSError as e:  # no permission, an I/O error
        raise CheckpointError(f"{path}: not readable ({e.strerror or type(e).__name__})") from None
    if archive:
        raise CheckpointError(f"{path}: {archive}")
    try:
        # PyTorch warns about some foreign files before failing: the error below says it in one line
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_scalars()):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        said = ("GLOBAL", "Unsupported", "numpy")
        detail = next((ln.strip() for ln in first if any(w in ln for w in said)), first[0] if first else "")
        # what was refused, without PyTorch's advice to allow it (that would run the file's code)
        detail = re.split(r"\. Please |\. Check the |\. Re-run", detail)[0]
        if "GLOBAL" in detail.upper():
            why = "the file asks to run or import code that a weights checkpoint never needs"
        else:  # random bytes, or pickle operations outside what weights_only allows
            why = "not a PyTorch weights file (pickle data a weights checkpoint never contains)"
        raise CheckpointError(f"{path}: refused to load: {why} ({detail})") from None
    except MemoryError:
        raise CheckpointError(f"{path}: not loaded: it declares more data than fits in memory") from None
    except Exception as e:  # noqa: BLE001 - any failure of the safe loader on foreign bytes is "not a checkpoint"
        # (RuntimeError, BadZipFile, OSError, ValueError, and KeyError/IndexError/TypeError/
        # AssertionError on text or fuzzed files): one line, never a traceback
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = msg.split("  (Could this error message be improved?")[0]  # PyTorch's request, not about the file
        if len(msg) > 200:  # whole sentences (miniz's advice was cut at "... corrupted. This")
            msg = msg[: msg.rfind(". ", 0, 200) + 1 or 200]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {msg})") from None


def _k(key: Any, limit: int = 80) -> str:
    """A key of an untrusted file as an error line shows it: at most ``limit`` characters."""
    text = str(key)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint object (``state_dict``/``network``/``model`` or bare)."""
    path: list[str] = []
    for _ in range(3):  # {'model': {'state_dict': ...}} too: a known key leads a level down
        inner = [k for k in ("state_dict", "network", "model") if isinstance(obj, Mapping) and k in obj]
        inner = [k for k in inner if isinstance(obj[k], Mapping)]
        if not inner:
            break
        path.append(inner[0])
        obj = obj[inner[0]]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: holds no state dict")
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):  # a container whose weights key is not known
        shown = ", ".join(_k(k, 40) for k in list(obj)[:8]) + (", ..." if len(obj) > 8 else "")
        where = f"entries under {'/'.join(path)}" if path else "top-level entries"
        raise CheckpointError(
            f"{source}: holds no state dict ({where}: {shown}; expected the weights under "
            "'state_dict', 'network' or 'model' (at most 3 levels down), or the weights themselves)"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: state dict has non-tensor entries: {', '.join(map(_k, bad[:5]))}")
    sd = dict(obj)
    for _ in range(len(_WRAPPERS) * 2):  # compile(DDP(model)) and the like
        wrapper = next((w for w in _WRAPPERS if all(k.startswith(w) for k in sd)), None)
        if wrapper is None:
            break
        sd = {k[len(wrapper) :]: v for k, v in sd.items()}
    return sd


#: What PyTorch's wrappers put before every key: DataParallel/DDP and torch.compile.
_WRAPPERS = ("module.", "_orig_mod.")


def without_prefix(sd: dict[str, torch.Tensor], expected: Collection[str]) -> dict[str, torch.Tensor]:
    """``sd`` without the prefix every key carries when its keys are then exactly ``expected`` (the
    model's own: saved from a training wrapper, e.g. Lightning's ``model.``), else ``sd`` as it is."""
    want = set(expected)
    if not sd or len(sd) != len(want) or want.issuperset(sd):
        return sd
    first = next(iter(sd))
    longest = max(map(len, want))
    for cut in range(max(1, len(first) - longest), len(first)):  # bounded however long the key
        if first[cut - 1] == "." and first[cut:] in want:
            prefix = first[:cut]
            if all(k.startswith(prefix) for k in sd) and {k[cut:] for k in sd} == want:
                return {k[cut:]: v for k, v in sd.items()}
    return sd


def strict_load(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``model`` requiring exactly the same keys and shapes.

    On a mismatch nothing is loaded and :class:`CheckpointError` lists the missing keys, the
    unexpected keys, the shape differences and float parameters given non-float values; weights
    holding NaN or Inf (a diverged training run, a damaged file) are refused too.
    """
    check_state_dict(model, state_dict, source)
    counts = {k: v.detach().clone() for k, v in model.state_dict().items() if k not in state_dict}  # BatchNorm's
    model.load_state_dict({**state_dict, **counts}, strict=True)


#: Floating dtypes a weight may be stored in (converted exactly, or widened, on loading).
WEIGHT_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _unusable(t: torch.Tensor) -> str | None:
    """Why a tensor cannot be a stored weight (``None`` when it can)."""
    if t.layout != torch.strided:
        return f"{str(t.layout).replace('torch.', '')} layout"
    if t.device.type == "meta":
        return "a meta tensor (no data)"
    if t.is_quantized or (t.is_floating_point() and t.dtype not in WEIGHT_FLOATS):
        return f"dtype {str(t.dtype).replace('torch.', '')}"
    if t.numel() > 1 and t.untyped_storage().nbytes() < t.numel() * t.element_size():
        # an expanded view (stride 0): a few stored bytes standing for a huge network's weights
        return f"{t.numel()} values stored in {t.untyped_storage().nbytes()} bytes (an expanded view)"
    return None


def _count_of_batchnorm(model: nn.Module, key: str) -> bool:
    """Whether ``key`` is the ``num_batches_tracked`` of a BatchNorm that uses its momentum."""
    owner, _, name = key.rpartition(".")
    if name != "num_batches_tracked":
        return False
    module = model.get_submodule(owner) if owner else model
    return isinstance(module, nn.modules.batchnorm._NormBase) and module.momentum is not None


def _whole(t: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether ``t`` converts to the integer ``dtype`` without changing a value (integers of another
    width are PyTorch's and the file's business; floats must be whole and in range)."""
    if dtype.is_complex or dtype == torch.bool or not (t.is_floating_point() or t.is_complex()):
        return True
    if t.is_complex():
        return False
    info, d = torch.iinfo(dtype), t.double()
    return bool(((d == d.round()) & (d >= info.min) & (d < info.max + 1.0)).all())


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """:func:`strict_load`'s checks without loading. ``model`` may live on the ``meta`` device:
    a checkpoint's own ``config`` is then checked against its weights before anything real is
    allocated (a 2 KB file claiming a huge network is refused, not built)."""
    odd = [f"{_k(k)}: {why}" for k, v in state_dict.items() if (why := _unusable(v))]
    if odd:
        more = f"; ... ({len(odd) - 3} more)" if len(odd) > 3 else ""
        raise CheckpointError(f"{source}: holds tensors that are not plain weights [{'; '.join(odd[:3])}{more}]")
    expected = model.state_dict()
    # a BatchNorm's batch count (unused by the network unless training with momentum=None) may be
    # absent, as in files of PyTorch before 0.4.1 or converted ones: PyTorch's loader fills it in
    missing = [k for k in expected if k not in state_dict and not _count_of_batchnorm(model, k)]
    unexpected = [_k(k) for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    # a float parameter filled from integers, booleans or complex numbers would be silently cast
    kinds = [
        f"{k}: checkpoint {state_dict[k].dtype} vs model {v.dtype}"
        for k, v in expected.items()
        if k in state_dict and v.is_floating_point() and not state_dict[k].is_floating_point()
    ]
    # an integer buffer (a BatchNorm's batch count) given floats: PyTorch's loader truncates 3.7 to 3
    # and wraps 1e30; whole numbers in range are taken exactly
    kinds += [
        f"{k}: checkpoint {state_dict[k].dtype} vs model {v.dtype} (not whole numbers in its range)"
        for k, v in expected.items()
        if k in state_dict and not v.is_floating_point() and not _whole(state_dict[k], v.dtype)
    ]
    if missing or unexpected or shapes or kinds:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", shapes),
            ("dtype mismatch", kinds),
        ):
            if items:
                shown = "; ".join(items[:8]) + (f"; ... ({len(items) - 8} more)" if len(items) > 8 else "")
                parts.append(f"{len(items)} {label} [{shown}]")
        raise CheckpointError(f"{source}: does not match the model: " + ", ".join(parts))
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(f"{source}: weights are not finite (NaN or Inf) in {', '.join(map(_k, bad[:3]))}{more}")
    # a variance below zero: BatchNorm takes its square root, NaN for every input
    negative = [k for k, v in state_dict.items() if k.endswith("running_var") and bool((v < 0).any())]
    if negative:
        more = f" and {len(negative) - 3} more" if len(negative) > 3 else ""
        raise CheckpointError(f"{source}: negative BatchNorm variance in {', '.join(negative[:3])}{more}")
    # finite as stored but not in the model's precision (1e300 in float64 is Inf in float32)
    big = [
        k
        for k, v in expected.items()
        if v.is_floating_point()
        and state_dict[k].numel()
        and torch.finfo(state_dict[k].dtype).max > torch.finfo(v.dtype).max  # a wider dtype stored
        and float(state_dict[k].abs().max()) > torch.finfo(v.dtype).max
    ]
    if big:
        more = f" and {len(big) - 3} more" if len(big) > 3 else ""
        raise CheckpointError(
            f"{source}: weights too large for the model's {str(expected[big[0]].dtype).replace('torch.', '')} "
            f"(they would become Inf) in {', '.join(big[:3])}{more}"
        )
