"""Run records committed beside a study's results (``results/<study>/records/<sweep>/<trial>/``):
each is a finished run of the trial its id names in its sweep file, so a study root seeded with
them skips exactly those trials (the skipping itself: tests/test_sweeps.py)."""

import json
import shutil
import subprocess

import pytest
from adadim.analysis import load_runs
from adadim.analysis.discovery import RUN_FILES
from adadim.analysis.noise_floor import FILENAME as NOISE_FLOOR_FILE
from adadim.sweeps.spec import grid_trials, load_sweep
from omegaconf import OmegaConf
from trainer_helpers import REPO

RECORDS = sorted(p.parent for p in (REPO / "results").glob("*/records/*/*/summary.json"))


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_committed_records_are_finished_clean_cpu_runs_of_their_trials(record):
    summary = json.loads((record / "summary.json").read_text())
    assert summary["state"] == "finished"
    assert summary["provenance/device"] == "cpu" and summary["provenance/git_dirty"] is False
    assert {p.name for p in record.iterdir()} <= {*RUN_FILES, NOISE_FLOOR_FILE, "train.log"}
    runs = load_runs(record, cache_dir=None, progress=False)
    assert len(runs) == 1, runs.skipped
    # The trial id's index names the grid point of the sweep file of the parent folder's name.
    sweep = load_sweep(record.parent.name)
    params = grid_trials(sweep)[int(record.name.rsplit("-", 1)[1])]
    config = OmegaConf.load(record / "config.yaml")
    for key, value in params.items():
        assert OmegaConf.select(config, key) == value, key


@pytest.mark.parametrize("folder", sorted(p.parent for p in (REPO / "results").glob("*/records/README.md")))
def test_a_records_folder_holds_committed_records(folder):
    """A records folder whose runs git ignores, or never received, would leave the checks above
    with nothing to check; the folder's README exists only beside records."""
    assert any(r.is_relative_to(folder) for r in RECORDS), f"{folder} has a README but no run records"


# What a trial computes with, besides the study's sweep files: the package's entry point, the code of
# the three packages a trial runs (the analysis package only reads finished runs) and the
# dependency ranges.
RUN_CODE = ("adadim", "dynamics", "training", "sweeps/*.py", "pyproject.toml")


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def _history_unavailable() -> str | None:
    if shutil.which("git") is None or _git("rev-parse", "--git-dir").returncode != 0:
        return "not a git checkout"
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return "a shallow clone lacks the records' commits"
    return None


@pytest.mark.parametrize("folder", sorted({r.parents[1] for r in RECORDS}), ids=lambda p: p.parent.name)
def test_records_of_a_study_share_the_code_a_run_computes_with(folder):
    """Records accumulate across sessions at later commits; they stay one experiment only while
    no commit between them touches the code a trial computes with or the study's sweep files."""
    if reason := _history_unavailable():
        pytest.skip(reason)
    records = [r for r in RECORDS if r.is_relative_to(folder)]
    commits = sorted({json.loads((r / "summary.json").read_text())["provenance/git_commit"] for r in records})
    for commit in commits:
        assert _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0, f"{commit} is not in this history"
    sweep_files = sorted({f"sweeps/{r.parent.name}.yaml" for r in records})
    for commit in commits[1:]:
        changed = _git("diff", "--name-only", commits[0], commit, "--", *RUN_CODE, *sweep_files).stdout.split()
        assert not changed, f"{folder}: {commits[0][:7]} and {commit[:7]} differ in {changed}"
