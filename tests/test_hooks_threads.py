"""Captures and ablations act for the thread that opened them: another thread's forward on the
same model (a widget's callback, a thread pool over a folder) is neither recorded nor silently
ablated; hooks are removed on every exit."""

from __future__ import annotations

import contextlib
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from trufor_lab.interpret import ablate
from trufor_lab.model.capture import capture
from trufor_lab.model.interventions import InterventionError, active_interventions


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _in_thread(fn):
    """``fn()`` run in another thread: its value, or the exception it raised."""
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(fn)
        return fut.exception() or fut.result()


def test_a_capture_records_only_its_own_threads_forwards(tiny):
    xa, xb = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    before = _hooks(tiny)
    with torch.no_grad():
        ref_a, ref_b = tiny(xa), tiny(xb)
        with capture(tiny, ["detection.logit", "fusion.stage1.ffm"]) as cap:
            tiny(xa)
            out_b = _in_thread(lambda: tiny(xb))  # e.g. a widget's callback analysing another image
            # the other thread's own capture records its own image at the same time
            cap_b = _in_thread(lambda: _captured(tiny, xb))
    torch.testing.assert_close(cap["detection.logit"], ref_a.det_logit, rtol=0, atol=0)  # not xb's
    torch.testing.assert_close(out_b.det_logit, ref_b.det_logit, rtol=0, atol=0)
    torch.testing.assert_close(cap_b["detection.logit"], ref_b.det_logit, rtol=0, atol=0)
    assert cap.other_threads == 2
    assert _hooks(tiny) == before and not active_interventions(tiny)

    with capture(tiny, "detection.logit") as only_other, torch.no_grad():
        _in_thread(lambda: tiny(xb))
    with pytest.raises(KeyError, match="1 forward.* of other threads were not recorded"):
        only_other["detection.logit"]


def _captured(model, x):
    with torch.no_grad(), capture(model, "detection.logit") as cap:
        model(x)
    return cap


def _ablated(model, x):
    with torch.no_grad(), ablate.rgb_only(model):
        return model(x)


def test_an_ablation_refuses_forwards_of_other_threads(tiny):
    x = torch.rand(1, 3, 64, 64)
    before = _hooks(tiny)
    with torch.no_grad():
        ref = tiny(x)
        with ablate.no_frm(tiny):  # an attribute, not a hook: every thread's forward would read it
            ablated = tiny(x)
            err = _in_thread(lambda: tiny(x))
            assert isinstance(err, InterventionError), err
            msg = str(err)
            assert "'no_frm'" in msg and "MainThread" in msg and "\n" not in msg
            err = _in_thread(lambda: tiny.forward_features(x, tiny.forward_noiseprint(x)))  # a part called directly
            assert isinstance(err, InterventionError), err
        assert _hooks(tiny) == before and not active_interventions(tiny)
        assert not torch.equal(ablated.logits, ref.logits)
        torch.testing.assert_close(_in_thread(lambda: tiny(x)).logits, ref.logits, rtol=0, atol=0)  # closed: fine


def test_opening_across_threads_is_refused_when_one_would_act_on_the_other(tiny):
    x = torch.rand(1, 3, 64, 64)
    before = _hooks(tiny)
    with capture(tiny, "detection.logit"):
        err = _in_thread(lambda: _ablated(tiny, x))
        assert isinstance(err, InterventionError) and "'capture'" in str(err), err
    with ablate.rgb_only(tiny):
        err = _in_thread(lambda: _captured(tiny, x))
        assert isinstance(err, InterventionError) and "'rgb_only'" in str(err), err
    assert _hooks(tiny) == before and not active_interventions(tiny)


def test_a_forward_already_running_when_an_ablation_opens_is_refused(tiny):
    x = torch.rand(1, 3, 64, 64)
    before = _hooks(tiny)
    inside, go = threading.Event(), threading.Event()

    def wait(module, args):  # the other thread's forward pauses inside the encoder
        inside.set()
        go.wait(30)

    handle = tiny.backbone.FFMs[0].register_forward_pre_hook(wait)
    try:
        with torch.no_grad(), ThreadPoolExecutor(1) as pool:
            fut = pool.submit(tiny, x)
            assert inside.wait(30)
            with ablate.no_ffm_cross(tiny):
                go.set()
                err = fut.exception(30)
    finally:
        handle.remove()
    assert isinstance(err, InterventionError) and "'no_ffm_cross'" in str(err), err
    assert _hooks(tiny) == before


def test_a_compiled_encoder_under_an_ablation_keeps_its_graph(tiny):
    """The guard's hook, traced by torch.compile, broke the graph at every module call (Dynamo
    cannot trace a thread's identity): the fast mode's compiled encoder ran in one piece per module,
    slower than eager, while any ablation was open, with Dynamo's warnings in the notebook."""
    import torch._dynamo  # lazy: only this test compiles

    x = torch.rand(1, 3, 64, 64)
    graphs: list[int] = []

    def counting(gm, example_inputs):  # a backend that counts the graphs Dynamo hands it, runs them eagerly
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    def compiled_graphs(ablated: bool) -> tuple[int, torch.Tensor]:
        torch._dynamo.reset()
        graphs.clear()
        f = torch.compile(tiny.forward_features, backend=counting)
        with torch.no_grad(), ablate.uniform_pooling(tiny) if ablated else contextlib.nullcontext():
            out = f(x, npm)
        return len(graphs), out[-1]

    with torch.no_grad():
        npm = tiny.forward_noiseprint(x)
        ref = tiny.forward_features(x, npm)[-1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # "Dynamo does not know how to trace ... get_ident"
            plain, out_plain = compiled_graphs(False)
            under, out_under = compiled_graphs(True)
    finally:
        torch._dynamo.reset()
    assert under == plain, (under, plain)
    torch.testing.assert_close(out_under, ref, rtol=0, atol=0)  # pooling is after the encoder: unchanged
    torch.testing.assert_close(out_plain, ref, rtol=0, atol=0)
    assert _hooks(tiny) == 0 and not active_interventions(tiny)


def test_a_copy_made_while_an_ablation_is_open_says_what_it_carries(tiny):
    """The refusal's advice, a copy of the model, taken while the ablation was open: the copy kept
    the ablated values of the knobs and the ablation's record of them, so its outputs were the
    ablated model's with nothing said (its label was empty, as the plain model's)."""
    import copy

    from trufor_lab.model.interventions import intervention_label

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = tiny(x)
        with ablate.no_frm(tiny):
            assert intervention_label(tiny) == "no_frm"  # the ablation itself: its knobs are its own
            err = _in_thread(lambda: tiny(x))
            assert isinstance(err, InterventionError) and "made before it opened" in str(err), err
            twin = _in_thread(lambda: copy.deepcopy(tiny))
        out = twin(x)
    assert not torch.equal(out.logits, ref.logits)  # the copy is ablated for good
    label = intervention_label(twin)
    assert "lambda_c=0" in label and "lambda_s=0" in label, label
    assert intervention_label(tiny) == ""


def test_a_module_shared_by_two_guarded_models_stays_guarded_for_the_one_still_open(tiny):
    """The guard knew one model per module: closing an intervention on a wrapper around the model
    (or on a model sharing its parts) unguarded the model's modules while its own ablation was
    still open, and another thread's forward of it ran ablated, unrefused."""
    from trufor_lab.model.interventions import registered

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), ablate.no_frm(tiny):
        with registered(Wrapper(tiny), "wrapper's own", lean_ok=False):
            pass
        err = _in_thread(lambda: tiny(x))
    assert isinstance(err, InterventionError) and "'no_frm'" in str(err), err
    assert _hooks(tiny) == 0 and not active_interventions(tiny)
    assert isinstance(_in_thread(lambda: tiny(x)).logits, torch.Tensor)  # all closed: runs


def test_another_threads_capture_leaves_this_threads_analysis_as_it_was(tiny):
    """A capture open in another thread (a widget's) sent this thread's analyze() to the plain
    forward: other numbers (~1e-3) and a note naming a capture this thread never opened."""
    import numpy as np

    import trufor_lab as tl

    img = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ref = tl.analyze(tiny, img)
    opened, done = threading.Event(), threading.Event()

    def hold():
        with capture(tiny, "detection.logit"):
            opened.set()
            done.wait(30)

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(hold)
        try:
            assert opened.wait(30)
            r = tl.analyze(tiny, img)
        finally:
            done.set()
        fut.result(30)
    np.testing.assert_array_equal(r.map, ref.map)
    assert r.score == ref.score and r.notes == ref.notes
    assert _hooks(tiny) == 0 and not active_interventions(tiny)
