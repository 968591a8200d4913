"""``FailureGallery``: browse the failure cases of an evaluation one at a time."""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from trufor_lab.lab.datasets import MaskConvention
from trufor_lab.lab.failures import (
    EvaluationLike,
    as_evaluation,
    pick_cases,
    render_cases,
)
from trufor_lab.widgets.display import StaticFallbackDisplay, one_line

__all__ = ["FailureGallery"]


class FailureGallery(StaticFallbackDisplay):
    """Browse failure cases one at a time with a dropdown (ipywidgets); without widgets it
    displays as the static :func:`failure_gallery` figure.

    The call shape of every viewer (:mod:`trufor_lab.widgets`): ``set(index=i)`` shows case ``i``
    and returns its PNG (``select(i)``, its older name, does the same); ``state`` is
    ``{"index": i}``; ``figure()`` draws the current case, ``png`` is its picture; ``widget`` is
    the UI (None without ipywidgets); ``gallery()`` draws every case in one Figure.
    """

    dpi: int = 72

    def __init__(
        self,
        evaluation: EvaluationLike,
        k: int = 8,
        *,
        cases: Sequence[Mapping[str, Any]] | None = None,
        convention: MaskConvention | None = None,
    ) -> None:
        self.evaluation = as_evaluation(evaluation)
        self.cases: list[dict[str, Any]] = (
            [dict(c) for c in cases] if cases is not None else pick_cases(self.evaluation, k)
        )
        self.convention = convention
        self.index = 0
        self._box: Any = None
        self._image: Any = None
        self._dropdown: Any = None
        self._message: Any = None

    def figure(self, index: int | None = None) -> Any:
        """The Figure of case ``index`` (default: the selected one)."""
        i = self.index if index is None else index
        return render_cases(self.evaluation, self.cases[i : i + 1], self.convention, 3.0)

    def gallery(self) -> Any:
        """All cases in one Figure (the static fallback)."""
        return render_cases(self.evaluation, self.cases, self.convention, 2.0)

    def _png(self, fig: Any) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()

    @property
    def state(self) -> dict[str, Any]:
        """The selection, as a viewer's state: ``{"index": i}``."""
        return {"index": self.index}

    @property
    def png(self) -> bytes:
        """The current case's picture as PNG bytes."""
        return self._png(self.figure())

    def set(self, **changes: Any) -> bytes:
        """``set(index=i)``: show case ``i``, as every viewer's ``set`` changes its state; returns its PNG."""
        unknown = sorted(set(changes) - {"index"})
        if unknown:
            raise KeyError(f"unknown gallery setting {unknown[0]!r}; one of ['index']")
        return self.select(changes.get("index", self.index))

    def select(self, index: int) -> bytes:
        """Show case ``index`` (the dropdown follows); returns its PNG. A case that cannot be drawn
        raises and leaves the selection as it was."""
        index = int(index)
        if not 0 <= index < len(self.cases):
            raise IndexError(f"case {index} out of range (0..{len(self.cases) - 1})")
        png = self._png(self.figure(index))
        self.index = index
        if self._image is not None:
            self._image.value = png
        if self._message is not None:  # a failed pick's message said nothing of this case
            self._message.value = ""
        if self._dropdown is not None and self._dropdown.value != index:
            self._dropdown.value = index  # its callback sees the case already selected
        return png

    def _on_pick(self, change: dict) -> None:
        """The dropdown's callback: never raises (an error there is lost in the log); a case that
        cannot be drawn puts the dropdown back and says why in one line above the picture."""
        index = int(change["new"])
        if index == self.index:
            return
        try:
            self.select(index)
        except Exception as e:
            self._dropdown.value = self.index
            self._message.value = f'<span style="color:#b00">{html.escape(f"case {index}: {one_line(e)}")}</span>'

    @property
    def options(self) -> list[tuple[str, int]]:
        return [(f"{c.get('case', '?')}: {c.get('id')} ({c.get('reason', '')})", i) for i, c in enumerate(self.cases)]

    @property
    def widget(self) -> Any:
        """Dropdown above the selected case's picture, or None without ipywidgets or cases."""
        if self._box is not None or not self.cases:
            return self._box
        try:
            import ipywidgets as w  # lazy: the widget stack is only needed in a notebook
        except Exception:
            return None
        dropdown = w.Dropdown(options=self.options, value=self.index, description="case", layout=w.Layout(width="auto"))
        self._image = w.Image(value=self._png(self.figure()), format="png", layout=w.Layout(max_width="100%"))
        self._dropdown, self._message = dropdown, w.HTML("")
        dropdown.observe(self._on_pick, names="value")
        self._box = self._close_with(w.VBox([dropdown, self._message, self._image]))
        return self._box

    def _forget_widgets(self) -> None:
        self._image, self._dropdown, self._message = None, None, None

    def _static_png(self) -> bytes | None:
        return self._drawn_or_none(lambda: self._png(self.gallery()))

    def __repr__(self) -> str:
        return f"FailureGallery({len(self.cases)} case(s), selected {self.index})"
