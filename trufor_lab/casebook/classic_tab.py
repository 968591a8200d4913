"""The casebook's "Classic filters" tab: the views fact-checkers know from web tools (ELA, noise
level, JPEG ghosts, double-JPEG map), each with what it shows and how it misleads, next to
TruFor's answer.

>>> from trufor_lab.casebook.classic_tab import classic_filters, classic_section_html
>>> filters = classic_filters("viral.jpg")            # {name: Result} from trufor_lab.lab.classic
>>> html = classic_section_html(filters, trufor_result)

The filters run on the file's bytes, so the JPEG methods see its quantization tables; on a PNG
or a screenshot the double-JPEG map is "not applicable" (the tab says so instead of showing an
empty picture).
"""

from __future__ import annotations

import html
from typing import Any, Mapping

import numpy as np

from trufor_lab.casebook.report import fig_to_data_uri, official_weights
from trufor_lab.common.memory import free_memory_bytes
from trufor_lab.common.paths import display_name
from trufor_lab.inference.preprocess import LoadedImage
from trufor_lab.inference.result import Result
from trufor_lab.lab.classic import detect, not_applicable, read_source
from trufor_lab.viz.figures import display_mean, display_stride

__all__ = ["FILTERS", "classic_filters", "classic_section_html"]

#: (method, title, what it shows, how it misleads), in the order of the tab.
FILTERS: tuple[tuple[str, str, str, str], ...] = (
    (
        "ela",
        "Error level analysis (ELA)",
        "How much each part changes when the image is saved once more as JPEG at its own quality "
        "(when that gives back the same pixels, as for a file last saved so by a common encoder: at 95, "
        "or at 85 for a file saved at 95 or more). "
        "A pasted region that was never compressed like the rest stands out.",
        "Edges, text and fine texture are always bright; a resave at another quality or a resize "
        "makes the whole picture uniform. Compare similar textures, not bright and flat areas.",
    ),
    (
        "noise",
        "Noise level",
        "The local strength of the sensor noise. A region from another camera, denoised or "
        "synthetic often has a different noise level.",
        "Flat, dark or saturated areas and strong JPEG compression change the noise on their own; "
        "a copy from the same photo has the same noise.",
    ),
    (
        "jpeg_ghost",
        "JPEG ghosts",
        "Where the image barely changes when saved at some lower quality: a region first saved at "
        "that quality (a 'ghost') shows up bright against the rest.",
        "Only works when the last save was at a higher quality than the first; flat areas look "
        "like ghosts at every quality.",
    ),
    (
        "dq_aligned",
        "Double-JPEG map",
        "Per 8x8 block, the probability that it was compressed only once, judged from its DCT "
        "coefficients. A JPEG photo edited and saved again is compressed twice everywhere except "
        "where something uncompressed was pasted in: bright = single compression (suspicious).",
        "Needs the JPEG file itself (not a screenshot, not a PNG); blind when both saves used the "
        "same quality; small regions give few blocks to judge. Untouched files of some cameras "
        "show the effect too (their own encoding quantizes twice): a map that follows the "
        "picture's texture and singles out no region says nothing about a re-save or an edit.",
    ),
)

#: Peak memory of the four filters per pixel (measured on a 12 MP phone photo: 128 bytes traced,
#: 1.4 GiB; it was 600 with JPEG ghosts' whole grid detector and per-quality maps, which skipped
#: the tab on an 8 GB laptop); above half the free memory they are skipped with a note instead.
BYTES_PER_PIXEL = 160

_BOX = "border:1px solid #999;background:#f5f5f5;padding:8px 10px;margin:8px 0"
_NOTE = "border:1px solid #e0c060;background:#fff3cd;padding:6px 10px;margin:8px 0"


def classic_filters(
    source: Any, methods: tuple[str, ...] | None = None, name: str | None = None, loaded: LoadedImage | None = None
) -> dict[str, Result]:
    """Run the tab's classic filters on ``source`` (a path, bytes or PIL image keeps its JPEG
    tables; an array has none), decoded once. A filter that fails is reported in its Result's
    ``notice`` (the image with empty maps, so it still displays); an unreadable image raises
    :class:`~trufor_lab.inference.preprocess.ImageError`. ``name``: what the notes call it (an upload's name).
    ``loaded``: ``source`` already read by ``load_image`` (not decoded again)."""
    src = read_source(source, name, loaded=loaded)
    h, w = src.rgb.shape[:2]
    need, free = h * w * BYTES_PER_PIXEL, free_memory_bytes("cpu")
    too_big = (
        f"skipped: a {h * w / 1e6:.0f} MP picture needs about {need / 2**30:.1f} GiB for these filters, "
        f"more than half of the {free / 2**30:.1f} GiB free"
        if need > free / 2
        else None
    )
    out: dict[str, Result] = {}
    for name, *_ in FILTERS:
        if methods is not None and name not in methods:
            continue
        if too_big:
            out[name] = not_applicable(src, name, too_big, shown="(not run)")
            continue
        try:
            out[name] = detect(src, name)
        except (ValueError, RuntimeError, MemoryError) as e:  # one broken filter must not hide the others
            msg = f"{name} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            out[name] = not_applicable(src, name, msg, shown="(failed)")
    return out


def _figure(results: list[tuple[str, np.ndarray, str]], dpi: int) -> str:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import; only drawing needs it

    fig = Figure(figsize=(3.0 * len(results), 3.2), layout="constrained")
    for ax, (title, m, cmap) in zip(fig.subplots(1, len(results), squeeze=False)[0], results):
        # averaged to screen size for drawing (display only): 12 MP panels took a second each
        ax.imshow(display_mean(m, display_stride(m.shape)), cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=9, parse_math=False)
        ax.set_axis_off()
    return fig_to_data_uri(fig, dpi)


def _without_folders(text: str, name: str) -> str:
    """``text`` with the file's full path replaced by its base name (a shared page must not show
    a user's folders)."""
    return text.replace(name, display_name(name)) if name and name != display_name(name) else text


def classic_section_html(filters: Mapping[str, Result], trufor: Result | None = None, dpi: int = 90) -> str:
    """HTML of the tab: TruFor's map first (when there is one), then each filter with what it
    shows and how it misleads."""
    e = html.escape
    official = trufor is not None and official_weights(trufor)
    kind = None if trufor is None or trufor.weights is None else trufor.weights.kind
    # the demo model, an untrained network or Noiseprint++ alone are not the official TruFor; an
    # unverified file may be (its origin is not known)
    known_other = kind in ("demo", "untrained", "noiseprint")
    model = (
        "TruFor"
        if official
        else "this model (not the official TruFor)"
        if known_other
        else "this model (not verified as the official TruFor)"
    )
    parts = [
        f'<div style="{_BOX}"><b>Classic filters</b> measure one trace each and say nothing '
        f"about whether it means an edit: read each with its caveat. {'TruFor' if official else 'The model'}'s "
        "map combines such traces with what it learned, and its confidence says where not to trust it.</div>"
    ]
    # what reading the file said, common to every filter (custom JPEG tables: "its own quality" is
    # only the nearest IJG one), once, the file named without its folders
    results = [r for r in filters.values() if r is not None]
    shared = [n for n in (results[0].notes if results else ()) if all(n in r.notes for r in results[1:])]
    for n in shared:
        if n.startswith("classic detector ") or any(n == r.notice for r in results):
            continue
        text = _without_folders(n, results[0].name)
        parts.append(f"<p style='margin:4px 0;font-size:0.9em;color:#444'><i>Note:</i> {e(text)}</p>")
    panels: list[tuple[str, np.ndarray, str]] = []
    if trufor is not None and trufor.map is not None:
        score = "" if trufor.score is None else f" (score {trufor.score:.2f})"
        panels.append((f"TruFor{score}" if official else f"this model{score}", trufor.map, "RdBu_r"))
    rows = []
    for name, title, shows, misleads in FILTERS:
        r = filters.get(name)
        if r is None:
            continue
        applicable = r.map is not None and r.captures.get("applicable", True)
        if applicable:
            panels.append((title, r.map, "inferno"))
        notice = _without_folders(r.notice or "", r.name)
        status = "" if applicable else f'<div style="{_NOTE}">Not applicable here: {e(notice)}</div>'
        # what the detector said about this picture (a fallback quality, a mostly flat picture,
        # an empty map), except the notice already shown above
        said = [_without_folders(n, r.name) for n in r.notes if n.startswith(f"{name}:") and n != r.notice]
        notes = "".join(f"<p style='margin:2px 0;font-size:0.9em;color:#444'><i>Note:</i> {e(n)}</p>" for n in said)
        rows.append(
            f"<h4 style='margin:10px 0 2px'>{e(title)}</h4>{status}{notes}"
            f"<p style='margin:2px 0'><b>Shows:</b> {e(shows)}</p>"
            f"<p style='margin:2px 0'><b>Misleads when:</b> {e(misleads)}</p>"
        )
    if panels:
        red = "TruFor: red = likely manipulated" if official else f"{model}: red = flagged by it"
        caption = f"Bright = more suspicious for that filter (each on its own scale); {red}"
        parts.append(
            f'<figure style="margin:8px 0"><img src="{_figure(panels, dpi)}" alt="{e(caption)}" '
            f'style="max-width:100%;height:auto"/><figcaption style="font-size:0.9em;color:#444">'
            f"{e(caption)}</figcaption></figure>"
        )
    parts.extend(rows)
    return "".join(parts)
