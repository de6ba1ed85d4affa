"""The setpoint paths of method=steer: the value ``dynamics/ratio_H_I`` should have at each
point of training, as a function of progress (0 at the first step, 1 at the last).

``constant`` holds one value; ``linear`` and ``cosine`` go from a start to an end value; ``run``
follows an earlier run's measured ratio, read from its ``history.jsonl`` with the run-format
parser (never through the analysis package), smoothed by a rolling median over a few
measurements and interpolated linearly in progress.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from adadim.dynamics.keys import STEP
from adadim.dynamics.run_format import HistoryLineError, from_json_row, parse_history_lines

TARGETS = ("constant", "linear", "cosine", "run")
RATIO = "dynamics/ratio_H_I"


class TargetRunError(ValueError):
    """An earlier run that cannot serve as a setpoint path (missing, corrupt, unfinished, no ratio)."""


@dataclass(frozen=True)
class SetpointPath:
    """The setpoint at a training progress in [0, 1]. ``knots`` (progress, value) define the
    ``run`` path; outside them the path holds its first and last values."""

    kind: str
    start: float
    end: float
    knots: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in TARGETS:
            raise ValueError(f"unknown setpoint path {self.kind!r}; choose one of {', '.join(TARGETS)}")
        if self.kind == "run" and not self.knots:
            raise ValueError("a run setpoint path needs at least one (progress, value) knot")

    @classmethod
    def constant(cls, value: float) -> SetpointPath:
        return cls("constant", float(value), float(value))

    def __call__(self, progress: float) -> float:
        p = min(1.0, max(0.0, float(progress)))
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            return self.start + (self.end - self.start) * p
        if self.kind == "cosine":
            return self.start + (self.end - self.start) * 0.5 * (1.0 - math.cos(math.pi * p))
        return _interpolate(self.knots, p)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "start": self.start, "end": self.end, "knots": [list(k) for k in self.knots]}

    @classmethod
    def from_state(cls, state: dict) -> SetpointPath:
        knots = tuple((float(p), float(v)) for p, v in state["knots"])
        return cls(state["kind"], float(state["start"]), float(state["end"]), knots)


def _interpolate(knots: tuple[tuple[float, float], ...], p: float) -> float:
    if p <= knots[0][0]:
        return knots[0][1]
    for (p0, v0), (p1, v1) in pairwise(knots):
        if p <= p1:
            return v0 if p1 == p0 else v0 + (v1 - v0) * (p - p0) / (p1 - p0)
    return knots[-1][1]


def rolling_median(values: list[float], window: int) -> list[float]:
    """Centred rolling median; the window shrinks at the ends (no padding values invented)."""
    half = max(0, int(window)) // 2
    return [statistics.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def _history_file(target: str | Path) -> Path:
    path = Path(target)
    return path if path.name == "history.jsonl" or path.is_file() else path / "history.jsonl"


def _require_finished(run_dir: Path, named_file: bool) -> None:
    """A run still going (or killed) would have its partial path stretched over all of training.
    A run directory must say it finished; a history file named as such is taken as it stands."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        if named_file:
            return
        raise TargetRunError(
            f"steer.target_run: {run_dir} has no summary.json, so whether it finished is unknown; "
            f"name its history file ({run_dir / 'history.jsonl'}) to follow it as it stands"
        )
    try:
        state = json.loads(summary_path.read_text(encoding="utf-8")).get("state")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise TargetRunError(f"steer.target_run: {summary_path} is unreadable") from None
    if state != "finished":
        raise TargetRunError(
            f"steer.target_run: {run_dir} has not finished (summary.json state {state!r}); its partial path "
            "would be stretched over the whole of training"
        )


def read_run_path(target: str | Path, smooth: int = 3) -> SetpointPath:
    """The ``run`` setpoint path: an earlier run's ``dynamics/ratio_H_I`` against its progress
    (step / last logged step), NaN and non-positive rows skipped, smoothed by a rolling median
    over ``smooth`` measurements. ``target`` is the run directory or its history file."""
    path = _history_file(target)
    if not path.is_file():
        raise TargetRunError(f"steer.target_run: {path} not found (give an earlier run's directory)")
    _require_finished(path.parent, named_file=path == Path(target))
    try:
        rows = parse_history_lines(path.read_text(encoding="utf-8").splitlines())
    except UnicodeDecodeError:
        raise TargetRunError(f"steer.target_run: {path} is not a text history file") from None
    except HistoryLineError as error:
        raise TargetRunError(f"steer.target_run: {path} is corrupt: {error}") from None
    points, last = [], None
    for i, raw in enumerate(rows):
        row = from_json_row(raw)
        step = row.get(STEP)
        if not isinstance(step, int | float) or isinstance(step, bool) or not math.isfinite(step):
            raise TargetRunError(f"steer.target_run: {path} is corrupt: line {i + 1} has no {STEP!r}")
        last = step if last is None else max(last, step)
        ratio = row.get(RATIO)
        if isinstance(ratio, int | float) and math.isfinite(ratio) and ratio > 0:
            points.append((float(step), float(ratio)))
    if not points:
        raise TargetRunError(f"steer.target_run: {path} holds no finite {RATIO} to follow")
    points.sort()
    smoothed = rolling_median([v for _, v in points], smooth)
    scale = max(1.0, float(last or 0))
    knots = tuple((step / scale, value) for (step, _), value in zip(points, smoothed, strict=True))
    return SetpointPath("run", knots[0][1], knots[-1][1], knots)
