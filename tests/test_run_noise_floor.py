"""The noise floor each run measures at the end of training (dynamics.noise_floor_repeats)."""

import json

import pytest
from adadim.analysis import load_runs
from adadim.analysis.studies import coupling_per_run
from adadim.cli import main
from adadim.dynamics.keys import is_registered
from adadim.training.config import load_config
from adadim.training.noise_floor import measure_noise_floor
from adadim.training.trainer import train
from trainer_helpers import tiny_overrides

FAST = {"optim.epochs": 4, "eval.final_probe": "false", "eval.random_init_baseline": "false"}


@pytest.mark.slow
def test_the_run_measures_its_floor_on_the_final_weights_as_the_cli_would(tmp_path):
    overrides = tiny_overrides(tmp_path, "floored", **FAST, **{"dynamics.noise_floor_repeats": 5})
    summary = train(load_config(None, overrides))
    run_dir = tmp_path / "floored"
    floor = json.loads((run_dir / "noise_floor.json").read_text())
    assert floor["repeats"] == 5 and floor["step"] == summary["trainer/step"]
    assert all(len(v) == 5 for v in floor["samples"].values())
    for key in ("H_R", "I_RZ_excess", "ratio_H_I"):
        assert summary[f"dynamics/floor_sd_{key}"] == floor["sd"][f"dynamics/{key}"]
    assert summary["trainer/noise_floor_seconds"] > 0
    assert all(is_registered(k) for k in summary if k not in ("run_dir", "state"))
    # The same measurement as `adadim noise-floor` on the final checkpoint.
    again = measure_noise_floor(run_dir, repeats=5)
    for key, values in floor["samples"].items():
        assert values == pytest.approx(again["samples"][key], rel=1e-5, abs=1e-6), key
    # The coupling analysis reads the run's own floor, not the surrogate.
    per_run = coupling_per_run(load_runs(tmp_path, progress=False), (0.0, 0.3), (0.7, 1.0), by="method")
    assert list(per_run["floor_source"]) == ["noise_floor.json"]


def test_no_floor_by_default_and_a_bad_repeat_count_is_refused(tmp_path, capsys):
    summary = train(load_config(None, tiny_overrides(tmp_path, "plain", **(FAST | {"optim.epochs": 1}))))
    assert not (tmp_path / "plain" / "noise_floor.json").exists()
    assert "trainer/noise_floor_seconds" not in summary
    assert main(["train", *tiny_overrides(tmp_path, "bad"), "dynamics.noise_floor_repeats=4"]) == 2
    err = capsys.readouterr().err
    assert "noise_floor_repeats must be 0 (off) or >= 5" in err and len(err.strip().splitlines()) == 1
