"""Layer catalog and capture: names derived from the structure, correct shapes and values,
hooks always removed, subsampling, gradients, attention maps."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trufor_lab.model.capture import Capture, CaptureError, capture
from trufor_lab.model.catalog import layer_catalog, list_layers
from trufor_lab.model import MIT_B2, Noiseprint, TruFor
from trufor_lab.model.segformer import tokens_to_map


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# -- catalog ----------------------------------------------------------------------------------
def test_catalog_follows_the_structure(tiny, recipe_model):
    names = list(layer_catalog(tiny))
    assert len(names) == len(set(names))
    for branch in ("rgb", "noiseprint"):
        for s, depth in enumerate(tiny.cfg.depths, 1):
            blocks = [n for n in names if n.startswith(f"{branch}.stage{s}.block") and "attention" not in n]
            assert blocks == [f"{branch}.stage{s}.block{k}" for k in range(depth)]
            assert f"{branch}.stage{s}.patch_embed" in names and f"{branch}.stage{s}.out" in names
    for s in range(1, 5):
        assert {f"fusion.stage{s}.frm.rgb", f"fusion.stage{s}.frm.noiseprint", f"fusion.stage{s}.ffm"} <= set(names)
    for head in ("anomaly", "confidence"):
        assert [n for n in names if n.startswith(f"decoder.{head}.")] == [
            f"decoder.{head}.c{i}" for i in range(1, 5)
        ] + [f"decoder.{head}.fused", f"decoder.{head}.logits"]
    assert names[-2:] == ["detection.stats", "detection.logit"]
    assert [n for n in names if n.startswith("noiseprint.dncnn.")] == [
        "noiseprint.dncnn.level1",
        "noiseprint.dncnn.level2",
    ]
    # the official sizes: MiT-B2 has 3, 4, 6, 3 blocks per stage
    assert recipe_model.cfg == MIT_B2
    b2 = layer_catalog(recipe_model)
    assert "rgb.stage3.block5" in b2 and "rgb.stage3.block6" not in b2 and "noiseprint.stage4.block2" in b2


def test_list_layers_prints_text_and_html(tiny):
    table = list_layers(tiny, input_size=(64, 96))
    text = str(table)
    assert "fusion.stage2.ffm" in text and "(1, 16, 8, 12)" in text and "backbone.FFMs.1" in text
    html = table._repr_html_()
    assert html.startswith("<table>") and "<code>decoder.confidence.c3</code>" in html
    assert table["detection.stats"].shape == (1, 8)
    assert table.filter("fusion.*.ffm").names == [f"fusion.stage{s}.ffm" for s in range(1, 5)]


def test_noiseprint_only_catalog():
    net = Noiseprint(num_levels=3).eval()
    assert list_layers(net, (8, 8)).names == ["noiseprint", "noiseprint.dncnn.level1", "noiseprint.dncnn.level2"]
    with torch.no_grad(), capture(net, "noiseprint*") as cap:
        out = net(torch.rand(1, 3, 8, 8))
    assert torch.equal(cap.tensors["noiseprint"], out)
    assert cap.tensors["noiseprint.dncnn.level2"].shape == (1, 64, 8, 8)


# -- real weights: shapes for an odd input size, values against the model's outputs -------------
@pytest.fixture(scope="module")
def recipe_run(recipe_model):
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), capture(recipe_model, "*", max_elements=2000) as small, capture(recipe_model, "*") as cap:
        out = recipe_model(x)
    return x, out, cap, small


def test_shapes_match_list_layers(recipe_model, recipe_run):
    _, _, cap, _ = recipe_run
    table = list_layers(recipe_model, (70, 90))
    assert not cap.missing
    assert {r.name: tuple(r.shape) for r in table} == {k: tuple(v.shape) for k, v in cap.tensors.items()}


def test_captured_values_are_the_network_values(recipe_model, recipe_run):
    _, out, cap, _ = recipe_run
    t = cap.tensors
    assert torch.equal(t["noiseprint"], out.noiseprint)
    assert torch.equal(t["detection.logit"], out.det_logit)
    torch.testing.assert_close(t["detection.stats"], recipe_model.pool(out.logits, out.conf_logits))
    up = F.interpolate(t["decoder.anomaly.logits"], size=(70, 90), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, out.logits)
    # tokens -> maps: the stage output is norm(last block's tokens) reshaped
    norm = recipe_model.backbone.stage_modules("rgb", 2)[2]
    last = t["rgb.stage2.block3"]
    torch.testing.assert_close(
        tokens_to_map(norm(last.flatten(2).transpose(1, 2)), last.shape[2:]), t["rgb.stage2.out"]
    )
    assert not any(v.requires_grad for v in t.values())


def test_max_elements_subsamples_and_says_so(recipe_run):
    _, _, cap, small = recipe_run
    full, sub = cap.tensors["rgb.stage1.block0"], small.tensors["rgb.stage1.block0"]  # (1, 64, 18, 23)
    s = small.strides["rgb.stage1.block0"]
    assert s > 1 and sub.numel() <= 2000
    assert torch.equal(sub, full[..., ::s, ::s])
    assert "stride" in small.notes["rgb.stage1.block0"]
    assert "detection.stats" not in small.notes and torch.equal(
        small.tensors["detection.stats"], cap.tensors["detection.stats"]
    )


# -- names --------------------------------------------------------------------------------------
def test_globs_and_unknown_names(tiny):
    cap = capture(tiny, ["fusion.*.ffm", "detection.logit"])
    assert cap.names == [f"fusion.stage{s}.ffm" for s in range(1, 5)] + ["detection.logit"]
    with pytest.raises(KeyError, match="fusion.stage1.ffm"):
        capture(tiny, "fusion.stage1.fmm")
    with pytest.raises(KeyError, match="did you mean"):
        capture(tiny, "rgb.stage2.blok1")
    with pytest.raises(KeyError):
        capture(tiny, "nothing.*")


# -- hooks never outlive the capture ----------------------------------------------------------
def test_hooks_removed_on_exit_error_and_interrupt(tiny):
    before = _hook_count(tiny)
    for _ in range(100):
        with capture(tiny, "*"):
            assert _hook_count(tiny) > before
    assert _hook_count(tiny) == before
    with pytest.raises(ValueError):
        with torch.no_grad(), capture(tiny, "*"):
            tiny(torch.rand(1, 4, 32, 32))  # bad input: the model raises
    assert _hook_count(tiny) == before
    with pytest.raises(KeyboardInterrupt):
        with capture(tiny, "fusion.*"):
            raise KeyboardInterrupt
    assert _hook_count(tiny) == before
    cap = capture(tiny, "detection.*").start()
    with torch.no_grad():
        tiny(torch.rand(1, 3, 32, 32))
    cap.release()
    cap.release()
    assert _hook_count(tiny) == before and set(cap.tensors) == {"detection.stats", "detection.logit"}


def test_capture_does_not_change_outputs(tiny):
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        ref = tiny(x)
        with capture(tiny, "*") as cap:
            out = tiny(x)
    assert all(torch.equal(a, b) for a, b in zip(ref, out))
    assert isinstance(cap, Capture) and not cap.active and "released" in repr(cap)


# -- gradients --------------------------------------------------------------------------------
def test_grad_keeps_the_graph(tiny):
    x = torch.rand(1, 3, 32, 32)
    with capture(tiny, ["rgb.stage2.block1", "fusion.stage1.ffm", "noiseprint.stage3.out"], grad=True) as cap:
        out = tiny(x)
    out.det_logit.sum().backward()
    for name, t in cap.tensors.items():
        assert t.requires_grad and t.grad is not None and t.grad.abs().sum() > 0, name
    with pytest.raises(ValueError):
        capture(tiny, "*", grad=True, max_elements=10)


# -- attention --------------------------------------------------------------------------------
def test_attention_maps(tiny):
    x = torch.rand(1, 3, 64, 64)
    with (
        torch.no_grad(),
        capture(tiny, "rgb.stage1.block0.attention") as cap,
        capture(tiny, "rgb.stage1.block0.attention", max_elements=40) as small,
    ):
        tiny(x)
    att = cap.tensors["rgb.stage1.block0.attention"]
    assert att.shape == list_layers(tiny, (64, 64))["rgb.stage1.block0.attention"].shape == (1, 1, 16, 16, 4, 4)
    torch.testing.assert_close(att.sum(dim=(-2, -1)), torch.ones(1, 1, 16, 16))
    s = small.strides["rgb.stage1.block0.attention"]
    assert s > 1 and "subsampled" in small.notes["rgb.stage1.block0.attention"]
    torch.testing.assert_close(small.tensors["rgb.stage1.block0.attention"], att[:, :, ::s, ::s])
    before = _hook_count(tiny)
    with pytest.raises(CaptureError, match="max_elements"):
        with torch.no_grad(), capture(tiny, "rgb.stage1.block0.attention", max_elements=4):
            tiny(x)
    assert _hook_count(tiny) == before


# -- overhead -----------------------------------------------------------------------------------
def test_overhead_is_small(tiny):
    """10 captured layers: a few Python calls and views, no copies on CPU (the records share the
    modules' outputs' memory). Thread CPU time, one thread, min of interleaved runs, with room for a
    busy machine (main ran at 1.08-1.12 here): a bound that catches a real regression, not a
    benchmark (bench/bench_hooks.py for wall time)."""
    names = [
        "noiseprint",
        "rgb.stage1.out",
        "noiseprint.stage1.out",
        "fusion.stage1.frm.rgb",
        "fusion.stage1.ffm",
        "rgb.stage2.block1",
        "fusion.stage2.ffm",
        "fusion.stage3.ffm",
        "fusion.stage4.ffm",
        "decoder.anomaly.fused",
    ]
    x = torch.rand(1, 3, 64, 64)
    plain, hooked = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(15):  # min of more runs: robust under a parallel worker
                t0 = time.thread_time()
                tiny(x)
                plain.append(time.thread_time() - t0)
                t0 = time.thread_time()
                with capture(tiny, names) as cap:
                    tiny(x)
                hooked.append(time.thread_time() - t0)
    finally:
        torch.set_num_threads(threads)
    assert len(cap.tensors) == 10
    assert min(hooked) < 1.3 * min(plain) + 1e-3, (min(hooked), min(plain))
    seen = {}
    handle = tiny.backbone.FFMs[3].register_forward_hook(lambda m, a, out: seen.setdefault("ffm", out))
    try:
        with torch.inference_mode(), capture(tiny, names) as cap:
            out = tiny(x)
    finally:
        handle.remove()
    assert cap["noiseprint"].data_ptr() == out.noiseprint.data_ptr()  # a view, not a copy
    assert cap["fusion.stage4.ffm"].data_ptr() == seen["ffm"].data_ptr()


def test_catalog_follows_swapped_modules(tiny_config):
    torch.manual_seed(0)
    model = TruFor(tiny_config).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), capture(model, "fusion.stage1.ffm") as cap:
        model(x)

    class Doubled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, a, b):
            return 2 * self.inner(a, b)

    model.backbone.FFMs[0] = Doubled(model.backbone.FFMs[0])
    with torch.no_grad(), capture(model, "fusion.stage1.ffm") as cap2:
        model(x)
    torch.testing.assert_close(cap2.tensors["fusion.stage1.ffm"], 2 * cap.tensors["fusion.stage1.ffm"])
    assert _hook_count(model) == 0


def test_a_capture_cannot_be_nested_in_itself(tiny):
    """`with cap:` inside `with cap:` did nothing, and its exit removed the hooks the outer block
    still needed (it then recorded nothing): refused now, and the outer block still records."""
    x = torch.rand(1, 3, 64, 64)
    cap = Capture(tiny, ["detection.stats"])
    with cap:
        with pytest.raises(RuntimeError, match="already active"):
            with cap:
                pass
        with torch.no_grad():
            tiny(x)
    assert "detection.stats" in cap.tensors and _hook_count(tiny) == 0


# -- what the network used, whatever the nesting order; one call at a time ---------------------
def test_capture_records_what_the_network_used_in_either_nesting_order(tiny):
    """Hooks run in registration order: a capture entered before an ablation (or a user's hook)
    recorded the real RGB input and c4 while the network read zeros."""
    from trufor_lab.interpret import ablations as ab

    x = torch.rand(1, 3, 64, 64)
    names = ["rgb.input", "decoder.anomaly.c4", "fusion.stage1.ffm"]

    def double(mod, args, out):
        return 2 * out

    with torch.no_grad():
        with capture(tiny, names) as first, ab.noiseprint_only(tiny), ab.drop_scales(tiny, "c4"):
            h = tiny.backbone.FFMs[0].register_forward_hook(double)  # a user's hook, placed last
            try:
                o1 = tiny(x)
            finally:
                h.remove()
        h = tiny.backbone.FFMs[0].register_forward_hook(double)
        try:
            with ab.noiseprint_only(tiny), ab.drop_scales(tiny, "c4"), capture(tiny, names) as last:
                o2 = tiny(x)
        finally:
            h.remove()
    assert torch.equal(o1.logits, o2.logits)
    for n in names:
        assert torch.equal(first[n], last[n]), n
    assert not first["rgb.input"].any() and not first["decoder.anomaly.c4"].any()
    with torch.no_grad(), ab.noiseprint_only(tiny), capture(tiny, "fusion.stage1.ffm") as undoubled:
        tiny(x)
    assert torch.equal(first["fusion.stage1.ffm"], 2 * undoubled["fusion.stage1.ffm"])  # the user's hook acted
    assert _hook_count(tiny) == 0


def test_direct_calls_of_the_parts_record_what_the_network_used_in_either_nesting_order(tiny):
    """The hooks were moved behind later ones only on a call of the whole model: a capture entered
    before an ablation recorded the real RGB input of ``forward_features`` (and the un-doubled
    fused map of a direct ``backbone`` call) while the encoder read zeros."""
    from trufor_lab.interpret import ablations as ab

    x = torch.rand(1, 3, 64, 64) * 0.99
    npm = torch.rand(1, 1, 64, 64)
    names = ["rgb.input", "noiseprint.input", "fusion.stage1.ffm", "rgb.stage1.out"]

    def double(mod, args, out):
        return 2 * out

    def run() -> list[torch.Tensor]:
        h = tiny.backbone.FFMs[0].register_forward_hook(double)
        try:
            feats = tiny.forward_features(x, npm)
            return [*feats, *tiny.backbone(tiny.normalize(x), npm.expand(-1, 3, -1, -1))]
        finally:
            h.remove()

    with torch.no_grad():
        with capture(tiny, names) as first, ab.noiseprint_only(tiny):
            o1 = run()
        with ab.noiseprint_only(tiny), capture(tiny, names) as last:
            o2 = run()
    assert all(torch.equal(a, b) for a, b in zip(o1, o2))
    assert not first["rgb.input"].any()
    for n in names:
        assert torch.equal(first[n], last[n]), n
    with torch.no_grad(), ab.noiseprint_only(tiny), capture(tiny, "fusion.stage1.ffm") as undoubled:
        tiny.backbone(tiny.normalize(x), npm.expand(-1, 3, -1, -1))
    assert torch.equal(first["fusion.stage1.ffm"], 2 * undoubled["fusion.stage1.ffm"])  # the user's hook acted
    assert _hook_count(tiny) == 0


@pytest.mark.parametrize("interrupted", ["a part", "the whole model"])
def test_a_call_interrupted_by_ctrl_c_leaves_later_direct_calls_recording_what_the_network_used(tiny, interrupted):
    """Ctrl-C skips the forward hooks that count calls down: the count stayed above 0, every later
    direct call of a part looked nested, and the capture (started by hand, as across notebook
    cells) recorded the decoder's c4 embedding before a later ablation zeroed it. Marked by path,
    a whole forward interrupted in the encoder still left the model marked as running (only a part
    marked again was taken for interrupted): a later direct ``forward_heads`` looked nested."""
    from trufor_lab.interpret import ablations as ab

    x = torch.rand(1, 3, 64, 64) * 0.99
    with torch.no_grad():
        feats = tiny.forward_features(x, tiny.forward_noiseprint(x))
    cap = capture(tiny, "decoder.anomaly.c4").start()
    try:

        def interrupt(*_):
            raise KeyboardInterrupt

        part = tiny.decode_head.linear_fuse if interrupted == "a part" else tiny.backbone.FFMs[0]
        h = part.register_forward_hook(interrupt)
        with pytest.raises(KeyboardInterrupt), torch.no_grad():
            if interrupted == "a part":
                tiny.forward_heads(feats, (64, 64))  # c4 ran, then Ctrl-C
            else:
                tiny(x)  # Ctrl-C in the encoder, before the decoder ran
        h.remove()
        with torch.no_grad(), ab.drop_scales(tiny, "c4", "anomaly"):
            tiny.forward_heads(feats, (64, 64))
        assert not cap["decoder.anomaly.c4"].any()  # what the decoder used: zeros
        with torch.no_grad():  # and nested calls of the parts are still one call: the model's
            tiny(x)
        assert cap["decoder.anomaly.c4"].abs().max() > 0
    finally:
        cap.release()
    assert _hook_count(tiny) == 0


def test_each_call_of_the_model_starts_a_fresh_record(tiny):
    """Several forwards in one block mixed them: strides and notes of call 1 stayed, and an entry
    call 2 did not produce stayed from call 1 with `missing` empty."""
    big, small = torch.rand(1, 3, 96, 96), torch.rand(1, 3, 32, 32)
    with torch.no_grad(), capture(tiny, ["fusion.stage1.ffm", "noiseprint"], max_elements=2000) as cap:
        tiny(big)
        assert cap.strides["fusion.stage1.ffm"] > 1 and "fusion.stage1.ffm" in cap.notes
        tiny(small, noiseprint=torch.zeros(1, 1, 32, 32))
    assert cap.strides == {} and cap.notes == {}
    assert cap["fusion.stage1.ffm"].shape == (1, 8, 8, 8) and cap.missing == ["noiseprint"]
    with pytest.raises(KeyError, match="not produced by the last forward"):
        cap["noiseprint"]


def test_direct_calls_of_the_parts_never_mix_two_inputs_in_one_record(tiny):
    """model(x) then model.forward_features(y, ...) kept x's decoder entries beside y's encoder
    entries with `missing` empty; the parts of one forward called in turn add up."""
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    names = ["noiseprint", "rgb.stage1.out", "fusion.stage1.ffm", "decoder.anomaly.c4"]
    with torch.no_grad(), capture(tiny, names) as ref:
        tiny(y)
    with torch.no_grad(), capture(tiny, names) as cap:
        tiny(x)
        assert cap.missing == []
        tiny.forward_features(y, tiny.forward_noiseprint(y))
        assert cap.missing == ["decoder.anomaly.c4"]
        for n in names[:3]:
            assert torch.equal(cap[n], ref[n]), n
        feats = tiny.forward_features(x, tiny.forward_noiseprint(x))  # the parts in turn
        tiny.forward_heads(feats, (32, 32))
        assert cap.missing == []
    with torch.no_grad(), capture(tiny, names) as whole:
        tiny(x)
    for n in names:
        assert torch.equal(cap[n], whole[n]), n
    assert _hook_count(tiny) == 0

    # a Ctrl-C inside a forward skips the hooks that count calls down: the count stayed up and no
    # later call of a part started a fresh record (the same capture reused, or the same block)
    def interrupt(module, args):
        raise KeyboardInterrupt

    again = capture(tiny, names)
    for reuse in (False, True):
        with torch.no_grad(), again:
            h = tiny.decode_head.register_forward_pre_hook(interrupt)
            with pytest.raises(KeyboardInterrupt):
                tiny(y)
            h.remove()
            if reuse:
                continue
            tiny(x)
            tiny.forward_features(y, tiny.forward_noiseprint(y))
            assert again.missing == ["decoder.anomaly.c4"]
    with torch.no_grad(), again:
        tiny(x)
        tiny.forward_features(y, tiny.forward_noiseprint(y))
        assert again.missing == ["decoder.anomaly.c4"]
    assert _hook_count(tiny) == 0


def test_grad_refuses_attention_maps(tiny):
    """Attention maps are recomputed beside the forward: with grad=True they never got a gradient,
    while the docstring promised captured tensors are part of the graph."""
    with pytest.raises(ValueError, match="attention maps .*no gradient"):
        capture(tiny, ["rgb.stage1.block0", "rgb.stage1.block0.attention"], grad=True)
    with pytest.raises(ValueError, match="attention"):
        capture(tiny, "rgb.stage1.*", grad=True)
    assert _hook_count(tiny) == 0


def test_reading_an_unstarted_capture_or_a_misspelled_name_says_so(tiny):
    cap = capture(tiny, "fusion.stage1.ffm")  # no `with`: records nothing
    with torch.no_grad():
        tiny(torch.rand(1, 3, 32, 32))
    with pytest.raises(RuntimeError, match="context manager"):
        _ = cap.tensors
    with pytest.raises(RuntimeError, match="context manager"):
        _ = cap.missing
    with torch.no_grad(), cap:
        tiny(torch.rand(1, 3, 32, 32))
    assert cap["fusion.stage1.ffm"].shape == (1, 8, 8, 8)
    with pytest.raises(KeyError, match="did you mean 'fusion.stage1.ffm'"):
        cap["fusion.stage1.fmm"]
    with pytest.raises(KeyError, match="not asked for"):
        cap["fusion.stage2.ffm"]
    with pytest.raises(KeyError, match="did you mean 'fusion.stage1.ffm'"):
        list_layers(tiny, (32, 32))["fusion.stage1.fmm"]


def test_in_and_for_on_a_capture_speak_of_the_recorded_names(tiny):
    """`"detection.logit" in cap` raised KeyError('unknown layer 0 ...'): without __contains__
    Python fell back to cap[0]."""
    x = torch.rand(1, 3, 64, 64)
    with capture(tiny, ["detection.logit", "noiseprint"]) as cap:
        tiny(x)
    assert "detection.logit" in cap and "rgb.stage1.out" not in cap and 0 not in cap
    assert sorted(cap) == ["detection.logit", "noiseprint"]


def test_sizes_and_names_that_would_show_nothing_are_refused(tiny):
    """list_layers printed shapes (negative ones too) for sizes the model refuses; capture(model,
    []) recorded nothing while capture(model, "") was refused."""
    from trufor_lab.model.capture import capture

    side = tiny.min_side
    for bad in ((10, 10), (1, 1), (0, -3), (side - 1, 64), (64.0, 64), (True, 64)):
        with pytest.raises(ValueError, match=f"each side at least {side} pixels"):
            list_layers(tiny, bad)
    assert list_layers(tiny, (np.int64(side), side)).input_size[0] == side  # numpy integers are sizes
    with pytest.raises(KeyError, match="no layer names given"):
        capture(tiny, [])


def test_a_global_module_hook_acts_in_analyze_and_predict_as_in_the_plain_forward():
    """``register_module_forward_hook`` acts on every module: the exact path, which fuses and
    skips modules, would leave it out unsaid; analyze and predict take the plain forward."""
    import trufor_lab as tl
    from trufor_lab.inference.predict import predict
    from trufor_lab.model.interventions import intervention_label

    m = tl.load(device="cpu")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 256
    calls = []

    def zero_dncnn_3x3(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d) and mod.in_channels == mod.out_channels == 64:
            calls.append(1)
            return out * 0

    clean = tl.analyze(m, img).score
    h = torch.nn.modules.module.register_module_forward_hook(zero_dncnn_3x3)
    try:
        with torch.no_grad():
            plain = float(m(x).score)
        n = len(calls)
        r = tl.analyze(m, img)
        assert len(calls) == 2 * n
        assert float(predict(m, x).score) == pytest.approx(plain, abs=1e-6) and len(calls) == 3 * n
        assert "global module hooks" in intervention_label(m)
    finally:
        h.remove()
    assert n > 0 and abs(plain - clean) > 1e-4
    assert r.score == pytest.approx(plain, abs=1e-6)
    assert any("global module hooks" in note for note in r.notes)
    assert intervention_label(m) == ""
