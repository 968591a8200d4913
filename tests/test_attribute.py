"""Captum adapters: completeness, sane maps, exact occlusion, and nothing left behind."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from trufor_lab.interpret import attribute as T
from trufor_lab.inference.preprocess import to_tensor

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def assert_clean(model) -> None:
    """No hooks, eval mode, parameters trainable as loaded, no gradient kept."""
    assert sum(len(getattr(m, a)) for m in model.modules() for a in _HOOK_DICTS) == 0
    assert not any(m.training for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


@pytest.fixture(scope="module")
def img(tampered2) -> np.ndarray:
    return tampered2[80:144, 80:144].copy()


def test_ig_completeness(recipe_model, tampered2):
    """Sum of IG attributions == target(x) - target(baseline) up to the quadrature error.

    TruFor is piecewise linear with a great many ReLU kinks (17-layer DnCNN per pixel), so on a
    long path (e.g. to the full blur) IG converges slowly; completeness is checked on a short
    path (20% of the way to the blurred copy). The quadrature error at 16 points is about 5%
    (it depends on where the kinks fall, so on the convolution backend's rounding too); at 64
    points it is below 1%.
    """
    small = tampered2[96:128, 96:128].copy()
    x = to_tensor(small)
    b = x + 0.2 * (T.make_baseline(x, "blur") - x)
    a = T.attribute(recipe_model, small, "ig", target=T.ScoreTarget(), baselines=b, n_steps=64)
    diff = a.target_value - a.baseline_value
    assert abs(diff) > 1e-3
    assert a.map.sum() == pytest.approx(diff, rel=0.02)
    assert a.map.sum() - diff == pytest.approx(a.delta, abs=1e-4)  # captum's delta, same meaning
    assert a.baseline == "tensor" and a.raw.shape == (3, 32, 32) and a.extras["n_steps"] == 64
    assert_clean(recipe_model)


def test_saliency_finite_nonzero_and_input_untouched(recipe_model, img):
    x = to_tensor(img)
    x_before = x.clone()
    a = T.InputAttribution(recipe_model, "saliency").attribute(x, target=T.ScoreTarget("score"))
    assert a.map.shape == (64, 64) and np.isfinite(a.map).all() and np.abs(a.map).max() > 0
    assert a.baseline is None and a.target == "integrity score"
    assert torch.equal(x, x_before) and not x.requires_grad and x.grad is None
    with torch.no_grad():
        assert a.target_value == pytest.approx(float(recipe_model(x).score), abs=1e-5)
    # downscaling is recorded and shown
    d = T.attribute(recipe_model, img, "saliency", max_side=32)
    assert d.map.shape == (32, 32) and d.image.shape == (32, 32, 3) and d.original_size == (64, 64)
    assert d.downscaled and "downscaled from 64x64" in d.title
    fig = d.plot()
    assert fig.axes and "<img" in d._repr_html_()
    r = d.to_result()  # viewer-ready: map in [0, 1], same image
    assert r.map.shape == (32, 32) and 0 <= r.map.min() and r.map.max() <= 1 and r.label == d.label
    # its plot names what it shows: not "Noiseprint++" nor "Localization map" (a forgery probability)
    titles = [ax.get_title() for ax in r.plot().axes]
    assert "Attribution (raw)" in titles and "Attribution (0.5 = none)" in titles
    assert "Noiseprint++" not in titles and "Localization map" not in titles
    assert d.conf.shape == (32, 32) and d.score is None
    assert_clean(recipe_model)


def test_occlusion_of_a_region_changes_the_region_target(recipe_model, img):
    region = np.zeros((64, 64), dtype=bool)
    region[:32, :32] = True
    target = T.RegionTarget(region)
    a = T.attribute(recipe_model, img, "occlusion", target=target, baselines="blur", window=32, stride=32)
    # one window covers exactly the region: its attribution is target(x) - target(x, region blurred)
    x = to_tensor(img)
    occluded = x.clone()
    occluded[..., :32, :32] = T.make_baseline(x, "blur")[..., :32, :32]
    with torch.no_grad():
        t_occ = float(target(recipe_model(occluded))[0])
    t_x = a.target_value
    assert t_x != t_occ
    np.testing.assert_allclose(a.map[:32, :32], t_x - t_occ, atol=1e-5)
    assert a.extras["window"] == (32, 32)
    assert_clean(recipe_model)


def test_layer_attribution_has_image_size(recipe_model, img):
    g = T.LayerAttribution(recipe_model, 2, "gradcam").attribute(img, relu=False)
    assert g.map.shape == (64, 64) and g.extras["layer_map"].shape == (8, 8)
    assert np.isfinite(g.map).all() and np.abs(g.map).max() > 0
    assert g.layer == "fusion.stage2.ffm"
    c = T.attribute(recipe_model, img, "conductance", stage=4, target=T.ConfidenceTarget(), n_steps=2)
    assert c.map.shape == (64, 64) and np.isfinite(c.map).all()
    assert c.extras["layer_map"].shape == (2, 2)
    # conductance integrates from a (blurred) baseline: its value is recorded (was None), the
    # one IG records for the same baseline and target; GradCAM has none
    ig = T.attribute(recipe_model, img, "ig", target=T.ConfidenceTarget(), n_steps=2)
    assert c.baseline == ig.baseline and c.baseline_value == pytest.approx(ig.baseline_value, abs=1e-6)
    assert c.baseline_value != pytest.approx(c.target_value, abs=1e-6) and g.baseline_value is None
    with pytest.raises(ValueError):
        T.LayerAttribution(recipe_model, 5)
    assert_clean(recipe_model)


def test_modality_shares_sum_to_one(recipe_model, img):
    a = T.ModalityAttribution(recipe_model).attribute(img, n_steps=4)
    s = a.shares
    assert set(s) == {"rgb", "noiseprint"}
    assert s["rgb"] + s["noiseprint"] == pytest.approx(1.0)
    assert 0 < s["rgb"] < 1
    assert a.extras["maps"]["noiseprint"].shape == (64, 64) and a.map.shape == (64, 64)
    # IG bookkeeping over the two inputs
    total = a.extras["sums"]["rgb"] + a.extras["sums"]["noiseprint"]
    assert total - (a.target_value - a.baseline_value) == pytest.approx(a.delta, abs=1e-4)
    fig = a.plot()
    assert len(fig.axes) >= 4
    assert_clean(recipe_model)


class Boom(RuntimeError):
    pass


def test_nothing_left_behind_after_errors(recipe_model, tampered2):
    img = tampered2[:32, :32].copy()

    def raising(out):
        raise Boom("target failed")

    x = to_tensor(img).requires_grad_(True)
    for method in ("ig", "saliency", "gradcam"):
        with pytest.raises(Boom):
            T.attribute(recipe_model, x, method, target=raising, **({"n_steps": 2} if method == "ig" else {}))
        assert_clean(recipe_model)
    assert x.requires_grad and x.grad is None and x.is_leaf

    # a hook left behind by a failing call is removed as well (the guard's safety net)
    def leaky(out):
        recipe_model.decode_head.register_forward_hook(lambda *a: None)
        raise Boom("leaky")

    with pytest.raises(Boom):
        T.attribute(recipe_model, img, "saliency", target=leaky)
    assert_clean(recipe_model)

    with pytest.raises(ValueError, match="one value per batch item"):
        T.attribute(recipe_model, img, "saliency", target=lambda out: out.map)
    with pytest.raises(ValueError, match="unknown method"):
        T.attribute(recipe_model, img, "lime")
    assert_clean(recipe_model)


def test_modality_attribution_honours_a_noiseprint_ablation(recipe_model, img):
    """Under ``rgb_only`` the encoder reads a blank Noiseprint++: the modality attribution must
    attribute that network (it read the unablated map and reported its logit before)."""
    from trufor_lab.interpret import ablate as A

    plain = T.ModalityAttribution(recipe_model).attribute(img, n_steps=2)
    with A.rgb_only(recipe_model):
        a = T.ModalityAttribution(recipe_model).attribute(img, n_steps=2)
        with torch.no_grad():
            ablated = float(recipe_model(to_tensor(img)).det_logit[0, 0])
    assert a.target_value == pytest.approx(ablated, abs=1e-5)
    assert abs(a.target_value - plain.target_value) > 1e-4
    assert a.shares["noiseprint"] == pytest.approx(0.0, abs=1e-6)  # its input is zeros on both ends
    assert_clean(recipe_model)
    # under noiseprint_only the RGB input is replaced before the encoder: captum's "not used in
    # the graph" RuntimeError; its share is 0
    with A.noiseprint_only(recipe_model):
        a = T.ModalityAttribution(recipe_model).attribute(img, n_steps=2)
    assert a.shares["rgb"] == 0.0 and a.shares["noiseprint"] == 1.0
    assert_clean(recipe_model)


def test_inputs_and_settings_that_would_mislead_are_refused(recipe_model, img):
    """A transposed or mis-shaped region mask was stretched over the image; an 8 px image or
    max_side gave a 28-frame traceback from a convolution; window 0 / negative strides gave NaN
    maps; a 0..255 float tensor ran as if it were RGB/256; occlusion of a float64 model came back
    float32."""
    from trufor_lab.inference.preprocess import ImageError

    h, w = 48, 64
    wide = np.ascontiguousarray(np.resize(img, (h, w, 3)))
    mask = np.zeros((h, w), bool)
    mask[:12, :20] = True
    with pytest.raises(ValueError, match="region mask is 48x64 but the image is 64x48 \\(transposed\\?\\)"):
        T.attribute(recipe_model, wide, "saliency", target=T.RegionTarget(mask.T))
    with pytest.raises(ValueError, match="region mask is 10x10"):
        T.attribute(recipe_model, wide, "saliency", target=T.RegionTarget(np.ones((10, 10))))
    # a mask smaller than the image (one row short, or half size) was stretched to it silently
    for small in (mask[:-1], mask[::2, ::2]):
        with pytest.raises(
            ValueError, match=f"region mask is {small.shape[1]}x{small.shape[0]} but the image is 64x48"
        ):
            T.attribute(recipe_model, wide, "saliency", target=T.RegionTarget(small))
    a = T.attribute(recipe_model, wide, "saliency", target=T.RegionTarget(mask), max_side=40)  # same shape, smaller
    assert a.map.shape == (30, 40) and "region of 7.8% of the image" in a.target
    # a larger picture's mask (a crop attributed with its full photo's mask; one column more) was
    # resized onto the image when max_side had shrunk nothing: explained a region never marked
    for larger in (np.pad(mask, ((0, 48), (0, 64))), np.pad(mask, ((0, 0), (0, 1)))):
        lh, lw = larger.shape
        with pytest.raises(ValueError, match=f"region mask is {lw}x{lh} but the image is 64x48"):
            T.attribute(recipe_model, wide, "saliency", target=T.RegionTarget(larger))
    for bad, kw in ((np.zeros((8, 8, 3), np.uint8), {}), (wide, {"max_side": 8})):
        with pytest.raises(ImageError, match="TruFor needs at least 29 pixels"):
            T.attribute(recipe_model, bad, "saliency", **kw)
    for kw in ({"window": 0}, {"window": 8, "stride": -2}, {"window": 8, "stride": 0}):
        with pytest.raises(ValueError, match="whole number >= 1"):
            T.attribute(recipe_model, img, "occlusion", **kw)
    with pytest.raises(ImageError, match="RGB/256 in \\[0, 1\\].*this one spans"):
        T.attribute(recipe_model, torch.from_numpy(img).permute(2, 0, 1).float(), "saliency")
    assert_clean(recipe_model)
    m64 = copy.deepcopy(recipe_model).double()
    occ = T.attribute(m64, img[:32, :32].copy(), "occlusion", window=16)
    assert occ.raw.dtype == np.float64 and occ.map.dtype == np.float64


def test_a_model_cast_to_bfloat16_is_refused_as_analyze_refuses_it(recipe_model, img):
    """Attribution took its dtype from the model and ran a bfloat16 TruFor, Noiseprint++ included,
    with no word (a target of -3.66 where float32 says -3.84); analyze refuses such a model."""
    small = img[:32, :32].copy()
    made_before = T.InputAttribution(copy.deepcopy(recipe_model), "saliency")
    made_before.model.to(torch.bfloat16)  # cast after the attribution object was made
    calls = (
        lambda: T.attribute(copy.deepcopy(recipe_model).to(torch.bfloat16), small, "saliency"),
        lambda: T.ModalityAttribution(copy.deepcopy(recipe_model).half()),
        lambda: made_before.attribute(small),
    )
    for call in calls:
        with pytest.raises(ValueError, match="model parameters are (bfloat16|float16); TruFor runs in float32"):
            call()


def test_counts_may_be_numpy_integers_but_not_bools(recipe_model, img):
    """n_steps=np.int64(4) (e.g. from np.arange) was refused as "not a whole number"."""
    small = img[:32, :32].copy()
    a = T.attribute(recipe_model, small, "ig", n_steps=np.int64(2), internal_batch_size=np.int32(1))
    b = T.attribute(recipe_model, small, "ig", n_steps=2, internal_batch_size=1)
    assert np.array_equal(a.map, b.map) and a.extras["n_steps"] == 2 and type(a.extras["n_steps"]) is int
    occ = T.attribute(
        recipe_model, small, "occlusion", window=np.int64(16), stride=np.int16(8), perturbations_per_eval=np.uint8(2)
    )
    ref = T.attribute(recipe_model, small, "occlusion", window=16, stride=8, perturbations_per_eval=2)
    assert np.array_equal(occ.map, ref.map) and occ.extras["stride"] == (8, 8)
    assert T.attribute(recipe_model, small, "modality", n_steps=np.int64(2)).extras["n_steps"] == 2
    for bad in (True, np.bool_(True), 2.0, np.int64(0)):
        with pytest.raises(ValueError, match="n_steps must be a whole number >= 1"):
            T.attribute(recipe_model, small, "ig", n_steps=bad)
    assert_clean(recipe_model)


def test_a_capture_around_an_attribution_keeps_the_images_forward(recipe_model, img):
    """A capture open around an attribution held the last forward it ran, the baseline's (its
    detection logit -3.31 where the image's is -3.60), looking like the image's (batch of 1)."""
    import trufor_lab as tl

    small = img[:48, :48].copy()
    with torch.no_grad():
        own = float(recipe_model(to_tensor(small)).det_logit[0, 0])
    for method, options in (("ig", {"n_steps": 2}), ("occlusion", {"window": 24}), ("modality", {"n_steps": 2})):
        with tl.capture(recipe_model, ["detection.logit"]) as cap:
            T.attribute(recipe_model, small, method, **options)
        assert float(cap.tensors["detection.logit"].flatten()[0]) == pytest.approx(own, abs=1e-5), method
    assert_clean(recipe_model)


def test_a_capture_around_a_modality_attribution_keeps_the_images_noiseprint(recipe_model, img):
    """Modality attribution ran the encoder and heads alone for the image's last forward: a
    capture of the Noiseprint++ map around it held the blurred baseline's map (the last DnCNN
    run), as if it were the image's; beside an encoder name, the map was dropped as missing."""
    import trufor_lab as tl

    small = img[:48, :48].copy()
    x = to_tensor(small)
    with torch.no_grad():
        own = recipe_model(x)
        blurred = recipe_model(T.make_baseline(x, "blur")).noiseprint
    assert not torch.equal(own.noiseprint, blurred)
    for names in (["noiseprint"], ["noiseprint", "noiseprint.input", "detection.logit"]):
        with tl.capture(recipe_model, names) as cap:
            a = T.attribute(recipe_model, small, "modality", n_steps=2)
        assert cap.missing == [], names
        assert torch.equal(cap.tensors["noiseprint"], own.noiseprint), names
    assert torch.equal(cap.tensors["noiseprint.input"], own.noiseprint.expand(-1, 3, -1, -1))
    assert float(cap.tensors["detection.logit"].flatten()[0]) == pytest.approx(a.target_value, abs=1e-6)
    assert a.target_value == pytest.approx(float(own.det_logit[0, 0]), abs=1e-5)
    assert_clean(recipe_model)


def test_values_do_not_depend_on_the_batch_position(recipe_model, tampered2):
    """Under ``noiseprint_noise`` the k-th batch item read the k-th noise slice: IG with one path
    point per forward and with four disagreed, and the baseline's value (read from slot 1 of a
    batch) was not the value of the baseline alone."""
    from trufor_lab.interpret import ablate as A

    small = tampered2[96:128, 96:128].copy()
    with A.noiseprint_noise(recipe_model):
        one = T.attribute(recipe_model, small, "ig", n_steps=4, internal_batch_size=1)
        four = T.attribute(recipe_model, small, "ig", n_steps=4, internal_batch_size=4)
        with torch.no_grad():
            b_alone = float(recipe_model(T.make_baseline(to_tensor(small), "blur")).det_logit[0, 0])
    assert one.map.sum() == pytest.approx(four.map.sum(), rel=1e-3, abs=1e-5)
    assert one.baseline_value == pytest.approx(b_alone, abs=1e-5)
    assert_clean(recipe_model)


def test_gradients_under_noiseprint_noise_follow_the_noise_statistics(recipe_model, tampered2):
    """``noiseprint_noise`` draws its noise with the mean and std of the image's own map; those
    were detached, so the gradient an attribution took under it left out how the image moves
    them: InputXGradient was off by 48 % (relative L2) on this 32x32 crop (13 % on a 64x64 one,
    whose derivative along a random direction was 5 % off a finite difference). Compared with
    the ablated network written out by hand."""
    from trufor_lab.interpret import ablate as A

    small = tampered2[96:128, 96:128].copy()
    x = to_tensor(small)
    target = T.RegionTarget(np.pad(np.ones((16, 16), bool), ((4, 12), (10, 6))))
    with A.noiseprint_noise(recipe_model, seed=2):
        a = T.attribute(recipe_model, small, "input_x_gradient", target=target)
    z = torch.randn((1, 1, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.float64).float()
    flags = [p.requires_grad for p in recipe_model.parameters()]
    try:
        for p in recipe_model.parameters():
            p.requires_grad_(False)
        xg = x.clone().requires_grad_(True)
        npm = recipe_model.forward_noiseprint(xg)
        noise = npm.mean(dim=(1, 2, 3), keepdim=True) + npm.std(dim=(1, 2, 3), keepdim=True) * z
        (grad,) = torch.autograd.grad(target(recipe_model(xg, noiseprint=noise)).sum(), xg)
    finally:
        for p, f in zip(recipe_model.parameters(), flags):
            p.requires_grad_(f)
    by_hand = (x * grad)[0].sum(0).numpy()
    assert np.linalg.norm(a.map - by_hand) <= 1e-3 * np.linalg.norm(by_hand)
    assert_clean(recipe_model)


def test_baselines_are_checked_as_the_input_is(recipe_model, img):
    """A NaN or a 0..255 baseline ran and gave a NaN or meaningless map; sigma 0 made the blur
    the image itself (an all-zero map); a full-size tensor with max_side, or a mis-shaped
    modality pair, raised from expand_as; a numpy image raised 'truth value is ambiguous'."""
    x = to_tensor(img)
    bad = {
        float("nan"): "holds NaN or Inf",
        2.0: r"RGB/256 in \[0, 1\].*spans \[2, 2\]",
        "zero": "baseline must be one of",
    }
    for b, match in bad.items():
        with pytest.raises(ValueError, match=match):
            T.attribute(recipe_model, img, "ig", baselines=b, n_steps=2)
    with pytest.raises(ValueError, match=r"spans \[200, 200\]"):
        T.attribute(recipe_model, img, "ig", baselines=torch.full((1, 3, 64, 64), 200.0), n_steps=2)
    for sigma in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma must be a positive number"):
            T.attribute(recipe_model, img, "ig", sigma=sigma, n_steps=2)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 64, 64\).*\(1, 3, 48, 48\) \(max_side=48 shrank"):
        T.attribute(recipe_model, img, "ig", baselines=T.make_baseline(x, "blur"), max_side=48, n_steps=2)
    with pytest.raises(ValueError, match=r"RGB baseline has shape \(1, 3, 32, 32\)"):
        T.attribute(recipe_model, img, "modality", baselines=(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 64, 64)))
    # a number or a tensor of another dtype is a value (RGB/256), as before; uint8 is an image
    for number in (torch.tensor(0), torch.zeros(1, 3, 64, 64, dtype=torch.int64), torch.tensor(True)):
        assert torch.equal(T.make_baseline(x, number), torch.zeros_like(x) + float(number.flatten()[0]))
    # an image baseline is read as the input is (uint8 / 256)
    gray = np.full_like(img, 128)
    assert torch.equal(T.make_baseline(x, gray), torch.full_like(x, 0.5))
    a = T.attribute(recipe_model, img, "occlusion", baselines=gray, window=64)
    b = T.attribute(recipe_model, img, "occlusion", baselines=0.5, window=64)
    assert a.baseline == "image" and a.baseline_value == pytest.approx(b.baseline_value)
    np.testing.assert_allclose(a.map, b.map)
    assert_clean(recipe_model)


def test_one_call_shape_for_baselines_and_targets(recipe_model, img):
    """None was the default baseline for input and layer methods but an error for modality;
    'zeros' worked for modality only; GradCAM ignored a baseline silently; a captum class index
    as target failed after a full forward with "'int' object is not callable"."""
    small = img[:32, :32].copy()
    a = T.ModalityAttribution(recipe_model).attribute(small, None, None, n_steps=2)
    assert a.baseline == "blur (sigma 3)"
    zeros = T.attribute(recipe_model, small, "occlusion", baselines="zeros", window=32)
    black = T.attribute(recipe_model, small, "occlusion", baselines="black", window=32)
    np.testing.assert_array_equal(zeros.map, black.map)
    for method in ("gradcam", "saliency", "input_x_gradient"):
        with pytest.raises(ValueError, match=f"{method} uses no baseline"):
            T.attribute(recipe_model, small, method, baselines="black")
    calls = []
    h = recipe_model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        for target in (0, "score"):
            for method in ("saliency", "gradcam", "modality"):
                with pytest.raises(TypeError, match=r"ScoreTarget\(\).*RegionTarget\(mask\).*class indices"):
                    T.attribute(recipe_model, small, method, target=target)
    finally:
        h.remove()
    assert calls == []  # refused before any forward
    assert_clean(recipe_model)


def test_options_of_another_method_are_refused_and_keywords_match_the_classes(recipe_model, img):
    """The function took ``baseline=``, the classes (and Captum) ``baselines=``; ``stage=`` was
    ignored outside the layer methods; ``window=`` for IG, ``n_steps=``/``sigma=`` for saliency
    or GradCAM were accepted and ignored. Each is refused before any forward now."""
    small = img[:32, :32].copy()
    calls = []
    h = recipe_model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(TypeError, match="baselines="):
            T.attribute(recipe_model, small, "occlusion", baseline="black")
        with pytest.raises(TypeError, match="stage applies to the layer methods"):
            T.attribute(recipe_model, small, "ig", stage=2)
        for method, options in (
            ("ig", {"window": 8}),
            ("saliency", {"n_steps": 3}),
            ("saliency", {"sigma": 9.0}),
            ("occlusion", {"internal_batch_size": 2}),
            ("gradcam", {"sigma": 9.0}),
            ("gradcam", {"n_steps": 4}),
            ("conductance", {"relu": False}),
        ):
            with pytest.raises(TypeError, match=f"{next(iter(options))}: not an option of '{method}'"):
                T.attribute(recipe_model, small, method, **options)
        with pytest.raises(TypeError, match="window: not an option of 'ig'"):
            T.InputAttribution(recipe_model, "ig").attribute(small, window=8)
        # sigma/seed beside a baseline that uses neither (or seed beside 'blur'): were ignored
        for method, baselines, options, unused in (
            ("modality", "zeros", {"sigma": 50.0, "seed": 7}, "sigma, seed"),
            ("ig", "black", {"sigma": 50.0}, "sigma"),
            ("occlusion", None, {"seed": 7}, "seed"),
            ("conductance", "mean", {"sigma": 2.0}, "sigma"),
        ):
            with pytest.raises(TypeError, match=rf"^{unused}: not an option of the '?\w*'? ?baseline"):
                T.attribute(recipe_model, small, method, baselines=baselines, **options)
    finally:
        h.remove()
    assert calls == []
    assert_clean(recipe_model)


def test_ig_that_did_not_converge_says_so(recipe_model, tampered2):
    """IG on a long path with few steps: its map can sum to the wrong sign of the explained
    difference; only ``delta`` in the title showed it."""
    small = tampered2[96:128, 96:128].copy()
    few = T.attribute(recipe_model, small, "ig", n_steps=2)
    diff = few.target_value - few.baseline_value
    if abs(few.delta) > max(0.1 * abs(diff), 1e-6 * max(1, abs(few.target_value), abs(few.baseline_value))):
        assert any(n.startswith("IG did not converge") for n in few.notes) and "not converged" in few.title
    x = to_tensor(small)
    b = x + 0.2 * (T.make_baseline(x, "blur") - x)  # a short path: converged at 64 steps
    good = T.attribute(recipe_model, small, "ig", baselines=b, n_steps=64)
    assert good.notes == () and "not converged" not in good.title
    made = T.Attribution(
        np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2)), "ig", "score", delta=0.5, target_value=1.0, baseline_value=0.9
    )
    assert made.notes and "the map sums to 0.6, the explained difference is 0.1" in made.notes[0]
    import dataclasses

    assert dataclasses.replace(made, name="copy").notes == made.notes  # said once


def _made(target_value: float, baseline_value: float, delta: float, **kw):
    return T.Attribution(
        np.zeros((2, 2, 3), np.uint8),
        np.zeros((2, 2)),
        "ig",
        "mean map (whole image)",
        delta=delta,
        target_value=target_value,
        baseline_value=baseline_value,
        **kw,
    )


def test_ig_that_did_not_converge_on_a_small_target_says_so():
    """A fixed floor of 1e-3 on delta hid the error of targets in [0, 1]: RegionTarget on a
    pristine photo explained 6.47e-4 with delta -6.41e-4 (99 % off), with no note and no
    "(not converged)" in the title."""
    off = _made(0.00070, 0.0000529, -0.000641)
    assert len(off.notes) == 1 and off.notes[0].startswith("IG did not converge") and "not converged" in off.title
    assert "the explained difference is 0.000647" in off.notes[0]
    assert _made(0.00070, 0.0000529, -0.00004).notes == ()  # 6 % off: converged
    assert _made(0.7, 0.0529, -0.01).notes == ()
    # targets of 1e-7..1e-6 (a map's mean in a pristine region) are not "the same to rounding"
    # when they differ 4.5x: an absolute floor of 1e-6 called them so and hid a 93 % error
    tiny = _made(2e-7, 9e-7, -6.5e-7)
    assert len(tiny.notes) == 1 and tiny.notes[0].startswith("IG did not converge"), tiny.notes


def test_a_difference_at_rounding_level_is_nothing_to_explain(recipe_model):
    """A flat grey image's blurred copy differs from it by one unit in the last place: modality
    attribution reported shares of rounding noise (RGB 0.3 %, Noiseprint++ 99.7 %) and IG, occlusion
    gave maps of it, with no note; a target equal to rounding read as a converged IG."""
    flat = np.full((64, 80, 3), 128, np.uint8)
    mod = T.attribute(recipe_model, flat, "modality", n_steps=2)
    assert np.isnan(mod.shares["rgb"]) and np.isnan(mod.shares["noiseprint"])
    assert len(mod.notes) == 1 and mod.notes[0].startswith("nothing to explain: the baseline is the image to rounding")
    assert "(no modality shares)" in mod.notes[0] and "(nothing to explain)" in mod.title
    for method, kw in (("ig", {"n_steps": 2}), ("occlusion", {"window": 32})):
        a = T.attribute(recipe_model, flat, method, **kw)
        assert len(a.notes) == 1 and a.notes[0].startswith("nothing to explain"), (method, a.notes)
    ok = T.attribute(recipe_model, flat, "modality", baselines="black", n_steps=2)
    assert not any(n.startswith("nothing to explain") for n in ok.notes) and 0 < ok.shares["rgb"] < 1
    same = _made(0.5, 0.5 + 1e-8, 3e-8)  # 3e-8 is 300 % of the difference, all of it rounding
    assert len(same.notes) == 1 and same.notes[0].startswith("nothing to explain: the target is 0.5 for the image")
    assert "not converged" not in same.title and "(nothing to explain)" in same.title
    assert (
        _made(0.5, 0.5 + 1e-8, 3e-8, extras={"shares": {"rgb": 0.5, "noiseprint": 0.5}})
        .notes[0]
        .endswith("(no modality shares)")
    )
    assert_clean(recipe_model)


def test_attribution_runs_in_ieee_float32_inside_a_callers_autocast(recipe_model, img):
    """captum's forward and backward ran under the caller's settings: inside a bfloat16
    autocast (on a GPU: under TF32) the attribution of the same image changed. Now they run
    as analyze does, whatever the caller set."""
    want = T.attribute(recipe_model, img, "saliency", max_side=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = T.attribute(recipe_model, img, "saliency", max_side=32)
        assert torch.is_autocast_enabled("cpu")  # the caller's setting, back
    assert np.array_equal(got.map, want.map) and got.target_value == want.target_value


def test_attribution_inside_inference_mode_runs_as_outside(recipe_model, img):
    """Under torch.inference_mode() (the usual wrapper of an analysis notebook) attribution failed
    with PyTorch's 'element 0 of tensors does not require grad'; enable_grad does not lift it."""
    plain = T.attribute(recipe_model, img, "saliency", max_side=32)
    cam = T.attribute(recipe_model, img, "gradcam", stage=2, max_side=32, relu=False)
    with torch.inference_mode():
        inside = T.attribute(recipe_model, img, "saliency", max_side=32)
        cam_inside = T.attribute(recipe_model, img, "gradcam", stage=2, max_side=32, relu=False)
    np.testing.assert_array_equal(inside.map, plain.map)
    np.testing.assert_array_equal(cam_inside.map, cam.map)
    assert plain.map.any() and cam.map.any()


def test_a_flipped_region_and_an_occlusion_stride_above_its_window(recipe_model, img):
    """RegionTarget(np.flipud(mask)) raised torch's 'negative strides' error; stride 16 with window
    8 ran as stride 8, unsaid (options are refused, not changed)."""
    mask = np.zeros(img.shape[:2], bool)
    mask[:20, :30] = True
    flipped = T.attribute(recipe_model, img, "saliency", target=T.RegionTarget(np.flipud(mask)), max_side=64)
    same = T.attribute(recipe_model, img, "saliency", target=T.RegionTarget(np.flipud(mask).copy()), max_side=64)
    np.testing.assert_array_equal(flipped.map, same.map)
    with pytest.raises(ValueError, match=r"occlusion: stride 16 > window 8 leaves pixels that no window covers"):
        T.attribute(recipe_model, img, "occlusion", window=8, stride=16)


def _drawn_attribution(name: str = "x.png", shares: bool = False):
    from trufor_lab.interpret.attribution import Attribution

    rng = np.random.default_rng(0)
    extras = {"shares": {"rgb": 0.3, "noiseprint": 0.7}} if shares else {}
    return Attribution(
        image=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        map=rng.standard_normal((16, 16)),
        method="ig",
        target="score",
        name=name,
        extras=extras,
    )


def test_the_html_view_of_an_attribution_leaves_no_figure_open():
    """_repr_html_ left its pyplot figure open: a notebook drew the picture twice."""
    import matplotlib.pyplot as plt

    plt.close("all")
    html = _drawn_attribution()._repr_html_()
    assert "data:image/png;base64," in html and plt.get_fignums() == []


def test_modality_shares_of_files_named_with_dollars_are_drawn():
    """'cost_$5_vs_$6.png' as a tick label was read as mathtext: ParseSyntaxException."""
    import io

    from trufor_lab.interpret.attribution import plot_modality_shares

    names = ["cost_$5_vs_$6.png", "a$\\frac$.png"]
    fig = plot_modality_shares([_drawn_attribution(n, shares=True) for n in names])
    fig.savefig(io.BytesIO(), format="png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names


def test_what_ran_is_recorded_and_a_target_without_a_value_is_refused(recipe_model, img):
    """Conductance recorded internal_batch_size 1 where Captum ran 2 (it differences consecutive
    path points, and raises 1 to 2 with a warning); a target giving NaN made an all-NaN map with
    no word."""
    import warnings

    small = img[:32, :32].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Captum's "Defaulting to internal batch size of 2"
        a = T.attribute(recipe_model, small, "conductance", n_steps=2, internal_batch_size=1)
    assert a.extras["internal_batch_size"] == 2

    class Nothing(torch.nn.Module):
        def forward(self, out):
            return out.det_logit[:, 0] * float("nan")

    for method in ("saliency", "gradcam", "modality"):
        with pytest.raises(ValueError, match="the target Nothing is nan on this image: nothing to attribute"):
            T.attribute(
                recipe_model, small, method, target=Nothing(), **({"n_steps": 2} if method == "modality" else {})
            )
    assert_clean(recipe_model)


def test_an_attribution_in_the_console_is_one_line_of_shapes_and_numbers():
    """repr(attribution) printed the image, the map and the raw attributions in full."""
    a = _drawn_attribution()
    a.raw = np.zeros((3, 16, 16), np.float32)
    assert repr(a) == (
        "Attribution('ig: score', name='x.png', size=16x16, map=float64 (16, 16), raw=float32 (3, 16, 16))"
    )


def test_an_attribution_too_large_for_memory_says_what_it_needs_before_any_work(recipe_model, img, monkeypatch):
    """A large photo ran out of memory deep in autograd (a traceback on a GPU, the process killed
    on the CPU): now what it needs is said in one line before any forward, with a max_side that
    fits; IG's automatic path points per pass are lowered to fit, given ones are not."""
    import re

    from trufor_lab.inference.preprocess import ImageError
    from trufor_lab.interpret import attribution_calls as calls

    x = to_tensor(img)
    one = calls.attribution_bytes(recipe_model, x, 1, ("noiseprint", "encoder", "decoders"))
    forwards = []
    h = recipe_model.register_forward_pre_hook(lambda *a: forwards.append(1))
    try:
        monkeypatch.setattr(calls, "free_memory_bytes", lambda device: 1 << 20)
        for method in ("saliency", "ig", "modality", "occlusion", "gradcam", "conductance"):
            with pytest.raises(ImageError, match=r"^<ndarray>: \w+ attribution of a 64x64 image needs about .* GiB"):
                T.attribute(recipe_model, img, method)
        monkeypatch.setattr(calls, "free_memory_bytes", lambda device: one // 3)
        with pytest.raises(ImageError, match=r"free \(cpu\); pass max_side=(\d+)$") as e:
            T.attribute(recipe_model, img, "saliency")
        assert forwards == []
        side = int(re.search(r"max_side=(\d+)", str(e.value)).group(1))
        assert 32 <= side < 64
        assert max(T.attribute(recipe_model, img, "saliency", max_side=side).size) == side

        monkeypatch.setattr(calls, "free_memory_bytes", lambda device: 3 * one)
        a = T.attribute(recipe_model, img, "ig", n_steps=8)  # 8 points per pass without the check
        assert a.extras["internal_batch_size"] == 3
        with pytest.raises(ImageError, match="pass internal_batch_size=3 or less$"):
            T.attribute(recipe_model, img, "ig", n_steps=8, internal_batch_size=8)
    finally:
        h.remove()
    assert_clean(recipe_model)


def test_every_method_takes_none_for_its_default_steps(recipe_model, img):
    """``n_steps=None`` meant the default for IG and conductance; modality attribution raised a
    TypeError from inside its batch sizing."""
    small = img[:32, :32].copy()
    a = T.attribute(recipe_model, small, "modality", n_steps=None, internal_batch_size=8)
    b = T.attribute(recipe_model, small, "modality", internal_batch_size=8)
    assert a.extras["n_steps"] == b.extras["n_steps"] == 32
    np.testing.assert_array_equal(a.map, b.map)


def test_an_all_nan_map_is_drawn_without_a_warning_and_said_on_its_panel():
    """np.nanmin warned "All-NaN slice encountered" on the terminal, and the panel was one colour
    under a 0..1 colour bar with no word."""
    import dataclasses
    import warnings

    a = _drawn_attribution()
    nan = dataclasses.replace(a, map=np.full(a.map.shape, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = nan.plot()
        shown = nan.display_map()
        drawn = a.plot()
    assert np.isnan(shown).all()
    assert [t.get_text() for t in fig.axes[0].texts] == ["no finite value\n(the map is NaN or Inf)"]
    assert len(drawn.axes[0].texts) == 0  # a map with values is drawn as before, signed
    assert drawn.axes[0].images[-1].get_cmap().name.startswith("RdBu_r")
