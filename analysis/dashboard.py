"""`build_dashboard(runset, path)`: one self-contained, interactive HTML page of a RunSet.

The page needs no server and no internet: Plotly's JavaScript, the page's own script
(`dashboard.js`) and every number are inlined. In it, the user picks runs and groups, metrics,
the x axis (step, epoch, progress, or each key's own axis from the registry), log-x, smoothing,
and a mean ± band per group; hovering a line shows its run id, group and the config values
that differ between runs; the information plane and the equilibrium-against-accuracy scatter
follow the same run selection.

Size and speed: every line is downsampled by keeping the minimum and the maximum of each
bucket of logged points (peaks and dips survive, unlike plain striding), with a budget of
points over the whole page; the factor is shown on the page. Arrays travel as base64
float32 / uint16 / uint32, about 6 to 8 bytes a point.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from adadim.dynamics import keys
from adadim.dynamics.keys import EPOCH, STEP

from . import panel_keys
from .runset import DEFAULT_ACCURACY, RunSet

ASSETS = Path(__file__).parent
POINT_BUDGET = 1_200_000  # points over every line of the page: bounds its size (<= ~10 MB of data)
MAX_POINTS, MIN_POINTS = 2000, 100  # per line
PLANE_POINTS = 240  # per run in the information plane
EPOCH_KNOTS = 256  # (step, epoch) pairs per run, interpolated in the page
HOVER_CONFIG = 8  # config values shown on hover
PALETTE = (
    "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf "
    "#393b79 #e7969c #637939 #7b4173 #3182bd #e6550d #31a354 #756bb1 #636363 #843c39"
).split()
NOT_CONFIG = {"run_id", "state", "group", "source"}


@dataclass
class DashboardInfo:
    path: Path
    runs: int
    lines: int  # (run, metric) lines embedded
    logged_points: int
    drawn_points: int
    max_points: int  # per line
    bytes: int

    @property
    def factor(self) -> float:
        return self.logged_points / max(1, self.drawn_points)


def minmax_indices(values: np.ndarray, buckets: int) -> np.ndarray:
    """Indices of the minimum and the maximum of each of ``buckets`` equal runs of points, plus
    the first and the last point, in order. All indices when there are few points."""
    n = len(values)
    if n <= 2 * buckets + 2:
        return np.arange(n)
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    blocks = padded.reshape(buckets, size)  # the last block holds at least one real value
    base = np.arange(buckets) * size
    picked = np.concatenate([base + np.nanargmin(blocks, axis=1), base + np.nanargmax(blocks, axis=1), [0, n - 1]])
    return np.unique(picked)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _steps(steps: np.ndarray, dtype: str) -> str:
    return _b64(steps.astype("<u2" if dtype == "u2" else "<u4"))


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def hover_columns(runs: pd.DataFrame, by: str, limit: int = HOVER_CONFIG) -> list[str]:
    """The config columns worth showing on hover: those that differ between runs, minus
    id-like text (names, paths, timestamps: a different string for every run)."""
    chosen = []
    for column in runs.columns:
        if "/" in str(column) or column in NOT_CONFIG or str(column).startswith("_"):
            continue
        values = runs[column].dropna().astype(str)
        if values.nunique() < 2:
            continue
        text = pd.to_numeric(runs[column], errors="coerce").isna().all()
        if text and len(runs) > 2 and values.nunique() == len(values):
            continue
        chosen.append(column)
    first = [c for c in dict.fromkeys((by, "method", "run.seed")) if c in chosen]
    return (first + [c for c in sorted(chosen) if c not in first])[:limit]


def _equilibrium(values: np.ndarray, window: float) -> float | None:
    """The mean over the last ``window`` fraction of the logged points (at least 2), as
    `adadim.analysis.studies.equilibrium` defines it."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    return _number(values[-max(2, math.ceil(window * len(values))) :].mean())


def dashboard_data(
    rs: RunSet,
    by: str = "auto",
    accuracy: str = DEFAULT_ACCURACY,
    window: float = 0.2,
    point_budget: int = POINT_BUDGET,
    source: str = "",
) -> tuple[dict, dict]:
    """The page's data (a JSON-able dict) and downsampling statistics."""
    from .report import grouping_column

    if len(rs) == 0:
        raise ValueError("no runs to show")
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window}")
    by = grouping_column(rs, by)
    runs = rs.runs
    history = rs.history[rs.history["run_id"].isin(runs.index)].sort_values(["run_id", STEP], kind="stable")
    positions = history.groupby("run_id", sort=False).indices
    run_ids = [r for r in runs.index if r in positions]
    if not run_ids:
        raise ValueError("no run has a history")
    runs = runs.loc[run_ids]
    groups = sorted(runs[by].astype(str).unique())
    steps_all = history[STEP].to_numpy(np.int64)
    epochs_all = history[EPOCH].to_numpy(float) if EPOCH in history else None

    logged_keys = [
        c for c in history.columns if keys.is_registered(c) and np.isfinite(history[c].to_numpy(float)).any()
    ]
    sections = []
    for section in panel_keys.sections():
        if section.kind == "line":
            present = panel_keys.present(section, logged_keys)
            if present:
                sections.append({"title": section.title, "keys": present})
    curve_keys = [k for s in sections for k in s["keys"]]
    dynamics_keys = [k for k in curve_keys if k.startswith("dynamics/")]  # the equilibrium scatter's x choices

    columns = {k: history[k].to_numpy(float) for k in curve_keys}
    lines = sum(bool(np.isfinite(columns[k][positions[r]]).any()) for r in run_ids for k in curve_keys)
    max_points = int(min(MAX_POINTS, max(MIN_POINTS, point_budget // max(1, lines))))
    buckets = (max_points - 2) // 2

    run_rows: list[dict] = []
    series: dict[str, list] = {k: [] for k in curve_keys}
    logged = drawn = 0
    hover = hover_columns(runs, by)
    final_keys = [
        k
        for k in runs.columns
        if str(k).startswith("final/")
        and keys.is_registered(k)
        and pd.to_numeric(runs[k], errors="coerce").notna().any()
    ]
    for index, run_id in enumerate(run_ids):
        pos = positions[run_id]
        steps = steps_all[pos]
        last = int(steps.max())
        dtype = "u2" if last < 2**16 else "u4"
        knots = None
        if epochs_all is not None:
            ok = np.isfinite(epochs_all[pos])
            if ok.any():
                pick = np.unique(np.linspace(0, ok.sum() - 1, min(EPOCH_KNOTS, ok.sum())).astype(int))
                knots = [steps[ok][pick].tolist(), np.round(epochs_all[pos][ok][pick], 6).tolist()]
        meta = runs.loc[run_id]
        equilibrium = {}
        for key in curve_keys:
            values = columns[key][pos]
            if key in dynamics_keys:
                equilibrium[key] = _equilibrium(values, window)
            finite = np.isfinite(values)
            if not finite.any():
                continue
            x, y = steps[finite], values[finite]
            keep = minmax_indices(y, buckets)
            logged += len(y)
            drawn += len(keep)
            series[key].append([index, _steps(x[keep], dtype), _b64(y[keep].astype("<f4"))])
        run_rows.append(
            {
                "id": str(run_id),
                "group": str(meta[by]),
                "g": groups.index(str(meta[by])),
                "state": str(meta.get("state", "")),
                "hover": [[c, str(meta[c])] for c in hover if pd.notna(meta[c])],
                "last": max(last, 1),
                "xt": dtype,
                "knots": knots,
                "final": {k: _number(meta[k]) for k in final_keys},
                "eq": equilibrium,
            }
        )

    plane = []
    h_key, i_key = panel_keys.PLANE_X, panel_keys.plane_y(curve_keys)
    if h_key in columns and i_key in columns:
        for index, run_id in enumerate(run_ids):
            pos = positions[run_id]
            h, i = columns[h_key][pos], columns[i_key][pos]
            both = np.isfinite(h) & np.isfinite(i)
            if not both.any():
                continue
            h, i, s = h[both], i[both], steps_all[pos][both]
            quarter = max(1, PLANE_POINTS // 4)
            keep = np.union1d(minmax_indices(h, quarter), minmax_indices(i, quarter))
            progress = s[keep] / run_rows[index]["last"]
            plane.append(
                [index, _b64(h[keep].astype("<f4")), _b64(i[keep].astype("<f4")), _b64(progress.astype("<f4"))]
            )

    metrics = [
        {
            "key": k,
            "label": keys.label(k),
            "description": keys.REGISTRY[k].description if k in keys.REGISTRY else "",
            "x": "epoch" if panel_keys.x_axis(k) == EPOCH else "step",
        }
        for k in curve_keys
    ]
    # Shown at first: the first view's curves (else the first six dynamics curves), then the
    # first curve of every section not represented yet.
    defaults = [k for k in panel_keys.FIRST_VIEW if k in curve_keys] or dynamics_keys[:6]
    defaults += [s["keys"][0] for s in sections if not set(s["keys"]) & set(defaults)]
    data = {
        "title": "adadim dashboard",
        "source": source,
        "by": by,
        "groups": [
            {"name": g, "color": PALETTE[j % len(PALETTE)], "runs": [i for i, r in enumerate(run_rows) if r["g"] == j]}
            for j, g in enumerate(groups)
        ],
        "runs": run_rows,
        "sections": sections,
        # A key drawn dashed over its host's panel too (method=steer's setpoint over the ratio).
        "overlays": {k: v for k, v in panel_keys.OVERLAYS.items() if k in curve_keys and v in curve_keys},
        "metrics": metrics,
        "series": series,
        "plane": plane,
        "plane_x": h_key,
        "plane_y": i_key,
        "labels": {
            "step": keys.label(STEP),
            "epoch": keys.label(EPOCH),
            "progress": "training progress (step / last step)",
            h_key: keys.label(h_key),
            **({i_key: keys.label(i_key)} if i_key else {}),
            **{k: keys.label(k) for k in final_keys + dynamics_keys},
        },
        "accuracy": {
            "keys": final_keys,
            "default": accuracy if accuracy in final_keys else next(iter(final_keys), None),
        },
        "equilibrium": {
            "keys": dynamics_keys,
            "default": panel_keys.RATIO if panel_keys.RATIO in dynamics_keys else next(iter(dynamics_keys), None),
            "window": window,
        },
        "downsample": {"logged": logged, "drawn": drawn, "max_points": max_points},
        "defaults": {"metrics": list(dict.fromkeys(defaults))},
    }
    stats = {"runs": len(run_rows), "lines": lines, "logged": logged, "drawn": drawn, "max_points": max_points}
    return data, stats


def render_html(data: dict) -> str:
    from plotly.offline import get_plotlyjs

    # Inside <script>, "</" could close the element: JSON allows it escaped.
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    title = html.escape(data["title"])
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
        f'<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<style>{(ASSETS / 'dashboard.css').read_text()}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f'<script type="application/json" id="adadim-data">{payload}</script>'
        f"<script>{(ASSETS / 'dashboard.js').read_text()}</script></body></html>"
    )


def build_dashboard(
    rs: RunSet,
    path: str | Path,
    by: str = "auto",
    accuracy: str = DEFAULT_ACCURACY,
    window: float = 0.2,
    point_budget: int = POINT_BUDGET,
    source: str = "",
) -> DashboardInfo:
    """Write the dashboard of ``rs`` to ``path`` (one HTML file) and say what it holds."""
    data, stats = dashboard_data(rs, by, accuracy, window, point_budget, source)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(data)
    path.write_text(page, encoding="utf-8")
    return DashboardInfo(
        path, stats["runs"], stats["lines"], stats["logged"], stats["drawn"], stats["max_points"], len(page.encode())
    )
