"""Loading and the full study on a generated source: 200 runs x 10,000 steps x 20 metrics.

Writes the runs as the trainer does (history.jsonl, summary.json, config.yaml), then times
the first load (parse + Parquet cache), the cached reload, and every study with its tables,
figures and HTML report.

    python benchmarks/bench_analysis.py [--runs 200] [--steps 10000] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from adadim.analysis import load_runs
from adadim.analysis.report import AnalysisOptions, run_studies, write_html

METHODS = ("vicreg", "simclr", "fixed", "linear", "cosine", "adadim")


def generate(root: Path, runs: int, steps: int, dynamics_every: int = 10) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(steps) / (steps - 1)
    for k in range(runs):
        method = METHODS[k % len(METHODS)]
        run_dir = root / f"{method}-s{k}"
        run_dir.mkdir(parents=True)
        scale = rng.uniform(0.5, 1.5)
        frame = pd.DataFrame({"trainer/step": np.arange(steps), "trainer/epoch": np.arange(steps) / 100})
        for j, key in enumerate(
            ("train/loss", "train/loss_vicreg", "train/loss_nt_xent", "train/loss_mi", "train/lr", "adadim/alpha")
        ):
            frame[key] = np.exp(-t * (j + 1)) + 0.01 * rng.standard_normal(steps)
        dyn = pd.DataFrame(index=frame.index)
        h = scale * (1 - np.exp(-4 * t)) + 0.01 * rng.standard_normal(steps)
        i = 0.5 * h * (1 - 0.3 * t) + 0.01 * rng.standard_normal(steps)
        columns = {"dynamics/H_R": h, "dynamics/I_RZ": i, "dynamics/ratio_H_I": h / np.maximum(i, 1e-3)}
        for j, key in enumerate(
            (
                "H_Z",
                "H_RZ",
                "I_RZ_perm",
                "erank_R",
                "erank_Z",
                "uniformity_Z",
                "alignment_Z",
                "H_R_norm",
                "I_RZ_norm",
                "n_samples",
            )
        ):
            columns[f"dynamics/{key}"] = np.full(steps, 512.0) if key == "n_samples" else h * (j + 1)
        for key, values in columns.items():
            dyn[key] = values
        dyn[np.arange(steps) % dynamics_every != 0] = np.nan
        frame = pd.concat([frame, dyn], axis=1)
        frame.to_json(run_dir / "history.jsonl", orient="records", lines=True)
        summary = {
            "state": "finished",
            "final/lowlabel_top1": float(0.9 - 0.1 * (scale - 1.1) ** 2 + 0.005 * rng.standard_normal()),
        }
        (run_dir / "summary.json").write_text(json.dumps(summary))
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"method": method, "run": {"seed": k // len(METHODS)}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--dir", default=None, help="where to write the source (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir or tmp) / "source"
        started = time.perf_counter()
        generate(root, args.runs, args.steps)
        generated = time.perf_counter() - started
        size = sum(p.stat().st_size for p in root.rglob("history.jsonl")) / 2**20

        started = time.perf_counter()
        first = load_runs(root, progress=False)
        first_load = time.perf_counter() - started
        started = time.perf_counter()
        cached = load_runs(root, progress=False)
        reload = time.perf_counter() - started
        assert cached.history.shape == first.history.shape

        out = Path(tmp) / "analysis"
        opts = AnalysisOptions(progress=False)
        started = time.perf_counter()
        result = run_studies(cached, out, opts)
        write_html(result, out, str(root), opts)
        study = time.perf_counter() - started

    metrics = cached.history.shape[1] - 2
    print(f"source: {len(cached)} runs x {args.steps} steps x {metrics} metrics, {size:.0f} MiB of JSON lines")
    print(f"(written in {generated:.1f} s)")
    print(f"{'stage':<44} {'seconds':>8}")
    print(f"{'first load (parse + write Parquet cache)':<44} {first_load:>8.2f}")
    print(f"{'cached reload (target <= 3 s)':<44} {reload:>8.2f}")
    print(f"{'full study: 7 studies, tables, figures, HTML':<44} {study:>8.2f}")


if __name__ == "__main__":
    main()
