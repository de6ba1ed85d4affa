"""A study's results as the README and results/<name>/ print them: Markdown tables written by
`adadim study` into a results folder, so the pages' numbers are copies of files, never typed by hand.

- ``accuracy.md``: per arm (method and variant), mean ± std over seeds of the final scores, with
  the raw-pixel row (given, computed by the caller) and the random-init row (one value per seed:
  the random backbone depends only on the seed).
- ``claims.md``: the claims table (`adadim.analysis.claims`), formatted.
- ``gradient_shares.md``: per arm with a varying mix, α and NT-Xent's share of the update to Z,
  averaged over each run's measurements, then mean ± std over seeds.
- ``steering.md`` (when there are method=steer runs): per steered arm, the tracking error
  (median |relative error| over the last 70% of training) and the low-label accuracy against
  the arm of the run it was steered to, Welch's t test with Holm's correction over the rows.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .markdown_text import markdown_cell
from .runset import RunSet
from .studies import metric_history

SCORES = (
    ("linear_top1", "full linear probe"),
    ("lowlabel_top1", "low-label probe"),
    ("knn_top1", "kNN"),
    ("knn_weighted_top1", "weighted kNN"),
)
# The order arms are printed in: the methods, each followed by its variants.
METHOD_ORDER = ("vicreg", "simclr", "barlow", "byol", "fixed", "linear", "cosine", "adadim", "steer")
ALPHA = "adadim/alpha"
NT_XENT_SHARE = "adadim/grad_share_nt_xent"
DIMENSION_SHARE = "adadim/grad_share_dimension"


def _pm(values: pd.Series) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna() * 100
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std():.2f}"


def is_plain_arm(arm: str) -> bool:
    """A method without a variant, or fixed α = 0.5 (the fixed method's reference rung)."""
    method, _, variant = arm.partition(" ")
    return variant == "" or (method == "fixed" and variant == "α=0.5")


def arm_order(arms) -> list[str]:
    """Arms sorted: by method in `METHOD_ORDER`, the plain method first, then its variants."""

    def key(arm: str):
        method, _, variant = arm.partition(" ")
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
        return (rank, not is_plain_arm(arm), variant)

    return sorted(set(arms), key=key)


def accuracy_markdown(rs: RunSet, raw: dict | None = None, by: str = "arm") -> str:
    """Mean ± std (%) of ``final/<score>`` per arm, plus raw pixels and the random-init CNN."""
    runs = rs.runs
    header = ["representation", "runs", *[name for _, name in SCORES]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if raw is not None:
        lines.append("| raw pixels | – | " + " | ".join(_pm(pd.Series([raw.get(k)])) for k, _ in SCORES) + " |")
    random_keys = [k for k in (f"final/random_init_{k}" for k, _ in SCORES) if k in runs]
    if random_keys and "run.seed" in runs:
        per_seed = runs.groupby("run.seed")[random_keys].first()  # the same backbone for every run of a seed
        cells = " | ".join(
            _pm(per_seed[f"final/random_init_{k}"]) if f"final/random_init_{k}" in per_seed else "–" for k, _ in SCORES
        )
        lines.append(f"| random-init CNN ({len(per_seed)} seeds) | – | {cells} |")
    for arm in arm_order(runs[by].astype(str)):
        rows = runs[runs[by].astype(str) == arm]
        cells = " | ".join(_pm(rows[f"final/{k}"]) if f"final/{k}" in rows else "–" for k, _ in SCORES)
        lines.append(f"| {markdown_cell(arm)} | {len(rows)} | {cells} |")
    return "\n".join(lines) + "\n"


def _g(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims table with its CI in one cell; the test and note columns as written."""
    header = ["claim", "estimate [95% CI]", "p", "p (Holm)", "supported", "n", "test", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        estimate = f"{_g(row['estimate'])} [{_g(row['ci_low'])}, {_g(row['ci_high'])}]"
        cells = [
            f"`{row['claim']}`".replace("|", "/"),
            estimate,
            _g(row["p_value"]),
            _g(row["p_holm"]),
            _g(bool(row["supported"])),
            _g(int(row["n"])),
            markdown_cell(str(row["test"]).replace("|", "/")),
            markdown_cell(str(row["note"]).replace("|", "/")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gradient_shares(rs: RunSet, by: str = "arm") -> pd.DataFrame:
    """Per run, over the steps that measured the gradients: mean α, mean NT-Xent and VICReg
    (L_dim) shares of the summed gradient norms w.r.t. Z, and the ratio of those two means."""
    history = rs.history
    missing = [k for k in (ALPHA, NT_XENT_SHARE, DIMENSION_SHARE) if k not in history]
    if missing:
        raise KeyError(f"the history has no {', '.join(map(repr, missing))}")
    rows = history.dropna(subset=[NT_XENT_SHARE, DIMENSION_SHARE])
    per_run = rows.groupby("run_id")[[ALPHA, NT_XENT_SHARE, DIMENSION_SHARE]].mean()
    # A ratio of the means: a mean of per-step ratios is dominated by the steps where NT-Xent's
    # share is near 0 (the start of a schedule from alpha = 0).
    per_run["ratio"] = per_run[DIMENSION_SHARE] / per_run[NT_XENT_SHARE].where(per_run[NT_XENT_SHARE] > 0)
    per_run[by] = rs.runs.loc[per_run.index, by].astype(str)
    return per_run


def gradient_shares_markdown(rs: RunSet, by: str = "arm") -> str:
    """Arms whose α is neither 0 nor 1 throughout: what α says against what NT-Xent gets."""
    per_run = gradient_shares(rs, by)
    lines = [
        "| arm | runs | α (mean over training) | NT-Xent share of ‖∇_Z‖ | VICReg ÷ NT-Xent share |",
        "|---|---|---|---|---|",
    ]
    for arm in arm_order(per_run[by]):
        rows = per_run[per_run[by] == arm]
        if rows[ALPHA].between(1e-9, 1 - 1e-9).sum() == 0:  # pure VICReg or SimCLR: nothing to share
            continue
        share = rows[NT_XENT_SHARE]
        spread = (lambda v: f" ± {v.std():.3f}") if len(rows) > 1 else (lambda v: "")
        lines.append(
            f"| {markdown_cell(arm)} | {len(rows)} | {rows[ALPHA].mean():.3f}{spread(rows[ALPHA])} | "
            f"{share.mean():.3f}{spread(share)} | {rows['ratio'].mean():.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(
    folder: Path, rs: RunSet, claims_table: pd.DataFrame | None, raw: dict | None, by: str = "arm"
) -> list[Path]:
    """accuracy.md, claims.md and gradient_shares.md (each only when its data exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "accuracy.md"]
    written[0].write_text(accuracy_markdown(rs, raw, by))
    if claims_table is not None:
        written.append(folder / "claims.md")
        written[-1].write_text(claims_markdown(claims_table))
    try:
        text = gradient_shares_markdown(rs, by)
    except KeyError:
        text = None
    if text is not None:
        written.append(folder / "gradient_shares.md")
        written[-1].write_text(text)
    if "method" in rs.runs and (rs.runs["method"] == "steer").any():
        try:
            text, paths = steering_markdown(rs, by), steering_paths(rs, by)
            plots.plot_steering(paths, folder)
        except KeyError as error:  # steered runs without a usable ratio or steer/error
            print(f"adadim study: steering table left out: {error.args[0] if error.args else error}", file=sys.stderr)
        else:
            written.append(folder / "steering.md")
            written[-1].write_text(text)
    return written


STEER_ERROR = "steer/error"
ACCURACY = "final/lowlabel_top1"


def tracking_errors(rs: RunSet, after: float = 0.3) -> pd.Series:
    """Per steered run: the median |relative error| of its control steps after ``after`` of
    training (the last 70% by default), the controller's own ``steer/error``."""
    if STEER_ERROR not in rs.history:
        raise KeyError(f"the history has no {STEER_ERROR!r}")
    try:
        rows = metric_history(rs, STEER_ERROR)  # progress = step / the run's last step
    except KeyError:  # every control step NaN (the ratio is NaN while I_excess <= 0)
        return pd.Series(dtype=float)
    late = rows[rows["progress"] >= after]
    return pd.to_numeric(late["value"]).abs().groupby(late["run_id"]).median()


def _source_arm(runs: pd.DataFrame, steered: pd.DataFrame, by: str) -> str | None:
    """The arm of the run that ``steered`` (the runs of one steered arm) followed, when loaded."""
    if "steer.target_run" not in steered:
        return None
    target = Path(str(steered["steer.target_run"].iloc[0])).name
    return str(runs.loc[target, by]) if target in runs.index else None


def steering_table(rs: RunSet, accuracy: str = ACCURACY, by: str = "arm") -> pd.DataFrame:
    """One row per steered arm: its tracking error, its accuracy against the arm of the run
    it was steered to (Welch's t test, Holm over the rows)."""
    from scipy import stats

    from . import inference

    errors = tracking_errors(rs)
    runs = rs.runs
    steered = runs[(runs["method"] == "steer") & runs.index.isin(errors.index)]
    rows = []
    for arm in arm_order(steered[by].astype(str)):
        mine = steered[steered[by].astype(str) == arm]
        source_arm = _source_arm(runs, mine, by)
        source = runs[runs[by].astype(str) == source_arm] if source_arm else runs.iloc[0:0]
        a, b = pd.to_numeric(mine[accuracy]), pd.to_numeric(source[accuracy]) if len(source) else pd.Series([])
        test = stats.ttest_ind(a, b, equal_var=False) if len(a) >= 2 and len(b) >= 2 else None
        rows.append(
            {
                "arm": arm,
                "runs": len(mine),
                "tracking_error_median": float(errors[mine.index].median()),
                "tracking_error_max": float(errors[mine.index].max()),
                "accuracy_mean": float(a.mean()),
                "accuracy_std": float(a.std()),
                "source_arm": source_arm or "not loaded",
                "source_runs": len(source),
                "source_accuracy_mean": float(b.mean()) if len(b) else np.nan,
                "source_accuracy_std": float(b.std()) if len(b) else np.nan,
                "difference": float(a.mean() - b.mean()) if len(b) else np.nan,
                "p_value": float(test.pvalue) if test is not None else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = inference.holm(table["p_value"].to_numpy(float))
    return table


def steering_markdown(rs: RunSet, by: str = "arm") -> str:
    table = steering_table(rs, by=by)
    lines = [
        "| steered arm | runs | tracking error, median (max) | low-label | source arm | its low-label | "
        "difference | p (Welch) | p (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float, spec: str = ".2f", suffix: str = "") -> str:
        return f"{100 * value:{spec}}{suffix}" if math.isfinite(value) else "–"

    for _, row in table.iterrows():
        lines.append(
            f"| {markdown_cell(row['arm'])} | {row['runs']} | {pct(row['tracking_error_median'], '.1f', '%')} "
            f"({pct(row['tracking_error_max'], '.1f', '%')}) | {pct(row['accuracy_mean'])} ± "
            f"{pct(row['accuracy_std'])} | {markdown_cell(row['source_arm'])} ({row['source_runs']} runs) | "
            f"{pct(row['source_accuracy_mean'])} ± {pct(row['source_accuracy_std'])} | "
            f"{pct(row['difference'], '+.2f')} | {_g(row['p_value'])} | {_g(row['p_holm'])} |"
        )
    return "\n".join(lines) + "\n"


def steering_paths(rs: RunSet, by: str = "arm") -> pd.DataFrame:
    """The rows `plots.plot_steering` draws: every steered run's measured ratio, setpoint and α
    at its control steps, and the ratio and α of the runs of the arm it was steered to."""
    history, runs = rs.history, rs.runs
    measured = history.dropna(subset=["dynamics/ratio_H_I"])
    parts = []
    steered = runs[runs["method"] == "steer"]
    for arm in arm_order(steered[by].astype(str)):
        mine = steered[steered[by].astype(str) == arm]
        source_arm = _source_arm(runs, mine, by)
        source_ids = runs.index[runs[by].astype(str) == source_arm] if source_arm else []
        for role, ids in (("steered", mine.index), ("source", source_ids)):
            rows = measured[measured["run_id"].isin(ids)]
            parts.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "role": role,
                        "run_id": rows["run_id"],
                        "step": rows["trainer/step"],
                        "ratio": rows["dynamics/ratio_H_I"],
                        "setpoint": rows["steer/setpoint"] if "steer/setpoint" in rows else np.nan,
                        "alpha": rows[ALPHA] if ALPHA in rows else np.nan,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# Settings that may differ between the runs of one arm: the seed, and where and how a run is kept.
SEED_AND_BOOKKEEPING = ("run.", "wandb.")
# The code a run came from (`adadim.training.provenance`): one arm's runs should share it.
CODE_PROVENANCE = ("provenance/adadim_version", "provenance/git_commit")


def _differing(rs: RunSet, by: str, keys: list[str]) -> dict[str, dict[str, list]]:
    """{arm: {key: its values}} for the keys whose recorded values differ inside an arm; a value
    missing from some runs (older runs, another writer) is not a difference."""
    mixed: dict[str, dict[str, list]] = {}
    for arm, runs in rs.runs.groupby(rs.runs[by].astype(str)):
        for key in keys:
            values = runs[key].map(lambda v: repr(v) if isinstance(v, (list, dict)) else v).dropna().unique()
            if len(values) > 1:
                mixed.setdefault(arm, {})[key] = sorted(map(str, values))
    return mixed


def mixed_arms(rs: RunSet, by: str = "arm") -> dict[str, dict[str, list]]:
    """Arms whose runs differ in a setting besides the seed and bookkeeping (``run.*``,
    ``wandb.*``): {arm: {key: the values}}, over the flattened config's dotted columns. The arm
    label names only the method and its variant, so runs of another length or learning rate
    (another sweep under the same root) would otherwise be averaged as if they were seeds."""
    settings = [c for c in map(str, rs.runs.columns) if "." in c and "/" not in c]
    return _differing(rs, by, [c for c in settings if not c.startswith(SEED_AND_BOOKKEEPING)])


def mixed_provenance(rs: RunSet, by: str = "arm") -> dict[str, dict[str, list]]:
    """Arms whose runs came from different adadim versions or git commits: {arm: {key: the
    values}}. Such an arm may average two versions of the objective as if they were seeds."""
    return _differing(rs, by, [k for k in CODE_PROVENANCE if k in rs.runs.columns])
