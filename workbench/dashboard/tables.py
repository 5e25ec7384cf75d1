"""How the dashboard's tables show numbers: the cell keeps the number (Tabulator sorts on it) and shows the text
that ``workbench.dashboard.format`` made for it, coloured red-up / green-down where the column has a colour.

A table's frame carries ``<column>_text`` (and ``<column>_color``) beside each such column, hidden; the cell's
template reads them from its row. The formatting stays in Python, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from bokeh.models import HTMLTemplateFormatter

from workbench.dashboard.i18n import Lang, t


def shown_as(frame: pd.DataFrame, column: str, text: Callable[[Any], str],
             color: Callable[[Any], str] | None = None) -> None:
    """Add the hidden text (and colour) columns of ``column`` to ``frame``."""
    values = frame[column].tolist()
    frame[f"{column}_text"] = [text(v) for v in values]
    if color is not None:
        frame[f"{column}_color"] = [color(v) for v in values]


def text_formatter(column: str, colored: bool = False) -> HTMLTemplateFormatter:
    """The cell template that shows ``<column>_text`` (in ``<column>_color``)."""
    shown = f"<%= {column}_text %>"
    if colored:
        shown = f'<span style="color: <%= {column}_color %>; font-weight: 600"><%= {column}_text %></span>'
    return HTMLTemplateFormatter(template=shown)


def hidden(columns: Sequence[str], colored: Sequence[str] = ()) -> list[str]:
    """The hidden helper columns of ``columns`` (text) and ``colored`` (text and colour)."""
    return [f"{c}_text" for c in (*columns, *colored)] + [f"{c}_color" for c in colored]


def titles(columns: Mapping[str, str], lang: Lang) -> dict[str, str]:
    """Column headers: column -> the text of its i18n key."""
    return {column: t(key, lang) for column, key in columns.items()}
