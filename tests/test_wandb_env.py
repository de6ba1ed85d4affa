"""W&B's environment decides the wandb settings the user left unset."""

from __future__ import annotations

from pathlib import Path

import pytest
from adadim.training.config import load_config
from adadim.training.wandb_env import WandbEnvError, record, resolve


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_without_config_or_environment_a_run_is_offline_in_its_own_folder():
    settings = resolve(load_config("digits").wandb, Path("runs/r0"))
    assert (settings.mode, settings.project, settings.entity, settings.dir) == ("offline", "adadim", None, "runs/r0")
    assert record(settings)["wandb_mode_from"] == "default"


def test_the_environment_decides_what_the_config_leaves_unset(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_PROJECT", "ci")
    monkeypatch.setenv("WANDB_DIR", "/tmp/wandb-files")
    settings = resolve(load_config("digits", ["wandb.entity=me"]).wandb, Path("runs/r0"))
    assert (settings.mode, settings.project, settings.entity, settings.dir) == (
        "disabled",
        "ci",
        "me",
        "/tmp/wandb-files",
    )
    assert record(settings) == {
        "wandb_mode": "disabled",
        "wandb_mode_from": "WANDB_MODE",
        "wandb_project_from": "WANDB_PROJECT",
        "wandb_entity_from": "config",
        "wandb_dir_from": "WANDB_DIR",
    }


def test_a_key_the_user_set_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    settings = resolve(load_config("digits", ["wandb.mode=offline"]).wandb, Path("r"))
    assert settings.mode == "offline" and settings.sources["mode"] == "config"


def test_a_mode_the_trainer_cannot_follow_is_refused(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(WandbEnvError, match="WANDB_MODE='sometimes' is not one of online, offline, disabled"):
        resolve(load_config("digits").wandb, Path("r"))
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # W&B's older name for offline
    assert resolve(load_config("digits").wandb, Path("r")).mode == "offline"
