"""Runs from other trainers: Lightning CSV logs, and the key map that names foreign keys.

Design notes: docs/own-trainer.md, "Design notes: foreign".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from .discovery import CSV_NAME, Found, walk

KEY_MAP_PREFIX = "key_map/"
CSV_STEP = "step"  # the step column CSVLogger writes


def read_key_map(keys: dict | str | Path | None) -> dict[str, str]:
    """The key map as ``{our key: their key}``, from a dict or a YAML file; ValueError with one
    line when it is unreadable or not a mapping of names."""
    if keys is None:
        return {}
    if isinstance(keys, (str, Path)):
        path = Path(keys)
        if not path.is_file():
            raise ValueError(f"key map {str(keys)!r} is not a file")
        try:
            keys = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"key map {path.name} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise ValueError("the key map must map our key names to the run's, e.g. 'final/lowlabel_top1: val_acc'")
    return {str(k): str(v) for k, v in keys.items()}


def apply_key_map(meta: dict, history: pd.DataFrame, keys: dict[str, str]) -> tuple[dict, pd.DataFrame]:
    """Rename each mapped key in one run's meta row and history. Raises ValueError naming the
    first mapped key the run does not have."""
    if not keys:
        return meta, history
    meta, renames = dict(meta), {}
    for ours, theirs in keys.items():
        in_history, in_meta = theirs in history.columns, theirs in meta
        if not (in_history or in_meta):
            raise ValueError(f"the key map names {theirs!r} (as {ours}) but the run has no such key")
        if in_history:
            renames[theirs] = ours
        if in_meta:
            meta[ours] = meta.pop(theirs)
        elif ours not in meta or meta[ours] is None:
            logged = history[theirs].dropna()
            meta[ours] = float(logged.iloc[-1]) if len(logged) else None
        meta[KEY_MAP_PREFIX + ours] = theirs
    history = history.drop(columns=[c for c in renames.values() if c in history.columns]).rename(columns=renames)
    return meta, history


def csv_run_dirs(source: Path, found: Found | None = None) -> list[Path]:
    """Lightning ``CSVLogger`` folders (``<name>/version_<n>/metrics.csv``) at or under
    ``source``, down to `MAX_DEPTH` folders; ``found``: the source's walk, when already made."""
    if source.is_file():
        return [source.parent] if source.name == CSV_NAME else []
    if (source / CSV_NAME).is_file():
        return [source]
    return (found if found is not None else walk(source)).csv_logs


def csv_run_id(run_dir: Path) -> str:
    return f"{run_dir.parent.name}-{run_dir.name}"


def csv_files(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / CSV_NAME, run_dir / "hparams.yaml") if p.is_file()]


def read_csv_run(run_dir: Path) -> tuple[dict, dict, list[dict] | pd.DataFrame]:
    """(config, summary, history) of one CSVLogger folder; the history has one row per step."""
    frame = pd.read_csv(run_dir / CSV_NAME)
    if "trainer/step" not in frame and CSV_STEP in frame:
        frame["trainer/step"] = frame[CSV_STEP]
    elif CSV_STEP in frame:
        frame["trainer/step"] = frame["trainer/step"].fillna(frame[CSV_STEP])
    frame = frame.drop(columns=[CSV_STEP], errors="ignore")
    # Lightning writes each log call as its own line: merge a step's lines (the loss, the
    # callback's dynamics) into one row, each column's last logged value.
    frame = frame.dropna(subset=["trainer/step"]).groupby("trainer/step", as_index=False, sort=True).last()
    if "epoch" in frame and "trainer/epoch" not in frame:
        frame = frame.rename(columns={"epoch": "trainer/epoch"})
    summary = {c: _last(frame[c]) for c in frame.columns if c != "trainer/step"}
    summary = {k: v for k, v in summary.items() if v is not None}
    hparams = run_dir / "hparams.yaml"
    config = yaml.safe_load(hparams.read_text()) if hparams.is_file() else {}
    return config if isinstance(config, dict) else {}, summary, frame


def _last(column: pd.Series):
    values = column.dropna()
    return values.iloc[-1].item() if len(values) else None


__all__ = ["KEY_MAP_PREFIX", "apply_key_map", "csv_run_dirs", "read_csv_run", "read_key_map"]
