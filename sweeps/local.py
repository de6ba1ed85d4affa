"""Run a sweep file on this machine, with no W&B server.

Each trial is an ordinary `adadim train` run (its own run directory and W&B offline files)
under ``<root>/<sweep name>/<trial id>``; the sweep's state is ``<root>/<sweep name>/sweep.json``.

- grid: every distinct combination; random: ``count`` (or ``run_cap``) draws from a seeded
  RNG; bayes: Optuna's TPE sampler (``pip install optuna``), told each finished trial's metric.
- A rerun skips finished trials and resumes interrupted ones (the trainer continues from the
  run's checkpoint).
- A failed trial is recorded with its exit code and the tail of its log, reported, and does
  not stop the others.
- Ctrl-C (or SIGTERM) forwards SIGTERM to running trials, which checkpoint and stop; their
  state becomes ``interrupted`` and the sweep exits with code 130.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from io import TextIOWrapper
from pathlib import Path
from typing import Literal

from .runner_lock import die_with_parent, hold_runner_lock
from .spec import (
    MAX_TRIALS,
    Sweep,
    SweepError,
    check_trial_count,
    check_trial_modes,
    grid_trials,
    overrides,
    random_trials,
)


@dataclass
class Trial:
    trial_id: str
    params: dict
    status: str = "pending"  # pending | running | finished | failed | interrupted
    returncode: int | None = None
    metric: float | None = None
    error: str | None = None


@dataclass
class LocalSweep:
    sweep: Sweep
    root: Path
    parallel: int = 1
    count: int | None = None
    seed: int = 0
    extra: list[str] = field(default_factory=list)
    python: str = sys.executable
    poll_seconds: float = 0.2
    max_trials: int = MAX_TRIALS  # refuse to build more trials than this (a grid's size, or --count)

    def __post_init__(self) -> None:
        self.directory = self.root / self.sweep.name
        self.state_path = self.directory / "sweep.json"
        self.trials: dict[str, Trial] = {}
        self._stop = False

    # ---- state ---------------------------------------------------------------------------

    def _load_state(self) -> None:
        if not self.state_path.is_file():
            return
        try:
            state = json.loads(self.state_path.read_text())
            digest = state.get("digest")
            trials = {t["trial_id"]: Trial(**t) for t in state["trials"]}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:  # garbled, or not ours
            raise SweepError(
                f"{self.state_path} is unreadable ({type(error).__name__}); move it aside to start the sweep over"
            ) from None
        if digest != self.sweep.digest():
            raise SweepError(
                f"{self.state_path} was written for a different version of {self.sweep.path.name}; "
                "use another --root or restore the file"
            )
        self.trials = trials

    def _save_state(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": self.sweep.name,
            "digest": self.sweep.digest(),
            "trials": [vars(t) for t in self.trials.values()],
        }
        tmp = self.state_path.with_name(".sweep.json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, self.state_path)

    # ---- trials ----------------------------------------------------------------------------

    def _planned(self) -> list[dict]:
        if self.sweep.method == "grid":
            return grid_trials(self.sweep, self.max_trials, self.count or None)
        count = self.count or self.sweep.run_cap
        if not count:
            raise SweepError(f"a {self.sweep.method} sweep needs --count or run_cap in the file")
        if self.sweep.method == "bayes":  # asked for one at a time by Optuna
            check_trial_count(count, self.max_trials, "a bayes sweep of")
            return []
        return random_trials(self.sweep, count, self.seed, self.max_trials)

    def _trial_id(self, index: int) -> str:
        return f"{self.sweep.name}-{index:03d}"

    def _finished_on_disk(self, trial: Trial) -> bool:
        summary = self.directory / trial.trial_id / "summary.json"
        try:
            return json.loads(summary.read_text()).get("state") == "finished"
        except (OSError, json.JSONDecodeError):
            return False

    def _command(self, trial: Trial) -> list[str]:
        base = [f"run.root={self.directory}", f"run.id={trial.trial_id}", "run.progress=false"]
        group = [] if "wandb.group" in trial.params else [f"wandb.group={self.sweep.name}"]
        # The trial's own parameters come after the common overrides, so they win.
        config = ["--config", self.sweep.config] if self.sweep.config else []
        train = [self.python, "-m", "adadim.training.cli", "train", *config]
        return [*train, *self.extra, *overrides(trial.params), *group, *base]

    def _metric(self, trial: Trial) -> float | None:
        try:
            value = json.loads((self.directory / trial.trial_id / "summary.json").read_text()).get(self.sweep.metric)
            return float(value) if value is not None and math.isfinite(float(value)) else None
        except (OSError, json.JSONDecodeError, TypeError, ValueError):
            return None

    # ---- running ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run every pending trial; returns 0, 1 if any trial failed, 130 if interrupted. A sweep
        refused here (too many trials, a foreign sweep.json, an unwritable --root) writes nothing."""
        self._load_state()
        planned = self._planned()  # checks the trial count before anything is built or written
        check_trial_modes(planned, self.sweep.config, self.extra)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SweepError(f"cannot write the sweep folder {self.directory}: {error.strerror or error}") from None
        lock = hold_runner_lock(self.directory, "sweep folder")
        try:
            self._load_state()  # again, under the lock: a runner that just finished may have written it
            return self._run_locked(planned)
        finally:
            lock.release()

    def _run_locked(self, planned: list[dict]) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.sweep.method == "bayes":
                self._run_bayes()
            else:
                for index, params in enumerate(planned):
                    trial_id = self._trial_id(index)
                    known = self.trials.get(trial_id)
                    if known is not None and known.params != params:
                        raise SweepError(f"trial {trial_id} was recorded with other parameters; use another --root")
                    self.trials.setdefault(trial_id, Trial(trial_id, params))
                self._save_state()
                self._execute([t for t in self.trials.values() if t.status != "finished"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._save_state()
        if self._stop:
            return 130
        return 1 if any(t.status == "failed" for t in self.trials.values()) else 0

    def _on_signal(self, signum, _frame) -> None:
        self._stop = True

    def _execute(self, trials: list[Trial]) -> None:
        queue = list(trials)
        running: dict[str, tuple[Trial, subprocess.Popen[bytes], TextIOWrapper]] = {}
        logs = self.directory / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        while (queue or running) and not (self._stop and not running):
            while queue and len(running) < self.parallel and not self._stop:
                trial = queue.pop(0)
                if self._finished_on_disk(trial):
                    trial.status, trial.metric = "finished", self._metric(trial)
                    continue
                log = (logs / f"{trial.trial_id}.log").open("a")
                process = subprocess.Popen(
                    self._command(trial),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
                running[trial.trial_id] = (trial, process, log)
                trial.status = "running"
                self._save_state()
                print(f"sweep {self.sweep.name}: started {trial.trial_id} {trial.params}", file=sys.stderr)
            if self._stop:
                for _, process, _ in running.values():
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
            for trial_id, (trial, process, log) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log.close()
                del running[trial_id]
                self._finish(trial, code, logs / f"{trial_id}.log")
            time.sleep(self.poll_seconds)

    def _finish(self, trial: Trial, code: int, log_path: Path) -> None:
        trial.returncode = code
        if code == 0 and self._finished_on_disk(trial):
            trial.status, trial.metric, trial.error = "finished", self._metric(trial), None
        elif self._stop or code in (128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT):
            trial.status = "interrupted"
        else:
            tail = log_path.read_text().strip().splitlines()[-3:] if log_path.is_file() else []
            trial.status, trial.error = "failed", " | ".join(tail)[-500:]
            print(f"sweep {self.sweep.name}: {trial.trial_id} failed (exit {code}): {trial.error}", file=sys.stderr)
        self._save_state()

    def _run_bayes(self) -> None:
        try:
            import optuna
        except ImportError:
            raise SweepError("method: bayes needs Optuna: pip install 'adadim[bayes]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        direction: Literal["minimize", "maximize"] = "maximize" if self.sweep.goal == "maximize" else "minimize"
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=self.seed))
        distributions = {p.key: _optuna_distribution(optuna, p) for p in self.sweep.parameters}
        for trial in self.trials.values():  # tell Optuna what earlier runs of this sweep found
            if trial.status == "finished" and trial.metric is not None:
                study.add_trial(
                    optuna.trial.create_trial(params=trial.params, distributions=distributions, value=trial.metric)
                )
        count = self.count or self.sweep.run_cap
        assert count is not None  # _planned refuses a bayes sweep without one
        pending = [t for t in self.trials.values() if t.status != "finished"]
        self._execute(pending)
        for trial in pending:
            if trial.status == "finished" and trial.metric is not None:
                study.add_trial(
                    optuna.trial.create_trial(params=trial.params, distributions=distributions, value=trial.metric)
                )
        while len(self.trials) < count and not self._stop:
            # --parallel trials are asked for at once and run side by side; each is told when done.
            batch = []
            for _ in range(min(self.parallel, count - len(self.trials))):
                asked = study.ask(distributions)
                check_trial_modes([dict(asked.params)], self.sweep.config, self.extra, len(self.trials))
                trial = Trial(self._trial_id(len(self.trials)), dict(asked.params))
                self.trials[trial.trial_id] = trial
                batch.append((asked, trial))
            self._execute([trial for _, trial in batch])
            for asked, trial in batch:
                if trial.status == "finished" and trial.metric is not None:
                    study.tell(asked, trial.metric)
                else:
                    study.tell(asked, state=optuna.trial.TrialState.FAIL)

    # ---- reporting ------------------------------------------------------------------------------

    def report(self) -> str:
        lines = [f"sweep {self.sweep.name} ({self.sweep.method}), metric {self.sweep.metric} ({self.sweep.goal}):"]
        for t in self.trials.values():
            metric = f"{t.metric:.4f}" if t.metric is not None else "-"
            detail = f"  exit {t.returncode}: {t.error}" if t.status == "failed" else ""
            lines.append(f"  {t.trial_id:<24} {t.status:<12} {metric:>8}  {t.params}{detail}")
        counts: dict[str, int] = {}
        for t in self.trials.values():
            counts[t.status] = counts.get(t.status, 0) + 1
        lines.append("  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        return "\n".join(lines)


def _optuna_distribution(optuna, p):
    d = optuna.distributions
    if p.values is not None:
        return d.CategoricalDistribution(p.values)
    if p.distribution == "int_uniform":
        return d.IntDistribution(int(p.low), int(p.high))
    if p.distribution == "log_uniform_values":
        return d.FloatDistribution(p.low, p.high, log=True)
    return d.FloatDistribution(p.low, p.high, step=p.q)
