import subprocess
import sys
from pathlib import Path

from adadim.cli import main
from adadim.dynamics.demo import run_demo


def test_demo_measures_real_digits_and_shows_saturation():
    rows = run_demo(batch_sizes=(64, 512), width=512, seed=0)
    assert {(r["N"], r["Z"]) for r in rows} == {
        (n, z) for n in (64, 512) for z in ("projector", "labels", "independent")
    }
    by = {(r["N"], r["Z"]): r for r in rows}
    for n in (64, 512):
        excess = {
            z: by[n, z]["dynamics/I_RZ"] - by[n, z]["dynamics/I_RZ_perm"]
            for z in ("projector", "labels", "independent")
        }
        # Dependent embeddings carry information beyond the no-dependence baseline; noise does not.
        assert excess["projector"] > 0.1 and excess["labels"] > 0.1
        assert abs(excess["independent"]) < 0.05
    # The pitfall the demo exists to show: the independent Z has the larger raw I(R;Z).
    assert by[512, "independent"]["dynamics/I_RZ"] > by[512, "projector"]["dynamics/I_RZ"]


def test_cli_demo_runs_and_refuses_bad_arguments(capsys):
    assert main(["demo", "--batch-sizes", "32", "--width", "64"]) == 0
    assert "I_RZ_perm" in capsys.readouterr().out
    assert main(["demo", "--batch-sizes", "1"]) == 2
    assert "batch sizes must be >= 2" in capsys.readouterr().err


def test_installed_console_script_runs():
    script = Path(sys.executable).with_name("adadim")
    assert script.is_file(), f"console script missing at {script}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("train", "eval", "demo", "analyze", "sweep", "study"):
        assert command in result.stdout
    result = subprocess.run([str(script), "nope"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "invalid choice" in result.stderr
