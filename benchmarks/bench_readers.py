"""Loading W&B offline runs through each `.wandb` reader: W&B's own (`wandb leet inspect
--json`, the wandb-core binary) and ours (`adadim.analysis.wandb_file`).

Writes one offline run with wandb itself, shaped like the main job (600 logged steps of the
trainer's train/, adadim/ and dynamics/ keys, a summary, exit code 0), copies it into 200 run
folders, then times reading every file with each reader, and `load_runs` over the folder
with each reader forced (no cache).

    python benchmarks/bench_readers.py [--runs 200] [--steps 600] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from adadim.analysis import load_runs
from adadim.analysis.wandb_file import read_run
from adadim.analysis.wandb_leet import READER_VARIABLE, leet_command, read_run_leet
from adadim.dynamics.keys import STEP, in_section


def logged_keys() -> list[str]:
    keys = [k for section in ("train", "adadim", "dynamics") for k in in_section(section)]
    return sorted(k for k in set(keys) if "<" not in k and "*" not in k and k != STEP)


def write_one(directory: Path, steps: int) -> Path:
    import wandb

    rng = np.random.default_rng(0)
    keys = logged_keys()
    quiet = wandb.Settings(quiet=True, console="off")
    run = wandb.init(project="bench", id="template", dir=str(directory), mode="offline", settings=quiet)
    run.config.update({"method": "adadim"})
    for step in range(steps):
        values = dict(zip(keys, rng.random(len(keys)).tolist(), strict=True))
        run.log({STEP: step, "trainer/epoch": step // 4, **values}, step=step)
    run.summary["final/lowlabel_top1"] = 0.9
    run.finish()
    (path,) = directory.glob("wandb/offline-run-*/run-template.wandb")
    while read_run(path)["exit_code"] is None:  # finish() may return before the exit record is written
        time.sleep(0.05)
    return path


def copy_runs(template: Path, root: Path, runs: int) -> list[Path]:
    paths = []
    for k in range(runs):
        folder = root / "wandb" / f"offline-run-20260101_000000-r{k:03d}"
        folder.mkdir(parents=True)
        paths.append(Path(shutil.copy(template, folder / f"run-r{k:03d}.wandb")))
    return paths


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    out = function()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if leet_command() is None:
        raise SystemExit("the installed wandb has no `wandb leet inspect --json` (wandb >= 0.31): nothing to compare")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        template = write_one(root / "template", args.steps)
        paths = copy_runs(template, root / "source", args.runs)
        size = sum(p.stat().st_size for p in paths) / 2**20
        rows, keys = len(read_run(template)["history"]), len(logged_keys()) + 2
        print(f"source: {args.runs} offline runs x {rows} steps x {keys} keys, {size:.0f} MiB of .wandb files")
        print(f"{'stage':48s}{'seconds':>8s}")
        readers = {"ours": (read_run, "adadim"), "W&B's (leet)": (read_run_leet, "wandb-leet")}
        for name, (reader, _) in readers.items():
            seconds, _ = timed(lambda reader=reader: [reader(p) for p in paths])
            print(f"{'read every file, ' + name + ' reader':48s}{seconds:8.2f}")
        for name, (_, forced) in readers.items():
            os.environ[READER_VARIABLE] = forced
            seconds, runset = timed(lambda: load_runs(root / "source" / "wandb", cache_dir=None, progress=False))
            assert len(runset) == args.runs and set(runset.runs["reader"]) == {forced}
            print(f"{'load_runs (no cache), ' + name + ' reader':48s}{seconds:8.2f}")
        os.environ.pop(READER_VARIABLE)


if __name__ == "__main__":
    main()
