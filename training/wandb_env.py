"""W&B's own environment decides what the user left unset.

``WANDB_MODE``, ``WANDB_PROJECT``, ``WANDB_ENTITY`` and ``WANDB_DIR`` are W&B's switches (CI
sets ``WANDB_MODE=disabled``). A ``wandb.*`` key the user set wins; a key left at null takes
the environment's value; with neither, the mode is offline (a newcomer needs no account), the
project ``adadim`` and the files go in the run directory. The run records which source decided
each (`record`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError

MODES = ("online", "offline", "disabled")
ALIASES = {"dryrun": "offline", "run": "online"}  # W&B's older names
DEFAULTS = {"mode": "offline", "project": "adadim", "entity": None}
ENV = {"mode": "WANDB_MODE", "project": "WANDB_PROJECT", "entity": "WANDB_ENTITY", "dir": "WANDB_DIR"}


class WandbEnvError(ConfigError):
    """A W&B environment variable the trainer cannot follow."""


@dataclass(frozen=True)
class WandbSettings:
    mode: str
    project: str
    entity: str | None
    dir: str
    sources: dict  # setting -> "config", the environment variable's name, or "default"


def resolve(section, run_dir: Path) -> WandbSettings:
    """The ``wandb`` config section (a null key: not set) merged with the environment."""
    values, sources = {}, {}
    for key, default in DEFAULTS.items():
        configured, from_env = section[key], os.environ.get(ENV[key]) or None
        if configured is not None:
            values[key], sources[key] = configured, "config"
        elif from_env is not None:
            values[key], sources[key] = from_env, ENV[key]
        else:
            values[key], sources[key] = default, "default"
    mode = ALIASES.get(values["mode"], values["mode"])
    if mode not in MODES:
        raise WandbEnvError(f"{ENV['mode']}={values['mode']!r} is not one of {', '.join(MODES)} (or set wandb.mode)")
    directory = os.environ.get(ENV["dir"]) or None
    sources["dir"] = ENV["dir"] if directory else "default"
    return WandbSettings(mode, values["project"], values["entity"], directory or str(run_dir), sources)


def record(settings: WandbSettings) -> dict:
    """Summary entries: the mode in force, and where each setting came from (``config``, the
    environment variable's name, or ``default``)."""
    return {"wandb_mode": settings.mode, **{f"wandb_{key}_from": source for key, source in settings.sources.items()}}
