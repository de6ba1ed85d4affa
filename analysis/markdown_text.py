"""Text from runs (group names, arm labels, notes) made safe for a Markdown table cell.

Markdown passes raw HTML through, so a group named ``<img src=x onerror=...>`` would land as
an element in ``tables/*.md`` and in the README blocks a study splices in. A cell is escaped
as HTML text (``<``, ``>``, ``&``), a ``|`` cannot end the cell early and a newline cannot end
the row.
"""

from __future__ import annotations

import html

import pandas as pd


def markdown_cell(value) -> str:
    """``value`` as text for one Markdown table cell."""
    text = html.escape(str(value), quote=False)
    return " ".join(text.replace("|", "\\|").split())


def markdown_safe(table: pd.DataFrame, index: bool = False) -> pd.DataFrame:
    """A copy of ``table`` whose text cells and headers (and index, when it is printed) are
    `markdown_cell`s; numbers are left for the table writer to format."""
    safe = table.copy()
    for position in range(safe.shape[1]):  # by position: headers may repeat
        column = safe.iloc[:, position]
        if not pd.api.types.is_numeric_dtype(column):
            safe.isetitem(position, column.astype(object).map(lambda v: markdown_cell(v) if isinstance(v, str) else v))
    safe.columns = [markdown_cell(c) if isinstance(c, str) else c for c in safe.columns]
    if index:
        safe.index = [markdown_cell(i) if isinstance(i, str) else i for i in safe.index]
    return safe
