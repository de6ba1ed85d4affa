"""Everything a run writes: ``runs/<run_id>/`` always, and W&B when it is on.

- ``config.yaml``: the resolved config;
- ``history.jsonl``: one JSON object per logged step (keys from the metric registry,
  ``adadim.dynamics.keys``), appended and flushed row by row, so a crash loses at most the row
  being written;
- ``summary.json``: final values, the run's state and its provenance (``provenance/*``: the
  code and machine that made it), rewritten atomically;
- ``checkpoints/``, and ``wandb/`` (the W&B run files) when W&B is on.

Only the master process (rank 0) constructs a writing logger; other ranks get a
`NullLogger`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from adadim.dynamics.keys import STEP
from adadim.dynamics.run_format import HistoryLineError, from_json_row, parse_history_lines, to_json_value
from omegaconf import DictConfig, OmegaConf

from .config import to_flat_dict
from .run_lock import RunDirectoryError
from .wandb_env import WandbSettings
from .wandb_env import record as wandb_record
from .wandb_env import resolve as resolve_wandb


def read_history(path: Path) -> list[dict]:
    """Rows of a history file; a torn last line (a crash mid-write) is dropped. Damage anywhere
    else is a `RunDirectoryError`: resuming over it would silently lose history."""
    if not path.is_file():
        return []
    try:
        rows = parse_history_lines(path.read_text(encoding="utf-8").splitlines())
    except UnicodeDecodeError:
        raise RunDirectoryError(f"{path} is not a text history file; move it aside to start the run over") from None
    except HistoryLineError as error:
        raise RunDirectoryError(f"{path}: {error}; repair or remove the line") from None
    for i, row in enumerate(rows):
        if not isinstance(row.get(STEP), int | float):
            raise RunDirectoryError(f"{path}: line {i + 1} is not a history row (no {STEP!r})")
    return rows


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({k: to_json_value(v) for k, v in payload.items()}, indent=2, sort_keys=True))
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
    def __init__(
        self, cfg: DictConfig, run_dir: Path, run_id: str, resume_step: int | None, provenance: dict | None = None
    ) -> None:
        provenance = provenance or {}
        self.run_dir = run_dir
        self.history_path = run_dir / "history.jsonl"
        self.summary_path = run_dir / "summary.json"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            self.summary = self._previous_summary()
            kept = self._truncate_history(resume_step)
            self._history = self.history_path.open("a", buffering=1)
            wandb = resolve_wandb(cfg.wandb, run_dir)
            replay = resume_step is not None and wandb.mode == "offline" and self._supersede_offline_folders()
        except OSError as error:  # a read-only run.root, a full disk
            raise RunDirectoryError(f"cannot write run directory {run_dir}: {error.strerror or error}") from None
        self.wandb_run = self._start_wandb(cfg, run_id, wandb, provenance) if wandb.mode != "disabled" else None
        if replay and self.wandb_run is not None:
            for row in kept:  # the new offline folder holds the whole history, each step once
                self.wandb_run.log(from_json_row(row), step=int(row[STEP]))
        self.set_summary({"state": "running", "run_id": run_id, **wandb_record(wandb), **provenance})

    def _previous_summary(self) -> dict:
        """A resumed run keeps its summary; an unreadable one is replaced (it is rewritten as the
        run goes), with a note."""
        if not self.summary_path.is_file():
            return {}
        try:
            summary = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except ValueError:  # garbled JSON or bytes
            summary = None
        if not isinstance(summary, dict):
            print(f"adadim: {self.summary_path} is unreadable; it is written anew", file=sys.stderr)
            return {}
        return summary

    def _truncate_history(self, resume_step: int | None) -> list[dict]:
        """On resume, rows after the checkpoint are replayed by the resumed run: drop them so
        the history has no duplicate and no missing step. A fresh run starts empty."""
        rows = read_history(self.history_path) if resume_step is not None else []
        kept = [r for r in rows if r[STEP] < resume_step] if resume_step is not None else []
        tmp = self.history_path.with_name(".history.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.history_path)
        return kept

    def _supersede_offline_folders(self) -> bool:
        """W&B writes an offline file in blocks, so a killed run's folder can lack its last
        steps, and a resumed run's new folder would repeat the steps after the checkpoint:
        synced together, they send some steps twice and others never. On an offline resume the
        earlier folders move to ``wandb-superseded/`` beside ``wandb/`` (kept, out of reach of
        ``wandb sync wandb``) and the new folder is given every kept history row first."""
        root = self.run_dir / "wandb"
        earlier = sorted(root.glob("offline-run-*")) if root.is_dir() else []
        if not earlier:
            return False
        aside = self.run_dir / "wandb-superseded"
        aside.mkdir(exist_ok=True)
        for folder in earlier:
            folder.rename(aside / folder.name)
        return True

    def _start_wandb(self, cfg: DictConfig, run_id: str, resolved: WandbSettings, provenance: dict):
        import wandb

        settings = cfg.wandb
        run = wandb.init(
            project=resolved.project,
            entity=resolved.entity,
            group=settings.group,
            name=settings.name or run_id,
            tags=list(settings.tags),
            id=run_id,
            resume="allow",
            dir=resolved.dir,
            mode=resolved.mode,  # type: ignore[arg-type]  # validated by wandb_env.resolve
            config={**to_flat_dict(cfg), **provenance},
            settings=wandb.Settings(quiet=True, console="off", x_disable_stats=True),
        )
        run.define_metric(STEP)
        run.define_metric("trainer/epoch")
        for prefix in ("train", "adadim", "dynamics", "trainer"):
            run.define_metric(f"{prefix}/*", step_metric=STEP)
        run.define_metric("eval/*", step_metric="trainer/epoch", summary="max")
        return run

    def log(self, row: dict) -> None:
        self._history.write(json.dumps({k: to_json_value(v) for k, v in row.items()}) + "\n")
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
