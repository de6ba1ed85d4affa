"""Write run directories with chosen histories, as the trainer lays them out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml


def write_run(
    root: Path, run_id: str, rows: list[dict], summary: dict | None = None, config: dict | None = None
) -> Path:
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "summary.json").write_text(json.dumps({"state": "finished", **(summary or {})}))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config or {"method": "adadim", "run": {"seed": 0}}))
    return run_dir


def planted_rows(steps: int, h, i, every: int = 1, extra=None) -> list[dict]:
    """Rows whose dynamics follow the functions h(t), i(t) of progress t in [0, 1]."""
    rows = []
    for s in range(steps):
        t = s / (steps - 1)
        row = {"trainer/step": s, "trainer/epoch": s / 10, "train/loss": 1.0 - 0.5 * t, "adadim/alpha": 0.5}
        if s % every == 0:
            row.update({"dynamics/H_R": float(h(t)), "dynamics/I_RZ": float(i(t)), "dynamics/n_samples": 512.0})
            i_value = row["dynamics/I_RZ"]
            row["dynamics/ratio_H_I"] = row["dynamics/H_R"] / i_value if i_value != 0 else None
        if extra:
            row.update(extra(s, t))
        rows.append(row)
    return rows


def constant(value):
    return lambda t: value + 0.0 * np.asarray(t)
