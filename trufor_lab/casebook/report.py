"""One self-contained HTML report per image, for fact-checkers: figures, numbers, provenance, caveats.

>>> from trufor_lab.casebook.report import build_report, write_report, plain_reading
>>> html = build_report(result, provenance)            # a str: one file, opens offline
>>> write_report("report.html", html)                  # atomic (temporary file + rename)
>>> plain_reading(result)                              # the verdict's wording, gated by confidence

Every figure is an inline base64 PNG; CSS is inline; there are no scripts, no external assets
and a Content-Security-Policy that forbids loading anything. Everything user-controlled (file
names, metadata strings) is HTML-escaped. ``save_pdf`` writes the same content as a PDF with
matplotlib (no browser needed). ``trufor-lab report IMAGE -o report.html`` is the command line.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
import os
import textwrap
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping


from trufor_lab.casebook.reading import (
    CONF_HIGH,
    CONF_LOW,
    FLAG_THRESHOLD,
    MIN_FLAGGED_FRACTION,
    SCORE_FLAG,
    SCORE_STRONG,
    MapStats,
    _fmt,
    _pct,
    map_stats,
    plain_reading,
)
from trufor_lab.common.files import atomic_write_path
from trufor_lab.common.paths import display_name, short_name
from trufor_lab.model.identity import changed_in_memory, is_own_training, where_changed
from trufor_lab.version import __version__
from trufor_lab.viz.noiseprint import plot_noiseprint

if TYPE_CHECKING:  # pragma: no cover
    from trufor_lab.casebook.compare import Comparison
    from trufor_lab.forensics.provenance import Provenance
    from trufor_lab.inference.analyze import Result
    from trufor_lab.inference.weights import WeightsInfo

__all__ = [
    "MapStats",
    "build_report",
    "map_stats",
    "plain_reading",
    "save_pdf",
    "weights_line",
    "write_report",
    "FLAG_THRESHOLD",
    "MIN_FLAGGED_FRACTION",
    "CONF_LOW",
    "CONF_HIGH",
    "SCORE_FLAG",
    "SCORE_STRONG",
]


_KIND_LABELS = {
    "official": "official TruFor",
    "demo": "demo model (NOT the official TruFor model)",
    "noiseprint": "Noiseprint++ only (no localization, no score)",
    "custom": "TruFor checkpoint not verified as the official one",
    "own": "TruFor checkpoint trained or exported with trufor_lab (NOT the official TruFor model)",
    "untrained": "untrained network (random weights, tl.untrained)",
}

_E = html.escape


# --------------------------------------------------------------------------- numbers and wording


def weights_line(info: "WeightsInfo | None") -> str:
    """'Weights: <kind> — <file>, sha256 <hash>, verified|NOT verified' (plain text)."""
    if info is None:
        return "Weights: unknown origin (the model was not loaded with tl.load), not verified as the official TruFor"
    if changed_in_memory(info):  # no file holds them: no file name and checksum as if it did
        return f"Weights: {where_changed(info)}, not that file's weights (no checksum), not verified as the official TruFor"
    label = _KIND_LABELS["own"] if is_own_training(info) else _KIND_LABELS.get(info.kind, info.kind)
    state = "file checksum verified" if info.verified else "file checksum NOT verified"
    return f"Weights: {label} — {Path(info.path).name}, sha256 {info.sha256}, {state}"


# --------------------------------------------------------------------------- figures


def fig_to_data_uri(fig: Any, dpi: int = 100) -> str:
    """A matplotlib Figure as a ``data:image/png;base64,...`` URI; the figure is closed."""
    import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():  # a file name's emoji the font lacks: a box, not a warning
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def noiseprint_figure(result: "Result") -> Any:
    """Noiseprint++ map (or a classic detector's raw output, named as such), local variance and
    log spectrum (``viz.noiseprint``)."""
    label = str((result.captures or {}).get("shown", "Noiseprint++"))
    return plot_noiseprint(result.noiseprint, title=f"{label} of {short_name(result.name)}", label=label)


# --------------------------------------------------------------------------- HTML fragments
# (inline styles, so that the same fragments render in notebook widgets)

_TABLE = "border-collapse:collapse;margin:4px 0;font-size:0.92em"
_CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top"
_BOX = "border:1px solid #999;background:#f5f5f5;padding:8px 10px;margin:8px 0"
_BANNER = "border:1px solid #e0c060;background:#fff3cd;padding:6px 10px;margin:8px 0"
_SEVERITY_COLOURS = {"info": "#555", "notice": "#8a5300", "warning": "#b00020"}


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] | None = None) -> str:
    parts = [f'<table style="{_TABLE}">']
    if header:
        parts.append("<tr>" + "".join(f'<th style="{_CELL}">{_E(h)}</th>' for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f'<td style="{_CELL};word-break:break-word">{_E(c)}</td>' for c in row) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _figure(uri: str, caption: str) -> str:
    return (
        f'<figure class="fig" style="margin:8px 0"><img src="{uri}" alt="{_E(caption)}" '
        f'style="max-width:100%;height:auto"/><figcaption style="font-size:0.9em;color:#444">'
        f"{_E(caption)}</figcaption></figure>"
    )


def official_weights(result: "Result") -> bool:
    """Whether the verified official checkpoint made ``result``: only its numbers get the
    paper's meaning ('probability of manipulation', 'likely manipulated', 'evidence')."""
    info = result.weights
    return info is not None and info.kind == "official" and info.verified


def caveats(result: "Result") -> list[str]:
    """The 'How to read this' list, worded for the weights that made ``result``: the paper's
    meaning for the verified official checkpoint only; what other weights flag is described,
    never called evidence; and what a Noiseprint++-only result can and cannot show."""
    common = [_RELIABILITY, _METADATA, _METHOD]
    if result.map is None:
        return [_NOISEPRINT_ONLY, *common]
    if official_weights(result):
        return [_EVIDENCE, _MAPS, *common]
    info = result.weights
    first = (
        "These weights are not the verified official TruFor model: the score is this model's "
        "output, not a probability that the image was manipulated, and not evidence either way."
    )
    maps = (
        "The localization map shows what this model flags; the confidence map, where this model "
        "trusts its own map. Where confidence is low, ignore the map."
    )
    demo = info is not None and info.kind == "demo"
    return [first, maps, *([_DEMO] if demo else []), *common]


def numbers_rows(result: "Result") -> list[tuple[str, str]]:
    """(quantity, value) rows of the numbers table."""
    h, w = result.size
    st = map_stats(result)
    turned = result.shown and result.exif_orientation in (5, 6, 7, 8)  # the file stores it h×w
    rows = [("image", display_name(result.name)), ("size (w×h)" + (", as shown" if turned else ""), f"{w}×{h}")]
    if result.map is None:
        rows.append(("localization", "not available: needs the official TruFor checkpoint"))
        return rows
    rows += [
        (
            "integrity score (probability of manipulation)"
            if official_weights(result)
            else "score (this model's output)",
            _fmt(st.score),
        ),
        ("map maximum", _fmt(st.map_max)),
        ("map mean", _fmt(st.map_mean)),
        ("mean confidence (whole image)", _fmt(st.conf_mean)),
        (f"area flagged (map > {FLAG_THRESHOLD})", _pct(st.flagged_fraction)),
        ("mean confidence in the flagged area", _fmt(st.conf_flagged)),
    ]
    return rows


def result_section_html(result: "Result", dpi: int = 100) -> str:
    """Reading, numbers, weights and the result figure (image, maps, overlay)."""
    parts = []
    if result.notice:
        parts.append(f'<div class="banner" style="{_BANNER}">{_E(result.notice)}</div>')
    parts.append(f'<div class="reading" style="{_BOX}"><b>Reading:</b> {_E(plain_reading(result))}</div>')
    parts.append(_table(numbers_rows(result), ("quantity", "value")))
    parts.append(f'<p class="weights">{_E(weights_line(result.weights))}</p>')
    for note in result.notes:
        parts.append(f"<p>Note: {_E(note)}</p>")
    red = "likely manipulated" if official_weights(result) else "flagged by this model"
    caption = (
        f"Image, Noiseprint++, localization map (red: {red}), confidence (white: reliable) and overlay"
        if result.map is not None
        else "Image and Noiseprint++ (localization needs the official TruFor checkpoint)"
    )
    parts.append(_figure(fig_to_data_uri(result.plot(), dpi), caption))
    return "".join(parts)


def noiseprint_section_html(result: "Result", dpi: int = 100) -> str:
    """The Noiseprint++ map, its local variance and spectrum, with a short explanation."""
    expl = (
        "Noiseprint++ is a fingerprint of the camera and processing chain. A region pasted "
        "from another source can show a different texture or local variance; the spectrum "
        "shows periodic traces such as the JPEG 8×8 grid (peaks at multiples of 1/8 cycle per "
        "pixel). These are raw traces for experts: read them with care."
    )
    label = str((result.captures or {}).get("shown", "Noiseprint++"))
    return f"<p>{_E(expl)}</p>" + _figure(
        fig_to_data_uri(noiseprint_figure(result), dpi), f"{label} map, local variance and log power spectrum"
    )


#: Metadata rows shown at most (a file with thousands of text chunks made a 1.3 MB, 55-page report).
MAX_METADATA_ROWS = 200


def provenance_rows(provenance: "Provenance") -> list[tuple[str, str, str]]:
    """(section, field, value) rows of the metadata table (the file's base name only): at most
    :data:`MAX_METADATA_ROWS` metadata rows, then one saying how many were left out, then every
    problem found in reading the file."""
    rows = [
        (sec, f, display_name(v) if (sec, f) == ("File", "name") else v)
        for sec, f, v in provenance.rows()
        if sec != "Signs"
    ]
    if len(rows) > MAX_METADATA_ROWS:  # the metadata is cut, never the problems (they come last)
        problems = [row for row in rows if row[0] == "Problems"]
        others = [row for row in rows if row[0] != "Problems"]
        keep = max(MAX_METADATA_ROWS - len(problems), 20)
        if len(others) > keep:
            others = others[:keep] + [("…", f"{len(others) - keep} more rows", "not shown")]
        rows = others + problems
    return rows


def provenance_section_html(provenance: "Provenance | None") -> str:
    """Signs first (plain language), then the full table; every string escaped."""
    if provenance is None:
        return "<p>Provenance: not available.</p>"
    parts = []
    if provenance.signs:
        parts.append("<ul class='signs'>")
        for s in provenance.signs:
            col = _SEVERITY_COLOURS.get(s.severity, "#555")
            parts.append(f'<li><b style="color:{col}">{_E(s.severity)}</b>: {_E(s.observation)}: {_E(s.meaning)}</li>')
        parts.append("</ul>")
    else:
        parts.append("<p>No particular signs in the metadata.</p>")
    parts.append(_table(provenance_rows(provenance), ("section", "field", "value")))
    parts.append(
        "<p style='font-size:0.9em;color:#444'>Metadata is easy to strip or forge: every "
        "sign is evidence, not proof. GPS coordinates, if any, are not shown.</p>"
    )
    return "".join(parts)


def comparison_rows(comparison: "Comparison") -> list[tuple[str, str]]:
    """(quantity, value) rows of a comparison: the two versions, the alignment, the difference
    (or why it is not reported). The HTML and the PDF show the same rows."""
    rows = [
        ("A", display_name(comparison.name_a)),
        ("B", display_name(comparison.name_b)),
        ("translation applied to B (dy, dx)", f"{comparison.shift[0]}, {comparison.shift[1]}"),
    ]
    if getattr(comparison, "tilt", 0.0):  # a small rotation undone before the difference
        way = "anticlockwise" if comparison.tilt > 0 else "clockwise"
        rows.append(("B turned relative to A (undone)", f"{abs(comparison.tilt):.2f}° {way}"))
    if getattr(comparison, "reliable", True):
        rows += [
            ("mean |A − B| (0..1)", _fmt(comparison.mean_diff)),
            ("pixels differing by more than 10%", f"{100 * comparison.changed_fraction:.1f}%"),
        ]
    else:  # the difference of two unaligned pictures measures the misalignment
        rows.append(("difference", "not reported: B could not be lined up with A (see the note)"))
    return rows


def comparison_section_html(comparison: "Comparison", dpi: int = 100) -> str:
    """Two versions side by side: alignment notes, difference numbers, both readings."""
    parts = [_table(comparison_rows(comparison), ("quantity", "value"))]
    parts += [f"<p>Note: {_E(n)}</p>" for n in comparison.notes]
    for label, r in (("A", comparison.result_a), ("B", comparison.result_b)):
        if r is not None:  # how each was read (a CMYK conversion, an orientation) matters to both
            read = "".join(f" <i>({_E(n)})</i>" for n in r.notes)
            parts.append(f"<p><b>{label}:</b> {_E(plain_reading(r))}{read}</p>")
    parts.append(
        _figure(fig_to_data_uri(comparison.plot(), dpi), "A, B aligned to A, absolute difference, and both analyses")
    )
    return "".join(parts)


# --------------------------------------------------------------------------- the document

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 max-width:1100px;margin:16px auto;padding:0 16px;color:#111;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:24px}
.meta{color:#444;font-size:0.9em} figure img{border:1px solid #ddd}
@media print{
 body{max-width:none;margin:0;font-size:10pt}
 figure,table,.reading,.banner,.caveats{page-break-inside:avoid;break-inside:avoid}
 h2{page-break-after:avoid;break-after:avoid}
 figure img{max-width:100% !important}
 @page{margin:14mm}
}
"""

_EVIDENCE = (
    "A score is evidence, not proof. TruFor estimates a probability; it makes mistakes in both "
    "directions. Use it with other checks (reverse image search, sources, witnesses)."
)
_MAPS = (
    "The localization map says where the model sees traces of editing; the confidence map says "
    "where that map can be trusted. Where confidence is low, ignore the map."
)
_RELIABILITY = (
    "What lowers reliability: heavy or repeated recompression (social networks, messengers), "
    "resizing, very small edits, screenshots and photos of screens, very small images. "
    "Recompression and resizing can erase the traces of an edit: after them a low score or an "
    "empty map does not clear the image."
)
_METADATA = (
    "Metadata (EXIF, software, dates) is easy to remove or forge; most social networks strip it, "
    "so its absence alone means little."
)
_DEMO = (
    "Demo weights: a small model trained by trufor_lab, not the official TruFor. Its map and "
    "score show how the tool works; they cannot judge a real photo. For real analyses install "
    "the official checkpoint (trufor-lab weights download)."
)
_NOISEPRINT_ONLY = (
    "Without a TruFor checkpoint only Noiseprint++ is shown, with no localization map and no "
    "score: regions whose Noiseprint++ looks different are a clue to look closer, not a finding."
)
_METHOD = (
    "Method: F. Guillaro et al., TruFor: Leveraging all-round clues for trustworthy image forgery "
    "detection and localization, CVPR 2023 (https://grip-unina.github.io/TruFor/)."
)


def build_report(
    result: "Result",
    provenance: "Provenance | None" = None,
    comparison: "Comparison | None" = None,
    *,
    title: str | None = None,
    generated: datetime | None = None,
    dpi: int = 100,
    drawn: Mapping[str, str] | None = None,
) -> str:
    """The whole report as one self-contained HTML string (figures as data URIs, inline CSS).
    ``drawn``: sections already made for these same objects at this ``dpi``, by heading
    (``"Result"``, ``"Noiseprint++"``, ``"Provenance"``, ``"Comparison"``), e.g. the casebook's
    tabs: used as they are instead of drawing the figures of a 12 MP photo again."""
    when = (generated or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    name = display_name(result.name)
    title = title or f"TruFor report: {name}"
    made = drawn or {}
    sections = [
        ("Result", made.get("Result") or result_section_html(result, dpi)),
        ("Noiseprint++", made.get("Noiseprint++") or noiseprint_section_html(result, dpi)),
        ("Provenance", made.get("Provenance") or provenance_section_html(provenance)),
    ]
    if comparison is not None:
        compared = made.get("Comparison") or comparison_section_html(comparison, dpi)
        sections.append(("Comparison with another version", compared))
    items = "".join(f"<li>{_E(c)}</li>" for c in caveats(result))
    sections.append(("How to read this", f'<ul class="caveats">{items}</ul>'))
    body = "".join(f"<section><h2>{_E(h)}</h2>{s}</section>" for h, s in sections)
    meta = f"Generated {_E(when)} by trufor_lab {_E(__version__)}. {_E(weights_line(result.weights))}"
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_E(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_E(title)}</h1><p class="meta">{meta}</p>{body}</body></html>\n'
    )


# --------------------------------------------------------------------------- writing


def same_file(out: Path, image: str) -> bool:
    """Whether writing ``out`` would replace ``image``: the same file (``./x.jpg`` and ``x.jpg``,
    a symlink, a hard link, another letter case on a case-insensitive disk) or the same path."""
    try:
        if out.exists() and os.path.exists(image):
            return os.path.samefile(out, image)
        return out.resolve() == Path(image).resolve()
    except (OSError, RuntimeError):  # a symlink loop: not the image, the write itself will fail
        return False


#: How every HTML report this project writes begins (:func:`build_report`).
REPORT_HEAD = b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy"'


def written_here(out: Path) -> bool:
    """Whether ``out`` is an HTML report this project wrote, whatever its name (``-o rep`` run
    twice: the rerun must replace its own report)."""
    try:
        if not out.is_file():  # a pipe would block the read
            return False
        with open(out, "rb") as f:
            return f.read(len(REPORT_HEAD)) == REPORT_HEAD
    except OSError:
        return False


def write_report(path: str | os.PathLike, html_text: str) -> Path:
    """Write ``html_text`` to ``path`` atomically (never a half-written report)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html_text)

    return atomic_write_path(path, write)


def _text_pages(lines: list[str], per_page: int = 58) -> Iterator[list[str]]:
    for i in range(0, max(len(lines), 1), per_page):
        yield lines[i : i + per_page]


def pdf_text(
    result: "Result", provenance: "Provenance | None" = None, comparison: "Comparison | None" = None
) -> list[str]:
    """The PDF's text lines: what the HTML report says, in the same order."""
    wrap = lambda s, ind="": textwrap.wrap(s, 100, initial_indent=ind, subsequent_indent="   ")  # noqa: E731
    lines = [
        f"TruFor report: {display_name(result.name)}",
        f"Generated {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by trufor_lab {__version__}",
        "",
    ]
    if result.notice:
        lines += wrap("Notice: " + result.notice) + [""]
    lines += wrap("Reading: " + plain_reading(result)) + [""]
    for who, r in (("", result), ("B: ", comparison.result_b if comparison is not None else None)):
        if r is not None and r.notes:  # how each was read (an orientation turned, a CMYK conversion)
            lines += wrap(f"{who}How the input was read: " + "; ".join(r.notes)) + [""]
    lines += [f"{k}: {v}" for k, v in numbers_rows(result)]
    lines += wrap(weights_line(result.weights)) + ["", "Provenance"]
    if provenance is not None:
        for s in provenance.signs:
            lines += wrap(f"[{s.severity}] {s.observation}: {s.meaning}", "  ")
        for sec, f, v in provenance_rows(provenance):
            lines += wrap(f"{sec} / {f}: {v}", "  ")
    if comparison is not None:  # as the HTML's section: rows, notes, and B's reading too
        lines += ["", "Comparison with another version"]
        lines += [f"  {k}: {v}" for k, v in comparison_rows(comparison)]
        for n in comparison.notes:
            lines += wrap("Note: " + n, "  ")
        if comparison.result_b is not None:
            lines += wrap("B: " + plain_reading(comparison.result_b), "  ")
    lines += ["", "How to read this"]
    for c in caveats(result):
        lines += wrap("- " + c)
    # every line within the page: a long file name in the title, a table row, a comparison row
    # ran off the right edge (a 244-character name was cut at the page's border)
    return [part for ln in lines for part in (textwrap.wrap(ln, 100, subsequent_indent="   ") or [""])]


def save_pdf(
    path: str | os.PathLike,
    result: "Result",
    provenance: "Provenance | None" = None,
    comparison: "Comparison | None" = None,
) -> Path:
    """The report as a PDF via matplotlib's PdfPages: text pages (:func:`pdf_text`), then the
    figures (atomic)."""
    import matplotlib.pyplot as plt  # lazy: matplotlib takes about a second to import; only drawing needs it
    from matplotlib.backends.backend_pdf import (
        PdfPages,
    )  # lazy: matplotlib takes about a second to import; only drawing needs it

    lines = pdf_text(result, provenance, comparison)

    def write(tmp: str) -> None:
        # metadata and file names are text, never TeX: '$...$' in an EXIF field must not be parsed
        with plt.rc_context({"text.parse_math": False}), PdfPages(tmp) as pdf, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # a box, not a warning
            for page in _text_pages(lines):
                fig = plt.figure(figsize=(8.27, 11.69))
                fig.text(
                    0.06, 0.96, "\n".join(page), va="top", ha="left", family="monospace", fontsize=7.5, parse_math=False
                )
                pdf.savefig(fig)
                plt.close(fig)
            figs = [result.plot(), noiseprint_figure(result)]
            if comparison is not None:
                figs.append(comparison.plot())
            for fig in figs:
                pdf.savefig(fig, bbox_inches="tight")
                plt.close(fig)

    return atomic_write_path(path, write)
