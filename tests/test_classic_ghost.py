"""JPEG ghosts without float64 cubes: the same numbers as the float64 reference, bit for bit, in
memory that does not grow with the number of qualities (beyond the float32 output).

A 12 MP photo re-saved at 20 qualities held a float64 (H, W, 3) cube per quality and five float64
(20, H, W) stacks: about 10 GB at its peak (9.5 GiB traced) and most of the casebook's classic
filter time."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from trufor_lab.forensics.jpeg import jpeg_compress
from trufor_lab.lab import forgeries as F
from trufor_lab.lab.classic import read_source
from trufor_lab.lab.classic_jpeg import GRID_MIN_SIDE, bag, jpeg_ghost

QUALITIES = tuple(range(40, 98, 3))  # what the casebook uses on a file last saved at 95-97: 20


def reference_ghost(rgb, qualities, window=16, subsampling="4:2:0"):
    """The float64 formulation, written out plainly: every quality's map in one (n, H, W) stack."""
    h, w = rgb.shape[:2]
    grid = bag(rgb)[2] if min(h, w) >= GRID_MIN_SIDE else {"not_applicable": ""}
    py, px = (0, 0) if "not_applicable" in grid else grid["grid_phase"]
    ty, tx = (8 - py) % 8, (8 - px) % 8
    padded = np.ascontiguousarray(np.pad(rgb, ((ty, 0), (tx, 0), (0, 0)), mode="edge"))
    x = rgb.astype(np.float64)
    d = np.stack(
        [
            ndimage.uniform_filter(((x - jpeg_compress(padded, q, subsampling)[ty:, tx:]) ** 2).mean(axis=2), window)
            for q in qualities
        ]
    )
    lo, hi = d.min(axis=0), d.max(axis=0)
    dn = (d - lo + 0.25) / (hi - lo + 0.5)
    n = len(qualities)
    p02, p50 = np.percentile(dn.reshape(n, -1)[:, ::7], [2, 50], axis=1)
    dip = np.zeros(d.shape)
    dip[1:-1] = (dn[1:-1] < dn[:-2]) & (dn[1:-1] < dn[2:])
    clustered = np.array([ndimage.uniform_filter(m, 2 * window) for m in dip]).reshape(n, -1)[:, ::7]
    c50, c98 = np.percentile(clustered, [50, 98], axis=1)
    spread, cluster = p50 - p02, np.maximum(c98 - c50, 0.0)
    k = int(np.argmax(spread * cluster))
    raw = {
        "ghost_quality": int(qualities[k]),
        "curves": d.reshape(n, -1).mean(axis=1).tolist(),
        "spread": spread.tolist(),
        "minima_cluster": cluster.tolist(),
        "difference": dn.astype(np.float32),
        "grid_phase": [int(py), int(px)],
    }
    return 1.0 - dn[k], raw


def assert_same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"{what}: not bit-identical"


def double_saved(shared_dir):
    """A region of the shared pristine photo first saved at 60, then the whole at 90."""
    img = np.ascontiguousarray(read_source(shared_dir / "images" / "pristine2.jpg").rgb[300:684, 400:912])
    inner = np.zeros(img.shape[:2], bool)
    inner[100:260, 150:350] = True
    return jpeg_compress(np.ascontiguousarray(np.where(inner[..., None], jpeg_compress(img, 60), img)), 90)


@pytest.mark.parametrize(
    "case",
    ["pristine1.jpg", "tampered2.png", "pristine2.jpg crop off its grid", "tampered1.png crop", "double saved"],
)
def test_jpeg_ghost_is_bit_identical_to_the_float64_reference(shared_dir, case):
    images = shared_dir / "images"
    if case == "double saved":
        rgb = double_saved(shared_dir)
    elif case.endswith("crop off its grid"):  # the padded path (grid phase not (0, 0))
        rgb = read_source(images / "pristine2.jpg").rgb[203:603, 805:1317]
    elif case.endswith("crop"):
        rgb = read_source(images / "tampered1.png").rgb[:512, :640]
    else:
        rgb = read_source(images / case).rgb
    rgb = np.ascontiguousarray(rgb)
    want_map, want = reference_ghost(rgb, QUALITIES)
    got_map, score, got = jpeg_ghost(rgb, qualities=QUALITIES, differences=True)
    assert score is None and "not_applicable" not in got
    assert_same_bits(got_map, want_map, "map")
    assert_same_bits(got["difference"], want["difference"], "raw['difference']")
    for key in ("ghost_quality", "curves", "spread", "minima_cluster", "grid_phase"):
        assert got[key] == want[key], key  # floats compared exactly
    if case.endswith("off its grid"):
        assert got["grid_phase"] != [0, 0]


@pytest.mark.parametrize("differences", [True, False])
def test_jpeg_ghost_memory_does_not_grow_with_the_qualities(differences):
    """Peak traced memory at 20 qualities: a bounded number of float64 planes, plus the float32
    ``raw['difference']`` (one plane per quality) when asked for. It was 96 float64 planes on top
    of the output at 20 qualities (106 in all), 51 at 10: a float64 plane per quality several times
    over; then 20.4 with the output always kept, 17 of them for the grid phase (the whole block
    artifact grid detector)."""
    img = F.demo_images(384)["chelsea"]
    rgb = np.ascontiguousarray(jpeg_compress(np.tile(img, (2, 2, 1))[:600, :700], 90))
    plane = rgb.shape[0] * rgb.shape[1] * 8
    tracemalloc.start()
    try:
        _, _, raw = jpeg_ghost(rgb, qualities=QUALITIES, differences=differences)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    kept = raw["difference"].nbytes if differences else 0
    assert ("difference" in raw) == differences and (not differences or raw["difference"].shape == (20, 600, 700))
    # measured: 8-9 planes besides the output
    assert peak <= kept + 10 * plane, f"peak {(peak - kept) / plane:.1f} float64 planes besides the output"
