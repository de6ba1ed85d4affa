"""`analyze(source, out)`: every study, its tables (CSV, Markdown, LaTeX), its figures (PDF,
PNG) and one self-contained HTML report (figures embedded, no server needed)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from . import plots
from .loading import load_runs
from .runset import DEFAULT_ACCURACY, STEP, STUDIES, RunSet
from .studies import (
    TRAJECTORY_METRICS,
    accuracy_column,
    accuracy_table,
    coupling,
    equilibrium,
    intermediate_optimum,
    ratio_vs_accuracy,
    step_changes,
    trajectories,
)


@dataclass
class AnalysisOptions:
    studies: tuple[str, ...] = STUDIES
    by: str = "auto"  # "auto": the run group when runs differ in it, else the method
    accuracy: str = DEFAULT_ACCURACY
    window: float = 0.2
    x: str = STEP
    smooth: int = 1
    log_x: bool = False
    normalize: bool = False
    style: str = "paper"
    early: tuple[float, float] = (0.0, 0.3)
    late: tuple[float, float] = (0.7, 1.0)
    n_resamples: int = 2000
    seed: int = 0
    groups: tuple[str, ...] = ()
    include_unfinished: bool = False
    progress: bool = True


@dataclass
class AnalysisResult:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runset: RunSet | None = None


# Tables with one row per run-step or group-step are the data behind figures: CSV only.
DATA_TABLES = ("trajectories", "information_plane")


def write_table(table: pd.DataFrame, out: Path, name: str, index: bool = False) -> list[Path]:
    """CSV always; Markdown and LaTeX for the summary tables a paper would print."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.csv"]
    table.to_csv(paths[0], index=index)
    if name not in DATA_TABLES:
        paths += [out / f"{name}.md", out / f"{name}.tex"]
        paths[1].write_text(table.to_markdown(index=index, floatfmt=".4g") + "\n")
        paths[2].write_text(table.to_latex(index=index, float_format=lambda v: f"{v:.4g}", escape=True))
    return paths


def run_studies(rs: RunSet, out: Path, opts: AnalysisOptions) -> AnalysisResult:
    result = AnalysisResult(runset=rs)
    figures, tables = out / "figures", out / "tables"
    plots.set_style(opts.style)
    opts = replace(opts, by=grouping_column(rs, opts.by))
    wants = set(opts.studies)

    def skip(study: str, error: Exception) -> None:
        result.notes.append(f"{study}: skipped ({error})")

    if "trajectories" in wants:
        try:
            traj = trajectories(rs, TRAJECTORY_METRICS, opts.x, opts.by, opts.smooth, opts.normalize)
            result.tables["trajectories"] = traj
            result.figures["trajectories"] = plots.plot_trajectories(
                traj, figures, opts.by, opts.x, opts.log_x, opts.normalize
            )
        except KeyError as error:
            skip("trajectories", error)
    if "plane" in wants:
        try:
            points = information_plane_points(rs, opts.by)
            result.tables["information_plane"] = points
            result.figures["information_plane"] = plots.plot_information_plane(points, figures, opts.by)
        except KeyError as error:
            skip("information plane", error)
    eq = equilibrium(rs, TRAJECTORY_METRICS, opts.window)
    if "equilibrium" in wants:
        result.tables["equilibrium"] = eq.reset_index()
        unsettled = [c.split(":")[0] for c in eq if c.endswith(":settled") and not eq[c].all()]
        if unsettled:
            result.notes.append(
                f"equilibrium: some runs have not settled on {', '.join(unsettled)} (trend in the last window)"
            )
    if "accuracy" in wants:
        result.tables["accuracy"] = accuracy_table(rs, by=opts.by).reset_index()
    if "correlation" in wants:
        try:
            table = ratio_vs_accuracy(
                rs, "dynamics/ratio_H_I", opts.accuracy, opts.by, opts.window, opts.n_resamples, opts.seed
            )
            result.tables["ratio_vs_accuracy"] = table
            data = pd.DataFrame(
                {
                    "x": eq["dynamics/ratio_H_I"],
                    "y": accuracy_column(rs, opts.accuracy),
                    "group": rs.runs[opts.by].astype(str),
                }
            )
            result.figures["ratio_vs_accuracy"] = plots.plot_ratio_vs_accuracy(
                data, table, figures, "dynamics/ratio_H_I", opts.accuracy
            )
        except KeyError as error:
            skip("ratio against accuracy", error)
    if "optimum" in wants:
        try:
            fits = intermediate_optimum(
                rs, ("dynamics/H_R", "dynamics/I_RZ"), opts.accuracy, opts.window, opts.n_resamples, opts.seed
            )
            result.tables["intermediate_optimum"] = fits
            data = eq[["dynamics/H_R", "dynamics/I_RZ"]].assign(y=accuracy_column(rs, opts.accuracy))
            result.figures["intermediate_optimum"] = plots.plot_optimum(data, fits, figures, opts.accuracy)
        except KeyError as error:
            skip("intermediate optimum", error)
    if "coupling" in wants:
        try:
            table = coupling(rs, opts.early, opts.late, by=opts.by, n_resamples=opts.n_resamples, seed=opts.seed)
            result.tables["coupling"] = table
            windows = {"early": opts.early, "late": opts.late}
            result.figures["coupling"] = plots.plot_coupling(step_changes(rs), windows, figures)
        except KeyError as error:
            skip("coupling", error)
    for name, table in result.tables.items():
        write_table(table, tables, name)
    return result


def grouping_column(rs: RunSet, by: str) -> str:
    """The run column to group by; "auto" picks ``group`` when the runs differ in it (for
    example several sweeps), else ``method`` (one sweep's runs share its group)."""
    if by == "auto":
        by = "group" if rs.runs["group"].nunique() > 1 or "method" not in rs.runs else "method"
    if by not in rs.runs:
        raise KeyError(f"cannot group by {by!r}: not a run column")
    return by


def information_plane_points(rs: RunSet, by: str = "group") -> pd.DataFrame:
    needed = ["dynamics/H_R", "dynamics/I_RZ"]
    missing = [k for k in needed if k not in rs.history]
    if missing:
        raise KeyError(f"the history has no {', '.join(missing)}")
    rows = rs.history[["run_id", STEP, *needed]].dropna(subset=needed)
    last = rs.history.groupby("run_id")[STEP].max()
    return pd.DataFrame(
        {
            "run_id": rows["run_id"],
            by: rows["run_id"].map(rs.runs[by]).astype(str),
            STEP: rows[STEP],
            "progress": rows[STEP] / rows["run_id"].map(last).clip(lower=1),
            "H_R": rows["dynamics/H_R"],
            "I_RZ": rows["dynamics/I_RZ"],
        }
    ).reset_index(drop=True)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _table_html(table: pd.DataFrame, max_rows: int = 60) -> str:
    shown = table.head(max_rows)
    note = (
        f"<p class=note>first {max_rows} of {len(table)} rows; the full table is in tables/</p>"
        if len(table) > max_rows
        else ""
    )
    return shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0, classes="t") + note


def write_html(result: AnalysisResult, out: Path, source: str, opts: AnalysisOptions) -> Path:
    rs = result.runset
    summary_cols = [
        c
        for c in ("group", "method", "run.seed", "state", opts.accuracy, "final/linear_top1", "final/knn_top1")
        if c in rs.runs
    ]
    runs_view = rs.runs[summary_cols].copy()
    eq = result.tables.get("equilibrium")
    if eq is not None:
        cols = [c for c in ("dynamics/H_R", "dynamics/I_RZ", "dynamics/ratio_H_I", "dynamics/erank_R") if c in eq]
        runs_view = runs_view.join(eq.set_index("run_id")[cols].add_prefix("equilibrium "))
    sections = [
        f"<h1>adadim analysis</h1><p>source: <code>{html.escape(str(source))}</code> — {len(rs)} runs, "
        f"{len(rs.history)} history rows; accuracy key <code>{html.escape(opts.accuracy)}</code>; "
        f"equilibrium window: last {opts.window:.0%}.</p>",
    ]
    if rs.skipped:
        items = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(r)}</li>" for k, r in rs.skipped)
        sections.append(f"<h2>Skipped runs</h2><ul>{items}</ul>")
    if result.notes:
        sections.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
    sections.append("<h2>Runs side by side</h2>" + _table_html(runs_view.reset_index(), 500))
    titles = {
        "accuracy": "Final accuracy per group (mean, std)",
        "trajectories": "Trajectories",
        "information_plane": "Information plane",
        "ratio_vs_accuracy": "H(R)/I(R;Z) at equilibrium against accuracy",
        "intermediate_optimum": "Intermediate optimum (quadratic fit)",
        "coupling": "Coupling of ΔH(R) and ΔI(R;Z), early and late",
    }
    for name, title in titles.items():
        parts = []
        png = out / "figures" / f"{name}.png"
        if png.is_file():
            parts.append(_image(png))
        if name in result.tables and name not in ("trajectories", "information_plane"):
            parts.append(_table_html(result.tables[name]))
        if parts:
            sections.append(f"<h2>{title}</h2>" + "".join(parts))
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;border:1px solid #eee;margin:.5em 0}table.t{border-collapse:collapse;font-size:.85em}"
        "table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}"
        ".note{color:#666;font-size:.85em}code{background:#f4f4f4;padding:0 .2em}"
    )
    head = f"<meta charset=utf-8><title>adadim analysis</title><style>{style}</style>"
    page = f"<!doctype html><html><head>{head}</head><body>{''.join(sections)}</body></html>"
    path = out / "report.html"
    path.write_text(page)
    return path


def analyze(source: str | Path, out: str | Path, opts: AnalysisOptions | None = None) -> AnalysisResult:
    opts = opts or AnalysisOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rs = load_runs(source, include_unfinished=opts.include_unfinished, progress=opts.progress)
    if opts.groups:
        rs = rs.select(rs.runs.index[rs.runs[grouping_column(rs, opts.by)].astype(str).isin(opts.groups)])
    if len(rs) == 0:
        reasons = "; ".join(f"{k}: {r}" for k, r in rs.skipped[:5])
        raise ValueError(f"no usable runs in {source}" + (f" ({reasons})" if reasons else ""))
    opts = replace(opts, by=grouping_column(rs, opts.by))
    result = run_studies(rs, out, opts)
    write_html(result, out, str(source), opts)
    return result
