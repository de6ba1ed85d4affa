"""The measurement protocol, in numbers, on the embedded digits.

1. A frozen network (optim.lr=0): the spread of the dynamics across measurements when they
   are taken on the fixed probe set against each step's own training batch.
2. AdaDim's α for one frozen network at batch sizes 64, 256 and 1024, with erank(Z) read on
   the probe set against the training batch.
3. The main job (`adadim train`, defaults): what the measurements cost, part by part, and
   how much of the update NT-Xent gets (the gradient shares) against its weight α.

    python benchmarks/bench_instrument.py [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from adadim.training.config import load_config
from adadim.training.trainer import train

QUIET = [
    "wandb.mode=disabled",
    "run.progress=false",
    "eval.every_epochs=0",
    "eval.final_probe=false",
    "eval.random_init_baseline=false",
]
KEYS = ("dynamics/H_R", "dynamics/I_RZ_excess", "dynamics/erank_R", "dynamics/ratio_H_I")


def _rows(root: Path, run_id: str) -> list[dict]:
    return [json.loads(line) for line in (root / run_id / "history.jsonl").read_text().splitlines()]


def frozen_spread(root: Path, steps: int) -> None:
    spread = {}
    for source in ("probe", "batch"):
        overrides = [*QUIET, f"run.root={root}", f"run.id=frozen-{source}", "optim.lr=0"]
        overrides += [f"optim.max_steps={steps}", "dynamics.every=5", f"dynamics.source={source}"]
        train(load_config("digits", overrides))
        rows = [r for r in _rows(root, f"frozen-{source}") if "dynamics/H_R" in r]
        spread[source] = {k: statistics.stdev(r[k] for r in rows) for k in KEYS}
        spread[source]["n"] = len(rows)
    print(f"1. frozen network (optim.lr=0), {steps} steps, measured every 5 steps: SD across measurements")
    print(f"{'metric':<24} {'probe set':>12} {'training batch':>15}")
    for key in KEYS:
        print(f"{key:<24} {spread['probe'][key]:>12.2e} {spread['batch'][key]:>15.2e}")
    print(f"{'measurements':<24} {spread['probe']['n']:>12} {spread['batch']['n']:>15}\n")


def alpha_by_batch(root: Path) -> None:
    print("2. AdaDim's alpha at the first step of one frozen network")
    print(f"{'erank(Z) read on':<18} {'batch 64':>9} {'batch 256':>10} {'batch 1024':>11} {'max/min - 1':>12}")
    for source in ("probe", "batch"):
        alphas = []
        for batch in (64, 256, 1024):
            run_id = f"alpha-{source}-{batch}"
            overrides = [*QUIET, f"run.root={root}", f"run.id={run_id}", "optim.lr=0", "optim.max_steps=1"]
            overrides += [f"data.batch_size={batch}", f"adadim.erank_source={source}"]
            overrides += ["dynamics.every=0"] if source == "batch" else []
            train(load_config("digits", overrides))
            alphas.append(_rows(root, run_id)[0]["adadim/alpha"])
        spread = max(alphas) / min(alphas) - 1
        print(f"{source:<18} {alphas[0]:>9.4f} {alphas[1]:>10.4f} {alphas[2]:>11.4f} {spread:>11.1%}")
    print()


def main_job(root: Path) -> None:
    summary = train(load_config("digits", [f"run.root={root}", "run.id=main", "run.progress=false"]))
    rows = _rows(root, "main")
    loop = summary["trainer/loop_seconds"]
    measure = summary["trainer/measure_seconds"]
    online = summary["trainer/online_eval_seconds"]
    print("3. the main job (adadim train, defaults), per part")
    print(f"{'part':<46} {'seconds':>8} {'share of loop':>14}")
    for name, seconds in (
        ("training loop (all of it)", loop),
        ("  measurements: probe set, monitor, grad norms", measure),
        ("  online evaluation", online),
        ("  training steps and logging", loop - measure - online),
        ("final evaluation", summary["trainer/final_eval_seconds"]),
    ):
        print(f"{name:<46} {seconds:>8.1f} {seconds / loop:>13.1%}")
    measured = [r for r in rows if "adadim/grad_share_nt_xent" in r]
    n = len(measured)
    alpha = statistics.fmean(r["adadim/alpha"] for r in measured)
    share = statistics.fmean(r["adadim/grad_share_nt_xent"] for r in measured)
    dim_share = statistics.fmean(r["adadim/grad_share_dimension"] for r in measured)
    ratio = statistics.fmean(r["adadim/grad_norm_dimension"] / r["adadim/grad_norm_nt_xent"] for r in measured)
    print(f"\ngradient shares over the main job ({n} measurements): mean alpha {alpha:.3f}")
    print(f"NT-Xent share of the update {share:.3f}, VICReg share {dim_share:.3f}")
    print(f"mean |grad_Z (1-alpha) VICReg| / |grad_Z alpha NT-Xent| = {ratio:.1f}")
    print(f"final/lowlabel_top1 {summary['final/lowlabel_top1']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps of the frozen-network runs")
    parser.add_argument("--skip-main-job", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frozen_spread(root, args.steps)
        alpha_by_batch(root)
        if not args.skip_main_job:
            main_job(root)


if __name__ == "__main__":
    main()
