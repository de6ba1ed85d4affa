"""What the evaluation costs in the main job (`adadim train`, the digits config).

Runs the main job once and prints the wall time of the whole run, of the training loop, of
the per-epoch online evaluation and of the final evaluation protocol (full probe, low-label
probe over its draws, kNN, weighted kNN, on test and validation, for the trained and the
random-init backbone), and their shares.

    python benchmarks/bench_eval.py [key=value ...]
"""

from __future__ import annotations

import sys
import tempfile
import time

from adadim.training.config import load_config
from adadim.training.trainer import train


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config("digits", [*sys.argv[1:], f"run.root={root}", "run.id=bench", "run.progress=false"])
        started = time.perf_counter()
        summary = train(cfg)
        total = time.perf_counter() - started
    loop = summary["trainer/loop_seconds"] - summary["trainer/online_eval_seconds"]
    parts = {
        "training loop (without online eval)": loop,
        "online eval (every 5 epochs)": summary["trainer/online_eval_seconds"],
        "final evaluation protocol": summary["trainer/final_eval_seconds"],
        "setup, logging, rest": total - summary["trainer/loop_seconds"] - summary["trainer/final_eval_seconds"],
    }
    print(f"main job: {summary['trainer/step']} steps, {total:.1f} s wall")
    print(f"{'part':<38} {'seconds':>8} {'share':>7}")
    for name, seconds in parts.items():
        print(f"{name:<38} {seconds:>8.1f} {100 * seconds / total:>6.1f}%")
    evaluation = summary["trainer/online_eval_seconds"] + summary["trainer/final_eval_seconds"]
    print(f"{'all evaluation':<38} {evaluation:>8.1f} {100 * evaluation / total:>6.1f}%")


if __name__ == "__main__":
    main()
