"""Loading a ready-to-use model: the official checkpoint, else the demo model, else Noiseprint++.

>>> import trufor_lab as tl
>>> model = tl.load()                # finds weights; CPU or CUDA; float32, exact
>>> model.weights_info.kind          # 'official', 'demo', 'noiseprint' or 'custom'
"""

from __future__ import annotations

import dataclasses

import html
import os
from pathlib import Path

import torch
from torch import nn

from trufor_lab.common.device import resolve_device
from trufor_lab.inference import weights as W
from trufor_lab.model.identity import CHANGED_NOTE
from trufor_lab.model.checkpoint import check_state_dict, without_prefix
from trufor_lab.model import (
    MIT_B2,
    CheckpointError,
    Noiseprint,
    TruFor,
    TruForConfig,
    extract_state_dict,
    read_checkpoint,
    stage_sizes,
    strict_load,
)

PRECISIONS = {"float32": torch.float32, "float64": torch.float64}

#: What :func:`load_trufor` may take a full TruFor checkpoint for (its ``kind``).
TRUFOR_KINDS = ("official", "demo", "custom")


def _dtype(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def _csv(xs: tuple[int, ...]) -> str:
    return "/".join(map(str, xs))


def _with_noiseprint_dtype(info: W.WeightsInfo, sd: dict[str, torch.Tensor], prefix: str) -> W.WeightsInfo:
    """``info`` saying which reduced precision the file stores Noiseprint++ in, if any: loading
    widens it exactly, but a float16 Noiseprint++ map correlates ~0.95 with the float32 one."""
    low = sorted(
        {
            str(v.dtype).replace("torch.", "")
            for k, v in sd.items()
            if k.startswith(prefix) and v.dtype in (torch.float16, torch.bfloat16)
        }
    )
    return dataclasses.replace(info, noiseprint_dtype="/".join(low)) if low else info


#: The heads a training phase fits, after localization (the phase every trained model starts with).
HEADS = ("confidence", "detection")


def _with_untrained(info: W.WeightsInfo, obj: object) -> W.WeightsInfo:
    """``info`` naming the heads that ``obj``'s training record (``meta.trained``, written by
    trufor_lab's training) says were never trained: a model exported after the localization phase
    alone gave the score and confidence map of random heads, unsaid. Unchanged without a record."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    trained = meta.get("trained") if isinstance(meta, dict) else None
    if not isinstance(trained, list):
        return info
    missing = [h for h in HEADS if h not in trained]
    return dataclasses.replace(info, untrained=", ".join(missing)) if missing else info


def untrained_words(info: W.WeightsInfo | None) -> str:
    """The banner's words for heads never trained ('' when all were)."""
    missing = getattr(info, "untrained", "") or ""
    if not missing:
        return ""
    outputs = {"confidence": "confidence map", "detection": "score"}
    heads = missing.split(", ")
    said = " and ".join(outputs.get(h, h) for h in heads)
    many = len(heads) > 1
    return (
        f"; its {' and '.join(heads)} phase{'s were' if many else ' was'} never trained: its {said} "
        f"come{'' if many else 's'} from random weights and mean{'' if many else 's'} nothing"
    )


def _identity(path: str | os.PathLike) -> tuple[int, ...] | None:
    """What tells one state of a file from another: device, inode, size, mtime and ctime."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # reading it says why
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _describe_loaded(path: str | os.PathLike, kind: str, before: tuple[int, ...] | None) -> W.WeightsInfo:
    """:func:`W.describe` of ``path``, refused when the file is not the one read: the label must
    describe the bytes loaded (a file replaced while loading holds other weights)."""
    info = W.describe(path, kind)
    if before is None or _identity(path) != before:
        raise CheckpointError(f"{path}: changed while it was being loaded; load again")
    return info


def _own_note(obj: object, info: W.WeightsInfo) -> W.WeightsInfo:
    """``info`` of a file with its own ``config`` entry noted as such (:data:`W.OWN_CONFIG_NOTE`):
    it is never the official checkpoint, and no banner should suggest installing it as one (one
    whose ``kind`` entry says 'demo' but that is not the shipped file included)."""
    if (
        info.kind == "custom"
        and info.note in ("custom weights", W.DEMO_CLAIM_NOTE)
        and isinstance(obj, dict)
        and obj.get("config") is not None
    ):
        return dataclasses.replace(info, note=W.OWN_CONFIG_NOTE)
    return info


def _own_kind(obj: object, kind: str) -> str:
    """``kind`` as the file's own entries leave it: a file with a ``config`` entry is never the
    official checkpoint (its ``kind`` entry says whether it is the demo model)."""
    if kind != "official" or not isinstance(obj, dict) or obj.get("config") is None:
        return kind
    own = obj.get("kind")
    return own if isinstance(own, str) and own in ("demo", "custom") else "custom"


def selected_info(weights: str | os.PathLike | None = None, *, demo: bool = True) -> W.WeightsInfo:
    """What :func:`load` would record of the weights it picks for these arguments, without building
    the model: the caveat for outputs made with them earlier (reused outputs). The file's own
    entries are read as :func:`load_trufor` reads them, with the safe reader; a file with this
    installation's signed download record is the official archive's, which has none."""
    path, kind = W.select(weights, demo=demo)
    info = W.describe(path, kind)
    if kind != "official" or info.verified:
        return info
    obj = read_checkpoint(path)
    return _with_untrained(_own_note(obj, W.describe(path, _own_kind(obj, kind))), obj)  # as a load records it


def load_trufor(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    precision: str = "float32",
    kind: str = "official",
) -> TruFor:
    """Build TruFor and load ``path`` strictly (official keys; a ``config`` entry selects sizes).

    ``kind``: what the file is taken for, one of :data:`TRUFOR_KINDS` (``"official"`` is verified
    by its download record, ``"demo"`` by the shipped file's checksum; anything else is custom)."""
    if not isinstance(kind, str) or kind not in TRUFOR_KINDS:  # 'noiseprint' or 'untrained' labelled a
        # trained TruFor's results as Noiseprint++-only or random weights; any other word was recorded as is
        raise ValueError(
            f"kind must be one of {', '.join(map(repr, TRUFOR_KINDS))}, got {kind!r}"
            + (
                " (Noiseprint++ alone: load_noiseprint(path))"
                if kind == "noiseprint"
                else " (random weights: trufor_lab.untrained())"
                if kind == "untrained"
                else ""
            )
        )
    dev = resolve_device(device)  # an unusable device is said before the file is read
    _dtype(precision)  # and a precision it cannot take: not blamed on the checkpoint
    before = _identity(path)
    obj = read_checkpoint(path)
    cfg = MIT_B2
    if isinstance(obj, dict) and obj.get("config") is not None:
        try:
            cfg = TruForConfig.from_dict(obj["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: its 'config' entry is not a TruFor config ({e})") from None
    kind = _own_kind(obj, kind)
    sd = extract_state_dict(obj, str(path))
    with torch.device("meta"):  # the config checked against the weights before anything is allocated
        dncnn_keys = Noiseprint().state_dict().keys()
        try:
            skeleton, unbuilt = TruFor(cfg).to(_dtype(precision)), None
        except (TypeError, ValueError, RuntimeError) as e:  # sizes that pass the checks but build nothing
            skeleton, unbuilt = None, e
    if skeleton is not None:  # saved from a wrapper whose attribute names every key ('model.')
        sd = without_prefix(sd, skeleton.state_dict().keys())
    if sd.keys() in (dncnn_keys, {f"dncnn.{k}" for k in dncnn_keys}):  # bare, or as a full model names them
        raise CheckpointError(
            f"{path}: Noiseprint++ weights alone (the DnCNN), not a full TruFor checkpoint: "
            "load them with load_noiseprint(path) or $TRUFOR_NOISEPRINT_WEIGHTS"
        )
    found = stage_sizes(sd)
    if found is not None and found != (cfg.embed_dims, cfg.depths):
        has_config = isinstance(obj, dict) and obj.get("config") is not None
        raise CheckpointError(
            f"{path}: weights of another TruFor size (encoder dims {_csv(found[0])}, depths {_csv(found[1])}; "
            f"expected {_csv(cfg.embed_dims)}, depths {_csv(cfg.depths)})"
            + (
                " than its own 'config' entry says"
                if has_config
                else " and no 'config' entry saying which: save them as "
                "{'state_dict': ..., 'config': TruForConfig(...).to_dict()}"
            )
        )
    if skeleton is None:
        raise CheckpointError(
            f"{path}: its 'config' entry does not build a TruFor ({' '.join(str(unbuilt).split())[:160]})"
        )
    check_state_dict(skeleton, sd, str(path))
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten: the caller's RNG untouched
        model = TruFor(cfg).to(_dtype(precision))  # before loading: float64 weights stay float64
    strict_load(model, sd, str(path))
    info = _own_note(obj, _describe_loaded(path, kind, before))
    model.weights_info = _with_untrained(_with_noiseprint_dtype(info, sd, "dncnn."), obj)
    return model.eval().to(device=dev)


def load_noiseprint(
    path: str | os.PathLike | None = None, *, device: str | torch.device | None = None, precision: str = "float32"
) -> Noiseprint:
    """Noiseprint++ alone, from ``noiseprint++.th`` or the ``dncnn.`` part of a full checkpoint.

    >>> tl.analyze(tl.load_noiseprint(), "photo.jpg").noiseprint.shape    # (H, W); no map, no score
    """
    dev = resolve_device(device)
    p = W.find_noiseprint(path)
    before = _identity(p)
    if p.name == W.NOISEPRINT_FILE:  # a damaged shipped copy is said by its checksum, before any parse error
        try:  # (any other file is read first: a 50 GB video given as weights was hashed whole before refused)
            W.describe(p, "noiseprint")
        except OSError as e:  # no permission, an I/O error: was a bare OSError
            raise CheckpointError(f"{p}: not readable ({e.strerror or type(e).__name__})") from None
    sd = extract_state_dict(read_checkpoint(p), str(p))
    if any(k.startswith("dncnn.") for k in sd):
        sd = {k[len("dncnn.") :]: v for k, v in sd.items() if k.startswith("dncnn.")}
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten: the caller's RNG untouched
        net = Noiseprint().to(_dtype(precision))
    sd = without_prefix(sd, net.state_dict().keys())
    strict_load(net, sd, str(p))
    net.weights_info = _with_noiseprint_dtype(_describe_loaded(p, "noiseprint", before), sd, "")
    return net.eval().to(device=dev)


def load(
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    precision: str = "float32",
    fallback: bool = True,
    demo: bool = True,
) -> nn.Module:
    """The best model available: ``weights`` (or the installed official checkpoint), else the
    embedded demo model (``weights/trufor_demo.pt``, see its model card), else Noiseprint++
    alone (which gives no localization and no score).

    The returned module carries ``weights_info`` saying which, and :func:`banner` shows what
    that means; nothing untrained is ever returned. ``fallback=False`` raises instead of
    falling back; ``demo=False`` skips the demo model.

    >>> model = tl.load(device="cpu")    # device=None: a CUDA GPU when there is one
    >>> model.weights_info.kind          # 'official', 'demo', 'noiseprint' or 'custom'
    >>> np_only = tl.load(demo=False)    # without the official checkpoint: Noiseprint++ alone
    """
    resolve_device(device)
    _dtype(precision)
    path, kind = W.select(weights, fallback=fallback, demo=demo)
    if kind == "noiseprint":
        return load_noiseprint(path, device=device, precision=precision)
    try:
        return load_trufor(path, device=device, precision=precision, kind=kind)
    except CheckpointError as e:
        by = W.named_by(weights)
        if not by:
            raise
        raise CheckpointError(_named(e, path, by)) from None


def _named(e: CheckpointError, path: Path, by: str) -> str:
    """``e``'s words with where its file was named (``by``), after the file's name: a bad file
    set in ``$TRUFOR_WEIGHTS`` and forgotten was named by its path alone."""
    text = str(e.args[0]) if e.args else str(e)  # unescaped: the new error escapes it once
    head = f"{path}:"
    if text.startswith(head):
        return f"{path} (named by {by}):{text[len(head) :]}"
    return f"{text} ({path}, named by {by})"


def untrained(
    cfg: TruForConfig = MIT_B2, *, seed: int = 0, device: str | torch.device | None = None, precision: str = "float32"
) -> TruFor:
    """TruFor with random (seeded) encoder/decoder weights and the real Noiseprint++.

    For looking at the mechanics of the network (shapes, hooks, ablations) when no trained
    checkpoint exists. Its maps and scores mean nothing, and every result says so.

    >>> tl.list_layers(tl.untrained(), input_size=(256, 256))    # the official MiT-B2 sizes
    """
    dev = resolve_device(device)
    _dtype(precision)
    np_levels = len([m for m in Noiseprint() if isinstance(m, nn.Conv2d)])
    if cfg.np_levels != np_levels:  # the real one is loaded into it
        raise ValueError(
            f"untrained: the real Noiseprint++ has {np_levels} levels; this config asks for {cfg.np_levels}"
        )
    gen_state = torch.random.get_rng_state()
    try:
        torch.default_generator.manual_seed(seed)  # the CPU's only: torch.manual_seed also seeds every GPU
        model = TruFor(cfg)
    finally:
        torch.random.set_rng_state(gen_state)
    np_net = load_noiseprint()
    model.dncnn.load_state_dict(np_net.state_dict())
    model.weights_info = W.WeightsInfo("untrained", "-", "-", False, note=f"random weights, seed {seed}")
    return model.eval().to(device=dev, dtype=_dtype(precision))


def is_full_model(model: nn.Module) -> bool:
    return isinstance(model, TruFor)


def unwrapped(model: nn.Module) -> nn.Module:
    """The TruFor (or Noiseprint++) inside ``nn.DataParallel``/``DistributedDataParallel``
    (``.module``) or ``torch.compile`` (``._orig_mod``); any other module as it is. One image
    gains nothing from the wrapper, and the wrapped model is what the analysis paths know."""
    inner = model
    for _ in range(4):  # compile(DataParallel(m)) and the like
        nxt = getattr(inner, "_orig_mod", None)
        if not isinstance(nxt, nn.Module) and isinstance(inner, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            nxt = inner.module
        if not isinstance(nxt, nn.Module):
            break
        inner = nxt
    return inner if isinstance(inner, (TruFor, Noiseprint)) else model


def _low(info: W.WeightsInfo | None) -> str:
    """The banner's words for a Noiseprint++ stored in reduced precision ('' when float32)."""
    if info is None or info.noiseprint_dtype == "float32":
        return ""
    return f"; Noiseprint++ stored in {info.noiseprint_dtype}: its map differs from float32's"


def model_notice(model: nn.Module, named_by: str = "") -> str | None:
    """The one-line banner to show with this model's results, or ``None`` for official weights.
    ``named_by``: what named its file (``'$TRUFOR_WEIGHTS'``, :func:`W.named_by`), said after the file's name."""
    by = f" named by {named_by}" if named_by else ""
    info = getattr(model, "weights_info", None)
    if not is_full_model(model):
        unverified = (
            f"unverified Noiseprint++ weights ({Path(info.path).name}, sha256 {info.short_sha}{_low(info)}); "
            if info is not None and not info.verified
            else ""
        )
        return (
            f"Noiseprint++ only: {unverified}localization, confidence and integrity score need the official "
            "TruFor checkpoint: " + W.HOW_TO_GET
        )
    if info is None:  # built and filled by hand (load_state_dict, training): nothing says whose
        return (
            "Weights of unknown origin (the model was not loaded with tl.load): not verified as the "
            "official TruFor weights; load the checkpoint with tl.load(path) to have it checked"
        )
    if info.kind == "custom" and info.note.startswith(CHANGED_NOTE):  # model/identity.py
        return f"Weights {info.note}; not verified as the official TruFor weights"
    if info.kind == "untrained":
        return (
            "UNTRAINED weights (random but for Noiseprint++): maps and scores show the "
            "mechanics of the network only, not real detections; " + W.HOW_TO_GET
        )
    if info.kind == "demo":
        return (
            f"Demo weights (small model trained by trufor_lab, not the official TruFor){by}; for real "
            "analyses " + W.HOW_TO_GET
        )
    if W.is_own_training(info):  # never the official file: no advice to install it as one
        return (
            f"TruFor weights trained or exported with trufor_lab ({Path(info.path).name}, sha256 "
            f"{info.short_sha}{_low(info)}{untrained_words(info)}){by}, not the official TruFor weights; for real "
            "analyses " + W.HOW_TO_GET
        )
    if info.kind == "custom" or not info.verified:  # only a verified official file goes without a banner
        return (
            f"TruFor weights of unverified origin ({Path(info.path).name}, sha256 {info.short_sha}{_low(info)}"
            f"{untrained_words(info)}){by}: "
            f"not verified as the official TruFor weights; {W.HOW_TO_VERIFY}"
        )
    return None


class Banner:
    """A visible notice for notebooks: shows nothing for official weights."""

    def __init__(self, model: nn.Module) -> None:
        self.text = model_notice(model)

    def __str__(self) -> str:
        return self.text or ""

    def _repr_html_(self) -> str:
        if not self.text:
            return "<div style='color:#2e7d32'>Official TruFor weights.</div>"
        return (
            "<div style='background:#fff3cd;border:2px solid #e0a800;padding:8px;font-weight:bold'>"
            f"&#9888; {html.escape(self.text)}</div>"
        )


def banner(model: nn.Module) -> Banner:
    """The notice to display above results of ``model`` (``display(tl.banner(model))``).

    >>> tl.banner(model)      # in a notebook: a coloured box saying which weights these are
    """
    return Banner(model)
