"""How the CPU paths lay out their work (row strips, bands) without changing what they compute:
Noiseprint++ in row strips is bit-identical to the whole-map convolutions, the folded decoders in
bands of rows are the decoders as written, the fast mode's banded Mix-FFNs change rounding only."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import trufor_lab.model.decoder as decoder_mod
import trufor_lab.model.noiseprint as noiseprint_mod
from trufor_lab.inference.predict import InferenceMode, deviation, predict
from trufor_lab.inference.preprocess import to_tensor
from trufor_lab.model.layout import token_bands
from trufor_lab.model.segformer import MixFFN


def _whole_map_convolutions(net, x: torch.Tensor, channels_last: bool, onednn: bool) -> torch.Tensor:
    """The folded Noiseprint++ as one convolution per layer over the whole map (the old path)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with noiseprint_mod.exact_float32(onednn), torch.no_grad():
        y = x.contiguous(memory_format=fmt)
        for w, b, pad, relu in net.folded():
            y = F.conv2d(y, w.contiguous(memory_format=fmt), b, padding=pad)
            if relu:
                y = y.relu_()
    return y.contiguous()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "gemm"])
def test_noiseprint_in_row_strips_is_bit_identical(recipe_model, tampered2, monkeypatch, channels_last, onednn):
    net = recipe_model.dncnn
    x = to_tensor(tampered2[:45]).repeat(2, 1, 1, 1)  # 256 wide (enough for strips), batch of two
    row_bytes = 2 * 64 * 4 * x.shape[-1]
    ref = _whole_map_convolutions(net, x, channels_last, onednn)
    strips = []
    real = noiseprint_mod.conv_rows

    def counting(x, w, b, pad, relu, out, rows):
        strips.append(-(-x.shape[2] // rows))
        return real(x, w, b, pad, relu, out, rows)

    monkeypatch.setattr(noiseprint_mod, "conv_rows", counting)
    for rows in (1, 4, 13):  # strips of 1, 4 and 13 output rows (the last one shorter)
        monkeypatch.setattr(noiseprint_mod, "STRIP_BYTES", row_bytes * rows)
        strips.clear()
        got = net.forward_folded(x, onednn, channels_last)
        assert len(strips) == 16 and strips[0] == -(-45 // rows)  # every 64-channel layer in strips
        assert torch.equal(got, ref), (rows, float((got - ref).abs().max()))
    xd, netd = x.double(), copy.deepcopy(net).double()
    monkeypatch.setattr(noiseprint_mod, "STRIP_BYTES", row_bytes * 2 * 4)  # float64: 4-row strips
    with torch.no_grad():
        assert (netd.forward_folded(xd, onednn, channels_last) - netd(xd)).abs().max() <= 1e-9


def test_narrow_maps_are_convolved_whole(recipe_model, tampered2, monkeypatch):
    """Below STRIP_MIN_WIDTH oneDNN may pick another kernel for a strip: such maps stay whole."""
    net = recipe_model.dncnn
    monkeypatch.setattr(noiseprint_mod, "STRIP_BYTES", 1)
    called = []
    monkeypatch.setattr(noiseprint_mod, "conv_rows", lambda *a: called.append(1))
    x = to_tensor(tampered2[:40, : noiseprint_mod.STRIP_MIN_WIDTH - 1])
    assert torch.equal(net.forward_folded(x), _whole_map_convolutions(net, x, False, True)) and not called


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_folded_decoders_in_bands_are_the_decoders(recipe_model, monkeypatch, dtype, tol):
    """Bands of one row and the default bands, odd sizes (coarse maps of one row or column, a
    batch of two), against the two MLP decoders as written."""
    decs = [copy.deepcopy(d).to(dtype) for d in (recipe_model.decode_head, recipe_model.decode_head_conf)]
    gen = torch.Generator().manual_seed(0)
    for b, h, w in ((1, 1, 1), (2, 5, 7), (1, 19, 26)):
        feats = [
            torch.randn(b, c, -(-h // 2**i), -(-w // 2**i), generator=gen, dtype=dtype)
            for i, c in enumerate(recipe_model.cfg.embed_dims)
        ]
        with torch.no_grad():
            plain = [d(feats) for d in decs]
            for band_bytes in (1, decoder_mod.DECODE_BAND_BYTES):
                monkeypatch.setattr(decoder_mod, "DECODE_BAND_BYTES", band_bytes)
                for p, f in zip(plain, decoder_mod.folded_decode(decs, feats)):
                    assert f.shape == p.shape and f.is_contiguous() and f.dtype == dtype
                    assert (f - p).abs().max() <= tol, (b, h, w, band_bytes)


def test_fast_mode_runs_the_mix_ffns_in_bands_and_exact_does_not(recipe_model, tampered2, monkeypatch):
    x = to_tensor(tampered2[:96, :160])
    calls = []
    real = MixFFN._bands

    def counting(self, x, hw, rows):
        calls.append(rows)
        return real(self, x, hw, rows)

    monkeypatch.setattr(MixFFN, "_bands", counting)
    exact = predict(recipe_model, x)
    assert not calls  # exact: the whole map, as the official code
    with token_bands(recipe_model.backbone, 2 * 2**10):  # forced small bands, restored after
        with torch.no_grad():
            banded = recipe_model.forward_features(x, exact.noiseprint)
    assert calls and all(m.band_bytes is None for m in recipe_model.modules() if isinstance(m, MixFFN))
    with torch.no_grad():
        whole = recipe_model.forward_features(x, exact.noiseprint)
    for a, b in zip(banded, whole):
        assert (a - b).abs().max() <= 1e-4  # a GEMM over fewer rows: float32 rounding at most
    fast = predict(recipe_model, x, InferenceMode.fast(amp_dtype=None))
    assert deviation(fast, exact)["map"] <= 1e-3
    with pytest.raises(RuntimeError, match="boom"):
        with token_bands(recipe_model.backbone):
            raise RuntimeError("boom")
    assert all(m.band_bytes is None for m in recipe_model.modules() if isinstance(m, MixFFN))


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_row_strips_give_every_output_row_once_from_its_own_inputs(pad):
    """Row by row, a convolution computed strip by strip (:func:`row_strips`) reads the rows the
    whole-map convolution reads and returns its values, for every strip height, including
    strips shorter than the halo and a map shorter than one strip."""
    from trufor_lab.model.strips import row_strips

    k = 2 * pad + 1
    w = torch.arange(1.0, k * k + 1).reshape(1, 1, k, k)  # integers: sums are exact in float64
    for h in (1, 2, 5, 13):
        x = torch.arange(float(h * 7)).reshape(1, 1, h, 7).double() ** 2
        whole = F.conv2d(x, w.double(), padding=pad)
        for rows in (1, 2, 3, h, h + 4):
            got = torch.full_like(whole, float("nan"))
            for s in row_strips(h, rows, pad):
                assert 0 <= s.a <= s.r0 < s.r1 <= s.z <= h and 0 <= s.pad_rows <= pad
                y = F.conv2d(x[:, :, s.a : s.z], w.double(), padding=(s.pad_rows, pad))
                assert torch.isnan(got[:, :, s.r0 : s.r1]).all()  # each output row once
                got[:, :, s.r0 : s.r1] = y[:, :, s.offset : s.offset + s.r1 - s.r0]
            assert torch.equal(got, whole), (h, rows, pad)
    with pytest.raises(ValueError, match="rows must be >= 1"):
        list(row_strips(5, 0, 1))


def test_lean_noiseprint_in_bands_computes_every_pixel_once_and_the_same_bits(recipe_model, tampered2, monkeypatch):
    """Where the whole map does not fit its budget, the lean forward's Noiseprint++ goes through
    all 17 layers band by band (each layer keeping two rows for the next band): bit-identical to
    the whole map, the one-channel last layer in strips too, and no pixel computed twice (the
    halo tiles it replaces recomputed a 17-pixel rim of every tile through every layer)."""
    from trufor_lab.model.lean import noiseprint_tiled

    net = recipe_model.dncnn
    x = to_tensor(tampered2[:120]).repeat(2, 1, 1, 1)  # 120 x 256, batch of two
    h, w = x.shape[2:]
    ref = net.forward_folded(x)
    computed = []  # output pixels of each convolution call of the 16 ReLU layers
    real_relu = noiseprint_mod.conv_relu

    def relu_counting(xs, wt, b, padding):
        y = real_relu(xs, wt, b, padding)
        computed.append(y.shape[2] * y.shape[3])
        return y

    monkeypatch.setattr(noiseprint_mod, "conv_relu", relu_counting)
    # 4 MiB for 2 images x 64 channels x 4 maps x 4 bytes per pixel: 8-row bands of the 256-wide map
    got = noiseprint_tiled(net, x, budget_bytes=4 * 2**20)
    assert torch.equal(got, ref), float((got - ref).abs().max())
    assert sum(computed) <= 16 * w * (h + 2)  # every row once (+ at most the two border surplus rows)
