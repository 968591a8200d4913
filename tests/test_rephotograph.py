"""Simulated cameras on real content (round 9): the wider simulated camera (JPEG chroma
subsampling, noise reduction), the training photos downscaled into scenes for simulated cameras
(``RealForgeryStream(rephotograph=...)``), splices between two simulated cameras and the
platform chain on simulated examples."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import trufor_lab.training as T
from trufor_lab.forensics.jpeg import jpeg_compress
from trufor_lab.training import finetune_real as FR
from trufor_lab.training import photos as P
from trufor_lab.training.camera import Camera


def _chroma_noise(img: np.ndarray) -> float:
    a = img.astype(float)
    return float(np.std(a[..., 0] - a[..., 1]) + np.std(a[..., 2] - a[..., 1]))


def test_the_camera_saves_its_jpeg_with_its_own_chroma_subsampling():
    scene = T.synthetic_scene(96, seed=3)
    raw = Camera(jpeg_quality=None).capture(scene, np.random.default_rng(5))
    for sub in ("4:4:4", "4:2:2", "4:2:0"):
        jpg = Camera(jpeg_quality=85, subsampling=sub).capture(scene, np.random.default_rng(5))
        assert np.array_equal(jpg, jpeg_compress(raw, 85, sub)), sub
    full = Camera(jpeg_quality=85, subsampling="4:4:4").capture(scene, np.random.default_rng(5))
    assert not np.array_equal(full, Camera(jpeg_quality=85).capture(scene, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="chroma subsampling '4:1:1'"):
        Camera(subsampling="4:1:1")


def test_noise_reduction_smooths_chroma_noise_most():
    flat = np.full((96, 96, 3), 128, np.uint8)
    kw = dict(shot=0.0, read=0.02, gamma=1.0, jpeg_quality=None)
    noisy = Camera(**kw).capture(flat, np.random.default_rng(0))
    smooth = Camera(**kw, denoise=1.5).capture(flat, np.random.default_rng(0))
    assert _chroma_noise(smooth) < 0.5 * _chroma_noise(noisy)
    assert 0.2 * noisy[..., 1].std() < smooth[..., 1].std() < noisy[..., 1].std()  # luma kept more
    with pytest.raises(ValueError, match="denoise must be >= 0"):
        Camera(denoise=-1.0)


def test_wide_random_cameras_keep_the_other_draws_and_vary_subsampling_and_denoise():
    cams = [Camera.random(np.random.default_rng(s), wide=True) for s in range(60)]
    for s, cam in enumerate(cams):
        plain = Camera.random(np.random.default_rng(s))
        assert plain.subsampling == "4:2:0" and plain.denoise == 0.0  # unchanged without wide
        d = cam.as_dict()
        assert {k: d[k] for k in plain.as_dict() if k not in ("subsampling", "denoise")} == {
            k: v for k, v in plain.as_dict().items() if k not in ("subsampling", "denoise")
        }
    assert {c.subsampling for c in cams} == {"4:2:0", "4:2:2", "4:4:4"}
    denoised = [c.denoise for c in cams if c.denoise > 0]
    assert 15 <= len(denoised) <= 45 and all(0.5 <= d <= 2.0 for d in denoised)


def _photos(tmp_path, big: int = 1100):
    rng = np.random.default_rng(0)
    for cam, h in (("camA", big), ("camB", big), ("small", 320)):
        (tmp_path / cam).mkdir()
        a = np.clip(np.linspace(30, 220, h)[:, None, None] + rng.normal(0, 20, (h, h, 3)), 0, 255)
        Image.fromarray(a.astype(np.uint8)).save(tmp_path / cam / "p.png")
    return P.scan_photos(tmp_path, camera_folders=True)


def test_rephotograph_makes_scenes_of_the_large_photos_downscaled_by_the_factor(tmp_path):
    photos = _photos(tmp_path)
    st = P.RealForgeryStream(photos, sim_images=[np.zeros((192, 192, 3), np.uint8)], rephotograph=4)
    assert sorted(a.shape for a in st.resim.images) == [(275, 275, 3)] * 2  # 1100 / 4; the 320 px photo left out
    big = next(p.load() for p in photos if p.camera == "folder:camA")
    box = big[:1100, :1100].astype(float).reshape(275, 4, 275, 4, 3).mean(axis=(1, 3))
    mine = [a for a in st.resim.images if abs(a.astype(float) - box).max() <= 1]
    assert len(mine) == 1  # a box average of 4 x 4 pixels (two rounded halvings)
    assert P.RealForgeryStream(photos, sim_images=[np.zeros((64, 64, 3), np.uint8)]).resim is None
    for bad, why in ((3, "even downscale factor of 4 or more, got 3"), (2, "got 2"), (True, "got True")):
        with pytest.raises(ValueError, match=re.escape(why)):
            P.RealForgeryStream(photos, sim_images=[np.zeros((64, 64, 3), np.uint8)], rephotograph=bad)
    with pytest.raises(ValueError, match="no photo keeps a 256 px short side after downscaling by 8"):
        P.RealForgeryStream(photos, sim_images=[np.zeros((64, 64, 3), np.uint8)], rephotograph=8)


def test_simulated_examples_splice_two_cameras_and_go_through_the_platform_chain(tmp_path):
    photos = _photos(tmp_path)
    scene = T.synthetic_scene(192, seed=1)
    st = P.RealForgeryStream(
        photos, sim_images=[scene], rephotograph=4, rephotograph_share=1.0, sim_splice=1.0, sim_chain=1.0
    )
    rng = np.random.default_rng(2)
    kinds = []
    for forged in (True, True, True, False, False):
        rgb, mask, label, kind = st.sim_example(rng, 96, forged=forged)
        assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8 and mask.shape == (96, 96)
        assert label == int(forged and mask.any())
        kinds.append(kind)
    assert all(k.startswith("resim:splice_2cams+") for k in kinds[:3]), kinds
    assert all(k.startswith("resim:pristine+") for k in kinds[3:]), kinds
    assert all(re.search(r"\+(jpeg\d+(/444)?|png)$", k) for k in kinds), kinds  # the platform chain
    for k in ("rephotograph_share", "sim_chain", "sim_splice"):
        with pytest.raises(ValueError, match=f"{k} must be a probability"):
            P.RealForgeryStream(photos, sim_images=[scene], **{k: 1.5})


def test_without_the_new_settings_simulated_examples_are_drawn_as_before(tmp_path):
    photos = _photos(tmp_path)
    scene = T.synthetic_scene(192, seed=1)
    st = P.RealForgeryStream(photos, sim_images=[scene], sim_fraction=1.0)
    for seed in range(3):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        b.random()  # the sim_fraction draw
        got, want = st.example(a, 96), st.sim.example(b, 96)
        assert all(np.array_equal(x, y) for x, y in zip(got, want))


def test_round_9_is_a_recorded_round_of_the_command():
    assert FR.ROUNDS[9] is FR.ROUND9
    kw = FR.ROUND9["stream_kwargs"]
    assert kw["rephotograph"] >= 4 and kw["sim_fraction"] > 0.25 and kw["sim_chain"] > 0 and kw["sim_splice"] > 0
