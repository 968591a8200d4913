"""Stored outputs: the records an output npz carries beside the official arrays (what it was
made from, how, a digest of its arrays), and whether an existing one may be reused or replaced.

An output file is untrusted input: it is never unpickled, nothing in it can raise, and an
output whose records or arrays do not match what a run would compute is recomputed
(``trufor-lab analyze``, ``distributed-analyze`` and ``evaluate`` call :func:`reuse_problem`).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from trufor_lab.inference.preprocess import MAX_PIXELS

if TYPE_CHECKING:
    import torch

#: Extra npz keys (ignored by official readers) recording what an output was made from: the
#: sha256 of the input file and of the weights. An existing output is reused only when both match.
INPUT_SHA256_KEY = "trufor_lab_input_sha256"
WEIGHTS_SHA256_KEY = "trufor_lab_weights_sha256"
#: How the maps were computed (e.g. ``"exact float32"``): an output computed otherwise is not reused.
COMPUTED_KEY = "trufor_lab_computed"
#: The result's one-line summary after the name (score, how the input was read): said again
#: when the output is reused.
SUMMARY_KEY = "trufor_lab_summary"
#: The sha256 of the input's real path: an output of another file (the same name from another
#: folder, written into the same output folder) is not replaced unasked; an edited input is.
INPUT_PATH_KEY = "trufor_lab_input_path_sha256"
#: A digest of the official arrays as written (:func:`arrays_digest`): an output whose arrays were
#: changed since (a map smoothed or thresholded in place, its records kept) is recomputed, not reused.
ARRAYS_SHA256_KEY = "trufor_lab_arrays_sha256"
#: Which numerics of trufor_lab computed an output (:data:`NUMERICS`).
NUMERICS_KEY = "trufor_lab_numerics"
#: The version of how trufor_lab turns an input file and weights into outputs. Bump it with any
#: change that moves some input's map, conf, score or Noiseprint++ map beyond float32 rounding (how
#: an image file is read, the network's arithmetic, the detection): outputs recorded with another
#: value (or none: an earlier trufor_lab) are then recomputed, never reused as this version's.
NUMERICS = 1
#: The records every output carries besides the official arrays (weights: when they are known).
RECORD_KEYS = (
    INPUT_SHA256_KEY,
    INPUT_PATH_KEY,
    WEIGHTS_SHA256_KEY,
    COMPUTED_KEY,
    SUMMARY_KEY,
    ARRAYS_SHA256_KEY,
    NUMERICS_KEY,
)
#: Present (the EXIF orientation) when the maps were turned as viewers show the file
#: (:meth:`Result.as_shown`) rather than kept on the stored grid.
SHOWN_KEY = "trufor_lab_shown_orientation"
#: The official arrays (:meth:`Result.official_dict`), the summary a reuse says again and the
#: mark of maps turned as shown: what :func:`arrays_digest` covers, in its order.
DIGESTED_KEYS = ("map", "conf", "score", "imgsize", "np++", SUMMARY_KEY, SHOWN_KEY)


def arrays_digest(arrays: Any) -> str:
    """sha256 of the official arrays and the summary in ``arrays`` (a dict, or an open npz): each
    one's name, dtype, shape and bytes in C order, in :data:`DIGESTED_KEYS` order; the records
    compared on reuse (input, weights, how it was computed) are not part of it."""
    h = hashlib.sha256()
    for key in DIGESTED_KEYS:
        if key in arrays:
            _digest_update(h, key, np.asarray(arrays[key]))
    return h.hexdigest()


def sealed(arrays: dict[str, Any]) -> dict[str, Any]:
    """``arrays`` (an output's official arrays and records) with the digest of its arrays and the
    :data:`NUMERICS` that computed them added: the last records an output gets before it is written."""
    return {**arrays, ARRAYS_SHA256_KEY: np.str_(arrays_digest(arrays)), NUMERICS_KEY: np.int64(NUMERICS)}


def _digest_update(h: Any, key: str, a: np.ndarray) -> None:
    h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def output_arrays(full: bool, save_noiseprint: bool = False) -> tuple[str, ...]:
    """The arrays an output holds (:meth:`Result.official_dict`): a full TruFor's ``map``, ``conf``,
    ``score`` (and ``np++`` when asked for), or Noiseprint++ alone's ``np++``; ``imgsize`` always.
    An existing output lacking any is recomputed (:func:`reuse_problem`'s ``needs``), not reused."""
    if not full:
        return ("imgsize", "np++")
    return ("imgsize", "map", "conf", "score", *(("np++",) if save_noiseprint else ()))


def computed_label(mode: str, precision: str | torch.dtype) -> str:
    """How an output was computed, as its npz records it: inference mode and precision,
    e.g. ``computed_label("exact", torch.float64) == "exact float64"``."""
    return f"{mode} {str(precision).replace('torch.', '')}"


def recorded_summary(npz_path: str | os.PathLike) -> str | None:
    """The summary an output recorded when it was written (``None`` for older or foreign files;
    the file is untrusted: nothing in it can raise)."""
    try:
        with np.load(npz_path, allow_pickle=False) as d:
            if SUMMARY_KEY in d.files and _small(d.zip, SUMMARY_KEY):
                v = d[SUMMARY_KEY]
                return str(v) if v.dtype.kind == "U" and v.ndim == 0 else None
    except Exception:  # noqa: BLE001 - untrusted file
        return None
    return None


def foreign_output(npz_path: str | os.PathLike) -> bool:
    """Whether an existing file is someone else's, never overwritten unasked: anything but a zip
    whose members include a map (``map.npy`` or ``np++.npy``). An output of ours that no longer
    reads (damaged) is still a zip naming its map, or one cut short whose first member is an
    output array, and is recomputed; a text file, a pickle or an image that merely has the
    output's name is not ours."""
    try:
        with zipfile.ZipFile(npz_path) as z:
            return not ({"map.npy", "np++.npy"} & set(z.namelist()))
    except Exception:  # noqa: BLE001 - not a readable zip: ours only if it starts like one of ours
        return not _starts_like_an_output(npz_path)


def path_digest(path: str | os.PathLike) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()


def output_refusal(
    npz_path: str | os.PathLike,
    input_path: str | os.PathLike,
    input_sha256: str,
    overwrite: str = "--overwrite",
    named: bool = False,
) -> str | None:
    """Why the existing file ``npz_path`` is not to be replaced by the analysis of
    ``input_path`` (one line naming it), or None: someone else's file (:func:`foreign_output`),
    or the output of another input file (another path and other content: the same name from
    another folder written into the same output folder; an edited input, or the same content
    moved, is not refused). ``overwrite`` names the option that replaces it anyway; ``named``:
    the caller named this output file itself (``-o result.npz``): only someone else's file is
    refused."""
    if not os.path.lexists(npz_path):
        return None
    if foreign_output(npz_path):
        return f"{npz_path}: exists and is not an analysis output (no 'map'); not overwritten ({overwrite} to replace)"
    if named:
        return None
    try:
        with np.load(npz_path, allow_pickle=False) as d:
            keys = (INPUT_SHA256_KEY, INPUT_PATH_KEY)
            rec = {k: str(d[k]) for k in keys if k in d.files and _small(d.zip, k)}
    except Exception:  # noqa: BLE001 - untrusted: an output that does not read is recomputed
        return None
    if len(rec) == 2 and rec[INPUT_PATH_KEY] != path_digest(input_path) and rec[INPUT_SHA256_KEY] != input_sha256:
        return (
            f"{npz_path}: holds the analysis of another input file (another path, other content); not "
            f"overwritten ({overwrite} to replace, or write to another output folder)"
        )
    return None


def _starts_like_an_output(path: str | os.PathLike) -> bool:
    """Whether a file's first zip member (its local header: no central directory needed, which
    a file cut short lacks) is the first array an output is written with."""
    try:
        with open(path, "rb") as f:
            head = f.read(30 + 16)
    except OSError:
        return False
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return False
    size = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + size] in (b"map.npy", b"imgsize.npy")


def reuse_problem(
    npz_path: str | os.PathLike,
    input_sha256: str,
    weights_sha256: str | None,
    needs: tuple[str, ...] = (),
    computed: str | None = None,
    shape: tuple[int, int] | None = None,
) -> str | None:
    """``None`` when the existing output ``npz_path`` records that it was made from an input
    with ``input_sha256``, with weights ``weights_sha256`` and computed as ``computed`` (each
    not checked when ``None``), and holds the arrays in ``needs`` (e.g. ``"np++"`` when the
    Noiseprint++ map is asked for) with sane arrays (the image's ``shape`` (H, W), else the size
    it records; finite; maps and score in [0, 1]); else why it must be recomputed (a short
    phrase for a one-line note). The file is untrusted: nothing in it can raise."""
    try:
        with np.load(npz_path, allow_pickle=False) as d:
            keys = (INPUT_SHA256_KEY, WEIGHTS_SHA256_KEY, COMPUTED_KEY, ARRAYS_SHA256_KEY, NUMERICS_KEY)
            rec = {k: str(d[k]) for k in keys if k in d.files and _small(d.zip, k)}
            missing = [k for k in needs if k not in d.files]
            shown = SHOWN_KEY in d.files
    except Exception as e:  # noqa: BLE001 - an output file is untrusted: any failure means "recompute"
        return f"existing output unreadable ({' '.join(str(e).split())[:120] or type(e).__name__})"
    if INPUT_SHA256_KEY not in rec:
        return "existing output does not record its input"
    if rec[INPUT_SHA256_KEY] != input_sha256:
        return "existing output was made from a different input file"
    if weights_sha256 is not None and rec.get(WEIGHTS_SHA256_KEY) != weights_sha256:
        return (
            f"existing output was made with other weights (sha256 {rec.get(WEIGHTS_SHA256_KEY, '?')[:12]}, "
            f"now {weights_sha256[:12]})"
        )
    if computed is not None and rec.get(COMPUTED_KEY) != computed:
        was = f"computed as {rec[COMPUTED_KEY]}" if COMPUTED_KEY in rec else "does not record how it was computed"
        return f"existing output {was} (now {computed})"
    if rec.get(NUMERICS_KEY) != str(NUMERICS):
        was = f"trufor_lab numerics {rec[NUMERICS_KEY][:20]}" if NUMERICS_KEY in rec else "an earlier trufor_lab"
        return f"existing output was computed by {was} (now numerics {NUMERICS})"
    if missing:
        return f"existing output lacks {', '.join(missing)}"
    if shown:
        return "existing output's maps are turned as viewers show the file, not on its stored grid"
    if ARRAYS_SHA256_KEY not in rec:
        return "existing output does not record a digest of its arrays"
    return _content_problem(npz_path, shape, rec[ARRAYS_SHA256_KEY])


#: Arrays of an output npz that hold per-pixel maps, and which must lie in [0, 1].
_MAPS = {"map": True, "conf": True, "np++": False}


def _header(z: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of ``key`` in an npz, from its .npy header alone (nothing decompressed)."""
    with z.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(shape), dtype


def _small(z: zipfile.ZipFile, key: str, limit: int = 4096) -> bool:
    """Whether ``key`` declares at most ``limit`` elements (a record string, not a bomb)."""
    shape, dtype = _header(z, key)
    return int(np.prod(shape)) * max(dtype.itemsize, 1) <= limit


def _content_problem(npz_path: str | os.PathLike, shape: tuple[int, int] | None, digest: str) -> str | None:
    """Why the arrays of an output whose records match cannot be reused (declared shapes first,
    so a forged header never makes us decompress gigabytes; then NaN and out-of-range values; then
    arrays changed since they were written: not the recorded ``digest``), or ``None``."""
    try:
        with zipfile.ZipFile(npz_path) as z:
            names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
            if shape is None and "imgsize" in names and _small(z, "imgsize", 64):
                with np.load(npz_path, allow_pickle=False) as d:
                    shape = tuple(int(v) for v in np.asarray(d["imgsize"]).reshape(-1)[:2])
            for key in _MAPS:
                if key not in names:
                    continue
                got, dtype = _header(z, key)
                if dtype.kind != "f":
                    return f"existing output's {key} is not a float array ({dtype})"
                if shape is not None and got != tuple(shape):
                    return f"existing output's {key} is {got}, not the image's {tuple(shape)}"
                if int(np.prod(got)) > MAX_PIXELS:
                    return f"existing output's {key} declares {got}: larger than any image"
            for key, limit, what in (
                ("score", 64, "one number"),
                ("imgsize", 64, "a size"),
                (SUMMARY_KEY, 4096, "a line"),
                (SHOWN_KEY, 64, "an orientation"),
            ):
                if key in names and not _small(z, key, limit):
                    return f"existing output's {key} is not {what}"
        h = hashlib.sha256()
        with np.load(npz_path, allow_pickle=False) as d:
            for key in (k for k in DIGESTED_KEYS if k in names):  # each array read once: checked and hashed
                a = d[key]
                _digest_update(h, key, a)
                if key in _MAPS and (
                    not np.isfinite(a).all() or (_MAPS[key] and a.size and (a.min() < 0 or a.max() > 1))
                ):
                    return f"existing output's {key} holds NaN or values outside 0..1"
                v = a.reshape(-1)
                if key == "score" and (v.size != 1 or v.dtype.kind not in "fiu" or not 0 <= float(v[0]) <= 1):
                    return "existing output's score is not a number in 0..1"
        if h.hexdigest() != digest:
            return "existing output's arrays were changed after it was written (not the digest it records)"
    except Exception as e:  # noqa: BLE001 - untrusted file: any failure means "recompute"
        return f"existing output unreadable ({' '.join(str(e).split())[:120] or type(e).__name__})"
    return None
