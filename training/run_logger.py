"""Everything a run writes: ``runs/<run_id>/`` always, and W&B when it is on.

- ``config.yaml``: the resolved config;
- ``history.jsonl``: one JSON object per logged step (keys as in DESIGN.md), appended and
  flushed row by row, so a crash loses at most the row being written;
- ``summary.json``: final values and the run's state, rewritten atomically;
- ``checkpoints/``, and ``wandb/`` (the W&B run files) when W&B is on.

Only the master process (rank 0) constructs a writing logger; other ranks get a
`NullLogger`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .config import to_flat_dict

STEP = "trainer/step"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def read_history(path: Path) -> list[dict]:
    """Rows of a history file; a torn last line (a crash mid-write) is dropped."""
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({k: _jsonable(v) for k, v in payload.items()}, indent=2, sort_keys=True))
    os.replace(tmp, path)


class NullLogger:
    """What non-master ranks log: nothing."""

    wandb_run = None

    def log(self, row: dict) -> None:
        pass

    def set_summary(self, values: dict) -> None:
        pass

    def finish(self, state: str, exit_code: int = 0) -> None:
        pass


class RunLogger(NullLogger):
    def __init__(self, cfg: DictConfig, run_dir: Path, run_id: str, resume_step: int | None) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        self.history_path = run_dir / "history.jsonl"
        self.summary_path = run_dir / "summary.json"
        self.summary: dict = json.loads(self.summary_path.read_text()) if self.summary_path.is_file() else {}
        self._truncate_history(resume_step)
        self._history = self.history_path.open("a", buffering=1)
        self.wandb_run = self._start_wandb(cfg, run_id) if cfg.wandb.mode != "disabled" else None
        self.set_summary({"state": "running", "run_id": run_id})

    def _truncate_history(self, resume_step: int | None) -> None:
        """On resume, rows after the checkpoint are replayed by the resumed run: drop them so
        the history has no duplicate and no missing step. A fresh run starts empty."""
        rows = read_history(self.history_path) if resume_step is not None else []
        kept = [r for r in rows if r[STEP] < resume_step] if resume_step is not None else []
        tmp = self.history_path.with_name(".history.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.history_path)

    def _start_wandb(self, cfg: DictConfig, run_id: str):
        import wandb

        w = cfg.wandb
        run = wandb.init(
            project=w.project,
            entity=w.entity,
            group=w.group,
            name=w.name or run_id,
            tags=list(w.tags),
            id=run_id,
            resume="allow",
            dir=str(self.run_dir),
            mode=w.mode,
            config=to_flat_dict(cfg),
            settings=wandb.Settings(quiet=True, console="off", x_disable_stats=True),
        )
        run.define_metric(STEP)
        run.define_metric("trainer/epoch")
        for prefix in ("train", "adadim", "dynamics", "trainer"):
            run.define_metric(f"{prefix}/*", step_metric=STEP)
        run.define_metric("eval/*", step_metric="trainer/epoch", summary="max")
        return run

    def log(self, row: dict) -> None:
        self._history.write(json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n")
        self._history.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(row, step=int(row[STEP]))

    def set_summary(self, values: dict) -> None:
        self.summary.update(values)
        write_json_atomic(self.summary_path, self.summary)
        if self.wandb_run is not None:
            for key, value in values.items():
                self.wandb_run.summary[key] = value

    def finish(self, state: str, exit_code: int = 0) -> None:
        self.set_summary({"state": state})
        self._history.close()
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=exit_code)
            self.wandb_run = None
