"""Log an analysis to W&B as a run of its own (``job_type="analysis"``), beside the runs it read.

What the run holds: every table `analyze` returned as a `wandb.Table` (the claims and the
correlation tables among them), every PNG figure as a `wandb.Image`, and in its config the
source and the ids of the runs analysed. Modes are the trainer's: ``offline`` (the default;
files under ``<out>/wandb/``, ``wandb sync`` uploads them later), ``online``, ``disabled``.

A wandb.Table logged to a run holds at most ``wandb.Table.MAX_ROWS`` rows and wandb would cut
a longer one silently; the tables behind figures (one row per run and step) can be that long,
so those are saved whole as CSV files of the run instead, and listed in its summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

MODES = ("offline", "online", "disabled")


@dataclass
class ExportInfo:
    mode: str
    run_id: str | None = None
    path: Path | None = None  # the offline transaction log (run-<id>.wandb)
    url: str | None = None  # online only
    tables: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # tables too long for a wandb.Table, saved as CSV
    images: list[str] = field(default_factory=list)


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    """Columns wandb can type: string column names, booleans and text kept, other objects as
    text (mixed types in a column make wandb.Table refuse the row)."""
    table = table.reset_index(drop=True).copy()
    table.columns = [str(c) for c in table.columns]
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(lambda v: None if v is None or v != v else str(v))
    return table


def log_analysis(
    result,
    out: str | Path,
    project: str,
    entity: str | None = None,
    mode: str = "offline",
    source: str = "",
    name: str | None = None,
) -> ExportInfo:
    """Log ``result`` (an `AnalysisResult` written to ``out``) as one W&B run."""
    if mode not in MODES:
        raise ValueError(f"unknown W&B mode {mode!r}; choose from {', '.join(MODES)}")
    if not project:
        raise ValueError("a W&B project is needed")
    info = ExportInfo(mode)
    if mode == "disabled":
        return info
    import wandb

    out = Path(out)
    rs = result.runset
    config = {
        "source": str(source),
        "source_run_ids": [str(r) for r in rs.runs.index],
        "n_runs": len(rs),
        "skipped_runs": [str(r) for r, _ in rs.skipped],
    }
    run = wandb.init(
        project=project,
        entity=entity,
        mode=mode,  # type: ignore[arg-type]  # checked by the CLI's choices
        job_type="analysis",
        name=name or f"analysis-{out.resolve().name}",
        dir=str(out),
        config=config,
        settings=wandb.Settings(quiet=True, console="off", x_disable_stats=True),
    )
    try:
        row: dict[str, object] = {}
        for table_name, table in result.tables.items():
            if len(table) <= wandb.Table.MAX_ROWS:
                row[f"tables/{table_name}"] = wandb.Table(dataframe=_plain(table))
                info.tables.append(table_name)
            else:
                csv = out / "tables" / f"{table_name}.csv"
                if not csv.is_file():
                    csv.parent.mkdir(parents=True, exist_ok=True)
                    table.to_csv(csv, index=False)
                run.save(str(csv), base_path=str(out), policy="now")
                info.files.append(str(csv.relative_to(out)))
        for png in sorted((out / "figures").glob("*.png")):
            row[f"figures/{png.stem}"] = wandb.Image(str(png), caption=png.stem)
            info.images.append(png.stem)
        run.log(row)
        run.summary["analysis/table_files"] = info.files
        run.summary["analysis/notes"] = list(result.notes)
        info.run_id = run.id
        if mode == "offline":
            info.path = Path(run.settings.sync_file)
        else:
            info.url = run.url
    finally:
        run.finish()
    if info.path is not None:
        wait_for_offline_log(info.path)
    return info


def wait_for_offline_log(path: Path, timeout: float = 30.0) -> None:
    """wandb's service can still be writing the offline log when ``finish()`` returns (seen
    with wandb 0.31: the first run of a process read back empty); wait until the log is
    whole, so that whoever reads it next (``wandb sync``, `wandb_file.read_run`) sees all of it."""
    import time

    from .wandb_file import read_records

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.is_file() and any(r.WhichOneof("record_type") == "exit" for r in read_records(path)):
                return
        except ValueError:
            pass  # a half-written header or record: read again
        time.sleep(0.05)
    raise TimeoutError(f"{path}: the W&B offline log was not complete {timeout:.0f} s after the run finished")


def log_from_cli(result, args) -> int:
    """`adadim analyze ... --wandb-project P`: log the analysis and say where it went."""
    import sys

    try:
        info = log_analysis(
            result, args.out, args.wandb_project, args.wandb_entity, args.wandb_mode, source=str(args.source)
        )
    except Exception as error:  # wandb raises many kinds (no login, no network, permissions)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"adadim analyze: could not log the analysis to W&B: {first}", file=sys.stderr)
        return 1
    if info.mode != "disabled":
        where = info.path if info.mode == "offline" else info.url
        print(
            f"W&B {info.mode} run {info.run_id} (job_type analysis): {len(info.tables)} tables, "
            f"{len(info.images)} figures, {len(info.files)} table files -> {where}"
        )
    return 0
