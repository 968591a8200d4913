"""The plain-language reading of a result: what the model says, in words, and never more.

The verdict words ("no evidence", "strong evidence", ...) belong to the verified official
checkpoint; any other model's result is described, not judged. Numbers in the reading are shown
so that they never round across the thresholds their words use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trufor_lab.inference.weights import HOW_TO_VERIFY
from trufor_lab.model.identity import changed_in_memory, classic_method, is_own_training, where_changed
from trufor_lab.lab.metrics import FIXED_THRESHOLD, fake_at_fixed, forged_at_fixed

if TYPE_CHECKING:  # pragma: no cover
    from trufor_lab.inference.analyze import Result
    from trufor_lab.inference.weights import WeightsInfo

__all__ = [
    "CONF_HIGH",
    "CONF_LOW",
    "FLAG_THRESHOLD",
    "MAX_FLAGGED_FRACTION",
    "MIN_FLAGGED_FRACTION",
    "MapStats",
    "SCORE_FLAG",
    "SCORE_STRONG",
    "map_stats",
    "plain_reading",
]

#: A pixel is "flagged" when its localization map value is above this (the evaluation's "forged").
FLAG_THRESHOLD = FIXED_THRESHOLD
#: Fewer flagged pixels than this fraction of the image count as "no region flagged".
MIN_FLAGGED_FRACTION = 0.005
#: Flagged regions whose mean confidence is below this: the map is unreliable there.
CONF_LOW = 0.5
#: Mean confidence in the flagged region needed for "strong evidence".
CONF_HIGH = 0.75
#: Integrity score above which the image as a whole is called suspicious (the evaluation's "fake").
SCORE_FLAG = FIXED_THRESHOLD
#: Integrity score needed for "strong evidence".
SCORE_STRONG = 0.8
#: A map that flags more than this fraction singles out no region.
MAX_FLAGGED_FRACTION = 0.9
#: Levels at which the reading's words change: numbers shown beside them never round across.
_THRESHOLDS = (FLAG_THRESHOLD, CONF_LOW, CONF_HIGH, SCORE_FLAG, SCORE_STRONG)


@dataclass(frozen=True)
class MapStats:
    """The numbers a report shows; all ``None`` without localization."""

    score: float | None
    map_max: float | None
    map_mean: float | None
    conf_mean: float | None
    flagged_fraction: float | None
    conf_flagged: float | None  # mean confidence inside the flagged region (None: nothing flagged)


def map_stats(result: "Result") -> MapStats:
    """Score, max/mean of the map, mean confidence, flagged fraction and confidence there."""
    if result.map is None:
        return MapStats(result.score, None, None, None, None, None)
    flagged = forged_at_fixed(result.map)  # in the map's own dtype, as the evaluation counts it
    m = np.asarray(result.map, dtype=np.float64)
    conf = None if result.conf is None else np.asarray(result.conf, dtype=np.float64)
    conf_mean = None if conf is None else float(conf.mean())
    conf_flagged = float(conf[flagged].mean()) if conf is not None and flagged.any() else None
    return MapStats(
        # as the evaluation reads it (float32): a float64 model's 0.5000000001 is 0.5, not fake
        score=None if result.score is None else float(np.float32(result.score)),
        map_max=float(m.max()),
        map_mean=float(m.mean()),
        conf_mean=conf_mean,
        flagged_fraction=float(flagged.mean()),
        conf_flagged=conf_flagged,
    )


def plain_reading(result: "Result") -> str:
    """What the model says, in plain language, and never more.

    Verdict words ("no evidence", "strong evidence", ...) belong to the verified official
    checkpoint only. Their wording is gated by the confidence map (a flagged region with low
    confidence is called unreliable). Any other weights (the demo model, a custom or untrained
    one) get a neutral description of what that model flags, a plain statement that it cannot
    judge a real photo, and a pointer to the official weights.

    Rule for the official checkpoint (thresholds are the module constants): nothing flagged ->
    "no evidence of manipulation found" (or inconclusive if the score is high); a flagged region
    with low mean confidence -> unreliable; almost everything flagged -> inconclusive; score
    >= SCORE_STRONG and confidence >= CONF_HIGH -> strong evidence; score > SCORE_FLAG ->
    moderate; otherwise weak evidence. "Flagged" and "score > SCORE_FLAG" are the evaluation's
    own rule (:func:`~trufor_lab.lab.metrics.forged_at_fixed`, ``fake_at_fixed``): an image the
    reading calls suspicious is one the evaluation counts as detected.
    """
    info = result.weights
    if result.map is None:
        return (
            "Noiseprint++ only: no localization map and no integrity score. Localization needs "
            "the official TruFor checkpoint; the Noiseprint++ map and the provenance can still "
            "be inspected by an expert."
        )
    if classic_method(result) is not None or result.score is None:
        return _map_only_reading(result)
    if not np.isfinite(float(result.score)):  # NaN compares False with every threshold: it read as "high"
        raise ValueError(f"{result.name or 'result'}: its score is {result.score}, not a number in 0..1: no reading")
    if info is None or info.kind != "official" or not info.verified:
        return _unverified_reading(result, info)
    return _official_reading(map_stats(result))


def _unverified_reading(result: "Result", info: "WeightsInfo | None") -> str:
    st = map_stats(result)
    kind = "unknown" if info is None else "own" if is_own_training(info) else info.kind
    if changed_in_memory(info):  # no file holds these weights: nothing to verify
        kind = "changed"
    what = {
        "demo": "The demo model (a small network trained by trufor_lab, not the official TruFor)",
        "official": "A TruFor checkpoint not verified as the official TruFor weights",
        "custom": "A TruFor checkpoint not verified as the official TruFor weights",
        "own": "A TruFor checkpoint trained or exported with trufor_lab (not the official TruFor weights)",
        "untrained": "An untrained network (random weights)",
        "unknown": "A model of unknown origin (not loaded with tl.load)",
    }.get(kind, "A model loaded without a known checkpoint")
    if kind == "changed":
        what = f"A TruFor model whose weights were {where_changed(info)} (not that file's weights)"
    # an unverified file may be the official one: what would verify it, never that it is not
    verify = {
        "official": f"; {HOW_TO_VERIFY}",
        "custom": f"; {HOW_TO_VERIFY}",
        "unknown": "; load the checkpoint with tl.load(path) to have it checked",
    }.get(kind, "")
    if st.flagged_fraction < MIN_FLAGGED_FRACTION:
        flags = _few_flagged(st.flagged_fraction, passive=False)
    else:
        conf = "" if st.conf_flagged is None else f", mean confidence there {_fmt(st.conf_flagged, 2)}"
        flags = f"flags {_pct(st.flagged_fraction)} of the image{conf}"
    return (
        f"{what} {flags}; its score (this model's output, not an integrity score) is {_fmt(st.score, 2)}. "
        f"This describes what that model "
        f"computes, not whether the image was manipulated: a demo or unverified model cannot judge "
        f"a real photo, and its scores are not evidence either way. For an assessment, analyze the "
        f"image with the official TruFor weights (`trufor-lab weights download`){verify}."
    )


def _map_only_reading(result: "Result") -> str:
    """A classic detector's map (a rescaled filter output), or a map without an integrity score."""
    st = map_stats(result)
    method = classic_method(result)
    who = "This analysis" if method is None else f"The classic detector {method}"
    flags = (
        _few_flagged(st.flagged_fraction, passive=False).replace("flags", "highlights", 1)
        if st.flagged_fraction < MIN_FLAGGED_FRACTION
        else (f"highlights {_pct(st.flagged_fraction)} of the image")
    )
    score = "" if st.score is None else f" (its summary value {_fmt(st.score, 2)} is not an integrity score)"
    return (
        f"{who} {flags}{score}. Its map shows where one kind of trace differs from the rest of the "
        f"image, not a probability of manipulation: ordinary content (edges, textures, saturated or "
        f"flat areas) lights it up too. A place to look, not evidence either way."
    )


def _official_reading(st: MapStats) -> str:
    frac, pct = st.flagged_fraction, _pct(st.flagged_fraction)
    s, cf = _fmt(st.score, 2), (None if st.conf_flagged is None else _fmt(st.conf_flagged, 2))
    if frac < MIN_FLAGGED_FRACTION:
        if not fake_at_fixed(st.score):
            return (
                f"No evidence of manipulation found: {_few_flagged(frac)} and the integrity score "
                f"is low ({s}). This does not prove the image is authentic."
            )
        return (
            f"Inconclusive: the integrity score is high ({s}) but the map "
            f"{_few_flagged(frac, passive=False)}; the model cannot say where a manipulation would be."
        )
    if st.conf_flagged is None or st.conf_flagged < CONF_LOW:
        return (
            f"Inconclusive: the map flags {pct} of the image, but the model's mean confidence "
            f"there is low ({cf or _fmt(0.0, 2)}), so the map is unreliable in those "
            f"regions (integrity score {s})."
        )
    if frac > MAX_FLAGGED_FRACTION:
        return (
            f"Inconclusive: the map flags almost the whole image ({pct}) and singles out no "
            f"region; this often happens with heavily processed images (integrity score {s})."
        )
    if st.score >= SCORE_STRONG and st.conf_flagged >= CONF_HIGH:
        return (
            f"Strong evidence of manipulation: {pct} of the image is flagged with high "
            f"confidence ({cf}) and the integrity score is high ({s}). "
            f"Evidence, not proof: check the flagged regions against other sources."
        )
    if fake_at_fixed(st.score):
        return (
            f"Some regions look manipulated (moderate confidence): {pct} of the image is "
            f"flagged, mean confidence there {cf}, integrity score {s}."
        )
    return (
        f"Weak evidence: {pct} of the image is flagged (confidence there {cf}) but the "
        f"integrity score is low ({s}); look at those regions closely before concluding "
        f"anything."
    )


def _fmt(v: float | None, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals, more where rounding would carry it across a threshold the
    reading uses (0.4996 is "0.4996", not "0.500" beside "below 0.5")."""
    if v is None:
        return "—"
    for d in range(digits, 18):  # a float32 0.49999997 needs 8
        text = f"{v:.{d}f}"  # on v's side of every threshold, and on it only when v is (some are "> t")
        if all((float(text) >= t, float(text) > t) == (v >= t, v > t) for t in _THRESHOLDS):
            return text
    return repr(float(v))  # the shortest text that reads back as v: on v's side of every threshold


def _pct(frac: float) -> str:
    """A share of the image in percent, never "0.0%" for a few pixels."""
    if 0 < frac < 0.0005:
        return "under 0.1%"
    for d in range(1, 18):  # 0.495% is "0.49%", not "0.5%" beside "too little" (the cut is 0.5%)
        text = f"{100 * frac:.{d}f}"
        if (float(text) / 100 >= MIN_FLAGGED_FRACTION) == (frac >= MIN_FLAGGED_FRACTION):
            return text + "%"
    return f"{100 * frac!r}%"


def _few_flagged(frac: float, passive: bool = True) -> str:
    """What a map flagging less than MIN_FLAGGED_FRACTION does (none, or a few pixels: the
    table beside the reading gives their share, so the reading must not say "no region")."""
    if frac == 0:
        return "no region is flagged" if passive else "flags no region"
    few = f"only {_pct(frac)} of the image"
    return (f"{few} is flagged" if passive else f"flags {few}") + ", too little to single out a region"
