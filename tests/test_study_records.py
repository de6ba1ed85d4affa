"""Run records committed beside a study's results (``results/<study>/records/<sweep>/<trial>/``): a
study root seeded with them skips those trials, so a study continues across machines; and each
committed record is a finished run of the trial its id names in its sweep file."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from adadim.analysis import load_runs
from adadim.cli import main
from adadim.sweeps.spec import grid_trials, load_sweep
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted(p.parent for p in (REPO / "results").glob("*/records/*/*/summary.json"))
RECORD_FILES = ("config.yaml", "summary.json", "history.jsonl", "noise_floor.json")


def _grid_file(tmp_path: Path) -> Path:
    spec = {
        "name": "part",
        "method": "grid",
        "metric": {"name": "final/val_lowlabel_top1", "goal": "maximize"},
        "parameters": {"method": {"values": ["vicreg", "simclr"]}, "run.seed": {"values": [0, 1]}},
        "command": ["adadim", "train", "${args_no_hyphens}"],
    }
    path = tmp_path / "part.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _finished_record(folder: Path, method: str, seed: int) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"state": "finished", "final/val_lowlabel_top1": 0.4}))
    (folder / "config.yaml").write_text(yaml.safe_dump({"method": method, "run": {"seed": seed}}))


def test_a_study_root_seeded_with_finished_records_skips_them(tmp_path, capsys):
    sweep = _grid_file(tmp_path)
    records = tmp_path / "records" / "part"
    _finished_record(records / "part-000", "vicreg", 0)
    _finished_record(records / "part-001", "vicreg", 1)
    root = tmp_path / "root"
    shutil.copytree(tmp_path / "records", root)  # no sweep.json: the records alone
    # The first two trials of the grid are the two records: nothing runs.
    assert main(["sweep", "local", str(sweep), "--root", str(root), "--count", "2"]) == 0
    out = capsys.readouterr()
    assert "started" not in out.err
    state = json.loads((root / "part" / "sweep.json").read_text())
    assert [(t["trial_id"], t["status"], t["metric"]) for t in state["trials"]] == [
        ("part-000", "finished", 0.4),
        ("part-001", "finished", 0.4),
    ]


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_committed_records_are_finished_clean_cpu_runs_of_their_trials(record):
    summary = json.loads((record / "summary.json").read_text())
    assert summary["state"] == "finished"
    assert summary["provenance/device"] == "cpu" and summary["provenance/git_dirty"] is False
    assert {p.name for p in record.iterdir()} <= {*RECORD_FILES, "train.log"}
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
