"""The RunSet: every loaded run as two tidy DataFrames."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from adadim.dynamics.keys import STEP

# The analysis default accuracy: on small data the full linear probe saturates for every
# method, even a random network; the low-label probe keeps methods apart.
DEFAULT_ACCURACY = "final/lowlabel_top1"
# One name per study, shared by the CLI (--studies), the function and the output files.
STUDIES = (
    "claims",
    "trajectories",
    "information_plane",
    "equilibrium",
    "accuracy_table",
    "ratio_accuracy",
    "optimum",
    "coupling",
)


@dataclass
class RunSet:
    """``runs``: one row per run, indexed by run id: flattened config (dotted keys), summary,
    ``state``, ``group`` and ``arm`` (the method and its variant,
    `adadim.analysis.loading.arm_label`). ``history``: one row per (run_id, step), with the metric keys as
    columns. ``skipped``: (run, reason) for every run that could not be loaded."""

    runs: pd.DataFrame
    history: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)

    def select(self, run_ids) -> RunSet:
        run_ids = list(run_ids)
        return RunSet(
            self.runs.loc[run_ids],
            self.history[self.history["run_id"].isin(run_ids)].reset_index(drop=True),
            self.skipped,
        )

    def where(self, **equals) -> RunSet:
        """Runs whose columns equal the given values, e.g. ``where(method="adadim")``; dotted
        keys are passed with ``__`` for ``.`` (``optim__lr=0.3``)."""
        mask = pd.Series(True, index=self.runs.index)
        for key, value in equals.items():
            column = key.replace("__", ".")
            if column not in self.runs:
                raise KeyError(f"no run column {column!r}")
            mask &= self.runs[column] == value
        return self.select(self.runs.index[mask])


def empty_runset() -> RunSet:
    return RunSet(pd.DataFrame(index=pd.Index([], name="run_id")), pd.DataFrame(columns=["run_id", STEP]))


def combine(runsets: list[RunSet]) -> RunSet:
    """One RunSet of several (for example one per sweep of a study); a run id seen twice is
    refused, since two sources would then claim one run."""
    nonempty = [r for r in runsets if len(r)]
    skipped = [s for r in runsets for s in r.skipped]
    if not nonempty:
        result = empty_runset()
        result.skipped = skipped
        return result
    runs = pd.concat([r.runs for r in nonempty], sort=False)
    twice = runs.index[runs.index.duplicated()].unique()
    if len(twice):
        raise ValueError(f"run id(s) in more than one source: {', '.join(map(str, twice[:5]))}")
    history = pd.concat([r.history for r in nonempty], ignore_index=True, sort=False)
    return RunSet(runs, history, skipped)
