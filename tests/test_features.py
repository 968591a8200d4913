"""Feature summaries: exact statistics on synthetic maps, PCA, branch comparison on real captures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from trufor_lab.interpret.features import (
    BranchComparison,
    branch_comparison_names,
    branch_similarity,
    channel_stats,
    cosine_similarity_map,
    pca_rgb,
    spatial_stats,
    to_chw,
    top_channels,
)


@pytest.fixture()
def fmap() -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 10, 12))
    a[4] *= 5  # the strongest channel
    a[1] *= 3
    return a


def test_to_chw_accepts_torch_numpy_batches():
    t = torch.arange(1 * 3 * 4 * 5, dtype=torch.float16).reshape(1, 3, 4, 5)
    a = to_chw(t)
    assert a.shape == (3, 4, 5) and a.dtype == np.float64 and a[0, 0, 1] == 1
    assert to_chw(np.ones((4, 5))).shape == (1, 4, 5)
    with pytest.raises(ValueError):
        to_chw(np.ones(5))


def test_channel_stats_and_top_channels(fmap):
    st = channel_stats(torch.from_numpy(fmap)[None])
    flat = fmap.reshape(6, -1)
    np.testing.assert_allclose(st.mean, flat.mean(1))
    np.testing.assert_allclose(st.std, flat.std(1))
    np.testing.assert_allclose(st.min, flat.min(1))
    np.testing.assert_allclose(st.max, flat.max(1))
    np.testing.assert_allclose(st.energy, (flat**2).mean(1))
    assert list(top_channels(fmap, 2)) == [4, 1]
    assert st.channels == 6 and list(st.top(6, by="max"))[0] in (4, 1)


def test_spatial_stats(fmap):
    sp = spatial_stats(fmap)
    np.testing.assert_allclose(sp.mean, fmap.mean(0))
    np.testing.assert_allclose(sp.std, fmap.std(0))


def test_pca_recovers_the_dominant_pattern():
    h, w = 16, 20
    yy, xx = np.mgrid[:h, :w]
    pattern = np.where(xx < w // 2, 1.0, -1.0)  # left/right halves
    rng = np.random.default_rng(1)
    loadings = rng.standard_normal(32)
    fmap = loadings[:, None, None] * pattern[None] + 0.01 * rng.standard_normal((32, h, w))
    p = pca_rgb(fmap)
    assert p.image.shape == (h, w, 3) and p.image.min() >= 0 and p.image.max() <= 1
    assert p.explained[0] > 0.99
    left, right = p.image[:, : w // 2, 0].mean(), p.image[:, w // 2 :, 0].mean()
    assert abs(left - right) > 0.9  # first component separates the halves
    assert pca_rgb(np.zeros((1, 4, 4))).image.shape == (4, 4, 3)  # degenerate input: grey, no error


def test_cosine_similarity_map(fmap):
    np.testing.assert_allclose(cosine_similarity_map(fmap, fmap), 1.0)
    np.testing.assert_allclose(cosine_similarity_map(fmap, -2 * fmap), -1.0)
    with pytest.raises(ValueError):
        cosine_similarity_map(fmap, fmap[:3])


def test_branch_similarity_on_real_captures(recipe_model, small_image):
    import trufor_lab as tl

    r = tl.analyze(recipe_model, small_image[:64, :64], capture=branch_comparison_names())
    cmp = branch_similarity(r.captures)
    assert isinstance(cmp, BranchComparison) and cmp.stages == [1, 2, 3, 4]
    for arr in (cmp.before, cmp.after, cmp.before_global, cmp.after_global):
        assert arr.shape == (4,) and np.all(np.abs(arr) <= 1 + 1e-9)
    assert cmp.maps_before[0].shape == (16, 16) and cmp.maps_after[3].shape == (2, 2)
    # FRM mixes each stream with the other: the streams get closer
    assert np.all(cmp.after > cmp.before)
    assert set(cmp.as_dict()) == {"stage", "before", "after", "before_global", "after_global"}
    # every feature view shows itself in a notebook as the other results do (they had .plot() only)
    import matplotlib.pyplot as plt

    fmap = r.captures["rgb.stage1.out"][0]
    before = plt.get_fignums()
    for view in (cmp, channel_stats(fmap, "rgb.stage1"), spatial_stats(fmap), pca_rgb(fmap)):
        assert view._repr_html_().count('<img src="data:image/png;base64,') == 1, type(view).__name__
    assert plt.get_fignums() == before
    one = branch_similarity(r.captures, stages=[2])
    np.testing.assert_allclose(one.after, cmp.after[1:2])
    with pytest.raises(KeyError, match="branch_comparison_names"):
        branch_similarity({k: v for k, v in r.captures.items() if "frm" not in k})


def test_analyze_says_which_captures_were_subsampled(recipe_model, small_image):
    """analyze(..., max_elements=) dropped the capture's notes: a subsampled map looked like the
    layer's own resolution."""
    import trufor_lab as tl

    img = small_image[:64, :64]
    r = tl.analyze(recipe_model, img, capture=["fusion.stage1.ffm", "detection.stats"], max_elements=4000)
    full = tl.list_layers(recipe_model, (64, 64))["fusion.stage1.ffm"].shape
    assert tuple(r.captures["fusion.stage1.ffm"].shape) != tuple(full)
    said = [n for n in r.notes if "fusion.stage1.ffm" in n]
    assert len(said) == 1 and "subsampled by stride 3" in said[0] and str(tuple(full)) in said[0]
    assert not any("detection.stats" in n for n in r.notes)
    # a capture runs the plain forward, not the exact path analyze() takes otherwise: said, since
    # its float32 maps differ slightly (a reviewer measured 2.4e-3 on the demo model)
    plain = tl.analyze(recipe_model, img, capture=["fusion.stage1.ffm"])
    assert [n for n in plain.notes if "capture" in n] == [
        "captured on the plain forward: maps may differ from analyze() without capture by ~1e-3"
    ]
    assert np.abs(plain.map - tl.analyze(recipe_model, img).map).max() < 1e-2


def test_analyze_refuses_capture_options_it_would_drop_and_says_what_was_not_captured(recipe_model, small_image):
    """A misspelt ``captures=`` or a capture option without ``capture`` was accepted and dropped
    (no captures, no error); ``grad=True`` ran without gradients; layers an ablation skipped
    were left out of ``Result.captures`` without a word; and the forward with captures ran
    under the user's TF32 flags where ``predict`` keeps IEEE float32."""
    import trufor_lab as tl
    from trufor_lab.interpret import ablate

    img = small_image[:64, :64]
    with pytest.raises(TypeError, match="unexpected keyword.*captures"):
        tl.analyze(recipe_model, img, captures=["fusion.stage1.ffm"])
    with pytest.raises(TypeError, match="max_elements apply to layer capture only"):
        tl.analyze(recipe_model, img, max_elements=10)
    with pytest.raises(ValueError, match="without gradients"):
        tl.analyze(recipe_model, img, capture=["fusion.stage1.ffm"], grad=True)
    with ablate.rgb_only(recipe_model):
        r = tl.analyze(recipe_model, img, capture=["noiseprint", "fusion.stage1.ffm"])
    assert "fusion.stage1.ffm" in r.captures and "noiseprint" not in r.captures
    assert "capture: not produced by this forward: noiseprint" in r.notes, r.notes
    seen = []
    hook = recipe_model.decode_head.register_forward_hook(
        lambda *_: seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
    )
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        tl.analyze(recipe_model, img)  # a hooked model: the plain forward
        tl.analyze(recipe_model, img, capture=["fusion.stage1.ffm"])
    finally:
        hook.remove()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    # cuDNN's flag is set off only where CUDA runs (elsewhere it is not touched: PyTorch cannot put
    # its fresh state back once written); TF32 matmuls are off everywhere
    cudnn_inside = not torch.cuda.is_available()
    assert seen == [(False, cudnn_inside), (False, cudnn_inside)], seen


def test_a_batch_of_several_images_is_refused_not_summarised_by_its_first():
    """A capture of a batch of 8 images gave channel_stats / pca_rgb / spatial_stats / the
    branch comparison of image 0 alone, read as the batch's; one item of it is summarised as
    that image, and histograms take every item's values."""
    from trufor_lab.viz.figures import plot_histograms

    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 4, 6, 5))
    batch[1:] += 10.0  # items 1 and 2 far from item 0
    for summary in (channel_stats, spatial_stats, pca_rgb):
        with pytest.raises(ValueError, match=r"a batch of 3 feature maps .*pass one item \(fmap\[i\]\)"):
            summary(batch)
        one, same = summary(batch[1:2]), summary(batch[1])
        for f in dataclasses.fields(one):
            x, y = getattr(one, f.name), getattr(same, f.name)
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name
    assert np.allclose(channel_stats(batch[2:3]).mean, batch[2].reshape(4, -1).mean(1))
    fig = plot_histograms({"b": torch.from_numpy(batch)}, bins=10, log=False)
    counts = sum(p.get_path().vertices.shape[0] > 0 for p in fig.axes[0].patches)
    assert counts == 1
    x = np.concatenate([p.get_path().vertices[:, 0] for p in fig.axes[0].patches])
    assert x.min() <= batch.min() + 1e-9 and x.max() >= batch.max() - 1e-9  # every item's values drawn
