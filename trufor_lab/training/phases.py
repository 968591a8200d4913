"""The paper's three training phases: what each one trains, and the model it starts from."""

from __future__ import annotations

import os

import torch

from trufor_lab.inference import weights as W
from trufor_lab.model import (
    MIT_B0,
    MIT_B2,
    CheckpointError,
    TruFor,
    TruForConfig,
    extract_state_dict,
    read_checkpoint,
    stage_sizes,
    strict_load,
)
from trufor_lab.model.checkpoint import check_state_dict, without_prefix

#: The three training phases, in order.
PHASES = ("localization", "confidence", "detection")
#: Top-level TruFor modules trained in each phase (everything else is frozen, in eval mode).
TRAINABLE = {
    "localization": ("backbone", "decode_head"),
    "confidence": ("decode_head_conf",),
    "detection": ("detection",),
}


# --------------------------------------------------------------------------------------------
# model, phases
# --------------------------------------------------------------------------------------------


def official_noiseprint(path: str | None) -> dict[str, torch.Tensor]:
    p = W.find_noiseprint(path)
    sd = extract_state_dict(read_checkpoint(p), str(p))
    if any(k.startswith("dncnn.") for k in sd):
        sd = {k[len("dncnn.") :]: v for k, v in sd.items() if k.startswith("dncnn.")}
    return sd


def trained_phases(obj: object) -> list[str] | None:
    """The phases whose modules hold trained weights in a checkpoint (its ``meta.trained``, in
    order), ``None`` when it does not say (the official checkpoint, an earlier version's run)."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    said = meta.get("trained") if isinstance(meta, dict) else None
    if not isinstance(said, list) or not all(isinstance(p, str) and p in PHASES for p in said):
        return None
    if PHASES[0] not in said:  # not a record this package writes (every run starts from localization)
        return None
    return [p for p in PHASES if p in said]


def build_model(
    cfg: TruForConfig | None = None, init: str | os.PathLike | None = None, noiseprint_weights: str | None = None
) -> TruFor:
    """TruFor of size ``cfg`` (or the config stored in ``init``; for a file without one, such as
    the official checkpoint, the size its weights have: MiT-B2 or MiT-B0), weights from ``init``
    when given, Noiseprint++ included: its encoder learned from that Noiseprint++, so another
    one is put in ``dncnn`` only when ``noiseprint_weights`` names it (a checkpoint whose
    Noiseprint++ differed from the shipped file was silently given the shipped one). Without
    ``init``: the official Noiseprint++ (or ``noiseprint_weights``). MiT-B0 without either."""
    return start_model(cfg, init, noiseprint_weights)[0]


def start_model(
    cfg: TruForConfig | None = None,
    init: str | os.PathLike | None = None,
    noiseprint_weights: str | None = None,
    read: object = None,
) -> tuple[TruFor, list[str] | None]:
    """:func:`build_model`'s model and the phases its weights were trained in (``init``'s record,
    :func:`trained_phases`; ``None`` without ``init``), ``init`` read once (its record was read
    again, seconds for the official 270 MB file); ``read``: ``init`` as already read with
    ``read_checkpoint`` (a resumed run's checkpoint, read for its optimizer)."""
    sd, trained = None, None
    if init is not None:
        obj = read_checkpoint(init) if read is None else read
        trained = trained_phases(obj)
        if isinstance(obj, dict) and obj.get("config") is not None:
            try:
                cfg = TruForConfig.from_dict(obj["config"])
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{init}: its 'config' entry is not a TruFor config ({e})") from None
        sd = {k: v.float() if v.is_floating_point() else v for k, v in extract_state_dict(obj, str(init)).items()}
        with torch.device("meta"):  # checked before anything is allocated (an untrusted file)
            if cfg is None:  # as the loader reads it: the official layout has no config entry
                found = stage_sizes(sd)
                sizes = [c for c in (MIT_B2, MIT_B0) if found == (c.embed_dims, c.depths)] or [MIT_B2, MIT_B0]
                # saved from a training wrapper ('model.'): its keys say the size once the prefix is off
                cfg = next((c for c in sizes if without_prefix(sd, TruFor(c).state_dict().keys()) is not sd), sizes[0])
            # as load_trufor reads it: a prefix every key carries ('model.') is taken off (was refused)
            sd = without_prefix(sd, TruFor(cfg).state_dict().keys())
            check_state_dict(TruFor(cfg), sd, str(init))
    model = TruFor(cfg or MIT_B0)
    if sd is not None:
        strict_load(model, sd, str(init))
    if sd is None or noiseprint_weights is not None:
        strict_load(model.dncnn, official_noiseprint(noiseprint_weights), "noiseprint++")
    elif _rounded_from(model.dncnn.state_dict(), official := official_noiseprint(None)):
        strict_load(model.dncnn, official, "noiseprint++")  # the same network, stored in float16/bfloat16
    return model, trained


def _rounded_from(held: dict[str, torch.Tensor], official: dict[str, torch.Tensor]) -> bool:
    """Whether ``held`` is ``official`` rounded to float16 or bfloat16 (a checkpoint saved in
    half precision): training then takes the float32 original, as its map is precision-sensitive."""
    if held.keys() != official.keys():
        return False
    floats = [k for k, v in held.items() if v.is_floating_point()]
    return any(
        all(torch.equal(official[k].to(low).to(held[k].dtype), held[k]) for k in floats)
        and any(not torch.equal(official[k].to(held[k].dtype), held[k]) for k in floats)
        for low in (torch.float16, torch.bfloat16)
    )


def set_phase(model: TruFor, phase: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the phase's modules (frozen ones in eval mode); returns the trainable
    parameters. The DnCNN is always frozen."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    model.eval()
    model.requires_grad_(False)
    params: list[torch.nn.Parameter] = []
    for name in TRAINABLE[phase]:
        m = getattr(model, name)
        m.train()
        m.requires_grad_(True)
        params += list(m.parameters())
    return params
