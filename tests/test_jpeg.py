"""JPEG facts: tables in natural order, IJG quality estimation, subsampling, round trips."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from trufor_lab.forensics import jpeg

# jpeg_natural_order from libjpeg (jutils.c): natural index of the k-th zig-zag coefficient.
LIBJPEG_NATURAL_ORDER = [
    0,
    1,
    8,
    16,
    9,
    2,
    3,
    10,
    17,
    24,
    32,
    25,
    18,
    11,
    4,
    5,
    12,
    19,
    26,
    33,
    40,
    48,
    41,
    34,
    27,
    20,
    13,
    6,
    7,
    14,
    21,
    28,
    35,
    42,
    49,
    56,
    57,
    50,
    43,
    36,
    29,
    22,
    15,
    23,
    30,
    37,
    44,
    51,
    58,
    59,
    52,
    45,
    38,
    31,
    39,
    46,
    53,
    60,
    61,
    54,
    47,
    55,
    62,
    63,
]


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    base = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.float64)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _dqt_jpeg(table_zigzag: list[int]) -> bytes:
    """A greyscale JPEG whose single DQT segment is replaced by ``table_zigzag`` (file order)."""
    data = bytearray(jpeg.jpeg_bytes(np.full((8, 8), 128, np.uint8), 50))
    i = data.find(b"\xff\xdb")
    assert data[i + 2 : i + 4] == b"\x00\x43" and data[i + 4] == 0  # one 8-bit table, id 0
    data[i + 5 : i + 69] = bytes(table_zigzag)
    return bytes(data)


def test_zigzag_matches_libjpeg() -> None:
    assert jpeg.ZIGZAG.tolist() == LIBJPEG_NATURAL_ORDER


def test_dqt_bytes_are_read_in_natural_order() -> None:
    # zig-zag position k holds value k+1: natural (0,1) is zz 1, (1,0) is zz 2, (2,0) is zz 3
    tabs = jpeg.quantization_tables(_dqt_jpeg(list(range(1, 65))))
    t = tabs[0]
    assert t.dtype == np.uint16 and t.shape == (8, 8)
    assert t[0, :4].tolist() == [1, 2, 6, 7]
    assert t[:4, 0].tolist() == [1, 3, 4, 10]
    assert t[7, 7] == 64
    assert t.ravel()[LIBJPEG_NATURAL_ORDER].tolist() == list(range(1, 65))


def test_annex_k_tables_at_quality_50(rgb: np.ndarray) -> None:
    tabs = jpeg.quantization_tables(jpeg.jpeg_bytes(rgb, 50))
    assert tabs[0][0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert tabs[0][:, 0].tolist() == [16, 12, 14, 14, 18, 24, 49, 72]
    assert np.array_equal(tabs[1], jpeg.IJG_CHROMINANCE)


def test_pil_fallback_agrees_with_dqt_parse(rgb: np.ndarray) -> None:
    data = jpeg.jpeg_bytes(rgb, 80, "4:2:2")
    im = Image.open(io.BytesIO(data))
    op = jpeg.OpenedSource(name="mem", path=None, data=None, image=im)  # force PIL attributes path
    hdr = jpeg.read_header(op)
    assert hdr is not None
    assert all(np.array_equal(hdr.qtables[k], v) for k, v in jpeg.quantization_tables(data).items())
    assert [c[1:3] for c in hdr.components] == [(2, 1), (1, 1), (1, 1)]


@pytest.mark.parametrize("q", [1, 2, 3, 10, 35, 50, 75, 90, 95, 100])  # 2, 3: chroma tables as at 1
def test_round_trip_quality_is_exact(rgb: np.ndarray, q: int) -> None:
    est = jpeg.estimate_quality(jpeg.jpeg_bytes(rgb, q))
    assert est is not None
    assert (est.quality, est.exact, est.standard, est.error) == (q, True, True, 0.0)
    assert est.luma_quality == est.chroma_quality == q


def test_greyscale_quality(rgb: np.ndarray) -> None:
    est = jpeg.estimate_quality(jpeg.jpeg_bytes(rgb[:, :, 0], 65))
    assert est is not None and est.quality == 65 and est.exact and est.chroma_quality is None
    assert jpeg.chroma_subsampling(jpeg.jpeg_bytes(rgb[:, :, 0], 65)) is None


def test_custom_tables_are_not_exact(rgb: np.ndarray) -> None:
    luma = (jpeg.ijg_table(85).astype(int) + np.arange(64).reshape(8, 8) % 3).clip(1, 255)
    chroma = jpeg.ijg_table(85, chroma=True).astype(int)
    chroma[0, 0] += 2
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", qtables=[luma.ravel().tolist(), chroma.ravel().tolist()])
    assert np.array_equal(jpeg.quantization_tables(buf.getvalue())[0], luma)  # qtables= is natural
    est = jpeg.estimate_quality(buf.getvalue())
    assert est is not None and not est.exact and not est.standard
    assert abs(est.quality - 85) <= 3 and 0 < est.error < 2


def test_mixed_ijg_qualities_are_standard_but_not_exact(rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    tabs = [jpeg.ijg_table(90).ravel().tolist(), jpeg.ijg_table(70, chroma=True).ravel().tolist()]
    Image.fromarray(rgb).save(buf, "JPEG", qtables=tabs)
    est = jpeg.estimate_quality(buf)
    assert est is not None and est.standard and not est.exact
    assert (est.luma_quality, est.chroma_quality) == (90, 70)


@pytest.mark.parametrize("ss", ["4:4:4", "4:2:2", "4:2:0"])
def test_subsampling_detection(rgb: np.ndarray, ss: str) -> None:
    data = jpeg.jpeg_bytes(rgb, 90, ss)
    assert jpeg.chroma_subsampling(data) == ss
    assert jpeg.chroma_subsampling(Image.open(io.BytesIO(data))) == ss


def test_progressive(rgb: np.ndarray, tmp_path) -> None:
    path = tmp_path / "p.jpg"
    Image.fromarray(rgb).save(path, "JPEG", quality=80, progressive=True)
    assert jpeg.is_progressive(path) and jpeg.is_progressive(str(path))
    assert not jpeg.is_progressive(jpeg.jpeg_bytes(rgb, 80))
    assert jpeg.estimate_quality(path).quality == 80


def test_sources_path_file_object_and_pil(rgb: np.ndarray, tmp_path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg.jpeg_bytes(rgb, 42))
    with open(path, "rb") as f:
        assert jpeg.estimate_quality(f).quality == 42
        assert f.tell() == 0  # position restored
    with Image.open(path) as im:
        im.load()
        assert jpeg.estimate_quality(im).quality == 42


def test_png_is_not_jpeg(rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    data = buf.getvalue()
    assert jpeg.estimate_quality(data) is None
    assert jpeg.quantization_tables(data) == {}
    assert jpeg.chroma_subsampling(data) is None and not jpeg.is_progressive(data)


def test_unreadable_inputs_name_the_file(tmp_path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt") as ei:
        jpeg.estimate_quality(txt)
    assert "\n" not in str(ei.value)
    with pytest.raises(ValueError, match="missing.jpg"):
        jpeg.quantization_tables(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="<bytes>"):
        jpeg.estimate_quality(b"")


def test_jpeg_compress_helpers(rgb: np.ndarray) -> None:
    out = jpeg.jpeg_compress(rgb, 30)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert 0 < np.abs(out.astype(int) - rgb).mean() < 40
    assert np.abs(jpeg.jpeg_compress(rgb, 100, "4:4:4").astype(int) - rgb).mean() < 3
    assert jpeg.jpeg_compress(rgb[:, :, 0], 50).shape == rgb.shape[:2]
    with pytest.raises(ValueError, match="subsampling"):
        jpeg.jpeg_bytes(rgb, 50, "4:1:1")
    with pytest.raises(ValueError, match="quality"):
        jpeg.jpeg_bytes(rgb, 0)
    with pytest.raises(ValueError, match="uint8"):
        jpeg.jpeg_bytes(rgb.astype(np.float32), 50)


def _patch_sof_tables(data: bytes, tables: tuple[int, int, int]) -> bytes:
    """``data`` with its three frame components pointing at quantisation ``tables``."""
    out = bytearray(data)
    i = out.find(b"\xff\xc0")
    assert out[i + 9] == 3  # three components, 3 bytes each from i + 10: id, HV, Tq
    for k, tq in enumerate(tables):
        out[i + 12 + 3 * k] = tq
    return bytes(out)


def _dqt(tq: int, table: np.ndarray, pq: int = 0) -> bytes:
    """One DQT segment (table in natural order, written in zig-zag order; pq 1+ as 16-bit)."""
    zz = np.asarray(table).reshape(64)[jpeg.ZIGZAG]
    body = bytes([pq << 4 | tq]) + (b"".join(int(v).to_bytes(2, "big") for v in zz) if pq else bytes(zz.tolist()))
    return b"\xff\xdb" + (len(body) + 2).to_bytes(2, "big") + body


def _with_first_dqt(data: bytes, segment: bytes) -> bytes:
    """``data`` with its first DQT segment replaced by ``segment``."""
    i = data.find(b"\xff\xdb")
    return data[:i] + segment + data[i + 2 + int.from_bytes(data[i + 2 : i + 4], "big") :]


def test_cr_table_is_compared_too(rgb: np.ndarray) -> None:
    base = jpeg.jpeg_bytes(rgb, 85)
    i = base.find(b"\xff\xc0")
    data = _patch_sof_tables(base[:i] + _dqt(2, jpeg.ijg_table(20, chroma=True)) + base[i:], (0, 1, 2))
    est = jpeg.estimate_quality(data)
    assert est is not None and est.n_tables == 3
    assert not est.exact and est.standard  # each table is libjpeg's, at 85, 85 and 20
    assert (est.luma_quality, est.chroma_quality) == (85, 20)


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: _patch_sof_tables(d, (3, 1, 1)), "component 1 uses quantisation table 3"),
        (lambda d: _with_first_dqt(d, _dqt(5, jpeg.ijg_table(75))), "invalid table id 5"),
        (lambda d: _with_first_dqt(d, _dqt(0, jpeg.ijg_table(75), pq=2)), "invalid precision 2"),
    ],
    ids=["undefined-table", "table-id-5", "precision-2"],
)
def test_bad_table_references_give_no_quality(rgb: np.ndarray, edit, reason: str) -> None:
    data = edit(jpeg.jpeg_bytes(rgb, 75))
    hdr = jpeg.read_header(jpeg.open_source(data))  # Pillow still opens these files
    assert hdr is not None and any(reason in x for x in jpeg.header_problems(hdr))
    assert jpeg.estimate_quality(data) is None  # never a guess from another table


def _mixed_tables_jpeg(rgb: np.ndarray, luma: int, chroma: int, **kw) -> bytes:
    buf = io.BytesIO()
    tabs = [jpeg.ijg_table(luma).ravel().tolist(), jpeg.ijg_table(chroma, chroma=True).ravel().tolist()]
    Image.fromarray(rgb).save(buf, "JPEG", qtables=tabs, **kw)
    return buf.getvalue()


def _insert_before(data: bytes, marker: bytes, junk: bytes, nth: int = 1) -> bytes:
    """``data`` with ``junk`` inserted before the ``nth`` occurrence of ``marker``."""
    i = -1
    for _ in range(nth):
        i = data.index(marker, i + 1)
    return data[:i] + junk + data[i:]


@pytest.mark.parametrize(
    "junk, nth_marker",
    [(b"\x00", (b"\xff\xdb", 2)), (b"\x00\x00", (b"\xff\xc2", 1)), (b"\x12\xff\x00", (b"\xff\xc4", 1))],
    ids=["1-byte-before-2nd-DQT", "2-bytes-before-SOF2", "stuffed-ff00-before-DHT"],
)
def test_stray_bytes_before_a_marker_are_skipped_and_recorded(rgb: np.ndarray, junk: bytes, nth_marker) -> None:
    """libjpeg skips extraneous bytes before a marker; the parser stopped there, claiming an
    exact quality from one table, no progressive coding, no subsampling, and said nothing."""
    clean = _mixed_tables_jpeg(rgb, 90, 60, progressive=True)
    marker, nth = nth_marker
    data = _insert_before(clean, marker, junk, nth)
    Image.open(io.BytesIO(data)).load()  # decoders still read the file
    hdr = jpeg.read_header(jpeg.open_source(data))
    (warning,) = hdr.warnings
    n = len(junk)
    assert f"{n} extraneous byte{'s' if n > 1 else ''} before marker 0x{marker[1]:02X}" in warning
    assert jpeg.header_problems(hdr) == []
    est = jpeg.estimate_quality(data)
    assert est.n_tables == 2 and (est.luma_quality, est.chroma_quality) == (90, 60) and not est.exact
    assert jpeg.is_progressive(data) and jpeg.chroma_subsampling(data) == "4:2:0"
    assert jpeg.read_header(jpeg.open_source(clean)).warnings == []


@pytest.mark.parametrize("chroma", [30, 100])
def test_quality_is_the_luma_quality_whatever_the_chroma(rgb: np.ndarray, chroma: int) -> None:
    """cjpeg -quality 90,30 is a quality-90 file: ``.quality`` gave the chroma side (30, or 100
    for 90,100), which eval stored as the file's quality."""
    est = jpeg.estimate_quality(_mixed_tables_jpeg(rgb, 90, chroma))
    assert (est.quality, est.luma_quality, est.chroma_quality) == (90, 90, chroma)
    assert est.standard and not est.exact and est.error > 0


def test_zero_quantisers_are_invalid_and_give_no_quality(rgb: np.ndarray) -> None:
    """All-zero tables decode, but JPEG needs quantisers of 1 or more: they were reported as a
    camera's non-standard tables at 'nearest quality 100'."""
    zeros = np.zeros((8, 8), np.uint8)
    data = _with_first_dqt(jpeg.jpeg_bytes(rgb, 75), _dqt(0, zeros))
    hdr = jpeg.read_header(jpeg.open_source(data))
    assert any("quantisation table 0 holds 64 zero quantisers" in x for x in jpeg.header_problems(hdr))
    assert jpeg.estimate_quality(data) is None
    one_zero = jpeg.ijg_table(75).copy()
    one_zero[7, 7] = 0
    data = _with_first_dqt(jpeg.jpeg_bytes(rgb, 75), _dqt(0, one_zero))
    assert jpeg.estimate_quality(data) is None
