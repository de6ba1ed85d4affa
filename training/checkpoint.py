"""Checkpoints: written atomically, read with ``weights_only=True``, newest good one wins."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

from .run_lock import RunDirectoryError

_NAME = re.compile(r"^step-(\d{8})\.pt$")
# What every consumer of a checkpoint reads; the trainer asks for more when it resumes.
REQUIRED_KEYS = ("model", "step")


class CheckpointError(RunDirectoryError):
    """A checkpoint that loads but is not an adadim checkpoint, or does not fit the run's model."""


def save_checkpoint(directory: Path, step: int, state: dict, keep: int) -> Path:
    """Write ``step-<step>.pt`` through a temporary file and an atomic rename, then drop all
    but the newest ``keep`` checkpoints."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{step:08d}.pt"
    tmp = directory / f".{path.name}.tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    for old in checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def load_latest(directory: Path, map_location="cpu", required=REQUIRED_KEYS) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; a corrupt one (a torn write, a pickle that
    ``weights_only`` refuses) is reported and skipped. One that loads but lacks a ``required``
    key is not ours: `CheckpointError`, rather than resuming from an older step unasked."""
    for path in reversed(checkpoints(directory)):
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as error:  # a truncated or corrupt file: fall back to the previous one
            print(
                f"adadim: skipping unreadable checkpoint {path}: {' '.join(str(error).split())[:300]}", file=sys.stderr
            )
            continue
        missing = [key for key in required if not isinstance(state, dict) or key not in state]
        if missing:
            raise CheckpointError(
                f"checkpoint {path} is not an adadim checkpoint (no {', '.join(map(repr, missing))}); "
                "move it out of the folder to use the one before it"
            )
        return path, state
    return None
