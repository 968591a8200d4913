"""An attribution holds its model for its own thread, as an ablation does: it switches the whole
model to eval mode with parameter gradients off and captum hooks a layer, so another thread's
forward, capture or ablation of that model is refused while it runs (before: the forward ran in
eval mode with captum's hooks, and the attribution's cleanup removed the other thread's hooks, so
its capture recorded nothing and its ablation silently stopped acting). Its cleanup removes only
hooks no open intervention owns, on every exit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch.nn.modules import module as torch_module

from trufor_lab.interpret import ablate
from trufor_lab.interpret import attribute as T
from trufor_lab.model.capture import capture
from trufor_lab.model.interventions import InterventionError, active_interventions


@pytest.fixture(scope="module")
def x():
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _clean(model: torch.nn.Module) -> None:
    assert _hooks(model) == 0 and not active_interventions(model)
    assert not torch_module._global_forward_hooks  # the guard's global hook is gone too
    assert not any(m.training for m in model.modules()) and all(p.requires_grad for p in model.parameters())


def _in_thread(fn):
    """``fn()`` run in another thread: its value, or the exception it raised."""
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(fn)
        return fut.exception() or fut.result()


def _captured(model, x):
    with torch.no_grad(), capture(model, "detection.logit") as cap:
        model(x)
    return cap["detection.logit"]


def _ablated(model, x):
    with torch.no_grad(), ablate.rgb_only(model):
        return model(x)


def _forward(model, x):
    with torch.no_grad():
        return model(x)


def _score(out):
    return out.det_logit.reshape(-1)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_other_threads_forwards_captures_and_ablations_are_refused_during_an_attribution(tiny, x, method):
    clean = T.attribute(tiny, x, method, target=_score)
    seen = {}

    def target(out):  # e.g. a widget's callback, while the attribution is inside its forward
        if not seen:
            seen.update(
                forward=_in_thread(lambda: _forward(tiny, x)),
                capture=_in_thread(lambda: _captured(tiny, x)),
                ablation=_in_thread(lambda: _ablated(tiny, x)),
            )
        return _score(out)

    a = T.attribute(tiny, x, method, target=target)
    for what, err in seen.items():
        assert isinstance(err, InterventionError), (what, err)
        msg = str(err)
        assert f"'{method} attribution'" in msg and "MainThread" in msg and "\n" not in msg, msg
    np.testing.assert_array_equal(a.map, clean.map)  # captum's layer hook kept this thread's forward
    _clean(tiny)
    torch.testing.assert_close(_in_thread(lambda: _forward(tiny, x)).logits, _forward(tiny, x).logits)  # done: fine


def test_an_attribution_is_refused_while_another_thread_has_a_capture_or_ablation_open(tiny, x):
    """Before, the attribution ran, then its cleanup removed the other thread's hooks: the capture
    recorded nothing, the ablation's later forwards were not ablated (and still labelled so)."""
    plain, ablated = _forward(tiny, x).det_logit, _ablated(tiny, x).det_logit
    for name, opener, expected in (
        ("capture", lambda: capture(tiny, "detection.logit"), plain),
        ("rgb_only", lambda: ablate.rgb_only(tiny), ablated),
    ):
        opened, done = threading.Event(), threading.Event()

        def other():
            with opener() as block:
                opened.set()
                done.wait(30)
                out = _forward(tiny, x)
                return block["detection.logit"] if name == "capture" else out.det_logit

        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(other)
            assert opened.wait(30)
            try:
                with pytest.raises(InterventionError, match=f"^cannot open 'saliency attribution' .* '{name}' is open"):
                    T.attribute(tiny, x, "saliency", target=_score)
            finally:
                done.set()
            got = fut.result(30)  # the other thread's block still acts: it records, or ablates
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    _clean(tiny)


def test_cleanup_keeps_the_hooks_of_a_capture_still_open_and_removes_a_stray_hook(tiny, x):
    """A capture started inside the attribution (its own thread) and still open at the end kept
    no hook before: the cleanup removed every hook added meanwhile."""
    cap = capture(tiny, "detection.logit")

    def target(out):
        if not cap._handles:
            cap.start()
            tiny.decode_head.register_forward_hook(lambda *a: None)  # a stray hook: removed
        return _score(out)

    try:
        T.attribute(tiny, x, "saliency", target=target)
        assert len(tiny.decode_head._forward_hooks) == 0
        out = _forward(tiny, 1 - x)  # another image than the attribution's: recorded
        torch.testing.assert_close(cap["detection.logit"], out.det_logit, rtol=0, atol=0)
    finally:
        cap.release()
    _clean(tiny)


def test_an_interrupted_attribution_leaves_nothing_behind(tiny, x):
    tiny.backbone.train()  # restored as it was found, whichever way the call ends

    def interrupt(out):
        raise KeyboardInterrupt

    try:
        for method in ("saliency", "gradcam", "modality"):
            with pytest.raises(KeyboardInterrupt):
                T.attribute(tiny, x, method, target=interrupt, **({"n_steps": 2} if method == "modality" else {}))
            assert tiny.backbone.training and not tiny.decode_head.training
            assert _hooks(tiny) == 0 and not active_interventions(tiny) and not torch_module._global_forward_hooks
    finally:
        tiny.eval()
    _clean(tiny)
    assert isinstance(_in_thread(lambda: _forward(tiny, x)).logits, torch.Tensor)  # no thread is refused now
