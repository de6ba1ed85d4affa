"""Checkpoints: written atomically, read with ``weights_only=True``, newest good one wins."""

from __future__ import annotations

import json
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
            size = path.stat().st_size if path.exists() else 0
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            print(
                f"adadim: skipping unreadable checkpoint {path}: truncated, damaged or not a checkpoint "
                f"({size:,} bytes; {reason})",
                file=sys.stderr,
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


def parameter_shapes(state_dict: dict) -> dict[str, list[int]]:
    """Every tensor's shape in a model's state dict: what a checkpoint must match to load."""
    return {name: list(value.shape) for name, value in state_dict.items() if isinstance(value, torch.Tensor)}


def identity(run_id: str, model: torch.nn.Module) -> dict:
    """What a checkpoint records about whose it is: the run's id and its parameter shapes."""
    return {"run_id": run_id, "shapes": parameter_shapes(model.state_dict())}


def owner_run_id(run_dir: Path) -> str:
    """The id a run's checkpoints carry: the one its summary.json records, else its folder's
    name (the trainer names the folder after the run)."""
    try:
        recorded = json.loads((run_dir / "summary.json").read_text(encoding="utf-8")).get("run_id")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        recorded = None
    return recorded if isinstance(recorded, str) else run_dir.name


def load_into(model: torch.nn.Module, path: Path, state: dict, run_id: str, config_path: Path) -> None:
    """Load a checkpoint's weights into ``model``, refusing in one line (`CheckpointError`) a
    checkpoint of another run or of another shape. A checkpoint written before checkpoints
    carried an identity is checked by its tensors' shapes alone."""
    recorded = state.get("run_id")
    if recorded is not None and recorded != run_id:
        raise CheckpointError(
            f"checkpoint {path} belongs to run {recorded!r}, not {run_id!r}; move it out of the folder"
        )
    weights = state["model"]
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path} is not an adadim checkpoint ('model' is not a state dict)")
    recorded_shapes = state.get("shapes")
    theirs = recorded_shapes if isinstance(recorded_shapes, dict) else parameter_shapes(weights)
    ours = parameter_shapes(model.state_dict())
    for name in sorted(set(ours) | set(theirs)):
        if ours.get(name) != theirs.get(name):
            have = theirs.get(name, "nothing")
            want = ours.get(name, "nothing")
            raise CheckpointError(
                f"checkpoint {path} does not fit the model of {config_path}: {name} is {have} in the checkpoint, "
                f"{want} in the model"
            )
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:  # names or dtypes the shapes did not catch
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} does not fit the model of {config_path}: {first}") from None


def record_refusal(run_dir: Path, message: str) -> None:
    """Note in ``summary.json`` why a run could not resume, keeping what it already holds."""
    from .run_logger import write_json_atomic

    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        summary = {}
    summary = summary if isinstance(summary, dict) else {}
    try:
        write_json_atomic(path, {**summary, "state": "failed: checkpoint refused", "error": message})
    except OSError:
        pass  # the refusal itself still reaches the user


def refuse_lost_checkpoints(run_dir: Path, checkpoint_every: int) -> None:
    """Before a resume that found no checkpoint starts over: a history that reaches a step where a
    checkpoint was due means the checkpoints are gone, and starting over would rewrite that
    history; refuse (`CheckpointError`) instead. A run stopped before its first checkpoint
    starts over as before."""
    from adadim.dynamics.keys import STEP

    from .run_logger import read_history

    path = run_dir / "history.jsonl"
    if not path.is_file():
        return
    steps = [int(row[STEP]) for row in read_history(path)]
    if steps and max(steps) + 1 >= checkpoint_every:
        raise CheckpointError(
            f"run {run_dir.name} has history up to step {max(steps)} but no readable checkpoint to resume from "
            f"(in {run_dir / 'checkpoints'}); nothing was changed: restore its checkpoints, or use a new run.id"
        )
