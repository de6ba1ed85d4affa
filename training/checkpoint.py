"""Checkpoints: written atomically, read with ``weights_only=True``, newest good one wins."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

_NAME = re.compile(r"^step-(\d{8})\.pt$")


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


def load_latest(directory: Path, map_location="cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; a corrupt one is reported and skipped."""
    for path in reversed(checkpoints(directory)):
        try:
            return path, torch.load(path, map_location=map_location, weights_only=True)
        except Exception as error:  # a truncated or corrupt file: fall back to the previous one
            print(f"adadim: skipping unreadable checkpoint {path}: {error}", file=sys.stderr)
    return None
