"""The on-disk run format, shared by the trainer that writes runs and the analysis that reads
them: how a history line is parsed, how non-finite floats travel through JSON, and how a
nested config becomes dotted keys.

It sits in the lowest layer, beside the metric registry, because the writer (training) and the
reader (analysis) may not import each other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

_FROM_JSON = {"inf": math.inf, "-inf": -math.inf}


class HistoryLineError(ValueError):
    """A history line that is not a JSON object (``line`` is 1-based)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line} {reason}")
        self.line, self.reason = line, reason


def to_json_value(value: Any) -> Any:
    """NaN as null and ±Inf as "inf"/"-inf": JSON has no non-finite numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def from_json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row as it was logged: null back to NaN, "inf"/"-inf" back to infinities."""
    out = {}
    for key, value in row.items():
        if value is None:
            out[key] = math.nan
        elif isinstance(value, str) and value in _FROM_JSON:
            out[key] = _FROM_JSON[value]
        else:
            out[key] = value
    return out


def parse_history_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The rows of a ``history.jsonl``. A torn last line (a crash mid-write) is dropped; any
    other bad line raises `HistoryLineError`."""
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise HistoryLineError(i + 1, "is not valid JSON") from None
        if not isinstance(row, dict):
            raise HistoryLineError(i + 1, "is not a JSON object")
        rows.append(row)
    return rows


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as {"section.key": value}: the config's form in W&B and the runs table."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
