"""The viewers' common machinery: a state dict drawn by matplotlib (no pyplot) into PNG bytes and
shown in an ``ipywidgets.Image``, with a static PNG wherever widgets cannot render.

:class:`Viewer` is the base of every viewer (``set``, ``state``, ``figure``, ``png``, ``controls``,
``widget``, ``close``: the call shape in :mod:`trufor_lab.widgets`);
:class:`StaticFallbackDisplay` is the notebook display that never raises.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import html
import io
from typing import Any, Callable, Sequence

from trufor_lab.viz.figures import check_grid, check_mask, crop_region, for_display, stored_note

__all__ = [
    "StaticFallbackDisplay",
    "Viewer",
    "as_list",
    "as_masks",
    "as_results",
    "as_titles",
    "close_tree",
    "new_figure",
    "one_line",
    "stored_note",
    "widen_range",
    "widgets_available",
]


def widgets_available() -> bool:
    """Whether ipywidgets can be imported."""
    try:
        import ipywidgets  # noqa: F401  # lazy: the widget stack is only needed in a notebook
    except Exception:
        return False
    return True


def new_figure(figsize: tuple[float, float]):
    """A matplotlib Figure not registered with pyplot (nothing leaks between renders)."""
    from matplotlib.figure import Figure  # lazy: matplotlib takes about a second to import; only drawing needs it

    return Figure(figsize=figsize)


class StaticFallbackDisplay:
    """Notebook display for objects with a ``widget`` and a ``_static_png()``: the widget view
    where widgets render, with the static PNG in the same bundle as a fallback; never raises.
    When nothing can be drawn, the display says why (the error in one line), not only its repr."""

    widget: Any
    #: Why the last static picture could not be drawn (one line), or None.
    _render_error: str | None = None

    def _static_png(self) -> bytes | None:  # pragma: no cover - overridden
        return None

    def _drawn_or_none(self, draw: Callable[[], bytes]) -> bytes | None:
        """``draw()``, or None with the reason kept for the display (a display never raises)."""
        try:
            png = draw()
        except Exception as e:
            self._render_error = one_line(e)
            return None
        self._render_error = None
        return png

    def _failure_text(self) -> str:
        why = f": {self._render_error}" if self._render_error else ""
        return f"{self!r} (could not render{why})"

    def _repr_png_(self) -> bytes | None:
        return self._static_png()

    def close(self) -> None:
        """Close the UI: every control and the picture, not only the outer box (closing the box
        alone left its controls open in ipywidgets' registry, their callbacks holding this object
        and its arrays). Closing the box itself (``widget.close()``) does the same. A later
        display or ``widget`` builds a new UI."""
        box = getattr(self, "_box", None)
        self._box = None
        self._forget_widgets()
        if box is not None:
            close_tree(box)

    def _forget_widgets(self) -> None:
        """Drop the references to the closed UI's parts (subclasses keep more)."""

    def _close_with(self, box: Any) -> Any:
        """``box``, watched so that closing it closes this object's whole UI (:meth:`close`)."""

        def closed(change: dict) -> None:
            if change["new"] is None and self._box is box:
                self.close()

        with contextlib.suppress(Exception):  # a widget library without a comm trait: close() still works
            box.observe(closed, names="comm")
        return box

    def _repr_html_(self) -> str:
        png = self._static_png()
        if png is None:
            return f"<pre>{html.escape(self._failure_text())}</pre>"
        return _img_html(png)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget view where widgets render, with the static PNG as fallback in the same bundle
        (or, when nothing can be drawn, the reason as text)."""
        png = self._static_png()
        if png is not None:
            bundle: dict[str, Any] = {"text/plain": repr(self), "image/png": png}
        else:
            text = self._failure_text()
            bundle = {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}
        try:
            box = self.widget
            if box is not None:
                view = box._repr_mimebundle_()
                if view:
                    bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        except Exception:
            pass
        return bundle


class Viewer(StaticFallbackDisplay):
    """State dict -> matplotlib Figure -> PNG bytes -> ``ipywidgets.Image``; controls call :meth:`set`."""

    dpi: int = 72

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = dict(state)
        self._png: bytes = b""
        self._controls: dict[str, Any] | None = None
        self._image_widget: Any = None
        self._box: Any = None
        self._message: Any = None
        self._syncing = False
        #: Number of renders so far (tests and profiling).
        self.redraw_count = 0
        self._means: dict[tuple, tuple[Any, Any]] = {}

    def _shrunk(self, a: Any, zoom: Any, step: int) -> Any:
        """:func:`~trufor_lab.viz.figures.for_display` of ``a[zoom]``, kept while the view lasts: block means of a 12 MP
        map took a quarter of a second at every move of an opacity slider."""
        if a is None:
            return None
        if step == 1:
            return crop_region(a, zoom)
        key = (id(a), zoom, step)
        if key not in self._means:
            if len(self._means) >= 16:  # another view: the means of the last ones are dropped
                self._means.clear()
            self._means[key] = (a, for_display(crop_region(a, zoom), step))  # a kept: its id stays its own
        return self._means[key][1]

    # -- to implement -----------------------------------------------------------------------
    def render(self):
        """A matplotlib Figure of the current state."""
        raise NotImplementedError

    def _make_controls(self, w: Any) -> dict[str, Any]:
        """``{key: widget}``; a widget's value maps to state via :meth:`_control_to_state`."""
        return {}

    def _normalize(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate/convert changes (subclasses clip values, expand convenience keys)."""
        return changes

    def _after_change(self, changed: set[str]) -> None:
        """Adjust dependent state after ``changed`` keys (e.g. reset zoom on a new image)."""

    def _control_value(self, key: str) -> Any:
        return self._state[key]

    def _control_to_state(self, key: str, value: Any) -> dict[str, Any]:
        return {key: value}

    def _sync_control_options(self) -> None:
        """Update control ranges/options that depend on the state."""

    # -- API --------------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """A copy of the current state."""
        return dict(self._state)

    def set(self, **changes: Any) -> bytes:
        """Change state (keys of :attr:`state`) and redraw; returns the new PNG bytes. A change
        that fails (checked, synced to the controls or drawn) leaves state and controls as they were."""
        changes = self._normalize(dict(changes))
        unknown = [k for k in changes if k not in self._state]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self._state), n=1)
            raise KeyError(
                f"unknown viewer setting {unknown[0]!r}"
                + (f"; did you mean {close[0]!r}?" if close else f"; one of {sorted(self._state)}")
            )
        before = dict(self._state)
        changed = {k for k, v in changes.items() if _differs(self._state[k], v)}
        self._state.update(changes)
        try:
            if changed:
                self._after_change(changed)
            self._sync_controls()
            return self.redraw()
        except Exception:
            self._state = before
            with contextlib.suppress(Exception):  # the first error is the one to report
                self._sync_controls()
            raise

    def redraw(self) -> bytes:
        """Render the current state to PNG (and into the widget); returns the bytes."""
        fig = self.render()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)
        self._png = buf.getvalue()
        self.redraw_count += 1
        if self._image_widget is not None:
            self._image_widget.value = self._png
        return self._png

    def figure(self):
        """The current state drawn as a matplotlib Figure (not registered with pyplot): the static
        picture for scripts, CI and reports, no widget needed."""
        return self.render()

    @property
    def png(self) -> bytes:
        """The current picture as PNG bytes (rendered on first access)."""
        if not self._png:
            self.redraw()
        return self._png

    @property
    def controls(self) -> dict[str, Any]:
        """The control widgets by state key (empty without ipywidgets)."""
        self.widget  # noqa: B018  (builds them)
        return dict(self._controls or {})

    @property
    def widget(self) -> Any:
        """The ipywidgets UI (controls above the picture), or ``None`` without ipywidgets."""
        if self._box is not None:
            return self._box
        try:
            import ipywidgets as w  # lazy: the widget stack is only needed in a notebook
        except Exception:
            self._controls = {}
            return None
        self._controls = self._make_controls(w)
        for key, ctrl in self._controls.items():
            ctrl.observe(self._observer(key), names="value")
        self._image_widget = w.Image(value=self.png, format="png", layout=w.Layout(max_width="100%"))
        self._message = w.HTML("")
        rows = [w.HBox(list(self._controls.values())[i : i + 3]) for i in range(0, len(self._controls), 3)]
        self._box = self._close_with(w.VBox([*rows, self._message, self._image_widget]))
        self._sync_controls()
        return self._box

    def _forget_widgets(self) -> None:
        self._controls, self._image_widget, self._message = None, None, None

    def _observer(self, key: str) -> Callable[[dict], None]:
        """A control's callback; it never raises (an error in a callback is lost in the log, and
        the control would stay where the picture is not): a refused value puts the control back
        and says why above the picture."""

        def on_change(change: dict) -> None:
            if self._syncing:
                return
            try:
                self.set(**self._control_to_state(key, change["new"]))
            except Exception as e:
                with contextlib.suppress(Exception):
                    self._sync_controls()
                self._say(f"{key}: {one_line(e)}")
            else:
                self._say("")

        return on_change

    def _say(self, text: str) -> None:
        """Show ``text`` above the picture (empty: nothing)."""
        if self._message is not None:
            self._message.value = f'<span style="color:#b00">{html.escape(text)}</span>' if text else ""

    def _sync_controls(self) -> None:
        if not self._controls:
            return
        self._syncing = True
        try:
            self._sync_control_options()
            for key, ctrl in self._controls.items():
                v = self._control_value(key)
                if _differs(ctrl.value, v):
                    ctrl.value = v
        finally:
            self._syncing = False

    # -- display ----------------------------------------------------------------------------
    def _static_png(self) -> bytes | None:
        return self._drawn_or_none(lambda: self.png)

    def show(self) -> None:
        """Display in the notebook (the widget, or the static picture where widgets cannot render)."""
        try:
            from IPython.display import display  # lazy: the widget stack is only needed in a notebook
        except Exception:
            return
        display(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._state.items())})"


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget inside it (``children``), innermost first."""
    for child in tuple(getattr(widget, "children", ()) or ()):
        close_tree(child)
    with contextlib.suppress(Exception):  # already closed, or its front end gone: nothing left to free
        widget.close()


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        a = tuple(a)
    if isinstance(b, list):
        b = tuple(b)
    try:
        return bool(a != b)
    except Exception:
        return True


def _img_html(png: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def one_line(e: BaseException) -> str:
    """``"Type: message"`` on one line (the message's first non-empty line, at most 300 characters)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


def widen_range(value: Sequence[int], least: int, top: int) -> tuple[int, int]:
    """A range slider's ``(lo, hi)`` widened to at least ``least`` inside ``[0, top]``: a drag that
    closed the range shows the smallest one there instead of being refused."""
    lo, hi = sorted((int(value[0]), int(value[1])))
    if hi - lo >= least or top < least:
        return lo, hi
    hi = min(max(hi, lo + least), top)
    return hi - least, hi


def as_results(items: Any, who: str) -> list[Any]:
    """One or several Results; an object with ``to_result()`` (an
    :class:`~trufor_lab.interpret.attribution.Attribution`) is converted, anything else without a
    Result's fields is refused in one line. Each map and confidence must be on its image's grid
    (else it would be drawn misaligned)."""
    out = []
    for i, x in enumerate(as_list(items)):
        if callable(getattr(x, "to_result", None)):
            x = x.to_result()
        missing = [f for f in _RESULT_FIELDS if not hasattr(x, f)]
        if missing:
            raise TypeError(
                f"{who}: item {i} is a {type(x).__name__}, not a Result (no .{missing[0]}; "
                "objects with .to_result() are converted)"
            )
        check_grid(x)
        out.append(x)
    return out


def as_masks(results: Sequence[Any], masks: Any, who: str) -> list[Any]:
    """``masks=`` of a viewer: one ground-truth mask per result, in order (``None`` for none; a
    single array goes with the first result), each checked on its result's grid."""
    given = as_list(masks)
    if len(given) > len(results):
        raise ValueError(f"{who}: {len(given)} masks for {len(results)} results")
    return [check_mask(r, m) for r, m in zip(results, given + [None] * len(results))]


def as_titles(titles: Any, n: int, who: str) -> list[str] | None:
    """``titles=`` of a viewer: one title per result (a single string for a single result), or None."""
    if titles is None:
        return None
    given = [titles] if isinstance(titles, str) else list(titles)
    if len(given) != n:
        raise ValueError(f"{who}: {len(given)} titles for {n} results")
    return [str(t) for t in given]


_RESULT_FIELDS = ("image", "noiseprint", "map", "conf", "score", "name", "label", "captures", "weights", "size")


def as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]
