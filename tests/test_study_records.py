"""Run records committed beside a study's results (``results/<study>/records/<sweep>/<trial>/``):
each is a finished run of the trial its id names in its sweep file, so a study root seeded with
them skips exactly those trials (the skipping itself: tests/test_sweeps.py)."""

import json

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
