"""Classic detectors in bounded memory, with the numbers they gave before, bit for bit.

A fact-checker's 12 MP phone photo (4000x3000, one float64 plane = 92 MiB) peaked at 1.8 GiB
traced for JPEG ghosts (1.5 GiB of it the block artifact grid run only for its phase, and 0.9 GiB
of difference maps kept in the result that nothing reads), 1.5 GiB for the grid detector and
0.9 GiB for CFA; the casebook's estimate of 600 bytes a pixel then skipped the whole tab on an
8 GB laptop. Each rewritten step is checked against its plain whole-plane formulation on real
pictures (the shared photos), and each detector's traced peak against a bound it exceeded before.
"""

from __future__ import annotations

import gc
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from trufor_lab.casebook import classic_tab
from trufor_lab.casebook.classic_tab import classic_filters
from trufor_lab.common.arrays import frozen
from trufor_lab.inference.preprocess import load_image
from trufor_lab.lab import classic_jpeg as J
from trufor_lab.lab import classic_noise as N
from trufor_lab.lab.classic import _normalise, detect, read_source


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.fixture(scope="module")
def photos(shared_dir) -> dict[str, np.ndarray]:
    """Real pictures: the shared camera photo (whole, and cut off its 8x8 grid to sizes that are no
    multiple of 8), the tampered PNG and the small JPEG."""
    d = shared_dir / "images"
    big = read_source(d / "pristine2.jpg").rgb
    return {
        "pristine2": np.ascontiguousarray(big),
        "pristine2 off grid": np.ascontiguousarray(big[203:1000, 805:1718]),
        "tampered1": np.ascontiguousarray(read_source(d / "tampered1.png").rgb[:700, :900]),
        "pristine1": np.ascontiguousarray(read_source(d / "pristine1.jpg").rgb),
    }


# ----------------------------------------------------------- the plain formulations (before)


def plain_luma(rgb):
    x = rgb.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2] - 128.0


def plain_blocks_to_pixels(values, shape, dy=0, dx=0, fill=None):
    out = np.full(shape, float(np.median(values)) if fill is None else fill)
    up = np.repeat(np.repeat(values, 8, axis=0), 8, axis=1)
    hh, ww = max(0, min(up.shape[0], shape[0] - dy)), max(0, min(up.shape[1], shape[1] - dx))
    out[dy : dy + hh, dx : dx + ww] = up[:hh, :ww]
    return out


def plain_upsample(values, shape, step):
    up = np.repeat(np.repeat(values, step, axis=0), step, axis=1)[: shape[0], : shape[1]]
    return np.pad(up, ((0, shape[0] - up.shape[0]), (0, shape[1] - up.shape[1])), mode="edge")


def plain_grid(rgb, line=33):
    y = plain_luma(rgb) + 128.0
    maps = []
    for axis in (1, 0):
        d = np.abs(2 * y - np.roll(y, 1, axis) - np.roll(y, -1, axis))
        d = np.minimum(d, max(2 * float(np.median(d)), 2.0))
        acc = ndimage.uniform_filter1d(d, line, axis=1 - axis)
        per = np.median(np.stack([np.roll(acc, s, axis) for s in (-16, -8, 0, 8, 16)]), axis=0)
        maps.append(per - ndimage.uniform_filter1d(per, 8, axis=axis))
    return maps


def plain_bag_map(gx, gy, phase_y, phase_x):
    h, w = gx.shape
    hb, wb = h // 8 * 8, w // 8 * 8
    sx = np.roll(gx, -phase_x, axis=1)[:hb, :wb].reshape(hb // 8, 8, wb // 8, 8).sum(axis=1)
    sy = np.roll(gy, -phase_y, axis=0)[:hb, :wb].reshape(hb // 8, 8, wb // 8, 8).sum(axis=3)
    anomaly = np.zeros(sx.shape[:2])
    for prof in (sx, sy.transpose(0, 2, 1)):
        prof = ndimage.uniform_filter(prof, (3, 3, 1))
        prof = prof + np.roll(prof, 1, axis=-1)
        spread = prof.std(axis=-1) + 1e-6 * (np.abs(prof).mean() + 1e-12)
        anomaly += (prof[..., 2:7].max(-1) - prof[..., 0]) / spread
    return ndimage.gaussian_filter(plain_blocks_to_pixels(anomaly, (h, w), dy=phase_y, dx=phase_x), 8)


def plain_log_variance(green, lattice, window):
    g = green.astype(np.float64)
    k = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64) / 4
    e = g - ndimage.convolve(g, k, mode="mirror")
    var = np.empty_like(e)
    for lat in (lattice, ~lattice):
        m = lat.astype(np.float64)
        n = ndimage.uniform_filter(m, window)
        mean = ndimage.uniform_filter(e * m, window) / n
        var[lat] = (ndimage.uniform_filter(e**2 * m, window) / n - mean**2)[lat]
    return np.log(np.maximum(var, 1e-6))


def plain_features(x, window, step):
    hp = x - ndimage.uniform_filter(x, 3)
    feats = []
    for f in (x**2, hp**2, x):
        loc = ndimage.uniform_filter(f, window)[step // 2 :: step, step // 2 :: step]
        feats.append(np.log(loc + 1e-6) if f is not x else loc)
    return np.stack(feats, axis=-1)


def plain_normalise(m, bounded=False):
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    if bounded:
        return np.clip(m, 0, 1).astype(np.float32)
    m = m - min(0.0, float(m.min()))
    hi = max(float(np.percentile(m, 99.5)), 0.5 * float(m.max()))
    return np.clip(m / hi if hi > 0 else np.zeros_like(m), 0, 1).astype(np.float32)


# ------------------------------------------------------------------------ bit for bit


PICTURES = ["pristine2", "pristine2 off grid", "tampered1", "pristine1"]


@pytest.mark.parametrize("name", PICTURES)
def test_luma_ela_and_noise_read_the_same_numbers(photos, name):
    rgb = photos[name]
    assert same_bits(J.luma(rgb), plain_luma(rgb))
    x = rgb.astype(np.float64)
    assert same_bits(N._gray(rgb), 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])
    again = J.jpeg_compress(rgb, 90)
    want = np.abs(rgb.astype(np.float64) - again.astype(np.float64)).mean(axis=2)
    assert same_bits(J._channel_mean(rgb, again, square=False), want)
    assert same_bits(J._channel_mean(rgb, again), ((rgb.astype(np.float64) - again) ** 2).mean(axis=2))


@pytest.mark.parametrize("name", PICTURES)
def test_block_painting_is_the_upsampled_copy(photos, name):
    h, w = photos[name].shape[:2]
    rng = np.random.default_rng(0)
    for dy, dx, fill in [(0, 0, None), (3, 5, 0.0), (7, 1, None)]:
        values = rng.normal(size=((h - dy + 7) // 8, (w - dx + 7) // 8))
        for cut in [values, values[:-1, :-1]]:  # blocks past the picture's end, or a margin left
            assert same_bits(
                J.blocks_to_pixels(cut, (h, w), dy, dx, fill), plain_blocks_to_pixels(cut, (h, w), dy, dx, fill)
            )
    for step in (8, 16, 7):
        values = rng.normal(size=(h // step, w // step))
        assert same_bits(N._upsample(values, (h, w), step), plain_upsample(values, (h, w), step))


@pytest.mark.parametrize("name", PICTURES[:3])
def test_block_artifact_grid_maps_phase_and_map_are_unchanged(photos, name):
    rgb = photos[name]
    gx, gy = plain_grid(rgb)
    got_x, got_y, phase_y, phase_x, strength = J._grid(rgb)
    assert same_bits(got_x, gx) and same_bits(got_y, gy)
    m, _, raw = J.bag(rgb)
    assert raw["grid_phase"] == [phase_y, phase_x] and raw["grid_strength"] == J.grid_strength(gx, gy) == strength
    assert same_bits(raw["grid_x"], gx.astype(np.float32)) and same_bits(raw["grid_y"], gy.astype(np.float32))
    if "not_applicable" not in raw:
        assert same_bits(m, plain_bag_map(gx, gy, phase_y, phase_x))
    assert J.grid_phase(rgb) == (None if "not_applicable" in raw else (phase_y, phase_x))
    if name == "pristine2 off grid":
        assert raw["grid_phase"] != [0, 0] and "not_applicable" not in raw


@pytest.mark.parametrize("name", PICTURES)
def test_cfa_variance_noiseprint_features_and_display_scaling_are_unchanged(photos, name):
    rgb = photos[name]
    h, w = rgb.shape[:2]
    yy, xx = np.indices((h, w))
    lattice = (yy + xx) % 2 == 0
    assert same_bits(N._log_variance(rgb[..., 1], lattice, 7), plain_log_variance(rgb[..., 1], lattice, 7))
    x = plain_luma(rgb)
    x -= x.mean()
    assert same_bits(N._local_features(x, 32, 16), plain_features(x, 32, 16))
    for raw_map in (detect(rgb, "ela").captures["raw_map"], x, np.where(x > 60, np.nan, x)):
        for bounded in (False, True):
            assert same_bits(_normalise(raw_map, bounded), plain_normalise(raw_map, bounded))


def test_jpeg_ghost_keeps_its_difference_maps_only_when_asked(photos):
    rgb = photos["pristine2 off grid"]
    qualities = tuple(range(40, 98, 3))
    m, _, raw = J.jpeg_ghost(rgb, qualities=qualities)
    m_kept, _, kept = J.jpeg_ghost(rgb, qualities=qualities, differences=True)
    assert "difference" not in raw and kept["difference"].shape == (20, *rgb.shape[:2])
    assert same_bits(m, m_kept) and {k: v for k, v in kept.items() if k != "difference"} == raw
    r = detect(rgb, "jpeg_ghost", differences=True)
    assert r.captures["difference"].dtype == np.float32
    with pytest.raises(ValueError, match="differences must be True or False"):
        detect(rgb, "jpeg_ghost", differences=1)


# ------------------------------------------------------------------------------- memory


def traced_peak(fn, *args, **kw) -> tuple[int, object]:
    tracemalloc.start()
    try:
        out = fn(*args, **kw)
        return tracemalloc.get_traced_memory()[1], out
    finally:
        tracemalloc.stop()


# float64 planes of the picture at the peak of ``detect`` (the Result's own maps included);
# measured before -> after on this 1024x1280 photo crop (12 MP: about the same):
# bag 17 -> 6, jpeg_ghost (20 qualities) 20 -> 9.4, cfa 10 -> 6.3, noiseprint 7 -> 5,
# ela 6.4 -> 4.5, dq_nonaligned 5 -> 4, noise 5 -> 4
BOUNDS = {
    "bag": 8,
    "jpeg_ghost": 11,
    "cfa": 8,
    "noiseprint": 6,
    "ela": 5.5,
    "dq_nonaligned": 4.6,
    "noise": 4.6,
}


@pytest.mark.parametrize("method", sorted(BOUNDS))
def test_each_detector_peaks_within_a_few_planes_of_the_picture(shared_dir, method):
    rgb = np.ascontiguousarray(read_source(shared_dir / "images" / "pristine2.jpg").rgb[:1024, :1280])
    plane = rgb.shape[0] * rgb.shape[1] * 8
    params = {"qualities": tuple(range(40, 98, 3))} if method == "jpeg_ghost" else {}
    if method == "noiseprint":  # the clustering only (the network is not what is measured here)
        y = rgb[..., 1].astype(np.float32)
        params["noiseprint"] = y - ndimage.uniform_filter(y, 3)
    peak, r = traced_peak(detect, rgb, method, **params)
    assert r.map.shape == rgb.shape[:2]
    assert peak <= BOUNDS[method] * plane, f"{method}: peak {peak / plane:.1f} float64 planes"


def test_the_casebook_tab_fits_its_estimate_and_runs_on_an_8_gb_laptop(shared_dir, monkeypatch):
    """The tab's filters on a real camera photo (EXIF-turned in the casebook) stay within
    ``BYTES_PER_PIXEL``, keep no per-quality difference maps, and the estimate lets a 12 MP
    photo run with the ~5 GiB an 8 GB laptop has free (it skipped them: 600 bytes a pixel)."""
    path = shared_dir / "images" / "pristine2.jpg"
    pixels = int(np.prod(read_source(path).rgb.shape[:2]))
    peak, out = traced_peak(classic_filters, path)
    assert all(r.captures.get("shown") not in ("(not run)", "(failed)") for r in out.values())
    assert "difference" not in out["jpeg_ghost"].captures
    assert peak <= pixels * classic_tab.BYTES_PER_PIXEL, f"{peak / pixels:.0f} bytes a pixel"
    # a 12 MP photo with 5 GiB free, scaled down to a small picture with the same free memory per pixel
    small = np.ascontiguousarray(read_source(path).rgb[:300, :400])
    monkeypatch.setattr(classic_tab, "free_memory_bytes", lambda device: int(5 * 2**30 * small[..., 0].size / 12e6))
    assert all(r.captures.get("shown") != "(not run)" for r in classic_filters(small).values())


# ------------------------------------------------- what the kept results hold, shared read-only


@pytest.fixture(scope="module")
def turned_photo(shared_dir) -> bytes:
    """The shared camera photo as a phone stores a portrait: its own JPEG data (the same tables
    and coefficients) with EXIF orientation 6, so viewers show it turned."""
    with Image.open(shared_dir / "images" / "pristine2.jpg") as im:
        exif = im.getexif()
        exif[0x0112] = 6
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality="keep", subsampling="keep", exif=exif.tobytes())
    return buf.getvalue()


def shown_filters(data: bytes) -> dict:
    """The casebook's tab: the filters, each turned as shown, the results on the stored grid let go."""
    return {k: r.as_shown() for k, r in classic_filters(data, name="portrait.jpg").items()}


def test_the_tabs_kept_results_hold_the_picture_once_and_no_constant_planes(turned_photo):
    """The four kept results of a turned photo held 80 bytes a pixel (0.89 GiB at 12 MP): each its
    own turned copy of the pixels, an all-ones float32 ``conf``, a ``noiseprint`` holding the
    numbers of ``captures['raw_map']`` again, and a not-applicable filter's three zero planes. They
    now share one read-only copy of the pixels and of each raw map, and the constant planes take no
    memory; every field reads as before (the digests of before and after match on a 12 MP photo)."""
    h, w = read_source(turned_photo).rgb.shape[:2]
    gc.collect()
    tracemalloc.start()
    try:
        kept = shown_filters(turned_photo)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(r.shown and r.image.shape == (w, h, 3) for r in kept.values())
    assert all(r.captures.get("shown") not in ("(not run)", "(failed)") for r in kept.values())
    for r in kept.values():  # what every field reads: as the turned copies read
        assert r.conf.dtype == np.float32 and r.conf.shape == (w, h) and (r.conf == 1).all()
        raw = r.captures["raw_map"]
        assert raw.dtype == np.float32 and raw.shape == (h, w)
        assert same_bits(np.nan_to_num(np.rot90(raw, -1)).copy(), np.ascontiguousarray(r.noiseprint))
    # 3 bytes a pixel for the picture; per filter that applies two float32 planes (its raw map, which
    # is also its noiseprint, and its map) and ELA's residual; a filter that does not apply: none
    # (39.1 bytes a pixel here, all four apply; 80.1 before)
    applies = sum(bool(r.captures["applicable"]) for r in kept.values())
    assert held <= h * w * (3 + 4 * (2 * applies + 1) + 1), f"{held / (h * w):.1f} bytes a pixel"


def test_what_the_results_share_cannot_be_changed_through_one_of_them(turned_photo, shared_dir):
    """Arrays one result shares with another (the pixels, a raw map and its noiseprint, the
    stored grid and its turned view) are read-only: a write through any result raises instead of
    changing the others. A caller's writable pixels are copied once, not shared."""
    stored = classic_filters(turned_photo, name="portrait.jpg")
    kept = {k: r.as_shown() for k, r in stored.items()}
    arrays = [
        (f"{k}.{where}.{f}", a)
        for k in stored
        for where, r in (("stored", stored[k]), ("shown", kept[k]))
        for f, a in [(f, getattr(r, f)) for f in ("image", "noiseprint", "map", "conf")] + list(r.captures.items())
        if isinstance(a, np.ndarray) and a.size
    ]
    shared = [(n, a) for n, a in arrays if any(m != n and np.shares_memory(a, b) for m, b in arrays)]
    assert {n.split(".", 2)[2] for n, _ in shared} >= {"image", "noiseprint", "raw_map", "map", "conf"}
    for n, a in shared:
        assert not a.flags.writeable and frozen(a), n
        with pytest.raises(ValueError, match="read-only"):
            a[(0,) * a.ndim] = a[(0,) * a.ndim]
    # the caller's pixels: its later edits do not reach the results
    loaded = load_image(io.BytesIO(turned_photo).getvalue())
    r = classic_filters(turned_photo, ("ela",), loaded=loaded)["ela"]
    assert not np.shares_memory(r.image, loaded.rgb) and loaded.rgb.flags.writeable
    before = r.image.copy()
    loaded.rgb[:] = 0
    assert same_bits(r.image, before)


def test_shared_read_only_results_save_draw_and_report_as_before(turned_photo, tmp_path):
    """The consumers of a turned classic result (the npz writer, the figures, the summary, the
    tab's HTML) read views and constant planes as the copies they were; a result of writable
    arrays (the network's) is still turned into copies of its own."""
    from trufor_lab.casebook.classic_tab import classic_section_html
    from trufor_lab.inference.result import Result

    kept = shown_filters(turned_photo)
    for k, r in kept.items():
        r.save_npz(tmp_path / f"{k}.npz", save_noiseprint=True)
        with np.load(tmp_path / f"{k}.npz", allow_pickle=False) as d:
            for key, a in (("map", r.map), ("conf", r.conf), ("np++", r.noiseprint)):
                assert same_bits(d[key], np.ascontiguousarray(a)) and d[key].flags.c_contiguous, (k, key)
        assert r.summary().startswith("portrait.jpg: ")
    kept["ela"].plot()
    html = classic_section_html(kept)
    assert html.count("<h4") == 4 and "data:image/png;base64," in html
    h, w = kept["ela"].size
    net = Result(image=np.zeros((w, h, 3), np.uint8), noiseprint=np.zeros((w, h), np.float32), exif_orientation=6)
    shown = net.as_shown()
    assert shown.image.flags.writeable and shown.image.flags.c_contiguous
    assert not np.shares_memory(shown.image, net.image)
