"""Every run records the code and the machine that made it, and the analysis shows it."""

import json
import subprocess

import adadim
import pandas as pd
import torch
from adadim.analysis import load_runs
from adadim.analysis.runset import RunSet
from adadim.analysis.study_results import mixed_arms, mixed_provenance
from adadim.cli import main
from adadim.training.provenance import git_state, provenance
from trainer_helpers import REPO, tiny_overrides

FIELDS = {
    "adadim_version",
    "git_commit",
    "git_dirty",
    "torch",
    "cuda",
    "cudnn",
    "device",
    "world_size",
}


def test_a_run_records_its_provenance_and_load_runs_shows_it(tmp_path):
    assert main(["train", *tiny_overrides(tmp_path, "prov", **{"optim.epochs": 1})]) == 0
    summary = json.loads((tmp_path / "prov" / "summary.json").read_text())
    recorded = {k.removeprefix("provenance/") for k in summary if k.startswith("provenance/")}
    assert recorded == FIELDS
    assert summary["provenance/adadim_version"] == adadim.__version__
    assert summary["provenance/torch"] == torch.__version__
    assert summary["provenance/device"] == "cpu"
    assert summary["provenance/world_size"] == 1
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # run from a checkout
        assert summary["provenance/git_commit"] == head.stdout.strip()
        assert isinstance(summary["provenance/git_dirty"], bool)

    runs = load_runs(tmp_path, cache_dir=None, progress=False).runs
    row = runs.loc["prov"]
    assert row["provenance/adadim_version"] == adadim.__version__
    assert row["provenance/git_commit"] == summary["provenance/git_commit"]


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert git_state(tmp_path) == (None, None)


def test_git_state_sees_an_uncommitted_change(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f.py").write_text("a = 1\n")
    git("add", "f.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    commit, dirty = git_state(tmp_path)
    assert len(commit) == 40 and dirty is False
    (tmp_path / "f.py").write_text("a = 2\n")
    assert git_state(tmp_path) == (commit, True)


def test_provenance_names_the_device_and_world():
    fields = provenance(torch.device("cpu"), 4)
    assert fields["provenance/world_size"] == 4
    assert fields["provenance/device"] == "cpu"


def _runset(commits: list, versions: list) -> RunSet:
    runs = pd.DataFrame(
        {
            "arm": ["vicreg"] * len(commits),
            "optim.epochs": [100] * len(commits),
            "provenance/git_commit": commits,
            "provenance/adadim_version": versions,
        },
        index=[f"r{i}" for i in range(len(commits))],
    )
    return RunSet(runs, pd.DataFrame({"run_id": []}))


def test_study_flags_an_arm_whose_runs_come_from_different_commits_or_versions():
    assert mixed_provenance(_runset(["aaa", "bbb"], ["0.2.0", "0.2.0"])) == {
        "vicreg": {"provenance/git_commit": ["aaa", "bbb"]}
    }
    assert mixed_provenance(_runset(["aaa", "aaa"], ["0.1.0", "0.2.0"])) == {
        "vicreg": {"provenance/adadim_version": ["0.1.0", "0.2.0"]}
    }
    # provenance is not a setting: the settings check stays quiet about it
    assert mixed_arms(_runset(["aaa", "bbb"], ["0.1.0", "0.2.0"])) == {}


def test_study_is_quiet_when_an_arm_shares_its_code_or_recorded_none():
    assert mixed_provenance(_runset(["aaa", "aaa"], ["0.2.0", "0.2.0"])) == {}
    assert mixed_provenance(_runset([None, "aaa"], ["0.2.0", None])) == {}
    older = RunSet(pd.DataFrame({"arm": ["a", "a"]}, index=["x", "y"]), pd.DataFrame({"run_id": []}))
    assert mixed_provenance(older) == {}
