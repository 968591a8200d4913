"""The casebook as a small web app for people who do not write Python (``trufor-lab casebook``).

:func:`casebook_app` is what the app's only notebook cell calls: the :class:`Casebook` widget
(upload, tabs including "Classic filters") plus a "Download the report" link that is refreshed
after every analysis (a self-contained HTML file, built in the browser's memory: nothing is
written on the server). :func:`app_notebook` writes that one-cell notebook;
:mod:`trufor_lab.cli.casebook` serves it with Voila on localhost, sources hidden.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path
from typing import Any

from trufor_lab.casebook.casebook import Casebook
from trufor_lab.common.files import atomic_write_text
from trufor_lab.common.paths import display_name
from trufor_lab.inference.load import load

__all__ = ["casebook_app", "app_notebook", "report_link_html"]

#: Largest upload of the web app (bytes): the page sends a file in one websocket message, which
#: the server accepts up to this size (``trufor-lab casebook`` sets it).
UPLOAD_LIMIT = 200 * 2**20
#: The largest websocket message the server takes: above the upload limit, so that a larger file
#: still arrives and is refused with a message (a message above this one drops the connection).
WEBSOCKET_LIMIT = 4 * UPLOAD_LIMIT

_INTRO = (
    "<p style='margin:2px 0 8px'>Upload a picture "
    f"(JPEG, PNG, WebP, TIFF; up to {UPLOAD_LIMIT // 2**20} MB). The analysis runs on this computer; nothing is sent anywhere. "
    "Read the <b>Result</b> tab first, then the <b>Classic filters</b>; download the report "
    "to keep or share what you saw.</p>"
)


def report_link_html(cb: Casebook) -> str:
    """An ``<a download>`` link holding the current report as a data URI (empty before an analysis)."""
    if cb.result is None:
        return "<span style='color:#666'>The report link appears after an analysis.</span>"
    doc = cb.report_html()  # the tabs' figures, not drawn again
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(display_name(cb.result.name or "image")).stem) or "image"
    uri = "data:text/html;charset=utf-8;base64," + base64.b64encode(doc.encode("utf-8")).decode("ascii")
    return (
        f'<a class="casebook-report" download="{html.escape(stem)}_report.html" href="{uri}" '
        f'style="font-weight:bold">Download the report ({html.escape(stem)}_report.html)</a>'
    )


def casebook_app(weights: str | None = None, device: str | None = None) -> Any:
    """The app's widget: the casebook with a report download link below the tabs."""
    import ipywidgets as w  # lazy: the widget stack is only needed in the app

    try:
        model = load(weights, device=device) if weights else None
    except Exception as e:  # noqa: BLE001 - the page says why in one line instead of "error in cell [1]"
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        return w.HTML(f"<p style='color:#b00020'>error: the model could not load: {html.escape(first)}</p>")
    cb = Casebook(model, device=device)
    cb.max_upload_bytes = UPLOAD_LIMIT
    link = w.HTML(value=report_link_html(cb))
    cb.listeners.append(lambda c: setattr(link, "value", report_link_html(c)))
    app = w.VBox([w.HTML(_INTRO), cb.widget, link])
    app.casebook = cb  # for tests and for a curious user
    return app


def app_notebook(path: str | os.PathLike, weights: str | None = None, device: str | None = None) -> Path:
    """Write the app's one-cell notebook to ``path``."""
    cell = [
        "from trufor_lab.casebook.app import casebook_app\n",
        f"casebook_app(weights={weights!r}, device={device!r})",
    ]
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "title": "TruFor casebook",
        },
        "cells": [
            {
                "cell_type": "code",
                "id": "casebook-app",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": cell,
            }
        ],
    }
    return atomic_write_text(path, json.dumps(nb, indent=1))  # a half-written notebook never replaces one
