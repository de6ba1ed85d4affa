"""Which folders under a local source are runs: ours, and Lightning CSV logs.

A folder holding any of ``config.yaml``, ``summary.json`` or ``history.jsonl`` (whatever it
is: a file, a folder, a FIFO) is a candidate run, so a run whose history is missing or is not
a file is skipped with its reason instead of vanishing. A folder holding ``metrics.csv`` is a
Lightning ``CSVLogger`` folder. One walk finds both, at any depth below the source down to
`MAX_DEPTH` folders (a study root holds sweep folders of trials: depth 2; the limit also ends
a loop of linked folders, which the walk follows). It does not descend into a run nor into
hidden folders (the analysis cache, ``.git``); it looks for runs outside W&B's folders and
checkpoints and logs folders, and for CSV logs in those too (Lightning's own layout is
``logs/<name>/version_<n>``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUN_FILES = ("config.yaml", "summary.json", "history.jsonl")
CSV_NAME = "metrics.csv"  # the file Lightning's CSVLogger writes
MAX_DEPTH = 6  # folders below the source searched for runs and CSV logs
NOT_RUNS = {"wandb", "checkpoints", "logs"}


@dataclass
class Found:
    """The folders one walk of a source found, each list in path order."""

    runs: list[Path]  # our run folders (candidates)
    csv_logs: list[Path]  # Lightning CSVLogger folders


def is_candidate(folder: Path) -> bool:
    """True when ``folder`` holds any of a run's files (``lexists``: a dangling link counts)."""
    return any(os.path.lexists(folder / name) for name in RUN_FILES)


def _searched(folder: Path) -> bool:
    name = folder.name
    return not (name in NOT_RUNS or name.startswith("offline-run-"))


def walk(source: Path, max_depth: int = MAX_DEPTH) -> Found:
    """Every candidate run folder and CSV log folder below ``source`` (not ``source`` itself)."""
    runs: list[Path] = []
    csv_logs: list[Path] = []
    frontier = [(source, True)]  # (folder, whether runs are looked for below it)
    for _ in range(max_depth):
        below: list[tuple[Path, bool]] = []
        for folder, runs_below in frontier:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:  # an unreadable folder holds no run we can read
                continue
            for child in children:
                looks_for_runs = runs_below and _searched(child)
                if looks_for_runs and is_candidate(child):
                    runs.append(child)
                    continue
                if (child / CSV_NAME).is_file():
                    csv_logs.append(child)
                below.append((child, looks_for_runs))
        frontier = below
    return Found(sorted(runs), sorted(csv_logs))


def candidate_run_dirs(source: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Every candidate run folder below ``source`` (not ``source`` itself), in path order."""
    return walk(source, max_depth).runs


def run_key(source: Path, run_dir: Path) -> str:
    """A run's key in skip lines and the cache: its path below the source (its name when it
    sits directly under it), so two runs of one name in different folders stay apart."""
    return run_dir.relative_to(source).as_posix()


def missing_history(run_dir: Path) -> str:
    """Why a candidate run has no usable history.jsonl."""
    path = run_dir / "history.jsonl"
    if not os.path.lexists(path):
        present = [n for n in RUN_FILES if os.path.lexists(run_dir / n)]
        return f"no history.jsonl (the folder holds {', '.join(present)})"
    if path.is_dir():
        return "history.jsonl is a folder, not a file"
    return "history.jsonl is not a regular file (a FIFO, a socket or a dangling link)"
