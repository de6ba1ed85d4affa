"""Simulated studies with known truths for the claims table: 6 methods (groups) x 3 seeds.

Every run has an equilibrium H(R) and I_excess, an accuracy, a history of dynamics
measurements and a noise floor (K repeated measurements of the last checkpoint). What is
true is chosen per study:

- ``accuracy``: "null" (per-method offsets independent of everything: the clustered null),
  "ratio" (accuracy falls with the equilibrium ratio), "within" (the relation holds run by
  run inside each arm: a seed with a higher ratio than its arm's mean does better, while the
  arms differ only by offsets unrelated to their dynamics), "between" (only the arms' mean
  ratios matter: seeds of an arm differ in ratio but not in expected accuracy), "plateau" (accuracy rises with H(R)
  and saturates: no interior optimum), "optimum" (an inverted U in H(R), peak inside).
- ``coupling``: "noise" (ΔH and ΔI share only measurement noise, with the same correlation
  in every window and in the noise floor), "early" (a shared signal moves both early;
  independent signals late).

Runs are returned as the tables load_runs builds (``runs``, ``history``) and can be written
in the trainer's on-disk layout (`write_study`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from adadim.analysis.runset import RunSet
from analysis_helpers import write_run

GROUPS, SEEDS, POINTS, REPEATS = 6, 3, 60, 20
NOISE_SD, NOISE_RHO = 0.004, 0.4


@dataclass
class Study:
    runs: pd.DataFrame
    history: pd.DataFrame
    floors: dict  # run_id -> noise_floor.json content


def _noise(rng, n: int) -> np.ndarray:
    cov = NOISE_SD**2 * np.array([[1.0, NOISE_RHO], [NOISE_RHO, 1.0]])
    return rng.multivariate_normal([0.0, 0.0], cov, size=n)


def simulate(rng: np.random.Generator, accuracy: str = "null", coupling: str = "noise") -> Study:
    h_group = np.linspace(0.3, 0.8, GROUPS) + rng.uniform(-0.03, 0.03, GROUPS)
    e_group = rng.uniform(0.2, 0.6, GROUPS)
    method_offset = rng.normal(0, 0.01, GROUPS)  # accuracy of a method, unrelated to its dynamics
    t = np.linspace(0, 1, POINTS)
    early, late = t <= 0.3, t > 0.7
    runs, frames, floors = [], [], {}
    for g in range(GROUPS):
        for s in range(SEEDS):
            run_id = f"m{g}-s{s}"
            h = h_group[g] + rng.normal(0, 0.01)
            e = e_group[g] + rng.normal(0, 0.01)
            # Linear approach until half-way, flat after: constant increments in each window.
            ramp = np.maximum(0, 0.5 - t) / 0.5
            h_t, e_t = h - 0.1 * ramp, e - 0.05 * ramp
            if coupling == "early":
                shared = np.cumsum(np.where(early, rng.normal(0, 0.01, POINTS), 0.0))
                own_h = np.cumsum(np.where(late, rng.normal(0, 0.004, POINTS), 0.0))
                own_e = np.cumsum(np.where(late, rng.normal(0, 0.004, POINTS), 0.0))
                h_t, e_t = h_t + shared + own_h, e_t + 0.8 * shared + own_e
            noise = _noise(rng, POINTS)
            h_t, e_t = h_t + noise[:, 0], e_t + noise[:, 1]
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "trainer/step": np.arange(POINTS) * 10,
                        "train/loss": 1.0 - 0.5 * t,
                        "dynamics/H_R": h_t,
                        "dynamics/I_RZ_excess": e_t,
                        "dynamics/ratio_H_I": h_t / e_t,
                    }
                )
            )
            repeat = _noise(rng, REPEATS)
            floors[run_id] = {
                "version": 1, "step": int((POINTS - 1) * 10), "repeats": REPEATS, "source": "probe",
                "mean": {"dynamics/H_R": h, "dynamics/I_RZ_excess": e},
                "sd": {"dynamics/H_R": NOISE_SD, "dynamics/I_RZ_excess": NOISE_SD},
                "samples": {"dynamics/H_R": list(h + repeat[:, 0]), "dynamics/I_RZ_excess": list(e + repeat[:, 1])},
            }  # fmt: skip
            runs.append({"run_id": run_id, "method": f"m{g}", "group": f"m{g}", "h": h, "ratio": h / e, "g": g})
    runs = pd.DataFrame(runs).set_index("run_id")
    noise = rng.normal(0, 0.003, len(runs))
    offset = method_offset[runs["g"].to_numpy()]
    if accuracy == "null":
        acc = 0.9 + offset + noise
    elif accuracy == "ratio":
        z = (runs["ratio"] - runs["ratio"].mean()) / runs["ratio"].std()
        acc = 0.9 - 0.012 * z + 0.3 * offset + noise
    elif accuracy == "within":
        centred = runs["ratio"] - runs.groupby("g")["ratio"].transform("mean")
        acc = 0.9 + offset + 0.003 * centred / centred.std() + noise
    elif accuracy == "between":
        arm_ratio = runs.groupby("g")["ratio"].transform("mean")
        z = (arm_ratio - arm_ratio.mean()) / arm_ratio.std()
        acc = 0.9 - 0.012 * z + 0.3 * offset + noise
    elif accuracy == "plateau":
        acc = 0.95 - 0.05 * np.exp(-(runs["h"] - 0.3) / 0.08) + 0.3 * offset + noise
    elif accuracy == "optimum":
        acc = 0.95 - 1.5 * (runs["h"] - 0.55) ** 2 + 0.3 * offset + noise
    else:
        raise ValueError(accuracy)
    runs["final/lowlabel_top1"] = np.asarray(acc, dtype=float)
    runs["state"] = "finished"
    return Study(runs.drop(columns=["h", "ratio", "g"]), pd.concat(frames, ignore_index=True), floors)


def runset(study: Study, floor_root: Path | None = None) -> RunSet:
    """The study as a RunSet in memory. With ``floor_root``, each run's noise floor is written
    to ``floor_root/<run_id>/noise_floor.json`` and the run's source points there; without,
    the runs have no noise floor (the surrogate is used)."""
    runs = study.runs.copy()
    runs["source"] = None
    if floor_root is not None:
        for run_id, floor in study.floors.items():
            (floor_root / run_id).mkdir(parents=True, exist_ok=True)
            (floor_root / run_id / "noise_floor.json").write_text(json.dumps(floor))
            runs.at[run_id, "source"] = str(floor_root / run_id)
    return RunSet(runs, study.history)


def write_study(study: Study, root: Path, floors: bool = True) -> Path:
    """The study in the trainer's on-disk layout: runs/<id>/{config.yaml, history.jsonl,
    summary.json} and, with ``floors``, noise_floor.json."""
    for run_id, run in study.runs.iterrows():
        rows = study.history[study.history["run_id"] == run_id].drop(columns="run_id").to_dict("records")
        config = {"method": run["method"], "run": {"seed": int(run_id.split("-s")[1])}}
        run_dir = write_run(root, run_id, rows, {"final/lowlabel_top1": float(run["final/lowlabel_top1"])}, config)
        if floors:
            (run_dir / "noise_floor.json").write_text(json.dumps(study.floors[run_id]))
    return root


def simulate_methods(
    rng: np.random.Generator, gain: float = 0.0, seeds: int = 5, paired: bool = True, tied: str | None = None
) -> pd.DataFrame:
    """A method comparison: AdaDim and four baselines, ``seeds`` runs each, accuracies in units of
    a run's SD within its arm (half its variance is the seed's, shared by every arm trained with
    that seed: same initialisation and data order). AdaDim is ``gain`` SDs above every
    baseline, except ``tied``, which equals AdaDim (the least favourable null of "beats every
    baseline"). ``paired=False`` gives the baselines other seeds than AdaDim's (Welch's test)."""
    shared = rng.normal(0, np.sqrt(0.5), 2 * seeds)
    rows = []
    for arm in ("adadim", "vicreg", "simclr", "byol", "barlow"):
        offset = seeds if (arm != "adadim" and not paired) else 0
        for s in range(seeds):
            level = gain if arm in ("adadim", tied) else 0.0
            value = 0.9 + 0.003 * (level + shared[s + offset] + rng.normal(0, np.sqrt(0.5)))
            rows.append({"run_id": f"{arm}-s{s + offset}", "method": arm, "run.seed": s + offset,
                         "final/lowlabel_top1": value})  # fmt: skip
    return pd.DataFrame(rows).set_index("run_id")
