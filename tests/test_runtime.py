import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from adadim.cli import main
from adadim.training import runtime, trainer
from adadim.training.config import load_config
from trainer_helpers import cli, env, history, tiny_overrides, untimed

# Allocates and frees 8 written 4 MiB blocks per cycle, as a training step does with its
# activations, and prints the minor page faults of ten cycles after a first one. "default" pins
# glibc's initial thresholds (128 KiB): left free, glibc raises them as it sees blocks freed, and
# whether the heap's top can then be trimmed depends on where other allocations landed (one run
# in three counted 9,200 faults, not 81,600).
CYCLES = """
import resource, sys, torch
from adadim.training.runtime import retain_freed_memory, set_heap_thresholds
if sys.argv[1] == "retain":
    assert retain_freed_memory()
else:
    assert set_heap_thresholds(128 << 10, 128 << 10)
def cycle():
    blocks = [torch.ones(1 << 20) for _ in range(8)]
    del blocks
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CYCLES, mode], env=env(), capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout.strip())


def _huge_pages_always() -> bool:
    """With transparent huge pages always on, a regrown heap faults in 2 MiB pages, so glibc's
    defaults no longer show as tens of thousands of faults."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.skipif(_huge_pages_always(), reason="transparent huge pages 'always' hide the 4 KiB faults")
def test_retained_heap_reuses_freed_blocks_instead_of_faulting_them_in_again():
    default, retained = _faults("default"), _faults("retain")
    # At glibc's initial thresholds the freed blocks go back to the OS and are faulted in again
    # every cycle: 10 cycles x 32 MiB is about 80,000 pages; retained, the pages are reused.
    assert default > 40_000
    assert retained < default / 10


def test_library_setup_leaves_the_host_allocator_alone(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "retain_freed_memory", lambda: calls.append(True) or True)
    overrides = tiny_overrides(tmp_path, "library", **{"run.retain_freed_memory": "true"})
    run = trainer.setup(load_config(None, overrides))
    run.logger.finish("finished")
    run.lock.release()
    assert calls == []


@pytest.mark.parametrize("retain", [True, False])
def test_train_command_applies_the_heap_setting_only_when_asked(tmp_path, monkeypatch, retain):
    calls = []
    monkeypatch.setattr(runtime, "retain_freed_memory", lambda: calls.append(True) or True)
    overrides = tiny_overrides(tmp_path, "wired", **{"run.retain_freed_memory": str(retain).lower(), "optim.epochs": 1})
    assert main(["train", *overrides]) == 0
    assert calls == ([True] if retain else [])


@pytest.mark.slow
def test_the_heap_setting_changes_no_number(tmp_path):
    """Two processes, one with glibc's defaults and one retaining freed memory, train the same
    run: every logged value and every final score agree exactly."""
    for retain in ("false", "true"):
        overrides = tiny_overrides(tmp_path, f"retain-{retain}", **{"run.retain_freed_memory": retain})
        done = subprocess.run([*cli("train", *overrides)], env=env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = {retain: untimed(history(tmp_path / f"retain-{retain}")) for retain in ("false", "true")}
    assert len(rows["true"]) > 10
    assert rows["false"] == rows["true"]
    scores = {}
    for retain in ("false", "true"):
        summary = json.loads((tmp_path / f"retain-{retain}" / "summary.json").read_text())
        scores[retain] = {k: v for k, v in summary.items() if k.startswith("final/")}
    assert "final/lowlabel_top1" in scores["true"]
    assert scores["false"] == scores["true"]
