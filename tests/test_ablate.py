"""Ablations: exact where they claim to be, reversible always, weights never touched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trufor_lab.interpret import ablate as A
from trufor_lab.inference.preprocess import to_tensor

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def n_hooks(model: torch.nn.Module) -> int:
    return sum(len(getattr(m, a)) for m in model.modules() for a in _HOOK_DICTS)


def knobs(model) -> tuple:
    bb = model.backbone
    return (
        tuple((f.lambda_c, f.lambda_s) for f in bb.FRMs),
        tuple(f.cross_enabled for f in bb.FFMs),
        model.pool.weighting,
        model.training,
    )


@pytest.fixture(scope="module")
def img(tampered2) -> np.ndarray:
    return tampered2[80:144, 80:144].copy()


@pytest.fixture(scope="module")
def x(img) -> torch.Tensor:
    return to_tensor(img)


@pytest.fixture(scope="module")
def ref(recipe_model, x):
    """Unablated outputs, fused features and the pristine state (taken before any ablation)."""
    with torch.no_grad():
        out = recipe_model(x)
        feats = recipe_model.forward_features(x, out.noiseprint)
    state = {k: v.clone() for k, v in recipe_model.state_dict().items()}
    return out, feats, state, knobs(recipe_model)


def assert_pristine(model, ref) -> None:
    _, _, state, k = ref
    sd = model.state_dict()
    assert sd.keys() == state.keys()
    assert all(torch.equal(sd[key], state[key]) for key in state)
    assert knobs(model) == k
    assert n_hooks(model) == 0
    assert not any("forward" in vars(m) or "normalize" in vars(m) for m in model.modules())


def test_rgb_only_is_a_zero_noiseprint_input(recipe_model, x, ref):
    out0 = ref[0]
    with torch.no_grad():
        with A.rgb_only(recipe_model) as ab:
            assert ab.active and n_hooks(recipe_model) == 1
            ablated = recipe_model(x)
        plain = recipe_model(x, noiseprint=torch.zeros(1, 1, *x.shape[2:]))
    for a, b in zip(ablated[:3], plain[:3]):
        assert torch.equal(a, b)
    assert torch.count_nonzero(ablated.noiseprint) == 0  # Result.noiseprint shows what was fed
    assert not torch.equal(ablated.logits, out0.logits)
    assert_pristine(recipe_model, ref)


def test_every_ablation_is_reversible(recipe_model, x, ref, tampered2):
    other = tampered2[:40, :40].copy()
    bound = [
        A.noiseprint_from(recipe_model, other) if n == "noiseprint_from" else A.get_ablation(recipe_model, n)
        for n in A.ABLATIONS
    ]
    for ab in bound:
        with ab:
            assert ab.active
        assert not ab.active
        with pytest.raises(KeyError):
            with ab:
                raise KeyError("boom")
        assert_pristine(recipe_model, ref)
    # all at once, a forward inside, then an exception: everything comes back
    everything = A.compose(*bound)
    with pytest.raises(RuntimeError, match="inside"):
        with everything:
            with torch.no_grad():
                recipe_model(x)
            raise RuntimeError("inside")
    assert_pristine(recipe_model, ref)
    with torch.no_grad():
        after = recipe_model(x)
    for a, b in zip(after, ref[0]):
        assert torch.equal(a, b)


def test_not_reentrant_and_registry_suggests(recipe_model, ref):
    ab = A.no_frm(recipe_model)
    with ab:
        with pytest.raises(RuntimeError, match="already active"):
            ab.__enter__()
    with pytest.raises(A.UnknownAblation, match="no_frm"):
        A.get_ablation(recipe_model, "no_fmr")
    with pytest.raises(ValueError):
        A.register_ablation("no_frm", A.no_frm)
    with pytest.raises(ValueError):
        A.no_frm(recipe_model, stages=(0,))
    assert_pristine(recipe_model, ref)


def test_no_frm_changes_fused_features_from_its_stage_on(recipe_model, x, ref):
    out0, feats0, _, _ = ref
    with torch.no_grad():
        with A.no_frm(recipe_model, stages=(4,)) as ab:
            assert ab.name == "no_frm_4"
            assert recipe_model.backbone.FRMs[3].lambda_c == 0 and recipe_model.backbone.FRMs[2].lambda_c != 0
            feats = recipe_model.forward_features(x, out0.noiseprint)
    assert all(torch.equal(a, b) for a, b in zip(feats[:3], feats0[:3]))
    assert not torch.allclose(feats[3], feats0[3])
    with torch.no_grad(), A.no_frm(recipe_model):
        feats = recipe_model.forward_features(x, out0.noiseprint)
    assert not torch.allclose(feats[0], feats0[0])
    assert_pristine(recipe_model, ref)


def test_decoder_and_detection_ablations(recipe_model, x, ref):
    out0, feats0, _, _ = ref
    m, size = recipe_model, tuple(x.shape[2:])
    with torch.no_grad():
        logits, conf, det = m.forward_heads(feats0, size)
        assert torch.equal(logits, out0.logits) and torch.equal(det, out0.det_logit)
        with A.drop_scales(m, "c4"):
            lg, cf, _ = m.forward_heads(feats0, size)
        assert not torch.allclose(lg, logits) and not torch.allclose(cf, conf)
        with A.drop_scales(m, ("c4",), decoders="confidence") as ab:
            assert ab.name == "drop_c4_confidence"
            lg, cf, _ = m.forward_heads(feats0, size)
        assert torch.equal(lg, logits) and not torch.allclose(cf, conf)
        # nothing to drop: an ablation 'drop_' that changed nothing (a row in a study), or an IndexError
        for scales, decoders in (([], "anomaly"), ("c4", [])):
            with pytest.raises(ValueError, match="needs at least one scale and one decoder"):
                A.drop_scales(m, scales, decoders)

        with A.uniform_pooling(m):
            lg, cf, dt = m.forward_heads(feats0, size)
        assert torch.equal(lg, logits) and torch.equal(cf, conf) and not torch.allclose(dt, det)

        with A.map_only_detection(m):
            lg, cf, dt = m.forward_heads(feats0, size)
            assert torch.equal(lg, logits) and torch.equal(cf, conf) and not torch.allclose(dt, det)
            # the score no longer depends on the confidence at all
            other = m.detection(m.pool(logits, torch.randn_like(conf) * 3))
            assert torch.equal(other, dt)

        # compose == nesting
        with A.compose(A.drop_scales(m, "c2"), A.uniform_pooling(m)) as ab:
            assert ab.name == "drop_c2+uniform_pooling"
            composed = m.forward_heads(feats0, size)
        with A.drop_scales(m, "c2"), A.uniform_pooling(m):
            nested = m.forward_heads(feats0, size)
    assert all(torch.equal(a, b) for a, b in zip(composed, nested))
    assert_pristine(recipe_model, ref)


def test_noiseprint_replacements(recipe_model, tampered2, ref):
    m = recipe_model
    small = tampered2[100:132, 100:132].copy()
    other = tampered2[:16, :16].copy()
    xs = to_tensor(small)
    with torch.no_grad():
        real = m.forward_noiseprint(xs)
        other_np = m.forward_noiseprint(to_tensor(other))
        with A.noiseprint_from(m, other):
            out = m(xs)
        with A.noiseprint_noise(m, seed=3):
            noisy = m(xs).noiseprint
        with A.rgb_only(m, fill="mean"):
            flat = m(xs).noiseprint
    # tiled periodically from the top-left corner, never resampled
    assert torch.equal(out.noiseprint[..., :16, :16], other_np)
    assert torch.equal(out.noiseprint[..., 16:, 16:], other_np)
    assert torch.allclose(noisy.std(), real.std(), rtol=0.2) and not torch.allclose(noisy, real)
    assert torch.allclose(flat, real.mean().expand_as(flat))
    assert_pristine(recipe_model, ref)


def test_ablation_study_table_and_results(recipe_model, img, ref, tmp_path):
    mask = np.zeros(img.shape[:2], dtype=bool)
    mask[16:48, 16:48] = True
    study = A.ablation_study(recipe_model, [img], [mask], ablations=["uniform_pooling", A.no_ffm_cross])
    assert study.ablations == ["baseline", "uniform_pooling", "no_ffm_cross"]
    rows = {r["ablation"]: r for r in study.table}
    assert rows["uniform_pooling"]["map_change"] == 0.0
    assert rows["uniform_pooling"]["score"] != rows["baseline"]["score"]
    assert rows["no_ffm_cross"]["map_change"] > 0
    for r in study.table:
        for k in ("score", "mean_conf", "f1_best", "f1_fixed", "auc"):
            assert np.isfinite(r[k]), (r["ablation"], k)
    results = study.for_image(0)
    assert [r.label for r in results] == study.ablations
    np.testing.assert_array_equal(results[0].map, ref[0].map[0].numpy())
    text = study.to_csv(tmp_path / "study.csv")
    assert text.splitlines()[0].startswith("image,ablation,score")
    assert (tmp_path / "study.csv").read_text() == text
    assert "<table>" in study._repr_html_()
    fig = study.plot()
    assert fig.axes
    with A.rgb_only(recipe_model) as ab:
        r = ab.analyze(img)
    assert r.label == "rgb_only"
    assert_pristine(recipe_model, ref)


def test_study_heatmap_scales_say_what_the_numbers_are():
    """The heatmap auto-scaled every metric: score changes of 0.000-0.026 filled the whole colour
    range (+0.026 the brightest), a signed change had a one-way map with no zero, and white
    labels vanished on the yellow cells."""
    images, abl = ["a.png", "b.png"], ["baseline", "x", "y"]
    delta = {"a.png": [0.0, 0.026, -0.01], "b.png": [0.0, 0.004, 0.012]}
    rows = [
        {"image": im, "ablation": ab, "score": 0.4 + d, "delta_score": d, "f1_best": 0.9 if ab == "x" else 0.1}
        for im in images
        for ab, d in zip(abl, delta[im])
    ]
    study = A.AblationStudy(rows, {ab: [] for ab in abl}, images)
    for metric, clim, cmap in (("score", (0, 1), "viridis"), ("f1_best", (0, 1), "viridis")):
        im = study.plot(metric).axes[0].images[0]
        assert im.get_clim() == clim and im.get_cmap().name == cmap, metric
    im = study.plot("delta_score").axes[0].images[0]
    assert im.get_clim() == (-1, 1) and im.get_cmap().name == "RdBu_r"  # a change of score: fixed
    ax = study.plot("f1_best").axes[0]
    inks = {t.get_text(): t.get_color() for t in ax.texts}
    assert inks["0.9"] == "k" and inks["0.1"] == "w"  # dark ink on the yellow cell, light on the purple
    one = A.AblationStudy(rows[:3], {ab: [] for ab in abl}, images[:1])
    assert one.plot("f1_best").axes[0].get_ylim() == (0, 1)


def test_study_csv_round_trips_and_is_written_atomically(recipe_model, img, tmp_path, monkeypatch):
    import csv
    import io
    import os

    study = A.ablation_study(recipe_model, [img], ablations=["uniform_pooling"], names=["été.png"])
    path = tmp_path / "study.csv"
    text = study.to_csv(path)
    assert path.read_bytes() == text.encode("utf-8")
    back = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert [r["ablation"] for r in back] == ["baseline", "uniform_pooling"]
    assert back[0]["image"] == "été.png"
    assert float(back[1]["score"]) == pytest.approx(study.table[1]["score"])
    assert study.to_csv() == text

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        study.to_csv(path)
    assert path.read_text(encoding="utf-8") == text  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.csv"]  # no temporary left behind


def test_interventions_are_honoured_or_refused_on_the_lean_path(recipe_model, img, ref, monkeypatch):
    from trufor_lab.inference import analyze as analyze_mod
    from trufor_lab.inference import predict as predict_mod
    from trufor_lab.model.capture import capture
    from trufor_lab.model.interventions import InterventionError, active_interventions

    with A.rgb_only(recipe_model) as ab:
        assert [i.name for i in active_interventions(recipe_model)] == ["rgb_only"]
        plain = analyze_mod.analyze(recipe_model, img, lean=False)
        leaned = analyze_mod.analyze(recipe_model, img, lean=True)  # fits: the plain forward is used
        assert any("rgb_only" in n for n in leaned.notes)
        np.testing.assert_array_equal(leaned.map, plain.map)
        assert np.count_nonzero(leaned.noiseprint) == 0
        monkeypatch.setattr(analyze_mod, "plain_fits", lambda *a, **k: False)
        monkeypatch.setattr(predict_mod, "plain_fits", lambda *a, **k: False)
        with pytest.raises(InterventionError, match="rgb_only"):
            ab.analyze(img)  # too large for plain: refused
        with pytest.raises(InterventionError, match="rgb_only"):
            predict_mod.predict(recipe_model, to_tensor(img))
    assert active_interventions(recipe_model) == []
    # no_frm sets attributes the lean forward reads: it works there, no refusal, no fallback
    base = analyze_mod.analyze(recipe_model, img)
    with A.no_frm(recipe_model) as ab:
        lean_r = ab.analyze(img)
    monkeypatch.undo()
    with A.no_frm(recipe_model) as ab:
        plain_r = ab.analyze(img, lean=False)
    assert not any("plain forward" in n for n in lean_r.notes)
    np.testing.assert_allclose(lean_r.map, plain_r.map, atol=1e-4)
    assert np.abs(lean_r.map - base.map).max() > 1e-3
    # a capture is refused by the lean path too
    monkeypatch.setattr(predict_mod, "plain_fits", lambda *a, **k: False)
    with capture(recipe_model, ["detection.stats"]):
        with pytest.raises(InterventionError, match="capture"):
            predict_mod.predict(recipe_model, to_tensor(img))
    assert active_interventions(recipe_model) == []
    assert_pristine(recipe_model, ref)


def test_predict_runs_the_ablated_network(recipe_model, x, ref):
    """predict() fuses the decoders and computes Noiseprint++ itself: under an ablation it must
    run the plain forward, or the ablation silently does nothing (Δ was exactly 0 before)."""
    from trufor_lab.inference.predict import predict

    for name in ("rgb_only", "drop_c4"):
        with A.get_ablation(recipe_model, name), torch.no_grad():
            want = recipe_model(x)
            got = predict(recipe_model, x)
            fast = predict(recipe_model, x, "fast")
        assert float((want.det_logit - ref[0].det_logit).abs().max()) > 1e-4, name
        for out in (got, fast):
            assert torch.allclose(out.logits, want.logits, atol=1e-5) and torch.allclose(out.det_logit, want.det_logit)
    assert_pristine(recipe_model, ref)


def test_ablations_left_out_of_order_still_restore(recipe_model, ref):
    """Entered in one notebook cell and exited in others, in any order: the model ends pristine."""
    a1, a2 = A.no_frm(recipe_model), A.no_frm(recipe_model, stages=1)
    a1.__enter__()
    a2.__enter__()
    a1.__exit__(None, None, None)
    assert recipe_model.backbone.FRMs[0].lambda_c == 0.0  # a2 still active on stage 1
    a2.__exit__(None, None, None)
    assert_pristine(recipe_model, ref)


def test_study_names_must_match_the_images(recipe_model, img):
    with pytest.raises(ValueError, match="2 images but 1 names"):
        A.ablation_study(recipe_model, [img, img[:48, :48]], ablations=["uniform_pooling"], names=["only_one"])
    # the same name twice: the heatmap had 2x4 cells for 2 labels, for_image("a") gave the first
    with pytest.raises(ValueError, match=r"duplicate image names in the study: \['a'\]"):
        A.ablation_study(recipe_model, [img, img[:48, :48]], ablations=["uniform_pooling"], names=["a", "a"])
    # True is not stage 1 or scale c1 (it named ablations no_frm_1 and drop_cTrue)
    with pytest.raises(ValueError, match="stages are 1-based integers"):
        A.no_frm(recipe_model, stages=True)
    with pytest.raises(ValueError, match="scales are"):
        A.drop_scales(recipe_model, scales=True)


def test_study_masks_are_checked_before_any_analysis_and_0_255_is_a_mask(recipe_model, img, monkeypatch):
    """A wrong mask raised only after every image x ablation had been analysed (all results lost);
    a 0/255 mask, which ``perturb.sweep`` takes, was refused there too."""
    calls = []
    real = A.analyze
    monkeypatch.setattr(A, "analyze", lambda m, im: calls.append(1) or real(m, im))
    h, w = img.shape[:2]
    for bad, why in (
        (np.zeros((h - 1, w), bool), "differs from image size"),
        (np.full((h, w), 128, np.uint8), "boolean, 0/1 or 0/255"),
    ):
        with pytest.raises(ValueError, match=why):
            A.ablation_study(recipe_model, [img, img], [None, bad], ablations=["uniform_pooling"], names=["a", "b"])
    assert calls == []
    m255 = np.zeros((h, w), np.uint8)
    m255[10:40, 10:40] = 255
    study = A.ablation_study(recipe_model, [img], [m255], ablations=["uniform_pooling"])
    same = A.ablation_study(recipe_model, [img], [m255 > 0], ablations=["uniform_pooling"])
    assert [r["f1_best"] for r in study.table] == [r["f1_best"] for r in same.table]


def test_a_lean_or_plain_answer_is_decided_once_and_hooks_are_not_skipped(recipe_model, x, ref, monkeypatch):
    """predict asked twice whether the image fits: 'no' then 'yes' ran the whole-image exact path,
    which skips hooks, and a drop_c4 ablation gave the unablated score. A user's own hook was
    skipped by the memory-lean forward, and by predict on Noiseprint++ alone."""
    from trufor_lab.inference import predict as P
    from trufor_lab.model.interventions import InterventionError

    with A.drop_scales(recipe_model, "c4"), torch.no_grad():
        want = recipe_model(x)
        answers = iter([False, True, True, True])
        monkeypatch.setattr(P, "plain_fits", lambda *a, **k: next(answers))
        got = P.predict(recipe_model, x)
        monkeypatch.undo()
    assert float((want.score - ref[0].score).abs()) > 1e-4
    assert torch.allclose(got.score, want.score, atol=1e-6)

    zero = recipe_model.backbone.FFMs[3].register_forward_hook(lambda mod, a, o: torch.zeros_like(o))
    try:
        with torch.no_grad():
            hooked_plain = recipe_model(x)
        asked_lean = P.predict(recipe_model, x, P.InferenceMode.exact(lean=True))  # fits: the plain one runs
        assert torch.allclose(asked_lean.score, hooked_plain.score, atol=1e-6)
        assert float((hooked_plain.score - ref[0].score).abs()) > 1e-4
        monkeypatch.setattr(P, "plain_fits", lambda *a, **k: False)
        with pytest.raises(InterventionError, match="FFMs.3"):
            P.predict(recipe_model, x)
        monkeypatch.undo()
    finally:
        zero.remove()

    net = recipe_model.dncnn
    h = net.register_forward_hook(lambda mod, a, o: torch.zeros_like(o))
    try:
        assert float(P.predict(net, x).abs().max()) == 0.0
    finally:
        h.remove()
    assert_pristine(recipe_model, ref)


def test_fast_mode_on_the_lean_path_keeps_its_float32_parts(recipe_model, x, ref):
    """The lean fast forward ran the decoders in bfloat16 (the whole-image one keeps them in the
    model's precision) and skipped keep_float32 for row-chunked patch embeddings and the FFMs."""
    from trufor_lab.inference import predict as P
    from trufor_lab.model import lean as L
    from trufor_lab.model.lean import LeanConfig

    seen: dict[str, torch.dtype] = {}
    dec, ffm = L._decoder, L._ffm_chunks

    def spy_dec(*a, **k):
        y = dec(*a, **k)
        seen["decoder"] = y.dtype
        return y

    def spy_ffm(f, x1, x2, *a, **k):
        seen.setdefault("ffm_in", x1.dtype)
        return ffm(f, x1, x2, *a, **k)

    mode = P.InferenceMode.fast(lean=True, amp_on_cpu=True, chunks=LeanConfig(rows=4))
    try:
        L._decoder, L._ffm_chunks = spy_dec, spy_ffm
        out = P.predict(recipe_model, x, mode)
    finally:
        L._decoder, L._ffm_chunks = dec, ffm
    assert seen == {"decoder": torch.float32, "ffm_in": torch.float32}
    whole = P.predict(recipe_model, x, P.InferenceMode.fast(lean=False, amp_on_cpu=True))
    assert float((out.det_logit - whole.det_logit).abs().max()) < 5e-3
    assert_pristine(recipe_model, ref)


def test_analyze_under_an_ablation_says_so_in_every_precision(recipe_model, img, ref):
    """On a float64 model tl.analyze under rgb_only returned a Result with no label and no note, a
    summary like an unablated run's though the score moved; in float32 the ablation showed only
    inside the note about rounding."""
    import copy

    import trufor_lab as tl

    small = img[:32, :32].copy()
    m64 = copy.deepcopy(recipe_model).double()
    for m in (m64, recipe_model):
        plain = tl.analyze(m, small, capture=["noiseprint"])  # analyze's own capture acts on nothing
        with A.rgb_only(m):
            r = tl.analyze(m, small)
        assert "computed under rgb_only" in r.notes, r.notes
        assert "computed under rgb_only" in r.summary() and r.score != plain.score
        assert not any(n.startswith("computed under") for n in plain.notes)
    assert_pristine(recipe_model, ref)


def test_an_outer_capture_is_not_recorded_as_something_acting(recipe_model, img, ref):
    """Inside `with capture(m, ...)` analyze noted "computed under capture + hooks on the model,
    backbone #token": the capture's own hooks read as unknown hooks, and a capture changes no output."""
    import trufor_lab as tl
    from trufor_lab.model.capture import capture
    from trufor_lab.model.interventions import intervention_label

    small = img[:32, :32].copy()
    with capture(recipe_model, ["rgb.input", "noiseprint"]):
        assert intervention_label(recipe_model) == ""
        r = tl.analyze(recipe_model, small)
        with A.rgb_only(recipe_model):
            assert intervention_label(recipe_model) == "rgb_only"
    assert not any(n.startswith("computed under") for n in r.notes), r.notes
    assert_pristine(recipe_model, ref)


def test_noiseprint_replacements_capture_what_the_encoder_reads(recipe_model, img, tampered2, ref):
    """The replacements computed their helper maps through the DnCNN's hooks, so a capture of
    'noiseprint' recorded the other image's map (at its size) or the real map instead of the
    replacement; now it records nothing the encoder did not read."""
    import trufor_lab as tl

    other = tampered2[:48, :40].copy()
    for ab in (A.noiseprint_from(recipe_model, other), A.noiseprint_noise(recipe_model, seed=3)):
        with ab:
            r = tl.analyze(recipe_model, img, capture=["noiseprint"])
        got = r.captures.get("noiseprint")
        assert got is None or got.shape[-2:] == img.shape[:2], (ab.name, None if got is None else got.shape)
    assert A.noiseprint_noise(recipe_model, seed=3).name == "noiseprint_noise_seed3"
    assert A.noiseprint_noise(recipe_model, std=0.5).name == "noiseprint_noise_std0.5"
    assert_pristine(recipe_model, ref)


def test_stage_lists_name_what_they_do_and_studies_take_one_of_anything(recipe_model, img, ref):
    assert A.no_frm(recipe_model, stages=[1, 1, 1, 1]).name == A.no_frm(recipe_model, stages=1).name
    assert A.no_frm(recipe_model, stages=(3, 1)).name == A.no_frm(recipe_model, stages=(1, 3)).name
    assert A.no_ffm_cross(recipe_model, stages=(2, 2, 3, 3)).name != "no_ffm_cross"
    mask = np.zeros((1, *img.shape[:2]), bool)
    mask[0, 10:30, 10:30] = True
    study = A.ablation_study(recipe_model, [img], list(mask), ablations="rgb_only")
    assert sorted({r["ablation"] for r in study.table}) == ["baseline", "rgb_only"]
    stacked = A.ablation_study(recipe_model, [img], mask, ablations=["rgb_only"])
    assert len(list(stacked.table)) == 2
    assert_pristine(recipe_model, ref)


def test_noiseprint_noise_does_not_depend_on_the_batch_position(recipe_model, x, ref):
    """The noise was drawn (B, 1, H, W) from the seed, so the k-th batch item read the k-th slice:
    an image's answer changed with its position in a batch (captum batches IG path points and
    occlusion windows, and the baseline's value was read from slot 1)."""
    with torch.no_grad(), A.noiseprint_noise(recipe_model, seed=1):
        alone = recipe_model(x)
        second = recipe_model(torch.cat([x.flip(-1), x]))
    assert torch.allclose(second.noiseprint[1:], alone.noiseprint, atol=1e-5)
    assert torch.allclose(second.det_logit[1:], alone.det_logit, atol=1e-4)
    assert_pristine(recipe_model, ref)


def test_noiseprint_noise_is_one_field_whatever_the_channels_given(recipe_model, x, ref):
    """Given a Noiseprint++ map as ``(B, 3, H, W)`` (``noiseprint=`` takes the tiled map too), the
    noise was drawn per channel: three different fields where the encoder reads three copies of
    one map, and the tiled map gave another answer than the same map as one channel (score 0.42
    against 0.32 with ``std=0.5``)."""
    with torch.no_grad():
        npm = recipe_model.forward_noiseprint(x)
        for options in ({"seed": 1}, {"std": 0.5}):
            with A.noiseprint_noise(recipe_model, **options):
                one = recipe_model(x, noiseprint=npm)
                tiled = recipe_model(x, noiseprint=npm.expand(-1, 3, -1, -1).contiguous())
            assert all(torch.equal(tiled.noiseprint[:, c], tiled.noiseprint[:, 0]) for c in (1, 2)), options
            # the same up to the std's N - 1 over three copies of the map (a 1e-4 relative change)
            assert torch.allclose(tiled.noiseprint[:, :1], one.noiseprint, atol=1e-4), options
            assert float((tiled.map - one.map).abs().max()) < 1e-3, options
            assert torch.allclose(tiled.det_logit, one.det_logit, atol=1e-3), options
    assert_pristine(recipe_model, ref)


def test_two_equal_nested_ablations_each_remove_their_own_entry(recipe_model, ref):
    """Interventions compared by value: leaving the inner of two equal ablations removed the
    outer's entry, whose hook was then reported as a user's hook blocking the lean forward."""
    from trufor_lab.model.interventions import active_interventions, lean_blockers

    a1 = A.drop_scales(recipe_model, "c4", decoders="anomaly")
    a2 = A.drop_scales(recipe_model, "c4", decoders="anomaly")
    with a1:
        outer = active_interventions(recipe_model)
        with a2:
            assert len(active_interventions(recipe_model)) == 2 and lean_blockers(recipe_model) == []
        assert [i is outer[0] for i in active_interventions(recipe_model)] == [True]
        assert lean_blockers(recipe_model) == []
    assert active_interventions(recipe_model) == []
    assert_pristine(recipe_model, ref)


def test_numpy_integers_name_stages_and_scales(recipe_model):
    """`for s in np.arange(1, 5)` gave 'stages are 1-based integers' or numpy's bare TypeError."""
    from trufor_lab.interpret.attribute import LayerAttribution

    assert A.no_frm(recipe_model, np.arange(1, 3)).name == A.no_frm(recipe_model, (1, 2)).name
    assert A.no_ffm_cross(recipe_model, np.int64(2)).name == A.no_ffm_cross(recipe_model, 2).name
    assert A.drop_scales(recipe_model, np.int64(4)).name == "drop_c4"
    assert LayerAttribution(recipe_model, stage=np.int64(2)).stage == 2
    for bad in (True, 2.0, np.float64(2)):
        with pytest.raises(ValueError, match="1-based integer"):
            A.no_frm(recipe_model, bad)


def test_a_tiled_donor_fingerprint_keeps_the_8x8_grid_phase():
    """Tiling a 100x70 donor map put donor row 0 (phase 0) at target row 100 (phase 4)."""
    from trufor_lab.interpret.ablations import _fit_periodic

    donor = torch.arange(100 * 70, dtype=torch.float32).reshape(1, 1, 100, 70)
    out = _fit_periodic(donor, 256, 256)
    assert out.shape == (1, 1, 256, 256)
    rows = out[0, 0, :, 0] // 70  # the donor row each target row came from
    cols = out[0, 0, 0, :] % 70
    assert torch.equal(rows % 8, torch.arange(256) % 8) and torch.equal(cols % 8, torch.arange(256) % 8)
    assert torch.equal(_fit_periodic(donor, 50, 60), donor[..., :50, :60])  # cropping: as before


def test_an_ablation_study_leaves_an_unscored_region_nan_as_sweep_does(recipe_model, img):
    """A forged region the metric's 15x15 erosion removes entirely gave F1 0 on every row (the
    detector 'failing' under every ablation) where sweep reports NaN with n_forged 0."""
    small = np.zeros(img.shape[:2], bool)
    small[20:32, 20:32] = True  # 12 px: nothing left after the erosion
    study = A.ablation_study(recipe_model, [img], [small], ablations=["uniform_pooling"])
    rows = list(study.table)
    assert all(r["n_forged"] == 0 and np.isnan(r["f1_best"]) and np.isnan(r["f1_fixed"]) for r in rows), rows
    big = np.zeros(img.shape[:2], bool)
    big[8:56, 8:56] = True
    scored = list(A.ablation_study(recipe_model, [img], [big], ablations=["uniform_pooling"]).table)
    assert all(r["n_forged"] > 0 and np.isfinite(r["f1_best"]) for r in scored)


def test_a_tiny_change_of_score_is_not_drawn_as_the_largest_and_dollar_names_draw():
    """delta_score was scaled to its own largest value (+0.004 drawn darkest red); image names
    with two '$' made the heatmap raise ParseSyntaxException (mathtext)."""
    import io

    images, abl = ["cost_$5_vs_$6.png", "b.png"], ["baseline", "x"]
    rows = [
        {"image": im, "ablation": ab, "score": 0.5 + d, "delta_score": d, "f1_best": float("nan")}
        for im in images
        for ab, d in zip(abl, (0.0, 0.004))
    ]
    fig = A.AblationStudy(rows, {ab: [] for ab in abl}, images).plot("delta_score")
    fig.savefig(io.BytesIO(), format="png")
    im = fig.axes[0].images[0]
    assert min(im.cmap(im.norm(0.004))[:3]) > 0.9  # +0.004 is next to white, not dark red
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == images


def test_predict_result_says_an_ablation_as_analyze_does():
    import trufor_lab as tl
    from trufor_lab.inference.predict import predict_result

    m = tl.load(device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    plain = predict_result(m, img)
    with A.rgb_only(m):
        a, p = tl.analyze(m, img), predict_result(m, img)
    assert "computed under rgb_only" in a.notes and "computed under rgb_only" in p.notes
    assert not any("computed under" in n for n in plain.notes)
    assert p.score == pytest.approx(a.score, abs=1e-5) and abs(p.score - plain.score) > 1e-6


def test_a_donor_fingerprint_follows_the_weights_the_model_holds_now(tampered2):
    """noiseprint_from kept the donor's Noiseprint++ map per device and dtype only: after the
    model's DnCNN was given other weights (load_state_dict, an edit), the same ablation still fed
    the map of the weights before, where a fresh one feeds the map of the weights now."""
    import trufor_lab as tl

    m = tl.load(device="cpu")
    xs, donor = to_tensor(tampered2[:48, :48].copy()), tampered2[100:132, 100:132].copy()
    swap = A.noiseprint_from(m, donor)
    with torch.no_grad():
        with swap:
            before = m(xs).noiseprint
        m.dncnn.load_state_dict({k: v * 1.05 if v.is_floating_point() else v for k, v in m.dncnn.state_dict().items()})
        with swap:
            after = m(xs).noiseprint
        with A.noiseprint_from(m, donor):
            fresh = m(xs).noiseprint
        want = m.forward_noiseprint(to_tensor(donor))
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh) and torch.equal(after[..., :32, :32], want)


def test_a_factory_that_binds_another_model_is_refused():
    """A factory returning an ablation of another model (a closure over the wrong variable) hooked
    that model: the study's row named after it was the studied model's baseline, with no effect."""
    import trufor_lab as tl

    a, b = tl.load(device="cpu"), tl.load(device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="'rgb_only' is bound to another model"):
        A.ablation_study(a, [img], ablations=[lambda m: A.rgb_only(b)])
    assert n_hooks(a) == n_hooks(b) == 0
