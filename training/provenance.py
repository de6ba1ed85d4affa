"""Which code and which machine made a run: recorded in its summary (and W&B config) so a study
can tell when the runs it compares came from different versions of the objective."""

from __future__ import annotations

import subprocess
from pathlib import Path

import adadim
import torch

PREFIX = "provenance/"


def git_state(source: Path) -> tuple[str | None, bool | None]:
    """The commit of the checkout holding ``source`` and whether its tracked files differ from
    it; (None, None) for an installed wheel or when git is unavailable."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return commit.stdout.strip(), dirty


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def provenance(device: torch.device, world_size: int) -> dict[str, object]:
    """The ``provenance/*`` fields of a run: adadim's version, the git commit and dirty flag (when
    run from a checkout), torch, CUDA and cuDNN versions, the device and the world size."""
    commit, dirty = git_state(Path(__file__).resolve().parent)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    fields: dict[str, object] = {
        "adadim_version": adadim.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "device": device_name(device),
        "world_size": world_size,
    }
    return {PREFIX + key: value for key, value in fields.items()}
