"""`load_runs(source)`: local run directories, W&B offline files, or a W&B project.

Sources:
- a local runs root (folders holding ``history.jsonl``) or one run directory;
- W&B offline run folders or ``.wandb`` files (from our trainer or from any code), or a folder
  holding them; read without a server (see `adadim.analysis.wandb_file`). Several offline folders of
  one run id (a resumed run) merge, the later file winning for replayed steps;
- ``entity/project``: the W&B API (`wandb.Api().runs(...)`, full history via
  ``scan_history``), with W&B's own ``filters``.

Parsed runs are cached as Parquet, one file per run plus a manifest of the files each was
parsed from (path, size, mtime); a reload re-parses only runs whose files changed. Bad runs
(unfinished, corrupt, empty, missing keys, NaN losses) are skipped with a one-line reason each,
and the rest still load.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .runset import STEP, RunSet, empty_runset
from .wandb_file import CorruptWandbFile, read_run

REQUIRED = ("train/loss",)
CACHE_VERSION = 1


class BadRun(ValueError):
    """A run that cannot be used, with the reason."""


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _clean_history(rows: list[dict] | pd.DataFrame, run_id: str) -> pd.DataFrame:
    if len(rows) == 0:
        raise BadRun("empty history")
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if STEP not in frame:
        if "_step" not in frame:
            raise BadRun(f"history has no {STEP!r} (nor '_step') column")
        frame[STEP] = frame["_step"]
    missing = [k for k in REQUIRED if k not in frame]
    if missing:
        raise BadRun(f"history lacks {', '.join(missing)}")
    frame = frame.drop(columns=[c for c in frame if c.startswith("_")], errors="ignore")
    for column in frame.columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=[STEP]).drop_duplicates(subset=[STEP], keep="last").sort_values(STEP)
    bad_loss = ~np.isfinite(frame[REQUIRED[0]].to_numpy(dtype=float))
    if bad_loss.any():
        raise BadRun(f"NaN or Inf {REQUIRED[0]} at step {int(frame.loc[bad_loss, STEP].iloc[0])}")
    frame.insert(0, "run_id", run_id)
    frame[STEP] = frame[STEP].astype("int64")
    return frame.reset_index(drop=True)


def _meta(run_id: str, config: dict, summary: dict, state: str, source: str) -> dict:
    flat = flatten(config)
    group = flat.get("wandb.group") or flat.get("method") or "default"
    return {"run_id": run_id, **flat, **summary, "state": state, "group": group, "source": source}


# ---- local run directories -----------------------------------------------------------------


def _local_files(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / n for n in ("history.jsonl", "summary.json", "config.yaml")) if p.is_file()]


def _read_jsonl(path: Path) -> list[dict] | pd.DataFrame:
    """Rows of a history file: pandas' C reader, or line by line when a line is bad (a torn
    last row of a crash is dropped; a bad row elsewhere makes the run corrupt)."""
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
        return frame.to_dict("records") if frame.empty else frame
    except ValueError:
        pass
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise BadRun(f"history.jsonl line {i + 1} is corrupt") from None
    return rows


def parse_local_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    history_path = run_dir / "history.jsonl"
    if not history_path.is_file():
        raise BadRun("no history.jsonl")
    rows = _read_jsonl(history_path)
    try:
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise BadRun(f"unreadable summary or config: {str(error).splitlines()[0]}") from None
    run_id = run_dir.name
    state = summary.get("state", "unknown")
    return _meta(run_id, config or {}, summary, state, str(run_dir)), _clean_history(rows, run_id)


# ---- W&B offline files ---------------------------------------------------------------------


def _wandb_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".wandb":
        return [path]
    return sorted(path.rglob("*.wandb"))


def parse_wandb_files(files: list[Path], run_id: str) -> tuple[dict, pd.DataFrame]:
    """One run from its offline files, oldest first (a resumed run has several)."""
    config, summary, rows, exit_code = {}, {}, [], None
    for f in sorted(files, key=lambda p: p.parent.name):
        try:
            run = read_run(f)
        except CorruptWandbFile as error:
            raise BadRun(str(error)) from None
        config.update(run["config"])
        summary.update(run["summary"])
        rows.extend(run["history"])
        exit_code = run["exit_code"]
    config.pop("_wandb", None)
    state = "finished" if exit_code == 0 else ("failed" if exit_code is not None else "crashed or running")
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}
    return _meta(
        run_id, config, summary, summary.get("state", state) if state == "finished" else state, str(files[0])
    ), _clean_history(rows, run_id)


def _wandb_run_id(path: Path) -> str:
    stem = path.stem  # run-<id>
    return stem[4:] if stem.startswith("run-") else stem


# ---- W&B API -------------------------------------------------------------------------------


def run_from_api(api_run) -> tuple[dict, pd.DataFrame]:
    """Convert one `wandb.apis.public.Run` (id, config, summary, state, group,
    scan_history) into our meta row and history."""
    summary = {k: v for k, v in dict(api_run.summary._json_dict).items() if not k.startswith("_")}
    config = {
        k: (v.get("value", v) if isinstance(v, dict) and set(v) <= {"value", "desc"} else v)
        for k, v in dict(api_run.config).items()
    }
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    meta = _meta(api_run.id, config, summary, api_run.state, f"wandb:{api_run.path}")
    if getattr(api_run, "group", None):
        meta["group"] = api_run.group
    return meta, _clean_history(list(api_run.scan_history()), api_run.id)


# ---- the cache -------------------------------------------------------------------------------


def _signature(files: Iterable[Path]) -> list:
    return sorted([str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files)


class Cache:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.manifest: dict = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / "manifest.json"
            try:
                manifest = json.loads(path.read_text()) if path.is_file() else {}
            except json.JSONDecodeError:
                manifest = {}
            self.manifest = manifest.get("runs", {}) if manifest.get("version") == CACHE_VERSION else {}

    def _file(self, key: str) -> Path:
        return self.directory / f"{key.replace('/', '__')}.parquet"

    def get(self, key: str, signature: list):
        entry = self.manifest.get(key)
        if self.directory is None or entry is None or entry["signature"] != signature:
            return None
        if entry.get("bad"):
            return BadRun(entry["bad"])
        try:
            return entry["meta"], pd.read_parquet(self._file(key))
        except Exception:
            return None

    def put(self, key: str, signature: list, meta: dict | None, history: pd.DataFrame | None, bad: str | None = None):
        if self.directory is None:
            return
        if bad is None:
            history.to_parquet(self._file(key), index=False)
        self.manifest[key] = {"signature": signature, "meta": _jsonable(meta), "bad": bad}

    def save(self) -> None:
        if self.directory is not None:
            tmp = self.directory / ".manifest.json.tmp"
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "runs": self.manifest}))
            tmp.replace(self.directory / "manifest.json")


def _jsonable(meta: dict | None):
    if meta is None:
        return None
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in meta.items()}


# ---- the entry point -----------------------------------------------------------------------


def _discover(source: Path) -> list[tuple[str, list, Callable[[], tuple[dict, pd.DataFrame]]]]:
    """(cache key, signature of its files, parser) for every run under a local path."""
    found = []
    if (source / "history.jsonl").is_file():
        return [(source.name, _signature(_local_files(source)), lambda s=source: parse_local_run(s))]
    wandb_only = source.is_file() or source.name.startswith("offline-run-") or source.name == "wandb"
    if not wandb_only:
        for run_dir in sorted(p for p in source.iterdir() if p.is_dir() and (p / "history.jsonl").is_file()):
            found.append((run_dir.name, _signature(_local_files(run_dir)), lambda d=run_dir: parse_local_run(d)))
    if found:
        return found
    by_id: dict[str, list[Path]] = {}
    for f in _wandb_files(source):
        by_id.setdefault(_wandb_run_id(f), []).append(f)
    return [
        (rid, _signature(files), lambda fs=files, r=rid: parse_wandb_files(fs, r))
        for rid, files in sorted(by_id.items())
    ]


def load_runs(
    source: str | Path,
    filters: dict | Callable[[dict], bool] | None = None,
    cache_dir: str | Path | None = "auto",
    include_unfinished: bool = False,
    progress: bool = True,
    api=None,
) -> RunSet:
    """Load every run of a source into a RunSet (see the module docstring).

    ``filters``: for a W&B project, W&B's MongoDB-style filter dict; for any source, a callable
    on the run's meta row (flattened config + summary + state) or a dict of equalities on it.
    ``cache_dir``: "auto" (``<source>/.adadim-cache``, or ``~/.cache/adadim/<entity>__<project>``
    for W&B), a path, or None for no cache. Unfinished runs (state other than finished) are
    skipped unless ``include_unfinished``.
    """
    from tqdm.auto import tqdm

    path = Path(source)
    is_project = not path.exists() and str(source).count("/") == 1
    if not path.exists() and not is_project:
        raise FileNotFoundError(f"no runs at {source!r}: not a folder, a .wandb file, or an entity/project")
    if cache_dir == "auto":
        if is_project:
            cache_dir = Path.home() / ".cache" / "adadim" / str(source).replace("/", "__")
        else:
            cache_dir = (path if path.is_dir() else path.parent) / ".adadim-cache"
    cache = Cache(Path(cache_dir) if cache_dir is not None else None)

    if is_project:
        entries = _api_entries(str(source), filters if isinstance(filters, dict) else None, api)
    else:
        entries = _discover(path)
    metas, histories, skipped = [], [], []
    for key, signature, parse in tqdm(entries, desc="loading runs", unit="run", disable=not progress, leave=False):
        cached = cache.get(key, signature)
        try:
            if isinstance(cached, BadRun):
                raise cached
            if cached is None:
                try:
                    meta, history = parse()
                except BadRun as error:
                    cache.put(key, signature, None, None, bad=str(error))
                    raise
                cache.put(key, signature, meta, history)
            else:
                meta, history = cached
            if not include_unfinished and meta.get("state") != "finished":
                raise BadRun(f"state is {meta.get('state')!r}, not finished (include_unfinished=True keeps it)")
            if not _keep(meta, filters, is_project):
                continue
        except BadRun as error:
            skipped.append((key, str(error)))
            continue
        metas.append(meta)
        histories.append(history)
    cache.save()
    for key, reason in skipped:
        print(f"adadim: skipped run {key}: {reason}", file=sys.stderr)
    if not metas:
        result = empty_runset()
        result.skipped = skipped
        return result
    runs = pd.DataFrame(metas).set_index("run_id")
    history = pd.concat(histories, ignore_index=True, sort=False)
    return RunSet(runs, history, skipped)


def _keep(meta: dict, filters, is_project: bool) -> bool:
    if filters is None or (is_project and isinstance(filters, dict)):
        return True
    if callable(filters):
        return bool(filters(meta))
    return all(meta.get(k) == v for k, v in filters.items())


def _api_entries(project: str, filters: dict | None, api):
    """One entry per W&B run; its cache signature is its state, last step and heartbeat."""
    if api is None:
        import wandb

        api = wandb.Api()
    entries = []
    for api_run in api.runs(project, filters=filters or {}):
        signature = [
            api_run.id,
            api_run.state,
            getattr(api_run, "lastHistoryStep", None),
            getattr(api_run, "heartbeatAt", None),
        ]
        entries.append((api_run.id, signature, lambda r=api_run: run_from_api(r)))
    return entries
