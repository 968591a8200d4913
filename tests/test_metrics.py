"""trufor_lab.lab.metrics: hand cases, edge cases of the official protocol, and a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trufor_lab.lab.metrics import (
    AggregateMetrics,
    DetectionMetrics,
    LocalizationMetrics,
    aggregate,
    detection_metrics,
    localization_metrics,
    scored_regions,
)

# --------------------------------------------------------------------------------------------
# independent slow reference (explicit loops; no scipy, no sklearn)
# --------------------------------------------------------------------------------------------


def _slow_filter(mask: np.ndarray, size: int, op) -> np.ndarray:
    """Square min/max filter; numpy 'symmetric' padding == scipy.ndimage 'reflect'."""
    r = size // 2
    p = np.pad(mask.astype(np.int64), r, mode="symmetric")
    h, w = mask.shape
    out = np.empty((h, w), dtype=np.int64)
    for i in range(h):
        for j in range(w):
            out[i, j] = op(p[i : i + size, j : j + size])
    return out.astype(bool)


def _counts(pred, y):
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    return tp, fp, fn, tn


def _f1(tp, fp, fn):
    d = 2 * tp + fp + fn
    return 2 * tp / d if d else 0.0


def _mcc(tp, fp, fn, tn):
    d = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return abs(tp * tn - fp * fn) / d if d else 0.0


def _pair_auc(v, y):
    pos, neg = v[y], v[~y]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


def slow_localization(mp: np.ndarray, mask: np.ndarray) -> dict:
    mask = mask.astype(bool)
    forged = _slow_filter(mask, 15, np.min)
    pristine = ~_slow_filter(mask, 11, np.max)
    sel = forged | pristine
    y = forged[sel]
    if y.size == 0:
        return dict.fromkeys(("f1_best", "f1_fixed", "mcc_best", "mcc_fixed", "iou_fixed", "auc"), math.nan)
    with np.errstate(over="ignore"):
        v = mp.astype(np.float32)[sel]
    f1s, mccs = [], []
    # thresholds: every distinct value, plus one below the minimum (all forged)
    for t in [-np.inf] + sorted(set(v.tolist())):
        pred = v > t
        tp, fp, fn, tn = _counts(pred, y)
        f1s.append(max(_f1(tp, fp, fn), _f1(fn, tn, tp)))
        mccs.append(_mcc(tp, fp, fn, tn))
    pred = mp[sel] > 0.5
    if (mp[sel] < 0).any() or (mp[sel] > 1).any():  # not a probability: no fixed threshold
        f1_fixed = mcc_fixed = iou_fixed = math.nan
    elif len(set(y.tolist()) | set(pred.tolist())) == 1:
        f1_fixed = mcc_fixed = iou_fixed = math.nan
    else:
        tp, fp, fn, tn = _counts(pred, y)
        f1_fixed = max(_f1(tp, fp, fn), _f1(fn, tn, tp))
        mcc_fixed = _mcc(tp, fp, fn, tn)
        i1 = tp / (tp + fp + fn) if tp + fp + fn else 0.0
        i2 = fn / (fn + tn + tp) if fn + tn + tp else 0.0
        iou_fixed = max(i1, i2)
    return dict(
        f1_best=max(f1s),
        f1_fixed=f1_fixed,
        mcc_best=max(mccs),
        mcc_fixed=mcc_fixed,
        iou_fixed=iou_fixed,
        auc=_pair_auc(v, y),
    )


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-12


def _square_mask(n=40, sl=(slice(10, 30), slice(10, 30))):
    m = np.zeros((n, n), dtype=bool)
    m[sl] = True
    return m


# --------------------------------------------------------------------------------------------
# scored regions
# --------------------------------------------------------------------------------------------


def test_scored_regions_square():
    f, p = scored_regions(_square_mask())
    assert f.sum() == 36 and f[17:23, 17:23].all()  # 20 - 14 = 6 per side
    assert (~p).sum() == 900 and (~p)[5:35, 5:35].all()  # 20 + 10 = 30 per side
    assert not (f & p).any()


def test_scored_regions_border_not_eroded():
    m = np.zeros((40, 40), dtype=bool)
    m[10:30, 0:20] = True  # touches the left border
    f, p = scored_regions(m)
    assert f[17:23, 0:13].all() and f.sum() == 6 * 13  # left side kept by reflection
    assert (~p).sum() == 30 * 25
    full = np.ones((30, 30), dtype=np.uint8)
    f, p = scored_regions(full)
    assert f.all() and not p.any()


# --------------------------------------------------------------------------------------------
# localization: hand cases
# --------------------------------------------------------------------------------------------


def test_perfect_and_inverted_maps():
    m = _square_mask()
    r = localization_metrics(m.astype(np.float64), m)
    assert (r.f1_best, r.f1_fixed, r.mcc_best, r.mcc_fixed, r.iou_fixed, r.auc) == (1, 1, 1, 1, 1, 1)
    assert (r.n_forged, r.n_pristine) == (36, 700) and not r.best_inverted
    r = localization_metrics(1.0 - m, m)  # perfectly inverted
    assert r.f1_best == 1 and r.f1_fixed == 1 and r.iou_fixed == 1 and r.mcc_best == 1
    assert r.auc == 0 and r.best_inverted


def test_ties_hand_computed():
    m = _square_mask()
    f, p = scored_regions(m)
    mp = np.full(m.shape, 0.2)
    mp[f] = 0.8
    pr = np.flatnonzero(p.ravel())[:36]  # 36 pristine pixels tie with forged
    mp.ravel()[pr] = 0.8
    r = localization_metrics(mp, m)
    assert r.f1_best == pytest.approx(2 / 3) and r.f1_fixed == pytest.approx(2 / 3)
    assert r.iou_fixed == pytest.approx(0.5)
    tp, fp, fn, tn = 36, 36, 0, 664
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert r.mcc_best == pytest.approx(mcc) and r.mcc_fixed == pytest.approx(mcc)
    assert r.auc == pytest.approx((664 + 0.5 * 36) / 700)
    assert r.best_threshold == np.float32(0.2) and not r.best_inverted


def test_constant_map():
    m = _square_mask()
    r = localization_metrics(np.full(m.shape, 0.7), m)
    assert r.f1_best == pytest.approx(72 / 772)  # all forged (via inversion)
    assert r.f1_fixed == pytest.approx(72 / 772)  # labels hold both classes
    assert r.mcc_best == 0 and r.auc == 0.5


def test_fixed_threshold_is_strict_and_uses_map_dtype():
    m = _square_mask()
    f, _ = scored_regions(m)
    mp = np.where(f, 0.5, 0.0)
    assert localization_metrics(mp, m).f1_fixed == pytest.approx(72 / 772)  # 0.5 is not > 0.5
    # float64 values that collapse in float32: best sweep ties them, 0.5 compares in float64
    mp = np.where(f, 0.5 + 1e-10, 0.5)
    r = localization_metrics(mp, m)
    assert r.f1_fixed == 1 and r.f1_best == pytest.approx(72 / 772)


def test_whole_image_forged():
    m = np.ones((40, 40), dtype=np.uint8)
    r = localization_metrics(np.full(m.shape, 0.3), m)
    assert r.n_forged == 1600 and r.n_pristine == 0
    assert r.f1_best == 1 and r.f1_fixed == 1 and math.isnan(r.auc)
    r = localization_metrics(np.full(m.shape, 0.7), m)  # labels and predictions: one class
    assert r.f1_best == 1 and math.isnan(r.f1_fixed) and math.isnan(r.mcc_fixed)


# --------------------------------------------------------------------------------------------
# localization: edge cases and errors
# --------------------------------------------------------------------------------------------


def test_no_forged_after_erosion():
    m = _square_mask(sl=(slice(15, 25), slice(15, 25)))  # 10x10 < 15x15
    rng = np.random.default_rng(0)
    r = localization_metrics(rng.random(m.shape), m)
    assert r.n_forged == 0 and r.n_pristine > 0
    assert r.f1_best == 0 and r.mcc_best == 0 and math.isnan(r.auc)
    assert r.f1_fixed == 0  # predictions hold both classes
    r = localization_metrics(np.zeros(m.shape), m)  # one class at 0.5
    assert r.f1_best == 0 and math.isnan(r.f1_fixed) and math.isnan(r.iou_fixed)


def test_no_scored_pixel_is_nan():
    m = np.zeros((40, 40), dtype=bool)
    m[:, ::6] = True  # thin stripes: eroded away, dilated everywhere
    r = localization_metrics(np.random.default_rng(1).random(m.shape), m)
    assert r.n_forged == 0 and r.n_pristine == 0
    for name in ("f1_best", "f1_fixed", "mcc_best", "mcc_fixed", "iou_fixed", "auc", "best_threshold"):
        assert math.isnan(getattr(r, name))


def test_bad_inputs():
    m = _square_mask()
    with pytest.raises(ValueError, match="0/1"):
        localization_metrics(np.zeros(m.shape), m.astype(np.uint8) * 255)
    with pytest.raises(ValueError, match=r"\(40, 41\).*\(40, 40\)"):
        localization_metrics(np.zeros((40, 41)), m)
    with pytest.raises(ValueError, match="NaN"):
        localization_metrics(np.full(m.shape, np.nan), m)
    f, p = scored_regions(m)
    band = np.where(f | p, m * 1.0, np.nan)  # NaN only where nothing is scored
    assert localization_metrics(band, m).f1_best == 1
    with pytest.raises(ValueError, match="2-D"):
        localization_metrics(np.zeros((40, 40, 1)), m[..., None])
    # 0/1 in any numeric dtype is fine
    assert localization_metrics(m * 1.0, m.astype(np.float32)).f1_best == 1


# --------------------------------------------------------------------------------------------
# localization: against the slow reference
# --------------------------------------------------------------------------------------------


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(24, 44, size=2)
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(rng.integers(0, 4)):  # rectangles, some touching borders
        y0, x0 = rng.integers(-5, h - 5), rng.integers(-5, w - 5)
        mask[max(y0, 0) : y0 + rng.integers(4, 30), max(x0, 0) : x0 + rng.integers(4, 30)] = True
    kind = seed % 4
    if kind == 0:
        mp = rng.random((h, w))
    elif kind == 1:
        mp = np.round(rng.random((h, w)), 1)  # many ties, values exactly 0.5
    elif kind == 2:
        mp = np.clip(mask * 0.6 + rng.normal(0.2, 0.3, (h, w)), 0, 1).astype(np.float32)
    else:
        mp = rng.integers(0, 3, (h, w)).astype(np.float64) / 2
    return mp, mask


@pytest.mark.parametrize("seed", range(48))
def test_matches_slow_reference(seed):
    mp, mask = _random_case(seed)
    got = localization_metrics(mp, mask).as_dict()
    want = slow_localization(mp, mask)
    for name, value in want.items():
        assert _same(got[name], value), (name, got[name], value)
    f, p = scored_regions(mask)
    assert np.array_equal(f, _slow_filter(mask, 15, np.min))
    assert np.array_equal(p, ~_slow_filter(mask, 11, np.max))


# --------------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------------


def test_aggregate_nan_policy():
    nan = math.nan
    a = LocalizationMetrics(0.5, nan, 0.2, nan, nan, 0.9, 10, 10, 0.1, False)
    b = LocalizationMetrics(1.0, 0.4, 0.4, 0.2, 0.25, nan, 10, 10, 0.1, False)
    s = aggregate([a, b])
    assert isinstance(s, AggregateMetrics) and s.n_images == 2
    assert s.mean["f1_best"] == 0.75 and s.mean["f1_fixed"] == 0.4 and s.mean["auc"] == 0.9
    assert s.n_nan == {"f1_best": 0, "f1_fixed": 1, "mcc_best": 0, "mcc_fixed": 1, "iou_fixed": 1, "auc": 1}
    d = s.as_dict()
    assert d["f1_fixed_n_nan"] == 1 and d["n_images"] == 2
    empty = aggregate([])
    assert empty.n_images == 0 and math.isnan(empty.mean["f1_best"])
    with pytest.raises(TypeError):
        aggregate([{"f1_best": 1.0}])


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------


def test_detection_hand_case():
    r = detection_metrics([0.2, 0.8, 0.6, 0.4], [0, 1, 0, 1])
    assert isinstance(r, DetectionMetrics)
    assert r.auc == 0.75 and r.balanced_accuracy == 0.5 and (r.tpr, r.tnr) == (0.5, 0.5)
    assert (r.n_fake, r.n_real, r.n_dropped) == (2, 2, 0)
    assert r.as_dict()["auc"] == 0.75


def test_detection_ties_count_half_and_strict_threshold():
    assert detection_metrics([0.5, 0.5], [0, 1]).auc == 0.5
    r = detection_metrics([0.3, 0.5, 0.5], [0, 0, 1])
    assert r.auc == 0.75 and r.tpr == 0.0 and r.tnr == 1.0  # 0.5 is not > 0.5
    # float32 cast: 0.5 + 1e-10 becomes 0.5, hence real
    assert detection_metrics(np.array([0.5 + 1e-10, 0.1]), [1, 0]).tpr == 0.0


def test_detection_drops_nan_and_neg_inf():
    r = detection_metrics([0.9, np.nan, 0.1, -np.inf, 0.7], [1, 1, 0, 0, 0])
    assert r.n_dropped == 2 and (r.n_fake, r.n_real) == (1, 2)
    assert r.auc == 1.0 and r.balanced_accuracy == pytest.approx((1 + 0.5) / 2)


def test_detection_errors_and_single_class():
    with pytest.raises(ValueError, match=r"\+inf"):
        detection_metrics([0.2, np.inf], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        detection_metrics([0.2, 0.3], [0, 2])
    with pytest.raises(ValueError, match="one label per score"):
        detection_metrics([0.2, 0.3], [0])
    # a (2, N) array was paired with the labels in C order, unsaid; (N, 1) is one score per image
    with pytest.raises(ValueError, match=r"one per image \(1-D\), got shape \(2, 2\)"):
        detection_metrics(np.array([[0.1, 0.9], [0.8, 0.2]]), [0, 1, 1, 0])
    assert detection_metrics(np.array([[0.1], [0.9]]), [0, 1]).auc == 1.0
    r = detection_metrics([0.2, 0.7], [0, 0])
    assert math.isnan(r.auc) and math.isnan(r.tpr) and r.balanced_accuracy == 0.5
    r = detection_metrics([np.nan], [1])
    assert r.n_dropped == 1 and math.isnan(r.auc) and math.isnan(r.balanced_accuracy)


@pytest.mark.parametrize("seed", range(20))
def test_detection_matches_pairwise_reference(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 60))
    s = np.round(rng.random(n), int(rng.integers(1, 4)))
    y = rng.integers(0, 2, n)
    r = detection_metrics(s, y)
    s32 = s.astype(np.float32)
    assert _same(r.auc, _pair_auc(s32, y == 1))
    recalls = [np.mean(s32[y == c] > 0.5) if c else np.mean(s32[y == c] <= 0.5) for c in (0, 1) if np.any(y == c)]
    assert r.balanced_accuracy == pytest.approx(np.mean(recalls))


def test_special_values_sort_like_floats():
    """Negative values, -0.0 tied with 0.0, infinities and float32 overflow."""
    rng = np.random.default_rng(7)
    mask = _square_mask()
    pool = np.array([-np.inf, -1e39, -2.5, -1e-40, -0.0, 0.0, 1e-40, 0.5, 3.0, 1e39, np.inf])
    for _ in range(6):
        mp = rng.choice(pool, size=mask.shape)
        got = localization_metrics(mp, mask).as_dict()
        for name, value in slow_localization(mp, mask).items():
            assert _same(got[name], value), (name, got[name], value)
    mp = np.where(scored_regions(mask)[0], 0.0, -0.0)  # one distinct value
    assert localization_metrics(mp, mask).f1_best == pytest.approx(72 / 772)


def test_non_numeric_maps_and_scores_are_refused_not_parsed():
    """A timedelta map passed numpy's integer test and failed with a TypeError; scores read as
    text ('0.9') were parsed silently."""
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    m = gt.astype(np.int64)
    assert localization_metrics(m, gt).f1_best == 1.0
    with pytest.raises(ValueError, match="real-valued"):
        localization_metrics(m.astype("m8[s]"), gt)
    with pytest.raises(ValueError, match="scores must be real numbers"):
        detection_metrics(["0.9", "0.1"], [1, 0])
    assert detection_metrics([0.9, 0.1], [1, 0]).auc == 1.0
    # the same text in an object array (a pandas column read as text) was parsed; a complex score
    # lost its imaginary part; a dict raised float()'s TypeError
    for bad in (np.array(["0.9", "0.1"], dtype=object), [0.1 + 5j, 0.9], {"a": 0.9, "b": 0.1}):
        with pytest.raises(ValueError, match="scores must be real numbers"):
            detection_metrics(bad, [1, 0])
    with pytest.raises(ValueError, match="scores must be real numbers, found '0.9'"):  # a gap first
        detection_metrics(np.array([None, "0.9", "0.1"], dtype=object), [1, 1, 0])
    r = detection_metrics([None, 0.9, 0.1], [1, 1, 0])  # None is a missing score, dropped as NaN is
    assert r.auc == 1.0 and r.n_dropped == 1
    # numbers in an object array are numbers: scores and labels alike
    r = detection_metrics(np.array([0.9, 0.1], dtype=object), np.array([1, 0], dtype=object))
    assert r.auc == 1.0
    with pytest.raises(ValueError, match="labels must be real numbers"):
        detection_metrics([0.9, 0.1], np.array(["1", "0"], dtype=object))


def test_fixed_threshold_metrics_need_a_probability_map():
    """The same map as 0..255 or as logits got f1_best 1.0 but f1_fixed 0.09 (0.5 is no threshold
    there); the fixed metrics are NaN outside [0, 1], the others unchanged."""
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    prob = np.where(gt, 0.8, 0.2)
    ref = localization_metrics(prob, gt)
    assert ref.f1_fixed == 1.0 and ref.mcc_fixed == 1.0 and ref.probability is True
    for other in ((prob * 255).astype(np.uint8), np.log(prob / (1 - prob))):
        r = localization_metrics(other, gt)
        assert math.isnan(r.f1_fixed) and math.isnan(r.mcc_fixed) and math.isnan(r.iou_fixed)
        assert r.probability is False and r.as_dict()["probability"] is False  # why, for a summary to say
        assert (r.f1_best, r.mcc_best, r.auc) == (ref.f1_best, ref.mcc_best, ref.auc)
    assert localization_metrics(gt, gt).f1_fixed == 1.0  # a binary prediction is a probability


def test_a_probability_map_overshooting_after_a_bicubic_resize_is_still_scored_at_half():
    """A user's map resized bicubically overshoots [0, 1] by ~0.1 at sharp edges: its f1_fixed was
    NaN (read as logits) although 0.5 means what it means; logits a little wider are still NaN."""
    import torch

    gt = np.zeros((64, 64), bool)
    gt[16:48, 16:48] = True
    small = torch.from_numpy(gt[::2, ::2].astype(np.float32))[None, None]
    big = torch.nn.functional.interpolate(small, size=(64, 64), mode="bicubic", align_corners=False)[0, 0].numpy()
    assert big.min() < 0 or big.max() > 1  # the overshoot is real
    r = localization_metrics(big, gt)
    assert r.f1_fixed == localization_metrics(np.clip(big, 0, 1), gt).f1_fixed > 0.9
    logits = np.where(gt, 0.3, -0.3)  # a logit map narrower than its own threshold range still is not
    assert math.isnan(localization_metrics(logits, gt).f1_fixed)


def test_balanced_accuracy_needs_probability_scores():
    """Detection logits (``Result.det_logit``) got a balanced accuracy at 0.5, a threshold that
    means probability 0.62 there, unsaid (the maps' fixed-threshold F1 is NaN in that case)."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 40)
    prob = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.2, 40), 0.01, 0.99)
    logit = np.log(prob / (1 - prob))
    at_half = detection_metrics(prob, y)
    s32 = prob.astype(np.float32)
    assert at_half.balanced_accuracy == pytest.approx((np.mean(s32[y == 1] > 0.5) + np.mean(s32[y == 0] <= 0.5)) / 2)
    r = detection_metrics(logit, y)
    assert r.auc == pytest.approx(_pair_auc(logit.astype(np.float32), y == 1))  # the AUC takes any range
    assert math.isnan(r.balanced_accuracy) and math.isnan(r.tpr) and math.isnan(r.tnr)
    assert (r.n_fake, r.n_real) == (int(y.sum()), int((1 - y).sum()))
    assert detection_metrics([0.0, 1.0], [0, 1]).balanced_accuracy == 1.0  # the ends are probabilities


def test_the_fixed_rule_refuses_a_missing_or_nan_score():
    """fake_at_fixed(None) and fake_at_fixed(nan) were False: a score that is not there read as
    "real" for any future caller that forgot to leave it out."""
    from trufor_lab.lab.metrics import fake_at_fixed

    assert fake_at_fixed([0.5, np.float32(0.50000006), 0.2]).tolist() == [False, True, False]
    for bad in (None, float("nan"), [0.9, float("nan")]):
        with pytest.raises(ValueError, match="missing or NaN score"):
            fake_at_fixed(bad)
