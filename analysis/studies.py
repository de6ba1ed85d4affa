"""Studies on a RunSet; each returns a tidy DataFrame. Each study has one name, used by the CLI
(``STUDIES``), the function here and the output files: trajectories, information_plane,
equilibrium, accuracy_table, ratio_accuracy, optimum, coupling (and claims, in
`adadim.analysis.claims`).

Design notes: docs/analysis.md, "Design notes: studies".
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from adadim.dynamics.keys import STEP, in_nats
from scipy import stats

from . import inference
from .mixed import random_intercept
from .noise_floor import find_noise_floor, floor_coupling, read_noise_floor
from .runset import DEFAULT_ACCURACY, RunSet

H_R = "dynamics/H_R"
I_RZ = "dynamics/I_RZ"
I_EXCESS = "dynamics/I_RZ_excess"
RATIO = "dynamics/ratio_H_I"
TRAJECTORY_METRICS = (
    H_R,
    "dynamics/H_Z",
    I_RZ,
    "dynamics/I_RZ_perm",
    I_EXCESS,
    RATIO,
    "steer/setpoint",  # method=steer runs only; the figure draws it over the ratio
    "dynamics/ratio_H_I_raw",
    "dynamics/erank_R",
    "dynamics/erank_Z",
    "adadim/alpha",
    "adadim/beta",
)
OPTIMUM_METRICS = (H_R, I_EXCESS)
CORRELATIONS = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}
MIXED = "runs, random intercept per group"
NAIVE = "runs, ignoring groups"


def _require_columns(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise KeyError(f"{what} has no {', '.join(map(repr, missing))}")


def grouping_column(rs: RunSet, by: str) -> str:
    """The run column to group by; "auto" picks ``group`` when the runs differ in it (for
    example several sweeps), else ``method`` (one sweep's runs share its group)."""
    if by == "auto":
        by = "group" if rs.runs["group"].nunique() > 1 or "method" not in rs.runs else "method"
    if by not in rs.runs:
        raise KeyError(f"cannot group by {by!r}: not a run column")
    return by


def history_column(history: pd.DataFrame, metric: str) -> pd.Series:
    """A metric's column. Histories from before ``dynamics/I_RZ_excess`` was logged get it as
    I(R;Z) minus the permutation baseline I(R;πZ), the same quantity estimated from a few
    seeded permutations instead of in closed form."""
    if metric in history:
        return history[metric]
    if metric == I_EXCESS and I_RZ in history and "dynamics/I_RZ_perm" in history:
        return history[I_RZ] - history["dynamics/I_RZ_perm"]
    raise KeyError(f"the history has no {metric!r}")


def metric_history(rs: RunSet, metric: str, normalize: bool = False) -> pd.DataFrame:
    """(run_id, step, epoch, progress, value) rows where the metric was logged; ``normalize``
    divides entropies and MI by log N (N = dynamics/n_samples); progress is step / last step."""
    values = history_column(rs.history, metric)
    cols = ["run_id", STEP] + [c for c in ("trainer/epoch", "dynamics/n_samples") if c in rs.history]
    rows = rs.history[cols].assign(value=values).dropna(subset=["value"])
    if rows.empty:  # NaN in every row, as dynamics/ratio_H_I is while I_excess <= 0
        raise KeyError(f"no data for key {metric!r} (NaN in every row)")
    if normalize and in_nats(metric):
        _require_columns(rows, ["dynamics/n_samples"], "the history")
        rows["value"] = rows["value"] / np.log(rows["dynamics/n_samples"])
    last = rs.history.groupby("run_id")[STEP].max()
    rows["progress"] = rows[STEP] / rows["run_id"].map(last).clip(lower=1)
    return rows


def _has_metric(rs: RunSet, metric: str) -> bool:
    try:
        return not history_column(rs.history, metric).isna().all()  # all-NaN: no data
    except KeyError:
        return False


def trajectories(
    rs: RunSet,
    metrics=TRAJECTORY_METRICS,
    x: str = STEP,
    by: str = "group",
    smooth: int = 1,
    normalize: bool = False,
    per_run: bool = False,
) -> pd.DataFrame:
    """Metric against steps or epochs, per run or as the mean and 95% t interval across the
    runs (seeds) of each group. ``smooth`` is a centred rolling mean over that many logged
    points of each run."""
    frames = []
    for metric in metrics:
        if not _has_metric(rs, metric):
            continue
        rows = metric_history(rs, metric, normalize)
        if x not in rows:
            raise KeyError(f"the history has no x axis {x!r}")
        if smooth > 1:
            rows["value"] = rows.groupby("run_id")["value"].transform(
                lambda v: v.rolling(smooth, center=True, min_periods=1).mean()
            )
        rows[by] = rows["run_id"].map(rs.runs[by]).astype(str)
        rows["metric"] = metric
        frames.append(rows)
    if not frames:
        raise KeyError(f"none of {list(metrics)} is in the history")
    rows = pd.concat(frames, ignore_index=True)
    if per_run:
        return rows[["run_id", by, "metric", x, "value"]].rename(columns={x: "x"})
    grouped = rows.groupby([by, "metric", x])["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index().rename(columns={x: "x"})
    half = stats.t.ppf(0.975, (out["n"] - 1).clip(lower=1)) * out["std"] / np.sqrt(out["n"])
    out["ci_low"] = np.where(out["n"] > 1, out["mean"] - half, np.nan)
    out["ci_high"] = np.where(out["n"] > 1, out["mean"] + half, np.nan)
    return out


def information_plane(rs: RunSet, by: str = "group") -> pd.DataFrame:
    """I(R;Z) (and its excess over the permutation null, when logged) against H(R) per run and
    measurement, with the training progress."""
    _require_columns(rs.history, [H_R], "the history")
    if I_RZ not in rs.history and not _has_metric(rs, I_EXCESS):
        raise KeyError(f"the history has neither {I_RZ!r} nor {I_EXCESS!r}")
    raw = rs.history[I_RZ] if I_RZ in rs.history else pd.Series(np.nan, index=rs.history.index)
    rows = rs.history[["run_id", STEP, H_R]].assign(I_raw=raw, I_excess=_excess_or_nan(rs.history))
    rows = rows.dropna(subset=[H_R]).dropna(subset=["I_raw", "I_excess"], how="all")
    last = rs.history.groupby("run_id")[STEP].max()
    return pd.DataFrame(
        {
            "run_id": rows["run_id"],
            by: rows["run_id"].map(rs.runs[by]).astype(str),
            STEP: rows[STEP],
            "progress": rows[STEP] / rows["run_id"].map(last).clip(lower=1),
            "H_R": rows[H_R],
            "I_RZ": rows["I_raw"],
            "I_RZ_excess": rows["I_excess"],
        }
    ).reset_index(drop=True)


def _excess_or_nan(history: pd.DataFrame) -> pd.Series:
    try:
        return history_column(history, I_EXCESS)
    except KeyError:
        return pd.Series(np.nan, index=history.index)


# ---- equilibrium ---------------------------------------------------------------------------------


def equilibrium(rs: RunSet, metrics=TRAJECTORY_METRICS, window: float = 0.2, alpha: float = 0.05) -> pd.DataFrame:
    """Each run's equilibrium value of each metric: the mean over the last ``window`` fraction
    of its logged points. A run has *not settled* on a metric when a linear trend over that
    window is significant and moves the metric by more than 1% of its mean. The trend test
    allows for autocorrelation between consecutive measurements (an effective sample size,
    `inference.trend_test`). Columns: ``metric``, ``metric:slope``, ``metric:trend_p``,
    ``metric:trend_p_holm`` (Holm over the runs) and ``metric:settled``, which uses the
    unadjusted p so that a doubtful run is flagged rather than passed."""
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window}")
    out = pd.DataFrame(index=rs.runs.index)
    for metric in metrics:
        if not _has_metric(rs, metric):
            continue
        rows = metric_history(rs, metric)
        steps, vals = rows[STEP].to_numpy(float), rows["value"].to_numpy(float)
        values, slopes, pvalues, settled = {}, {}, {}, {}
        for run_id, idx in rows.groupby("run_id", sort=False).indices.items():
            tail = idx[-max(2, math.ceil(window * len(idx))) :]
            t, y = steps[tail], vals[tail]
            values[run_id] = float(y.mean())
            trend = inference.trend_test(t, y) if np.ptp(y) > 0 else None
            if trend is None or not math.isfinite(trend.p_value):
                slopes[run_id], pvalues[run_id], settled[run_id] = 0.0, 1.0, True
                continue
            span = trend.slope * (t[-1] - t[0])
            slopes[run_id], pvalues[run_id] = trend.slope, trend.p_value
            settled[run_id] = not (trend.p_value < alpha and abs(span) > 0.01 * abs(values[run_id]))
        out[metric] = pd.Series(values)
        out[f"{metric}:slope"] = pd.Series(slopes)
        out[f"{metric}:trend_p"] = pd.Series(pvalues)
        out[f"{metric}:trend_p_holm"] = inference.holm(out[f"{metric}:trend_p"].to_numpy(float))
        out[f"{metric}:settled"] = pd.Series(settled)
    return out


def accuracy_column(rs: RunSet, key: str) -> pd.Series:
    if key not in rs.runs:
        available = sorted(c for c in rs.runs.columns if str(c).startswith("final/"))
        raise KeyError(f"no accuracy key {key!r} in the runs; available: {', '.join(available) or 'none'}")
    return pd.to_numeric(rs.runs[key], errors="coerce")


def equilibrium_points(rs: RunSet, x: str, accuracy: str, by: str, eq: pd.DataFrame | None = None, window=0.2):
    """(x, y, group) per run with both values finite, from the equilibrium table."""
    eq = equilibrium(rs, [x], window) if eq is None else eq
    if x not in eq:  # absent, or NaN in every row
        raise KeyError(f"no data for key {x!r}")
    data = pd.DataFrame({"x": eq[x], "y": accuracy_column(rs, accuracy), "group": rs.runs[by].astype(str)})
    return data[np.isfinite(data["x"]) & np.isfinite(data["y"])]


def unsettled_runs(eq: pd.DataFrame, metric: str) -> list[str]:
    column = f"{metric}:settled"
    return [] if column not in eq else [str(r) for r in eq.index[~eq[column].astype(bool)]]


# ---- ratio against accuracy -------------------------------------------------------------------


def slope_test(data: pd.DataFrame) -> dict:
    """The primary test of a linear relation of y on x: a random intercept per group, REML,
    Satterthwaite degrees of freedom. Returns estimate (the slope), CI, p_value, n, df."""
    out = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": len(data), "df": np.nan}
    if len(data) < 4 or data["x"].nunique() < 3:
        return out
    design = np.column_stack([np.ones(len(data)), data["x"].to_numpy(float)])
    fit = random_intercept(data["y"].to_numpy(float), design, data["group"].to_numpy())
    out.update(estimate=float(fit.coef[1]), p_value=fit.p_value(1), df=float(fit.df[1]))
    out["ci_low"], out["ci_high"] = fit.ci(1)
    return out


def group_means(data: pd.DataFrame, columns=("x", "y")) -> pd.DataFrame:
    return data.groupby("group")[list(columns)].mean()


def ratio_accuracy(
    rs: RunSet,
    x: str = RATIO,
    accuracy: str = DEFAULT_ACCURACY,
    by: str = "group",
    window: float = 0.2,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each run's equilibrium ``x`` against its accuracy. Rows, by ``scope``:

    - ``group means``: Pearson (the primary test: Student's t with G - 2 df, exact for normal
      group means), and Pearson, Spearman, Kendall with an exact permutation p (all orders of
      the groups; coarse with few groups: swapping two close groups barely changes r);
      Fisher-z intervals;
    - ``runs, random intercept per group``: the slope of accuracy on x; it assumes the
      relation within a method (across seeds) is the one between methods;
    - ``within groups``: Pearson of group-centred values, permutation inside groups only;
    - ``runs, ignoring groups``: the naive coefficients that treat every run as independent
      (percentile bootstrap CI, permutation of pairings); they overstate the evidence when
      runs cluster by method;
    - each group with at least 4 runs, on its own runs.

    ``p_holm`` adjusts over every row."""
    data = equilibrium_points(rs, x, accuracy, by, window=window)
    rows = []
    means = group_means(data)
    if len(means) >= 3:
        if np.ptp(means["x"]) > 0 and np.ptp(means["y"]) > 0:
            r, p = (float(v) for v in stats.pearsonr(means["x"], means["y"]))
            low, high = inference.correlation_ci(r, len(means))
            rows.append(
                {"scope": "group means", "statistic": "pearson", "n": len(means), "estimate": r, "ci_low": low}
                | {"ci_high": high, "p_value": p, "test": "t test (G - 2 df)"}
            )
        for name, fn in CORRELATIONS.items():
            rows.append({"scope": "group means", "statistic": name, **_exact_correlation(means, name, fn)})
    rows.append({"scope": MIXED, "statistic": "slope", **_strip(slope_test(data)), "test": "t (Satterthwaite df)"})
    if data["group"].nunique() < len(data):
        r, p = inference.stratified_permutation_pearson(data["x"], data["y"], data["group"], n_resamples, seed)
        rows.append(
            {"scope": "within groups", "statistic": "pearson", "n": len(data), "estimate": r, "p_value": p}
            | {"ci_low": np.nan, "ci_high": np.nan, "test": "permutation within groups"}
        )
    rows += [{"scope": NAIVE, **r} for r in correlate(data["x"], data["y"], n_resamples, seed)]
    for group, part in data.groupby("group"):
        if len(part) >= 4:
            rows += [{"scope": f"group {group}", **r} for r in correlate(part["x"], part["y"], n_resamples, seed)]
    out = pd.DataFrame(rows)
    out.insert(0, "x", x)
    out.insert(1, "accuracy", accuracy)
    out["p_holm"] = inference.holm(out["p_value"].to_numpy(float))
    columns = ["x", "accuracy", "scope", "statistic", "n", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "test"]
    return out[columns]


def _strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "df"}


def _exact_correlation(means: pd.DataFrame, name: str, fn) -> dict:
    x, y = means["x"].to_numpy(float), means["y"].to_numpy(float)
    row: dict[str, Any] = {"n": len(x), "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    row["test"] = (
        "exact permutation of group means" if math.factorial(len(x)) <= 40320 else "permutation of group means"
    )
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return row
    result = stats.permutation_test(
        (x,), lambda a: fn(a, y)[0], permutation_type="pairings", n_resamples=40320,
        alternative="two-sided", random_state=np.random.default_rng(0),
    )  # fmt: skip
    row.update(estimate=float(result.statistic), p_value=float(result.pvalue))
    row["ci_low"], row["ci_high"] = inference.correlation_ci(row["estimate"], len(x), name)
    return row


def correlate(x, y, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> list[dict]:
    """Pearson, Spearman and Kendall of paired samples treated as independent, each with a
    percentile bootstrap CI (pairs resampled) and a two-sided permutation p-value (pairings)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    with warnings.catch_warnings():
        # Resamples of few runs can be constant; their statistic is NaN, which is expected.
        # Only those warnings are silenced: anything else still reaches the user.
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        # ...and a NaN among the resamples makes the CI NaN, which the row then shows.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        return _correlate(x, y, n_resamples, seed, confidence)


def _correlate(x, y, n_resamples, seed, confidence) -> list[dict]:
    rows = []
    for name, fn in CORRELATIONS.items():

        def statistic(a, b, fn=fn):
            return fn(a, b)[0]

        row = {"statistic": name, "n": len(x), "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan}
        row.update(p_value=np.nan, test="permutation of pairings; percentile bootstrap CI")
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            row["estimate"] = statistic(x, y)
            boot = stats.bootstrap(
                (x, y), statistic, paired=True, vectorized=False, n_resamples=n_resamples,
                confidence_level=confidence, method="percentile", random_state=np.random.default_rng(seed),
            )  # fmt: skip
            row["ci_low"], row["ci_high"] = boot.confidence_interval
            perm = stats.permutation_test(
                (x, y), statistic, permutation_type="pairings", vectorized=False, n_resamples=n_resamples,
                alternative="two-sided", random_state=np.random.default_rng(seed + 1),
            )  # fmt: skip
            row["p_value"] = perm.pvalue
        rows.append(row)
    return rows


# ---- interior optimum ---------------------------------------------------------------------------


def optimum(
    rs: RunSet,
    xs=OPTIMUM_METRICS,
    accuracy: str = DEFAULT_ACCURACY,
    by: str = "group",
    window: float = 0.2,
) -> pd.DataFrame:
    """Is there an interior maximum of accuracy in each equilibrium x? Simonsohn's (2018)
    two-lines test (`inference.two_lines`): a significant rise below a data-chosen breakpoint
    and a significant fall above it. Rows per x: scope ``runs, random intercept per group``
    (the primary test) and ``runs, ignoring groups`` (every run independent, as in
    Simonsohn's own test). ``interior_optimum`` needs b1 > 0 > b2 and p_holm < 0.05.

    The quadratic fit (c0, c1, c2, its vertex, R²) is descriptive only: a parabola cannot
    tell a plateau from an inverted U, and its vertex diverges as c2 -> 0."""
    eq = equilibrium(rs, [x for x in xs if _has_metric(rs, x)], window)
    rows = []
    for x_key in xs:
        if x_key not in eq:
            continue
        data = equilibrium_points(rs, x_key, accuracy, by, eq)
        quad = inference.quadratic(data["x"], data["y"])
        for scope, groups in ((MIXED, data["group"].to_numpy()), (NAIVE, None)):
            test = inference.two_lines(data["x"], data["y"], groups)
            rows.append(
                {"x": x_key, "accuracy": accuracy, "scope": scope, "n": len(data), "breakpoint": test.breakpoint}
                | {"b1": test.b1, "b1_ci_low": test.ci1[0], "b1_ci_high": test.ci1[1], "p1": test.p1}
                | {"b2": test.b2, "b2_ci_low": test.ci2[0], "b2_ci_high": test.ci2[1], "p2": test.p2}
                | {"p_value": test.p_value}
                | {f"quadratic_{k}": v for k, v in quad.items()}
                | {"x_min": data["x"].min(), "x_max": data["x"].max(), "note": test.reason}
            )
    columns = ["x", "accuracy", "scope", "n", "breakpoint", "b1", "b1_ci_low", "b1_ci_high", "p1", "b2"]
    columns += ["b2_ci_low", "b2_ci_high", "p2", "p_value", "p_holm", "interior_optimum"]
    columns += [f"quadratic_{k}" for k in ("c0", "c1", "c2", "vertex", "r2")] + ["x_min", "x_max", "note"]
    out = pd.DataFrame(rows)
    if out.empty:
        raise KeyError(f"the history has none of {list(xs)}")
    out["p_holm"] = inference.holm(out["p_value"].to_numpy(float))
    out["interior_optimum"] = (out["b1"] > 0) & (out["b2"] < 0) & (out["p_holm"] < 0.05)
    return out[columns]


# ---- coupling -----------------------------------------------------------------------------------


def step_changes(rs: RunSet, h: str = H_R, i: str = I_EXCESS) -> pd.DataFrame:
    """ΔH and ΔI between consecutive dynamics measurements of each run, with the training
    progress (step / last step) at which each change ends, and the measured levels."""
    hist = rs.history
    rows = pd.DataFrame({"run_id": hist["run_id"], STEP: hist[STEP], "H": history_column(hist, h)})
    rows["I"] = history_column(hist, i)
    rows = rows.dropna(subset=["H", "I"]).sort_values(["run_id", STEP], kind="stable")
    last = hist.groupby("run_id")[STEP].max()
    same = rows["run_id"].eq(rows["run_id"].shift())
    changes = rows.assign(dH=rows["H"].diff(), dI=rows["I"].diff())[same]
    last_step = changes["run_id"].map(last).astype(float).clip(lower=1)
    changes["progress"] = changes[STEP] / last_step
    return changes[["run_id", STEP, "progress", "dH", "dI", "H", "I"]].reset_index(drop=True)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 4 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


def surrogate_floor(step: np.ndarray, h: np.ndarray, i: np.ndarray) -> tuple[float, int]:
    """The noise coupling of one run without a noise_floor.json: in its late window (the
    levels ``h``, ``i`` measured at ``step``), the Pearson r of consecutive differences of H
    and I after removing a quadratic trend in the step from each. Late in training the slow
    movement is the trend; what is left is mostly measurement noise, whose coupling this
    estimates."""
    if len(step) < 6:
        return np.nan, 0
    t = (step - step.mean()) / (np.ptp(step) or 1.0)
    res_h = h - np.polyval(np.polyfit(t, h, 2), t)
    res_i = i - np.polyval(np.polyfit(t, i, 2), t)
    return _pearson(np.diff(res_h), np.diff(res_i)), len(step) - 1


def _in_window(progress: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (progress <= hi) & ((progress > lo) if lo > 0 else True)


def coupling_per_run(
    rs: RunSet,
    early: tuple[float, float] = (0.0, 0.3),
    late: tuple[float, float] = (0.7, 1.0),
    h: str = H_R,
    i: str = I_EXCESS,
    by: str = "group",
) -> pd.DataFrame:
    """Per run: Pearson r of ΔH and ΔI in the early and the late window, and the noise
    floor, the r that measurement noise alone gives: from the run's noise_floor.json when it
    has one (``floor_source`` "noise_floor.json"), else the surrogate (`surrogate_floor`).
    ``z_*`` are Fisher's z of each r."""
    changes = step_changes(rs, h, i)
    cols = {c: changes[c].to_numpy(float) for c in (STEP, "progress", "dH", "dI", "H", "I")}
    sources = rs.runs["source"] if "source" in rs.runs else pd.Series(None, index=rs.runs.index)
    rows = []
    for run_id, idx in changes.groupby("run_id", sort=False).indices.items():
        progress, dh, di = cols["progress"][idx], cols["dH"][idx], cols["dI"][idx]
        e, la = _in_window(progress, *early), _in_window(progress, *late)
        entry = {"run_id": run_id, "group": str(rs.runs.at[run_id, by])}
        entry.update(r_early=_pearson(dh[e], di[e]), n_early=int(e.sum()))
        entry.update(r_late=_pearson(dh[la], di[la]), n_late=int(la.sum()))
        entry.update(r_floor=np.nan, n_floor=0, floor_source="surrogate", floor_note="")
        path = find_noise_floor(str(run_id), sources.get(run_id))
        if path is not None:
            try:
                entry["r_floor"], entry["n_floor"] = floor_coupling(read_noise_floor(path), h, i)
                entry["floor_source"] = "noise_floor.json"
            except ValueError as error:
                entry["floor_note"] = str(error)
        if entry["floor_source"] == "surrogate":
            levels = (progress > late[0]) & (progress <= late[1])
            entry["r_floor"], entry["n_floor"] = surrogate_floor(
                cols[STEP][idx][levels], cols["H"][idx][levels], cols["I"][idx][levels]
            )
        rows.append(entry)
    columns = ["run_id", "group", "r_early", "n_early", "r_late", "n_late", "r_floor", "n_floor"]
    out = pd.DataFrame(rows, columns=[*columns, "floor_source", "floor_note"])
    for name in ("early", "late", "floor"):
        out[f"z_{name}"] = inference.fisher_z(out[f"r_{name}"])
    return out


COUPLING_QUANTITIES = {
    "early": "z_early",
    "late": "z_late",
    "floor": "z_floor",
    "early - floor": None,
    "early - late": None,
}


def coupling_values(per_run: pd.DataFrame, quantity: str) -> pd.Series:
    """Per-run Fisher z of a window, or the per-run difference of two windows' z."""
    if quantity == "early - floor":
        return per_run["z_early"] - per_run["z_floor"]
    if quantity == "early - late":
        return per_run["z_early"] - per_run["z_late"]
    return per_run[COUPLING_QUANTITIES[quantity]]


def mean_test(values: pd.Series, groups: pd.Series) -> dict:
    """The mean of per-run values with a random intercept per group (REML, Satterthwaite df);
    with one run per group or a single group this is Student's one-sample t test."""
    keep = np.isfinite(values.to_numpy(float))
    v, g = values.to_numpy(float)[keep], groups.to_numpy()[keep]
    out = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": len(v), "df": np.nan}
    if len(v) < 2:
        return out
    if np.ptp(v) == 0:
        out.update(estimate=float(v[0]), ci_low=float(v[0]), ci_high=float(v[0]))
        return out
    fit = random_intercept(v, np.ones((len(v), 1)), g)
    out.update(estimate=float(fit.coef[0]), p_value=fit.p_value(0), df=float(fit.df[0]))
    out["ci_low"], out["ci_high"] = fit.ci(0)
    return out


def coupling(
    rs: RunSet,
    early: tuple[float, float] = (0.0, 0.3),
    late: tuple[float, float] = (0.7, 1.0),
    h: str = H_R,
    i: str = I_EXCESS,
    by: str = "group",
    per_run: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Does a step that raises H(R) also raise I(R;Z)'s excess over its permutation null?

    Within each run, Pearson r of the step-to-step changes ΔH and ΔI in an early and a late
    window, and the noise floor (`coupling_per_run`); every r is taken to Fisher's z. Rows:
    ``quantity`` early, late, floor (the mean coupling, back on the r scale), early - floor
    and early - late (the mean paired difference of z per run); ``scope``: the runs with a
    random intercept per group (the primary analysis), the runs ignoring groups, and each
    group's runs. p-values test a zero mean (two-sided); ``p_holm`` adjusts over all rows.

    The paper's claim: coupled beyond the noise floor early, and less coupled late than early."""
    per_run = coupling_per_run(rs, early, late, h, i, by) if per_run is None else per_run
    rows = []
    scopes = [(MIXED, per_run, per_run["group"]), (NAIVE, per_run, pd.Series(np.arange(len(per_run))))]
    scopes += [(f"group {g}", part, part["group"]) for g, part in per_run.groupby("group")]
    for scope, part, groups in scopes:
        for quantity in COUPLING_QUANTITIES:
            result = mean_test(coupling_values(part, quantity), groups)
            is_level = quantity in ("early", "late", "floor")
            if is_level:  # a mean Fisher z, shown as r
                for key in ("estimate", "ci_low", "ci_high"):
                    result[key] = float(np.tanh(result[key]))
            rows.append(
                {"quantity": quantity, "scope": scope, "n_runs": result["n"], "estimate": result["estimate"]}
                | {"ci_low": result["ci_low"], "ci_high": result["ci_high"], "p_value": result["p_value"]}
                | {"scale": "r (Fisher-z mean)" if is_level else "Fisher z difference", "df": result["df"]}
            )
    out = pd.DataFrame(rows)
    out["p_holm"] = inference.holm(out["p_value"].to_numpy(float))
    return out[["quantity", "scope", "n_runs", "estimate", "ci_low", "ci_high", "scale", "df", "p_value", "p_holm"]]


# ---- accuracy -----------------------------------------------------------------------------------


def accuracy_table(rs: RunSet, keys=None, by: str = "group") -> pd.DataFrame:
    """Mean ± std (and n) of the final accuracies per group."""
    keys = keys or [k for k in rs.runs.columns if str(k).startswith("final/") and str(k).endswith("top1")]
    numeric = rs.runs[list(keys)].apply(pd.to_numeric, errors="coerce")
    numeric[by] = rs.runs[by].astype(str)
    grouped = numeric.groupby(by)
    table = grouped.mean().add_suffix(":mean").join(grouped.std().add_suffix(":std")).join(grouped.size().rename("n"))
    return table[[c for k in keys for c in (f"{k}:mean", f"{k}:std")] + ["n"]]
