"""`analyze(source, out)`: every study, its tables (CSV, Markdown, LaTeX), its figures (PDF,
PNG) and one self-contained HTML report (figures embedded, no server needed)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from adadim.dynamics.keys import STEP

from . import plots
from .claims_table import claims
from .loading import load_runs
from .markdown_text import markdown_safe
from .runset import DEFAULT_ACCURACY, STUDIES, RunSet, combine
from .studies import (
    OPTIMUM_METRICS,
    RATIO,
    TRAJECTORY_METRICS,
    accuracy_table,
    coupling,
    coupling_per_run,
    equilibrium,
    equilibrium_points,
    grouping_column,
    information_plane,
    optimum,
    ratio_accuracy,
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
    ratio_sign: int = 0  # the claimed sign of the ratio-accuracy relation; 0: either
    groups: tuple[str, ...] = ()
    include_unfinished: bool = False
    progress: bool = True
    cache_dir: str | Path | None = "auto"  # the parsed-run cache: "auto", a folder, or None (none)
    keys: dict | str | Path | None = None  # key map of runs from other trainers (adadim.analysis.foreign)


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
        paths[1].write_text(markdown_safe(table, index).to_markdown(index=index, floatfmt=".4g") + "\n")
        paths[2].write_text(table.to_latex(index=index, float_format=lambda v: f"{v:.4g}", escape=True))
    return paths


def run_studies(rs: RunSet, out: Path, opts: AnalysisOptions) -> AnalysisResult:
    """Every study in ``opts.studies``; each table is written as tables/<study>.csv (and .md,
    .tex) and each figure as figures/<study>.pdf/.png, under the study's own name."""
    result = AnalysisResult(runset=rs)
    figures, tables = out / "figures", out / "tables"
    plots.set_style(opts.style)
    opts = replace(opts, by=grouping_column(rs, opts.by))
    wants = set(opts.studies)

    def skip(study: str, error: Exception) -> None:
        result.notes.append(f"{study}: skipped ({error.args[0] if error.args else error})")

    if "claims" in wants:
        try:
            result.tables["claims"] = claims(
                rs, opts.accuracy, opts.by, opts.window, opts.early, opts.late, opts.ratio_sign
            )
        except KeyError as error:
            skip("claims", error)
    if "trajectories" in wants:
        try:
            traj = trajectories(rs, TRAJECTORY_METRICS, opts.x, opts.by, opts.smooth, opts.normalize)
            result.tables["trajectories"] = traj
            result.figures["trajectories"] = plots.plot_trajectories(
                traj, figures, opts.by, opts.x, opts.log_x, opts.normalize
            )
        except KeyError as error:
            skip("trajectories", error)
    if "information_plane" in wants:
        try:
            points = information_plane(rs, opts.by)
            result.tables["information_plane"] = points
            result.figures["information_plane"] = plots.plot_information_plane(points, figures, opts.by)
        except KeyError as error:
            skip("information_plane", error)
    eq = equilibrium(rs, TRAJECTORY_METRICS, opts.window)
    if "equilibrium" in wants:
        result.tables["equilibrium"] = eq.reset_index()
        unsettled = [c.split(":")[0] for c in eq if c.endswith(":settled") and not eq[c].all()]
        if unsettled:
            result.notes.append(
                f"equilibrium: some runs have not settled on {', '.join(unsettled)} (trend in the last window)"
            )
    if "accuracy_table" in wants:
        result.tables["accuracy_table"] = accuracy_table(rs, by=opts.by).reset_index()
    if "ratio_accuracy" in wants:
        try:
            table = ratio_accuracy(rs, RATIO, opts.accuracy, opts.by, opts.window, opts.n_resamples, opts.seed)
            result.tables["ratio_accuracy"] = table
            data = equilibrium_points(rs, RATIO, opts.accuracy, opts.by, eq)
            result.figures["ratio_accuracy"] = plots.plot_ratio_accuracy(data, table, figures, RATIO, opts.accuracy)
        except KeyError as error:
            skip("ratio_accuracy", error)
    if "optimum" in wants:
        try:
            fits = optimum(rs, OPTIMUM_METRICS, opts.accuracy, opts.by, opts.window)
            result.tables["optimum"] = fits
            data = {x: equilibrium_points(rs, x, opts.accuracy, opts.by, eq) for x in fits["x"].unique()}
            result.figures["optimum"] = plots.plot_optimum(data, fits, figures, opts.accuracy)
        except KeyError as error:
            skip("optimum", error)
    if "coupling" in wants:
        try:
            per_run = coupling_per_run(rs, opts.early, opts.late, by=opts.by)
            result.tables["coupling"] = coupling(rs, opts.early, opts.late, by=opts.by, per_run=per_run)
            windows = {"early": opts.early, "late": opts.late}
            result.figures["coupling"] = plots.plot_coupling(step_changes(rs), per_run, windows, figures)
        except KeyError as error:
            skip("coupling", error)
    for name, table in result.tables.items():
        write_table(table, tables, name)
    return result


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
    assert rs is not None  # run_studies always sets it
    summary_cols = [
        c
        for c in ("group", "method", "run.seed", "state", opts.accuracy, "final/linear_top1", "final/knn_top1")
        if c in rs.runs
    ]
    runs_view = rs.runs[summary_cols].copy()
    eq = result.tables.get("equilibrium")
    if eq is not None:
        keys = ("dynamics/H_R", "dynamics/I_RZ", "dynamics/I_RZ_excess", "dynamics/ratio_H_I", "dynamics/erank_R")
        cols = [c for c in keys if c in eq]
        runs_view = runs_view.join(eq.set_index("run_id")[cols].add_prefix("equilibrium "))
    from .dashboard import build_dashboard  # the interactive page beside this one: one HTML path per job

    dashboard = build_dashboard(rs, out / "dashboard.html", opts.by, opts.accuracy, opts.window, source=str(source))
    sections = [
        f"<h1>adadim analysis</h1><p>source: <code>{html.escape(str(source))}</code> — {len(rs)} runs, "
        f"{len(rs.history)} history rows; accuracy key <code>{html.escape(opts.accuracy)}</code>; "
        f'equilibrium window: last {opts.window:.0%}. Interactive: <a href="{dashboard.path.name}">'
        f"{dashboard.path.name}</a> (choose runs, metrics and axes; no server needed).</p>",
    ]
    if "claims" in result.tables:
        sections.append(
            "<h2>Claims</h2><p class=note>One row per claim of the paper, each with its pre-declared test; "
            "<code>supported</code> needs p_holm &lt; 0.05 (Holm over the claims) and the claimed sign. "
            "See “How to read the claims table” in docs/analysis.md.</p>" + _table_html(result.tables["claims"])
        )
    if rs.skipped:
        items = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(r)}</li>" for k, r in rs.skipped)
        sections.append(f"<h2>Skipped runs</h2><ul>{items}</ul>")
    if result.notes:
        sections.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
    sections.append("<h2>Runs side by side</h2>" + _table_html(runs_view.reset_index(), 500))
    titles = {
        "accuracy_table": "Final accuracy per group (mean, std)",
        "trajectories": "Trajectories",
        "information_plane": "Information plane",
        "ratio_accuracy": "H(R)/I_excess at equilibrium against accuracy",
        "optimum": "Interior optimum: two lines (the quadratic is descriptive)",
        "coupling": "Coupling of ΔH(R) and ΔI_excess, early, late and the noise floor",
    }
    for name, title in titles.items():
        parts = []
        png = out / "figures" / f"{name}.png"
        if png.is_file():
            parts.append(_image(png))
        if name in result.tables and name not in DATA_TABLES:
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


def analyze(
    source: str | Path | list[str | Path], out: str | Path, opts: AnalysisOptions | None = None
) -> AnalysisResult:
    """Every study on the runs of ``source`` (or of several sources, e.g. a study's sweeps)."""
    opts = opts or AnalysisOptions()
    out = Path(out)
    sources = list(source) if isinstance(source, (list, tuple)) else [source]
    rs = combine(
        [
            load_runs(
                s,
                include_unfinished=opts.include_unfinished,
                progress=opts.progress,
                cache_dir=opts.cache_dir,
                keys=opts.keys,
            )
            for s in sources
        ]
    )
    source = ", ".join(map(str, sources))
    if opts.groups:
        rs = rs.select(rs.runs.index[rs.runs[grouping_column(rs, opts.by)].astype(str).isin(opts.groups)])
    if len(rs) == 0:
        reasons = "; ".join(f"{k}: {r}" for k, r in rs.skipped[:5])
        raise ValueError(f"no usable runs in {source}" + (f" ({reasons})" if reasons else ""))
    out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
    opts = replace(opts, by=grouping_column(rs, opts.by))
    result = run_studies(rs, out, opts)
    write_html(result, out, str(source), opts)
    return result
