"""The casebook's "Classic filters" tab (ELA, noise level, JPEG ghosts, double-JPEG map)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from trufor_lab.casebook.casebook import CLASSIC_TAB, Casebook
from trufor_lab.casebook.classic_tab import FILTERS, classic_filters, classic_section_html
from trufor_lab.lab import forgeries as F


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    """The best installed model (the demo TruFor in a checkout): the tab is shown next to its answer."""
    from trufor_lab.inference.load import load

    return load(device="cpu")


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return F.demo_images(128)["chelsea"]


def test_filters_keep_the_jpeg_tables_and_say_when_not_applicable(picture):
    jpeg = classic_filters(encode(picture, "JPEG", quality=80))
    png = classic_filters(encode(picture, "PNG"))
    assert list(jpeg) == [f[0] for f in FILTERS] == ["ela", "noise", "jpeg_ghost", "dq_aligned"]
    assert jpeg["dq_aligned"].captures["applicable"] and not png["dq_aligned"].captures["applicable"]
    html = classic_section_html(png)
    assert "Not applicable here" in html and "needs a JPEG" in html
    assert html.count("<h4") == 4 and "Misleads when" in html and "data:image/png;base64," in html


def test_casebook_shows_classic_filters_next_to_trufor(model, picture):
    cb = Casebook(model)
    cb.analyze_bytes(encode(picture, "JPEG", quality=85), "viral.jpg")
    if cb.tabs is not None:
        titles = [cb.tabs.get_title(i) for i in range(len(cb.tabs.children))]
        assert titles[:2] == ["Result", CLASSIC_TAB] and len(titles) == 5
        assert "Error level analysis" in cb.classic_html.value and "TruFor" in cb.classic_html.value
    assert sorted(cb.classic) == sorted(f[0] for f in FILTERS)
    assert CLASSIC_TAB in cb.static_html()
    assert CLASSIC_TAB not in Casebook(model, classic=False).static_html()
