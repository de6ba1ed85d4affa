"""Which folders under a local source are runs.

A folder holding any of ``config.yaml``, ``summary.json`` or ``history.jsonl`` (whatever it
is: a file, a folder, a FIFO) is a candidate run, so a run whose history is missing or is not
a file is skipped with its reason instead of vanishing. Candidates are found at any depth
below the source down to `MAX_DEPTH` folders (a study root holds sweep folders of trials:
depth 2; the limit also ends a loop of linked folders). The search does not descend into a
run, nor into hidden folders (the analysis cache), W&B's folders or a run's checkpoints and
logs.
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_FILES = ("config.yaml", "summary.json", "history.jsonl")
MAX_DEPTH = 6  # folders below the source searched for runs
NOT_RUNS = {"wandb", "checkpoints", "logs"}


def is_candidate(folder: Path) -> bool:
    """True when ``folder`` holds any of a run's files (``lexists``: a dangling link counts)."""
    return any(os.path.lexists(folder / name) for name in RUN_FILES)


def _searched(folder: Path) -> bool:
    name = folder.name
    return not (name.startswith(".") or name in NOT_RUNS or name.startswith("offline-run-"))


def candidate_run_dirs(source: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Every candidate run folder below ``source`` (not ``source`` itself), in path order."""
    found: list[Path] = []
    frontier = [source]
    for _ in range(max_depth):
        below: list[Path] = []
        for folder in frontier:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and _searched(p))
            except OSError:  # an unreadable folder holds no run we can read
                continue
            for child in children:
                (found if is_candidate(child) else below).append(child)
        frontier = below
    return sorted(found)


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
