"""The simulated camera pipeline and the camera/traceable options of the training stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trufor_lab.training as T
from trufor_lab.training.loop import _Pool
from trufor_lab.training.streams import TRACEABLE_EDITS
from trufor_lab.training.camera import CFA_PATTERNS, Camera, downscale
from trufor_lab.forensics.jpeg import jpeg_compress


def _flat(size=64, level=128):
    return np.full((size, size, 3), level, np.uint8)


@pytest.mark.parametrize("pattern", sorted(CFA_PATTERNS))
def test_demosaicing_leaves_the_cfa_phase_in_the_noise(pattern):
    """Sampled pixels carry the full sensor noise, bilinearly interpolated ones an average of
    2 or 4 neighbours (variance / 2 or / 4): the noise variance reveals the CFA layout."""
    cam = Camera(pattern=pattern, shot=0.0, read=0.02, gamma=1.0, sharpen=0.0, jpeg_quality=None)
    img = cam.capture(_flat(128), np.random.default_rng(0)).astype(float)
    cell = np.array(CFA_PATTERNS[pattern]).reshape(2, 2)
    for c in range(3):
        var = np.array([[img[i::2, j::2, c].var() for j in range(2)] for i in range(2)])
        sampled = cell == c
        assert var[sampled].min() > 1.8 * var[~sampled].max(), (c, var)


def test_jpeg_is_the_last_step_and_capture_is_deterministic():
    scene = T.synthetic_scene(96, seed=3)
    raw = Camera(jpeg_quality=None).capture(scene, np.random.default_rng(5))
    jpg = Camera(jpeg_quality=80).capture(scene, np.random.default_rng(5))
    assert np.array_equal(jpg, jpeg_compress(raw, 80))
    assert np.array_equal(raw, Camera(jpeg_quality=None).capture(scene, np.random.default_rng(5)))
    assert not np.array_equal(raw, Camera(jpeg_quality=None).capture(scene, np.random.default_rng(6)))
    # noise grows with brightness (shot noise)
    cam = Camera(shot=3e-3, read=1e-4, gamma=1.0, jpeg_quality=None)
    dark, bright = (cam.capture(_flat(64, v), np.random.default_rng(0)).astype(float).std() for v in (40, 220))
    assert bright > 1.5 * dark


def test_random_cameras_and_checks():
    rng = np.random.default_rng(0)
    cams = [Camera.random(rng) for _ in range(50)]
    assert len({c.pattern for c in cams}) == 4 and len({c.jpeg_quality for c in cams}) > 10
    assert any(c.jpeg_quality is None for c in cams) and any(c.sharpen > 0 for c in cams)
    with pytest.raises(ValueError, match="CFA"):
        Camera(pattern="RGBG")
    with pytest.raises(ValueError, match="jpeg_quality"):
        Camera(jpeg_quality=0)
    a = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)
    assert downscale(a, 2).shape == (4, 3, 3)
    assert downscale(a, 2)[0, 0, 0] == int(a[:2, :2, 0].mean() + 0.5)  # box mean, rounded half up


def test_traceable_stream_draws_only_trace_changing_variants():
    images = [T.synthetic_scene(160, seed=s) for s in range(3)]
    stream = T.ForgeryStream(images, camera=True, traceable=True, kinds=("copy_move", "local_edit"))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(24):
        f = stream.forge(rng, stream.source(rng, 0, 96), None)
        assert f.kind in ("copy_move", "local_edit")
        seen.add(f.kind)
        if f.kind == "copy_move":
            assert (f.params["rotation"], f.params["scale"]) != (0.0, 1.0)
        else:
            assert f.params["op"] in TRACEABLE_EDITS
    assert seen == {"copy_move", "local_edit"}
    with pytest.raises(ValueError, match="unknown forgery kind"):
        T.ForgeryStream(images, kinds=("splise",))


def test_camera_heldout_set_is_balanced_and_reproducible():
    a = T.heldout_set(6, 64, camera=True, traceable=True, final_jpeg=(80, 95), final_jpeg_prob=0.5)
    b = T.heldout_set(6, 64, camera=True, traceable=True, final_jpeg=(80, 95), final_jpeg_prob=0.5)
    assert [x.label for x in a] == [0, 1] * 3
    assert all(x.mask.any() == bool(x.label) for x in a)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_pool_crop_without_forged_pixels_is_labelled_pristine():
    pool = object.__new__(_Pool)
    pool.rgb = np.zeros((1, 64, 64, 3), np.uint8)
    pool.mask = np.zeros((1, 64, 64), bool)
    pool.mask[0, :8, :8] = True  # forged corner
    pool.label = np.array([1])
    pool.np = np.zeros((1, 64, 64), np.float32)
    labels = set()
    for s in range(40):
        _, _, mask, label = pool.batch(np.random.default_rng(s), 1, 32, torch.device("cpu"))
        assert int(label[0]) == int(mask.any())
        labels.add(int(label[0]))
    assert labels == {0, 1}
