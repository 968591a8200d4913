"""The casebook: one notebook widget for a fact-checker's case, and a two-version comparison.

>>> from trufor_lab.casebook.casebook import Casebook, compare
>>> cb = Casebook()                       # loads the best model on first use
>>> cb                                    # upload a file or type a path; tabs fill in
>>> cb.analyze_path("viral.jpg")          # the same, from code
>>> cb.compare("earlier_post.jpg")        # align, difference map, both analyses
>>> cb.save_report("case.html")           # one self-contained HTML file

Without ipywidgets (or where widgets cannot render) the casebook still works from code and
displays as static HTML. ``trufor-lab report`` (:mod:`trufor_lab.cli.report`) writes the report from a shell.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Union

from torch import nn

from trufor_lab.casebook import report as R
from trufor_lab.casebook.classic_tab import classic_filters, classic_section_html
from trufor_lab.casebook.align import estimate_translation
from trufor_lab.casebook.compare import Comparison, compare
from trufor_lab.casebook.report import (
    build_report,
    comparison_section_html,
    same_file,
    write_report,
    written_here,
)
from trufor_lab.common.paths import display_name
from trufor_lab.forensics.provenance import read_provenance
from trufor_lab.inference.analyze import Result, analyze
from trufor_lab.inference.load import load
from trufor_lab.inference.preprocess import ImageError, ImageLike, load_image

__all__ = ["Casebook", "Comparison", "compare", "estimate_translation"]

Source = Union[str, os.PathLike, bytes]


_TAB_TITLES = ("Result", "Noiseprint++", "Provenance", "Compare")
#: The tab with the classic filters (ELA, noise, JPEG ghosts, double JPEG); shown second.
CLASSIC_TAB = "Classic filters"
_STEPS = 5


class Casebook:
    """A notebook widget: upload an image (or type a path), see the analysis in tabs, save a report.

    Programmatic use: :meth:`analyze_path`, :meth:`analyze_bytes`, :meth:`compare`,
    :meth:`save_report`; ``result``, ``provenance``, ``comparison`` hold the latest outputs and
    ``tabs`` the ipywidgets Tab (``None`` when ipywidgets is unavailable). ``classic`` holds
    the classic filters of the current image (:mod:`trufor_lab.casebook.classic_tab`), shown in
    the "Classic filters" tab next to TruFor's answer; ``classic=False`` leaves them out.
    """

    def __init__(self, model: nn.Module | None = None, *, device: str | None = None, classic: bool = True) -> None:
        self.model = model
        self.device = device
        self.with_classic = classic
        #: Called with the casebook after each analysis and comparison (e.g. the web app's report link).
        self.listeners: list[Any] = []
        self.classic: dict[str, Result] = {}
        self.classic_html: Any = None
        self.result: Result | None = None
        self.provenance = None
        self.comparison: Comparison | None = None
        self.error: str | None = None
        self._working_on: str | None = None  # the file being read, named in an error
        self._working_path: str | None = None  # ... and the path it was given as, if any
        self._source_path: str | None = None  # the case's files on disk (a report never replaces them)
        self._compared_path: str | None = None
        self._replacing = False  # a new image is on its way: the tabs show the previous one
        self._html: dict[str, tuple[tuple[Any, ...], str]] = {}  # see _drawn
        #: Uploads above this many bytes are refused with one line (``None``: no limit).
        self.max_upload_bytes: int | None = None
        self.widget: Any = None
        self.tabs: Any = None
        self.upload: Any = None
        self.progress: Any = None
        try:
            self._build_widgets()
        except ImportError:
            self.widget = self.tabs = None

    # -- widgets ----------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        import ipywidgets as w  # lazy: the widget stack is only needed in a notebook

        self.upload = w.FileUpload(
            accept="image/*,.jpg,.jpeg,.png,.webp,.tif,.tiff,.bmp,.gif", multiple=False, description="Upload image"
        )
        self.path_text = w.Text(placeholder="or a path: /data/photo.jpg", layout=w.Layout(width="50%"))
        self.path_button = w.Button(description="Analyze", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=_STEPS, description="", layout=w.Layout(width="30%"))
        self.status = w.HTML(value="Upload an image or type a path.")
        self.tab_html = [w.HTML(value="") for _ in _TAB_TITLES]
        self.compare_text = w.Text(
            placeholder="path of another version (e.g. the earlier post)", layout=w.Layout(width="50%")
        )
        self.compare_button = w.Button(description="Compare")
        compare_box = w.VBox([w.HBox([self.compare_text, self.compare_button]), self.tab_html[3]])
        children, titles = [*self.tab_html[:3], compare_box], list(_TAB_TITLES)
        if self.with_classic:
            self.classic_html = w.HTML(value="")
            children.insert(1, self.classic_html)
            titles.insert(1, CLASSIC_TAB)
        self.tabs = w.Tab(children=children)
        for i, t in enumerate(titles):
            self.tabs.set_title(i, t)
        self.upload.observe(self._on_upload, names="value")
        self.path_button.on_click(self._on_path)
        self.compare_button.on_click(self._on_compare)
        self.widget = w.VBox(
            [
                w.HTML("<b>TruFor casebook</b>"),
                w.HBox([self.upload, self.path_text, self.path_button]),
                w.HBox([self.progress, self.status]),
                self.tabs,
            ]
        )

    def _step(self, i: int, text: str) -> None:
        if self.progress is not None:
            self.progress.value = i
            self.status.value = _esc(text) + (self._still_shown() if i < _STEPS else "")

    def _fail(self, e: BaseException) -> None:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        msg = lines[0] if lines else type(e).__name__
        name, path = self._working_on, self._working_path
        if name:  # an upload has no path: errors name it "<bytes>"
            msg = msg.replace("<bytes>", name)
        # a message that already starts with the file (its name, or the path typed) is not given it twice
        named = not name or msg.startswith(name) or (path is not None and msg.startswith(path))
        self.error = msg if named else f"{name}: {msg}"
        if self.progress is not None:
            self.progress.value = 0
            self.status.value = f'<span style="color:#b00020">error: {_esc(self.error)}</span>' + self._still_shown()

    def _still_shown(self) -> str:
        """While a new image is read or after it failed, the tabs and the report show the last
        image that was analyzed: say which."""
        if self.result is None or not self._replacing:
            return ""
        return (
            f" <i>(the tabs and the report still show the previous image, {_esc(display_name(self.result.name))})</i>"
        )

    def _on_upload(self, change: dict) -> None:
        files = _uploaded_files(change.get("new"))
        if not files:
            return
        name, data = files[0]
        self._working_path = None  # an upload has no path
        try:
            if self.max_upload_bytes is not None and len(data) > self.max_upload_bytes:
                self._working_on, self._replacing = display_name(name), True
                raise ImageError(
                    f"{display_name(name)} is {len(data) / 2**20:.1f} MB; the limit is {self.max_upload_bytes / 2**20:g} MB"
                )
            self.analyze_bytes(data, name)
        except Exception as e:  # a widget callback must report, never raise
            self._fail(e)
        finally:
            self._clear_upload()

    def _clear_upload(self) -> None:
        """Empty the upload widget once its file is handled: the same file uploaded again (after
        a typed path showed another image) is a new value, so it is analyzed again instead of
        being ignored as no change. The emptying itself fires with no file: nothing happens."""
        if self.upload is None or not self.upload.value:
            return
        try:
            self.upload.value = type(self.upload.value)()  # ipywidgets 8: (); 7: {}
        except Exception:  # an ipywidgets 7 read-only value: its own reset
            try:
                self.upload.value.clear()
                self.upload._counter = 0
            except Exception:
                pass

    def _on_path(self, _button: Any = None) -> None:
        path = self.path_text.value.strip()
        if not path:
            return
        try:
            self.analyze_path(path)
        except Exception as e:
            self._fail(e)

    def _on_compare(self, _button: Any = None) -> None:
        path = self.compare_text.value.strip()
        if not path:
            return
        try:
            self.compare(path)
        except Exception as e:
            self._fail(e)

    # -- analysis ---------------------------------------------------------------------------
    def _ensure_model(self) -> nn.Module:
        if self.model is None:
            self._step(1, "loading the model…")
            self.model = load(device=self.device)
        return self.model

    def analyze_path(self, path: str | os.PathLike) -> Result:
        """Analyze the image file at ``path``; raises :class:`ImageError` for a bad image."""
        self._working_path = os.fspath(path)
        result = self._run(os.fspath(path), display_name(os.fspath(path)))
        self._source_path, self._compared_path = os.fspath(path), None
        return result

    def analyze_bytes(self, data: bytes | bytearray | memoryview, name: str = "upload") -> Result:
        """Analyze an image given as bytes (an upload) named ``name``."""
        self._working_path = None
        result = self._run(bytes(data), name)
        self._source_path = self._compared_path = None
        return result

    def _run(self, source: Source, name: str) -> Result:
        name = display_name(name)  # an upload's name is the sender's: no control or bidi characters
        self.error, self._working_on, self._replacing = None, name, True
        self._step(1, f"reading {name}…")
        try:  # fail fast, before the model loads; read once: the analysis and the filters take these pixels
            loaded = load_image(source, name=None if isinstance(source, str) else name)
        except ImageError as e:
            raise ImageError(str(e).replace("<bytes>", name, 1)) from None
        # read-only: the result and the four filters share these pixels, turned as views (each
        # held a turned copy of its own: five of a 12 MP photo)
        loaded.rgb.flags.writeable = False
        model = self._ensure_model()
        self._step(2, f"analyzing {name}…")
        result = analyze(model, loaded, name=name, exif_transpose=True)  # shown as viewers show it
        self._step(3, "reading provenance…")
        try:
            prov = read_provenance(source)
            prov.name = name
        except ValueError as e:
            raise ImageError(str(e).replace("<bytes>", name, 1)) from None
        classic = self.classic
        if self.with_classic:
            self._step(4, "classic filters (ELA, noise, JPEG ghosts, double JPEG)…")
            filters = classic_filters(source, name=name, loaded=loaded)
            classic = {k: r.as_shown() for k, r in filters.items()}
        self._step(4, "drawing figures…")
        # the new case replaces the old one whole, or not at all (a failed drawing keeps the old)
        self._replace_case(result=result, provenance=prov, comparison=None, classic=classic)
        self._working_on, self._replacing = None, False
        self._notify()  # the report link follows the new case before "done" is shown
        self._step(_STEPS, f"done: {result.summary()}")
        return result

    def _replace_case(self, **state: Any) -> None:
        before = {k: getattr(self, k) for k in state}
        for k, v in state.items():
            setattr(self, k, v)
        try:
            self._render(compare_only=set(state) == {"comparison"})
        except BaseException:
            for k, v in before.items():
                setattr(self, k, v)
            try:
                self._render()
            except Exception:  # the old case drew before; nothing more to do if it cannot now
                pass
            raise

    def compare(self, other: ImageLike | Result, name: str | None = None) -> Comparison:
        """Compare the current image with ``other`` (path, bytes, array or Result); fills the Compare tab."""
        self._working_on, self._replacing = None, False
        if self.result is None:
            raise RuntimeError("analyze an image first (analyze_path, analyze_bytes or the upload)")
        nb = name or (display_name(os.fspath(other)) if isinstance(other, (str, os.PathLike)) else "B")
        self._working_on, self._replacing = nb, False
        self._working_path = os.fspath(other) if isinstance(other, (str, os.PathLike)) else None
        self._step(1, f"comparing with {nb}…")
        model = self._ensure_model()
        if not isinstance(other, Result):
            try:
                other = analyze(model, other, name=nb, exif_transpose=True)
            except ImageError as e:
                raise ImageError(str(e).replace("<bytes>", nb, 1)) from None
        self._replace_case(comparison=compare(self.result, other, names=(self.result.name, nb)))
        self._compared_path = self._working_path
        self._working_on = None
        self._step(_STEPS, f"compared: {self.comparison.summary()}")
        self._notify()
        return self.comparison

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)

    # -- display ----------------------------------------------------------------------------
    def _drawn(self, key: str, of: tuple[Any, ...], make: Any) -> str:
        """The HTML of one part of the case, made once for the objects ``of`` that it shows: the
        tabs, the static view and the report share it (drawing a 12 MP photo's figures takes
        seconds). Made again when the case has another of those objects."""
        held = self._html.get(key)
        if held is None or len(held[0]) != len(of) or any(a is not b for a, b in zip(held[0], of)):
            held = self._html[key] = (of, make())
        return held[1]

    def sections_html(self) -> list[str]:
        """HTML of the four tabs (Result, Noiseprint++, Provenance, Compare)."""
        if self.result is None:
            return ["<p>No image analyzed yet.</p>"] * 3 + [_COMPARE_HINT]
        r, p = self.result, self.provenance
        return [
            self._drawn("Result", (r,), lambda: R.result_section_html(r)),
            self._drawn("Noiseprint++", (r,), lambda: R.noiseprint_section_html(r)),
            self._drawn("Provenance", (p,), lambda: R.provenance_section_html(p)),
            self._compare_html(),
        ]

    def _compare_html(self) -> str:
        c = self.comparison
        return _COMPARE_HINT if c is None else self._drawn("Comparison", (c,), lambda: comparison_section_html(c))

    def _render(self, compare_only: bool = False) -> None:
        if self.tabs is None:
            return
        if compare_only:
            self.tab_html[3].value = self._compare_html()
            return
        for box, html_text in zip(self.tab_html, self.sections_html()):
            box.value = html_text
        if self.classic_html is not None:
            self.classic_html.value = self.classic_section()

    def classic_section(self) -> str:
        """HTML of the "Classic filters" tab."""
        if self.result is None or not self.classic:
            return "<p>No image analyzed yet.</p>"
        filters, r = self.classic, self.result
        return self._drawn(CLASSIC_TAB, (filters, r), lambda: classic_section_html(filters, r))

    def static_html(self) -> str:
        """Everything as plain HTML, for frontends that cannot render widgets."""
        if self.result is None:
            return (
                "<div><b>TruFor casebook</b>: no image analyzed yet. Use "
                "<code>casebook.analyze_path(path)</code> or <code>analyze_bytes(data, name)</code>.</div>"
            )
        sections = [
            (t, s) for t, s in zip(_TAB_TITLES, self.sections_html()) if t != "Compare" or self.comparison is not None
        ]
        if self.with_classic and self.classic:
            sections.insert(1, (CLASSIC_TAB, self.classic_section()))
        return "".join(f"<h3>{t}</h3>{s}" for t, s in sections)

    def _repr_html_(self) -> str:
        return self.static_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget view where widgets render, with static HTML as the fallback."""
        bundle: dict[str, Any] = {}
        if self.widget is not None:
            try:
                bundle.update(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
            except Exception:  # no widget support here: static HTML only
                bundle = {}
        bundle["text/html"] = self.static_html()
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"Casebook({self.result.summary() if self.result is not None else 'empty'})"

    def save_report(self, path: str | os.PathLike) -> Path:
        """Write the self-contained HTML report (with the comparison, if any) atomically; never
        over an analysed image or another existing file that is not a report."""
        if self.result is None:
            raise RuntimeError("nothing to report: analyze an image first")
        out = Path(path)
        clash = next((p for p in self._case_paths if same_file(out, p)), None)
        if clash is not None:  # save_report("victim.png") replaced the evidence with HTML
            raise ValueError(
                f"{out}: refusing to write the report over the analysed image {clash}; choose another path"
            )
        if os.path.lexists(out) and out.suffix.lower() not in (".html", ".htm") and not written_here(out):
            raise ValueError(f"{out}: exists and is not a report (not .html or .htm); not overwritten")
        return write_report(out, self.report_html())

    def report_html(self) -> str:
        """The self-contained HTML report of the case (with the comparison, if any); its figures
        are the tabs' own, not drawn again."""
        if self.result is None:
            raise RuntimeError("nothing to report: analyze an image first")
        sections = self.sections_html()
        drawn = dict(zip(("Result", "Noiseprint++", "Provenance"), sections))
        if self.comparison is not None:
            drawn["Comparison"] = sections[3]
        return build_report(self.result, self.provenance, self.comparison, drawn=drawn)

    @property
    def _case_paths(self) -> list[str]:
        """The files of the case on disk: the analysed image and the compared one."""
        return [p for p in (self._source_path, self._compared_path) if p]


_COMPARE_HINT = (
    "<p>Compare this image with another version of the same picture (for example the "
    "earlier post): type its path above, or call <code>casebook.compare(path)</code>.</p>"
)


def _esc(s: str) -> str:
    return html.escape(s)


def _uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """(name, bytes) from a FileUpload value (ipywidgets 8: tuple of dicts; 7: dict by name)."""
    if not value:
        return []
    items = list(value.values()) if isinstance(value, dict) else list(value)
    out = []
    for i, item in enumerate(items):
        name = item.get("name") or (item.get("metadata") or {}).get("name") or f"upload-{i}"
        out.append((str(name), bytes(item["content"])))
    return out
