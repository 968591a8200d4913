"""Global edits of whole pictures for the real-photo fine-tune (trufor_lab.training.edits)."""

import numpy as np
import pytest
from PIL import Image

from trufor_lab.training import photos as P
from trufor_lab.training.edits import EDITS, global_edit


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """Texture everywhere (a photo's flat sky would not change under sharpening)."""
    texture = np.random.default_rng(0).normal(0, 25, (128, 160, 3))
    ramp = np.linspace(40, 200, 160)[None, :, None]
    return np.clip(np.round(ramp + texture), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", EDITS)
def test_each_edit_changes_the_whole_picture_and_keeps_its_shape(picture, kind):
    out, how = global_edit(picture, np.random.default_rng(1), n=(1, 1), kinds=[kind])
    assert out.shape == picture.shape and out.dtype == np.uint8 and how.startswith(kind)
    diff = np.abs(out.astype(int) - picture).sum(-1)
    # everywhere, not in a region: every 32 x 32 block of the picture changed
    blocks = diff.reshape(4, 32, 5, 32).mean((1, 3))
    assert (blocks > 0.05).all(), (kind, blocks.round(2))
    assert np.abs(out.astype(float).mean() - picture.mean()) < 40  # an edit, not another picture


def test_edits_are_drawn_from_the_generator_and_refuse_bad_arguments(picture):
    a = global_edit(picture, np.random.default_rng(7))
    b = global_edit(picture, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert 1 <= len(a[1].split("+")) <= 3
    for kwargs, bad in (({}, picture[..., 0]), ({}, picture.astype(np.float32)), ({"kinds": ["posterize"]}, picture)):
        with pytest.raises(ValueError, match="global_edit"):
            global_edit(bad, np.random.default_rng(0), **kwargs)
    with pytest.raises(ValueError, match="global_edit"):
        global_edit(picture, np.random.default_rng(0), n=(2, 1))


def test_the_stream_edits_pristine_and_forged_examples_alike(tmp_path, picture):
    """``global_edit=1``: every real example, pristine or forged, is edited as a whole and says so;
    a pristine one keeps its empty mask and label 0 (processing everywhere is not a forgery)."""
    for k, cam in enumerate(("camA", "camB")):
        (tmp_path / cam).mkdir()
        rng = np.random.default_rng(k)
        Image.fromarray((rng.random((320, 320, 3)) * 255).astype(np.uint8)).save(tmp_path / cam / "p.png")
    photos = P.scan_photos(tmp_path)
    st = P.RealForgeryStream(photos, sim_images=[picture], chain_prob=0.0, global_edit=1.0)
    rng = np.random.default_rng(2)
    for forged in (False, True, False, True):
        rgb, mask, label, kind = st.real_example(rng, 96, forged=forged)
        assert rgb.shape == (96, 96, 3) and label == int(forged) and mask.any() == forged
        assert any(e in kind.split("+")[-1] for e in EDITS), kind
    off = P.RealForgeryStream(photos, sim_images=[picture], chain_prob=0.0)
    assert all("+" not in off.real_example(rng, 96, forged=False)[3] for _ in range(4))
