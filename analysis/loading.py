"""`load_runs(source)`: local run directories, W&B offline files, or a W&B project.

Design notes: docs/analysis.md, "Design notes: loading".
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from adadim.dynamics.keys import STEP
from adadim.dynamics.run_format import HistoryLineError, flatten, parse_history_lines

from . import foreign
from .discovery import MAX_DEPTH, is_candidate, missing_history, run_key, walk
from .run_cache import Cache, cache_location, content_check, signature
from .runset import RunSet, empty_runset
from .wandb_file import WandbFileError
from .wandb_leet import read_offline_run

REQUIRED = ("train/loss",)


class BadRun(ValueError):
    """A run that cannot be used, with the reason."""


def _clean_history(rows: list[dict] | pd.DataFrame, run_id: str) -> pd.DataFrame:
    if len(rows) == 0:
        raise BadRun("empty history")
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if STEP not in frame:
        if "_step" not in frame:
            raise BadRun(f"history has no {STEP!r} (nor '_step') column")
        frame[STEP] = frame["_step"]
    # Lightning's loggers write its step as trainer/global_step (W&B); rows logged at one step by
    # separate calls (the loss, the callback's dynamics) are merged into one row per step.
    foreign_steps = "trainer/global_step" in frame
    if foreign_steps:
        frame[STEP] = frame[STEP].fillna(frame["trainer/global_step"])
    measured = any(str(c).startswith("dynamics/") for c in frame.columns)
    missing = [k for k in REQUIRED if k not in frame]
    if missing and not measured:
        raise BadRun(f"history lacks {', '.join(missing)} (and every dynamics/ key)")
    frame = frame.drop(columns=[c for c in frame if c.startswith("_")], errors="ignore")
    for column in frame.columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=[STEP])
    if foreign_steps:
        frame = frame.groupby(STEP, as_index=False, sort=True).last()
    frame = frame.drop_duplicates(subset=[STEP], keep="last").sort_values(STEP)
    bad_loss = ~np.isfinite(frame[REQUIRED[0]].to_numpy(dtype=float)) if not missing else np.zeros(len(frame), bool)
    if bad_loss.any():
        raise BadRun(f"NaN or Inf {REQUIRED[0]} at step {int(frame.loc[bad_loss, STEP].iloc[0])}")
    frame.insert(0, "run_id", run_id)
    frame[STEP] = frame[STEP].astype("int64")
    return frame.reset_index(drop=True)


def _meta(run_id: str, config: dict, summary: dict, state: str, source: str) -> dict:
    flat = flatten(config)
    group = flat.get("wandb.group") or flat.get("method") or "default"
    # run_id last among the files' keys: the id the loader settled on wins over summary.run_id.
    return {**flat, **summary, "run_id": run_id, "state": state, "group": group, "source": source}


def _value(row, key: str):
    value = row.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def arm_label(row) -> str:
    """What a run trained, short and seed-free: the method, plus the settings that make a
    variant of it (``fixed α=0.25``, ``adadim γ=0.05 minimize``, ``adadim balance=grad``)."""
    method = str(_value(row, "method") or "unknown")
    parts = [method]
    if method == "steer":
        target = _value(row, "steer.target") or "constant"
        if target == "run" and _value(row, "steer.target_run"):
            parts.append(f"→ {Path(str(_value(row, 'steer.target_run'))).name}")
        elif target == "constant" and _value(row, "steer.value") is not None:
            parts.append(f"→ {float(_value(row, 'steer.value')):g}")
        else:
            parts.append(f"→ {target}")
    if method == "fixed" and _value(row, "adadim.alpha") is not None:
        parts.append(f"α={float(_value(row, 'adadim.alpha')):g}")
    gamma = _value(row, "adadim.gamma")
    if gamma and float(gamma) > 0 and method not in ("vicreg", "barlow"):  # β = γ·α is 0 there
        parts.append(f"γ={float(gamma):g} {_value(row, 'adadim.mi_sign') or 'maximize'}")
    if _value(row, "adadim.balance") not in (None, "none"):
        parts.append(f"balance={_value(row, 'adadim.balance')}")
    return " ".join(parts)


# ---- local run directories -----------------------------------------------------------------


def _local_files(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / n for n in ("history.jsonl", "summary.json", "config.yaml")) if p.is_file()]


def _read_jsonl(path: Path) -> list[dict] | pd.DataFrame:
    """Rows of a history file: pandas' C reader, or line by line when a line is bad (a torn
    last row of a crash is dropped; a bad row elsewhere makes the run corrupt)."""
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
        return frame.to_dict("records") if frame.empty else frame
    except (ValueError, TypeError):  # a torn or foreign line (TypeError: a line that is not an object)
        pass
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise BadRun(f"history.jsonl is not UTF-8 text (byte {error.start}): not a history file") from None
    try:
        return parse_history_lines(lines)
    except HistoryLineError as error:
        # "line 4 is corrupt" (not JSON) or "line 2 is not a JSON object"
        reason = "is corrupt" if error.reason == "is not valid JSON" else error.reason
        raise BadRun(f"history.jsonl line {error.line} {reason}") from None


def _read_mapping(path: Path, parse: Callable[[str], Any]) -> dict:
    """A summary.json or config.yaml as a dict ({} when absent); anything else makes the run bad."""
    if not path.is_file():
        return {}
    try:
        value = parse(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRun(f"{path.name} is not UTF-8 text") from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise BadRun(f"unreadable {path.name}: {str(error).splitlines()[0]}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRun(f"{path.name} holds a {type(value).__name__}, not a mapping")
    return value


def run_identity(folder: str, summary: dict, config: dict) -> str:
    """A run's id comes from its own files, so a renamed or copied folder is still the same
    run: ``summary.json``'s ``run_id``, else ``config.yaml``'s ``run.id``, else the folder name."""
    run_cfg = config.get("run")
    for candidate in (summary.get("run_id"), run_cfg.get("id") if isinstance(run_cfg, dict) else None):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    return folder


def parse_local_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    history_path = run_dir / "history.jsonl"
    if not history_path.is_file():
        raise BadRun(missing_history(run_dir))
    rows = _read_jsonl(history_path)
    summary = _read_mapping(run_dir / "summary.json", json.loads)
    config = _read_mapping(run_dir / "config.yaml", yaml.safe_load)
    run_id = run_identity(run_dir.name, summary, config)
    state = summary.get("state", "unknown")
    return _meta(run_id, config, summary, state, str(run_dir)), _clean_history(rows, run_id)


# ---- W&B offline files ---------------------------------------------------------------------


def _wandb_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".wandb":
        return [path]
    return sorted(path.rglob("*.wandb"))


def parse_wandb_files(files: list[Path], run_id: str) -> tuple[dict, pd.DataFrame]:
    """One run from its offline files, oldest first (a resumed run has several)."""
    config, summary, rows, exit_code, readers = {}, {}, [], None, set()
    for f in sorted(files, key=lambda p: p.parent.name):
        try:
            run, reader = read_offline_run(f)  # W&B's own reader first, ours as the fallback
        except WandbFileError as error:
            raise BadRun(str(error)) from None
        readers.add(reader)
        config.update(run["config"])
        summary.update(run["summary"])
        rows.extend(run["history"])
        exit_code = run["exit_code"]
    config.pop("_wandb", None)
    state = "finished" if exit_code == 0 else ("failed" if exit_code is not None else "crashed or running")
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}
    meta = _meta(run_id, config, summary, summary.get("state", state) if state == "finished" else state, str(files[0]))
    meta["reader"] = "+".join(sorted(readers))  # which .wandb reader served the run
    return meta, _clean_history(rows, run_id)


def parse_csv_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """One Lightning CSVLogger folder (see `adadim.analysis.foreign`)."""
    config, summary, frame = foreign.read_csv_run(run_dir)
    run_id = foreign.csv_run_id(run_dir)
    return _meta(run_id, config, summary, "finished", str(run_dir)), _clean_history(frame, run_id)


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


# ---- the entry point -----------------------------------------------------------------------


def _discover(source: Path) -> list[tuple[str, list, Callable[[], tuple[dict, pd.DataFrame]]]]:
    """(cache key, signature of its files, parser) for every run under a local path."""
    found: list[tuple[str, list, Callable[[], tuple[dict, pd.DataFrame]]]] = []
    if source.is_dir() and is_candidate(source):
        return [(source.name, signature(_local_files(source)), partial(parse_local_run, source))]
    wandb_only = source.is_file() or source.name.startswith("offline-run-") or source.name == "wandb"
    # One bounded walk finds our runs and Lightning CSV logs (`adadim.analysis.discovery`).
    walked = None if wandb_only else walk(source)
    for run_dir in walked.runs if walked is not None else []:
        key = run_key(source, run_dir)
        found.append((key, signature(_local_files(run_dir)), partial(parse_local_run, run_dir)))
    if found:
        return found
    by_id: dict[str, list[Path]] = {}
    for f in _wandb_files(source):
        by_id.setdefault(_wandb_run_id(f), []).append(f)
    found = [(rid, signature(files), partial(parse_wandb_files, files, rid)) for rid, files in sorted(by_id.items())]
    csv_dirs = [] if walked is None else foreign.csv_run_dirs(source, walked)
    return found + [
        (foreign.csv_run_id(d), signature(foreign.csv_files(d)), partial(parse_csv_run, d)) for d in csv_dirs
    ]


def load_runs(
    source: str | Path,
    filters: dict | Callable[[dict], bool] | None = None,
    cache_dir: str | Path | None = "auto",
    include_unfinished: bool = False,
    progress: bool = True,
    api=None,
    keys: dict | str | Path | None = None,
) -> RunSet:
    """Load every run of a source into a RunSet (see the module docstring).

    ``filters``: for a W&B project, W&B's MongoDB-style filter dict; for any source, a callable
    on the run's meta row (flattened config + summary + state) or a dict of equalities on it.
    ``cache_dir``: "auto", a folder, or None for no cache (see `adadim.analysis.run_cache`).
    Unfinished runs (state other than finished) are skipped unless ``include_unfinished``.
    Whatever goes wrong with one run, whatever the exception, skips that run with the reason;
    runs that share one run id are resolved by `drop_duplicates`. Raises `FileNotFoundError`
    or `SourceError` only when the source itself cannot be read.
    ``keys``: the key map of runs from other trainers, ``{our key: their key}`` or a YAML file
    (`adadim.analysis.foreign`); a run lacking a mapped key is skipped with that reason.
    """
    from tqdm.auto import tqdm

    key_map = foreign.read_key_map(keys)
    path = Path(source)
    is_project = not path.exists() and str(source).count("/") == 1
    if not path.exists() and not is_project:
        raise FileNotFoundError(f"no runs at {source!r}: not a folder, a .wandb file, or an entity/project")
    if is_project:
        entries = _api_entries(str(source), filters if isinstance(filters, dict) else None, api)
    else:
        entries = _discover(path)
    notes: list[str] = []
    if not entries and not is_project:
        return _nothing_found(path)
    cache = Cache(cache_location(source, is_project, cache_dir, notes), notes)
    loaded, skipped = [], []
    for key, sig, parse in tqdm(entries, desc="loading runs", unit="run", disable=not progress, leave=False):
        try:
            meta, history = _parse_cached(cache, key, sig, parse)
            try:
                meta, history = foreign.apply_key_map(meta, history, key_map)
            except ValueError as error:
                raise BadRun(str(error)) from None
            if not include_unfinished and meta.get("state") != "finished":
                raise BadRun(
                    f"state is {meta.get('state')!r}, not finished "
                    "(--include-unfinished, or include_unfinished=True, keeps it)"
                )
            if not _keep(meta, filters, is_project):
                continue
        except BadRun as error:
            skipped.append((key, str(error)))
            continue
        except Exception as error:  # one unreadable run must not stop the others; the reason says what broke
            first = (str(error).strip().splitlines() or [""])[0][:300]
            skipped.append((key, f"cannot be read: {type(error).__name__}: {first}"))
            continue
        loaded.append((key, meta, history))
    cache.save()
    loaded, duplicates = drop_duplicates(loaded)
    skipped += duplicates
    for note in notes:
        print(f"adadim: note: {note}", file=sys.stderr)
    for key, reason in skipped:
        print(f"adadim: skipped run {key}: {reason}", file=sys.stderr)
    if not loaded:
        result = empty_runset()
        result.skipped = skipped
        return result
    runs = pd.DataFrame([meta for _, meta, _ in loaded]).set_index("run_id")
    runs["arm"] = [arm_label(row) for _, row in runs.iterrows()]
    history = pd.concat([h for _, _, h in loaded], ignore_index=True, sort=False)
    return RunSet(runs, history, skipped)


def _nothing_found(source: Path) -> RunSet:
    """An empty RunSet whose one skip entry says why nothing under ``source`` is a run."""
    reason = (
        f"nothing here is a run: no folder down to {MAX_DEPTH} levels holds config.yaml, summary.json or "
        "history.jsonl, and there is no .wandb file (a W&B run folder without one has nothing to read)"
    )
    print(f"adadim: {source}: {reason}", file=sys.stderr)
    result = empty_runset()
    result.skipped = [(str(source), reason)]
    return result


def _parse_cached(cache: Cache, key: str, sig: list, parse) -> tuple[dict, pd.DataFrame]:
    cached = cache.get(key, sig)
    if isinstance(cached, str):
        raise BadRun(cached)
    if cached is not None:
        return cached
    check = content_check(sig) if cache.directory is not None else None
    try:
        meta, history = parse()
    except BadRun as error:  # known-bad runs are remembered; unexpected errors are not
        cache.put(key, sig, None, None, bad=str(error), check=check)
        raise
    cache.put(key, sig, meta, history, check=check)
    return meta, history


def drop_duplicates(loaded: list[tuple[str, dict, pd.DataFrame]]):
    """One run per run id. When several folders hold the same run (a copy), the one kept is,
    in order: the folder named after the run id; the copy whose history reaches the highest
    step; the first in path order. The others are skipped, naming the one kept."""
    by_id: dict[str, list[int]] = {}
    for index, (_, meta, _) in enumerate(loaded):
        by_id.setdefault(meta["run_id"], []).append(index)
    dropped, skipped = set(), []
    for run_id, indices in by_id.items():
        if len(indices) == 1:
            continue

        def rank(i: int, run_id=run_id):
            key, meta, history = loaded[i]
            source = str(meta.get("source", key))
            return (Path(source).name != run_id, -int(history[STEP].max()), source)

        ordered = sorted(indices, key=rank)
        kept = loaded[ordered[0]]
        for i in ordered[1:]:
            dropped.add(i)
            skipped.append(
                (loaded[i][0], f"duplicate of run {run_id!r}, also in {kept[1].get('source', kept[0])}, which is kept")
            )
    return [item for i, item in enumerate(loaded) if i not in dropped], skipped


def _keep(meta: dict, filters, is_project: bool) -> bool:
    if filters is None or (is_project and isinstance(filters, dict)):
        return True
    if callable(filters):
        return bool(filters(meta))
    return all(meta.get(k) == v for k, v in filters.items())


class SourceError(ValueError):
    """A source that cannot be read at all (as opposed to one bad run in it)."""


def _api_entries(project: str, filters: dict | None, api):
    """One entry per W&B run; its cache signature is its state, last step and heartbeat."""
    from wandb.errors import Error as WandbError

    try:
        if api is None:
            import wandb

            api = wandb.Api()
        runs = list(api.runs(project, filters=filters or {}))
    except (WandbError, OSError, ValueError) as error:  # no API key, no network, no such project
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SourceError(
            f"{project!r} is not a local folder, and reading it as a W&B entity/project failed: {first}"
        ) from None
    entries = []
    for api_run in runs:
        sig = [
            api_run.id,
            api_run.state,
            getattr(api_run, "lastHistoryStep", None),
            getattr(api_run, "heartbeatAt", None),
        ]
        entries.append((api_run.id, sig, lambda r=api_run: run_from_api(r)))
    return entries
