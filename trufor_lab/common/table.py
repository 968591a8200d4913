"""One table type for studies, evaluations and listings: rows of dicts that show as HTML in a
notebook, convert to pandas and write CSV atomically."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from trufor_lab.common.files import atomic_write_text, csv_text


def fmt(v: Any, digits: int = 4) -> str:
    """A cell as text: ``None`` empty, floats with ``digits`` significant digits, NaN as ``nan``."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}g}"
    return str(v)


class Table(list):
    """A list of row dicts with ``columns``, ``to_pandas()``, atomic ``to_csv(path)`` and HTML display."""

    def __init__(
        self, rows: Iterable[Mapping[str, Any]] = (), title: str = "", columns: Iterable[str] | None = None
    ) -> None:
        super().__init__(dict(r) for r in rows)
        self.title = title
        self._columns = list(columns) if columns is not None else None

    @property
    def columns(self) -> list[str]:
        cols: list[str] = list(self._columns or [])
        for r in self:
            cols += [k for k in r if k not in cols]
        return cols

    def column(self, name: str) -> list[Any]:
        return [r.get(name) for r in self]

    def csv(self) -> str:
        """The rows as CSV text."""
        return csv_text([{k: ("" if v is None else v) for k, v in r.items()} for r in self], self.columns)

    def to_csv(self, path: str | os.PathLike) -> str:
        """Write the rows as CSV (UTF-8) atomically; returns the CSV text."""
        text = self.csv()
        atomic_write_text(path, text)
        return text

    def to_pandas(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd  # lazy: pandas is only needed by whoever asks for a DataFrame

        return pd.DataFrame(list(self), columns=self.columns)

    to_dataframe = to_pandas

    def _repr_html_(self) -> str:
        cols = self.columns
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in self)
        title = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
