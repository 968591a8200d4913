"""The console repr of every public record that holds arrays: one line, arrays by dtype and shape.

A notebook shows a cell's last value by ``_repr_html_`` when it has one, else by ``repr``; a
dataclass repr printed every array in full (dozens of lines of numbers per record)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trufor_lab.common.arrays import record_repr


@pytest.fixture(scope="module")
def records(recipe_model, tampered2, one_thread) -> dict:
    """Each record as a public function returns it, on a 64x64 crop of an official sample."""
    import trufor_lab as tl
    from trufor_lab.casebook.align import line_up
    from trufor_lab.casebook.compare import compare
    from trufor_lab.interpret import features as F
    from trufor_lab.interpret.ablate import ablation_study
    from trufor_lab.lab.classic import read_source
    from trufor_lab.lab.perturb import sweep
    from trufor_lab.inference.samples import sample
    from trufor_lab.training import TrainConfig, builtin_images

    img = tampered2[80:144, 80:144].copy()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    r = tl.analyze(recipe_model, img, capture=F.branch_comparison_names())
    fmap = r.captures["rgb.stage1.out"]
    with torch.no_grad():
        out = recipe_model(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 256)
    crop = img[4:60, 3:62]
    return {
        "LoadedImage": tl.load_image(buf.getvalue(), name="a.jpg"),
        "SampleImage": sample("tampered2.png", max_side=64),
        "TruForOutput": out,
        "Source": read_source(buf.getvalue(), "a.jpg"),
        "ChannelStats": F.channel_stats(fmap, "rgb.stage1"),
        "SpatialStats": F.spatial_stats(fmap),
        "PCAImage": F.pca_rgb(fmap),
        "BranchComparison": F.branch_similarity(r.captures),
        "Alignment": line_up(img, crop),
        "Comparison": compare(img, crop, recipe_model),
        "SweepResult": sweep(recipe_model, img, None, "jpeg", [90, 70]),
        "AblationStudy": ablation_study(recipe_model, [img], ablations=["uniform_pooling"]),
        "TrainConfig": TrainConfig(pristine=builtin_images("train", n_scenes=2, scene_size=64)),
    }


def _arrays(v) -> list:
    """The arrays a field holds (itself, or the items of a list or tuple of them)."""
    if isinstance(v, (np.ndarray, torch.Tensor)):
        return [v]
    if isinstance(v, (list, tuple)):
        return [x for x in v if isinstance(x, (np.ndarray, torch.Tensor))]
    return []


NAMES = [
    "LoadedImage",
    "SampleImage",
    "TruForOutput",
    "Source",
    "ChannelStats",
    "SpatialStats",
    "PCAImage",
    "BranchComparison",
    "Alignment",
    "Comparison",
    "SweepResult",
    "AblationStudy",
    "TrainConfig",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_record_in_the_console_is_one_line_with_its_arrays_shapes(records, name):
    x = records[name]
    assert type(x).__name__ == name
    text = repr(x)
    assert len(text.splitlines()) == 1 and len(text) < 800, text
    assert text.startswith(f"{name}(")
    fields = x._fields if hasattr(x, "_fields") else list(vars(x))
    lists = [f for f in fields if isinstance(getattr(x, f), (list, tuple, dict))]
    counted = [f for f in lists if f"{f}={len(getattr(x, f))} (see .{f})" in text]  # a long list
    shapes = [tuple(a.shape) for f in fields if f not in counted for a in _arrays(getattr(x, f))]
    assert shapes or counted
    for s in shapes:
        assert str(s) in text, (s, text)
    assert "array(" not in text and "tensor(" not in text
    if hasattr(x, "table"):  # the rows are the notebook's table, not the console's line
        assert "table" in counted, text


def test_record_repr_reads_back_its_numbers_and_counts_long_lists(records):
    """Numbers exactly (a float32 and a float64 each by the shortest text that reads back as it),
    short lists shown, long ones counted as Result counts its notes; the notebook views stay."""
    s = records["Source"]
    assert repr(s) == (
        "Source(rgb=uint8 (64, 64, 3), name='a.jpg', qtable=float64 (8, 8), quality=90, notes=(), "
        "orientation=None, subsampling='4:2:0')"
    )
    a = records["Alignment"]
    assert f"peak={a.peak!r}" in repr(a) and f"shift={a.shift}" in repr(a)
    assert f"notes={len(a.notes)} (see .notes)" in repr(a)  # a sentence each
    b = records["BranchComparison"]
    assert "stages=[1, 2, 3, 4]" in repr(b) and "maps_before=[float64 (16, 16), float64 (8, 8)" in repr(b)
    c = records["Comparison"]
    assert "result_a=Result(" in repr(c) and "score=" in repr(c)
    sw = records["SweepResult"]
    # whose weights were swept, as a Result says
    assert repr(sw) == (
        f"SweepResult(perturbation='jpeg', table={len(sw.table)} (see .table), "
        f"weights='custom weights {Path(sw.weights.path).name}, sha256 {sw.weights.sha256[:12]}')"
    )
    st = records["AblationStudy"]
    assert repr(st).startswith(f"AblationStudy(table={len(st.table)} (see .table), images=[")
    cfg = records["TrainConfig"]
    assert f"pristine={len(cfg.pristine)} (see .pristine)" in repr(cfg) and "lr=0.0002, " in repr(cfg)
    for name in ("Comparison", "ChannelStats", "SweepResult", "AblationStudy"):
        assert "<" in records[name]._repr_html_()


def test_record_repr_keeps_a_network_or_a_page_long_value_to_one_line():
    from dataclasses import dataclass, field

    @dataclass
    class Trained:
        __repr__ = record_repr
        maps: dict = field(default_factory=dict)
        model: object = None
        step: np.int64 = np.int64(3)
        score: np.float32 = np.float32(0.49999997)

    t = Trained({"a": np.zeros((2, 3), np.float32)}, torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    assert repr(t) == "Trained(maps={'a': float32 (2, 3)}, model=<Sequential>, step=3, score=0.49999997)"
