"""Studies on a RunSet; each returns a tidy DataFrame.

Statistics come from scipy.stats: t intervals for trajectory bands, `bootstrap` (paired,
BCa unless stated) for confidence intervals, `permutation_test` (pairings) for p-values,
`linregress` for the equilibrium trend test.

The default accuracy key is ``final/lowlabel_top1``: on small data the full linear probe
saturates for every method (even a random network), so correlating dynamics with it would
correlate noise; the low-label probe keeps methods apart.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from adadim.dynamics.keys import in_nats

from .runset import DEFAULT_ACCURACY, STEP, RunSet

TRAJECTORY_METRICS = (
    "dynamics/H_R",
    "dynamics/H_Z",
    "dynamics/I_RZ",
    "dynamics/I_RZ_perm",
    "dynamics/ratio_H_I",
    "dynamics/erank_R",
    "dynamics/erank_Z",
    "adadim/alpha",
    "adadim/beta",
)
CORRELATIONS = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}


def _require_columns(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise KeyError(f"{what} has no {', '.join(map(repr, missing))}")


def metric_history(rs: RunSet, metric: str, normalize: bool = False) -> pd.DataFrame:
    """(run_id, step, epoch, progress, value) rows where the metric was logged; ``normalize``
    divides entropies and MI by log N (N = dynamics/n_samples); progress is step / last step."""
    _require_columns(rs.history, [metric], "the history")
    cols = ["run_id", STEP, metric] + [c for c in ("trainer/epoch", "dynamics/n_samples") if c in rs.history]
    rows = rs.history[cols].dropna(subset=[metric]).copy()
    if normalize and in_nats(metric):
        _require_columns(rows, ["dynamics/n_samples"], "the history")
        rows[metric] = rows[metric] / np.log(rows["dynamics/n_samples"])
    last = rs.history.groupby("run_id")[STEP].max()
    rows["progress"] = rows[STEP] / rows["run_id"].map(last).clip(lower=1)
    return rows.rename(columns={metric: "value"})


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
        if metric not in rs.history:
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


def equilibrium(rs: RunSet, metrics=TRAJECTORY_METRICS, window: float = 0.2, alpha: float = 0.05) -> pd.DataFrame:
    """Each run's equilibrium value of each metric: the mean over the last ``window`` fraction
    of its logged points. A run has *not settled* on a metric when a linear trend over that
    window is significant (linregress p < alpha) and moves the metric by more than 1% of its
    mean across the window. Columns: ``metric``, ``metric:slope``, ``metric:trend_p``,
    ``metric:settled``."""
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window}")
    out = pd.DataFrame(index=rs.runs.index)
    for metric in metrics:
        if metric not in rs.history:
            continue
        rows = metric_history(rs, metric)
        values, slopes, pvalues, settled = {}, {}, {}, {}
        for run_id, run_rows in rows.groupby("run_id"):
            tail = run_rows.iloc[-max(2, math.ceil(window * len(run_rows))) :]
            values[run_id] = tail["value"].mean()
            if len(tail) >= 3 and tail["value"].nunique() > 1:
                fit = stats.linregress(tail[STEP], tail["value"])
                span = fit.slope * (tail[STEP].iloc[-1] - tail[STEP].iloc[0])
                slopes[run_id], pvalues[run_id] = fit.slope, fit.pvalue
                settled[run_id] = not (fit.pvalue < alpha and abs(span) > 0.01 * abs(values[run_id]))
            else:
                slopes[run_id], pvalues[run_id], settled[run_id] = 0.0, 1.0, True
        out[metric] = pd.Series(values)
        out[f"{metric}:slope"] = pd.Series(slopes)
        out[f"{metric}:trend_p"] = pd.Series(pvalues)
        out[f"{metric}:settled"] = pd.Series(settled)
    return out


def correlate(x, y, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> list[dict]:
    """Pearson, Spearman and Kendall of paired samples, each with a bootstrap CI and a
    permutation p-value (two-sided), all from scipy.stats."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    with warnings.catch_warnings():
        # Resamples of few runs can be constant; their statistic is NaN, which is expected.
        warnings.simplefilter("ignore")
        return _correlate(x, y, n_resamples, seed, confidence)


def _correlate(x, y, n_resamples, seed, confidence) -> list[dict]:
    rows = []
    for name, fn in CORRELATIONS.items():

        def statistic(a, b, fn=fn):
            return fn(a, b)[0]

        row = {
            "method": name,
            "n": len(x),
            "estimate": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "p_permutation": np.nan,
        }
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            row["estimate"] = statistic(x, y)
            rng = np.random.default_rng(seed)
            boot = stats.bootstrap(
                (x, y), statistic, paired=True, vectorized=False, n_resamples=n_resamples,
                confidence_level=confidence, method="percentile", random_state=rng,
            )  # fmt: skip
            row["ci_low"], row["ci_high"] = boot.confidence_interval
            perm = stats.permutation_test(
                (x, y), statistic, permutation_type="pairings", vectorized=False, n_resamples=n_resamples,
                alternative="two-sided", random_state=np.random.default_rng(seed + 1),
            )  # fmt: skip
            row["p_permutation"] = perm.pvalue
        rows.append(row)
    return rows


def accuracy_column(rs: RunSet, key: str) -> pd.Series:
    if key not in rs.runs:
        available = sorted(c for c in rs.runs.columns if str(c).startswith("final/"))
        raise KeyError(f"no accuracy key {key!r} in the runs; available: {', '.join(available) or 'none'}")
    return pd.to_numeric(rs.runs[key], errors="coerce")


def ratio_vs_accuracy(
    rs: RunSet,
    x: str = "dynamics/ratio_H_I",
    accuracy: str = DEFAULT_ACCURACY,
    by: str = "group",
    window: float = 0.2,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlate each run's equilibrium ``x`` with its accuracy, pooled and per group."""
    eq = equilibrium(rs, [x], window)
    if x not in eq:
        raise KeyError(f"the history has no {x!r}")
    data = pd.DataFrame({"x": eq[x], "y": accuracy_column(rs, accuracy), "group": rs.runs[by].astype(str)})
    rows = [{"scope": "pooled", **r} for r in correlate(data["x"], data["y"], n_resamples, seed)]
    for group, part in data.groupby("group"):
        rows += [{"scope": group, **r} for r in correlate(part["x"], part["y"], n_resamples, seed)]
    out = pd.DataFrame(rows)
    out.insert(1, "x", x)
    out.insert(2, "accuracy", accuracy)
    return out


def _quadratic(x, y):
    c2, c1, c0 = np.polyfit(x, y, 2)
    return c0, c1, c2


def intermediate_optimum(
    rs: RunSet,
    xs=("dynamics/H_R", "dynamics/I_RZ"),
    accuracy: str = DEFAULT_ACCURACY,
    window: float = 0.2,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit accuracy = c0 + c1·x + c2·x² on the runs' equilibrium x; the vertex -c1 / (2 c2)
    with a percentile bootstrap CI (runs resampled). The paper's claim holds for x when the
    parabola opens downward (c2 < 0) and the vertex, CI included, lies inside the observed
    range of x: the best runs sit at an intermediate value."""
    eq = equilibrium(rs, list(xs), window)
    y_all = accuracy_column(rs, accuracy)
    rows = []
    for x_key in xs:
        if x_key not in eq:
            continue
        keep = eq[x_key].notna() & y_all.notna()
        x, y = eq.loc[keep, x_key].to_numpy(float), y_all[keep].to_numpy(float)
        row = {"x": x_key, "accuracy": accuracy, "n": len(x), "c0": np.nan, "c1": np.nan, "c2": np.nan, "r2": np.nan}
        row.update(vertex=np.nan, ci_low=np.nan, ci_high=np.nan, x_min=np.nan, x_max=np.nan)
        if len(x) >= 4 and np.ptp(x) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", np.exceptions.RankWarning)
                c0, c1, c2 = _quadratic(x, y)
            fitted = c0 + c1 * x + c2 * x * x
            r2 = 1 - np.sum((y - fitted) ** 2) / np.sum((y - y.mean()) ** 2) if np.ptp(y) > 0 else np.nan

            def vertex(a, b):
                _, b1, b2 = _quadratic(a, b)
                return -b1 / (2 * b2) if b2 != 0 else np.nan

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # degenerate resamples give NaN vertices
                boot = stats.bootstrap(
                    (x, y), vertex, paired=True, vectorized=False, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed),
                )  # fmt: skip
            row.update(c0=c0, c1=c1, c2=c2, r2=r2, vertex=vertex(x, y), x_min=x.min(), x_max=x.max())
            row["ci_low"], row["ci_high"] = boot.confidence_interval
        row["concave"] = bool(row["c2"] < 0)
        row["vertex_inside_range"] = bool(row["x_min"] <= row["vertex"] <= row["x_max"])
        row["ci_inside_range"] = bool(row["x_min"] <= row["ci_low"] and row["ci_high"] <= row["x_max"])
        row["intermediate_optimum"] = row["concave"] and row["ci_inside_range"]
        rows.append(row)
    return pd.DataFrame(rows)


def step_changes(rs: RunSet, h: str = "dynamics/H_R", i: str = "dynamics/I_RZ") -> pd.DataFrame:
    """ΔH and ΔI between consecutive dynamics measurements of each run, with the training
    progress (step / last step) at which each change ends."""
    _require_columns(rs.history, [h, i], "the history")
    rows = rs.history[["run_id", STEP, h, i]].dropna(subset=[h, i])
    last = rs.history.groupby("run_id")[STEP].max()
    frames = []
    for run_id, run_rows in rows.groupby("run_id"):
        run_rows = run_rows.sort_values(STEP)
        frames.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    STEP: run_rows[STEP].to_numpy()[1:],
                    "progress": run_rows[STEP].to_numpy()[1:] / max(1, last[run_id]),
                    "dH": np.diff(run_rows[h].to_numpy()),
                    "dI": np.diff(run_rows[i].to_numpy()),
                }
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["run_id", STEP, "progress", "dH", "dI"])
    )


def window_rows(changes: pd.DataFrame, lo: float, hi: float) -> pd.DataFrame:
    """Changes whose progress lies in (lo, hi]; the first window includes progress 0."""
    mask = (changes["progress"] <= hi) & ((changes["progress"] > lo) if lo > 0 else True)
    return changes[mask]


def coupling(
    rs: RunSet,
    early: tuple[float, float] = (0.0, 0.3),
    late: tuple[float, float] = (0.7, 1.0),
    h: str = "dynamics/H_R",
    i: str = "dynamics/I_RZ",
    by: str = "group",
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Does a step that raises H(R) also raise I(R;Z)? Within each run, correlate the
    step-to-step changes ΔH(R) and ΔI(R;Z) inside an early and a late window of training
    (Pearson, Spearman, Kendall); then, with runs as the independent units, report the mean
    per-run coefficient, a percentile bootstrap CI over runs, and a sign-flip permutation
    p-value (scipy's one-sample permutation test), pooled and per group.

    The paper's claim: positive early, not positive late."""
    changes = step_changes(rs, h, i)
    changes["group"] = changes["run_id"].map(rs.runs[by]).astype(str)
    rows = []
    for window, (lo, hi) in (("early", early), ("late", late)):
        part = window_rows(changes, lo, hi)
        per_run = []
        for run_id, run_rows in part.groupby("run_id"):
            entry = {"run_id": run_id, "group": run_rows["group"].iloc[0], "n_changes": len(run_rows)}
            usable = len(run_rows) >= 3 and run_rows["dH"].std() > 0 and run_rows["dI"].std() > 0
            for name, fn in CORRELATIONS.items():
                entry[name] = fn(run_rows["dH"], run_rows["dI"])[0] if usable else np.nan
            per_run.append(entry)
        per_run = pd.DataFrame(per_run, columns=["run_id", "group", "n_changes", *CORRELATIONS])
        scopes = [("pooled", per_run), *per_run.groupby("group")]
        for scope, data in scopes:
            for name in CORRELATIONS:
                values = data[name].dropna().to_numpy(float)
                row = {"window": window, "from": lo, "to": hi, "scope": scope, "method": name}
                row.update(
                    n_runs=len(values),
                    n_changes=int(data["n_changes"].sum()),
                    **_mean_with_ci(values, n_resamples, seed),
                )
                rows.append(row)
    return pd.DataFrame(rows)


def _mean_with_ci(values: np.ndarray, n_resamples: int, seed: int) -> dict:
    out = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_permutation": np.nan}
    if len(values) == 0:
        return out
    out["estimate"] = float(values.mean())
    if len(values) >= 2 and np.ptp(values) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = stats.bootstrap(
                (values,),
                np.mean,
                n_resamples=n_resamples,
                method="percentile",
                random_state=np.random.default_rng(seed),
            )
            test = stats.permutation_test(
                (values,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                random_state=np.random.default_rng(seed + 1),
            )  # fmt: skip
        out["ci_low"], out["ci_high"] = boot.confidence_interval
        out["p_permutation"] = test.pvalue
    elif len(values) >= 2:  # every run agrees exactly
        out["ci_low"] = out["ci_high"] = float(values[0])
    return out


def accuracy_table(rs: RunSet, keys=None, by: str = "group") -> pd.DataFrame:
    """Mean ± std (and n) of the final accuracies per group."""
    keys = keys or [k for k in rs.runs.columns if str(k).startswith("final/") and str(k).endswith("top1")]
    numeric = rs.runs[list(keys)].apply(pd.to_numeric, errors="coerce")
    numeric[by] = rs.runs[by].astype(str)
    grouped = numeric.groupby(by)
    table = grouped.mean().add_suffix(":mean").join(grouped.std().add_suffix(":std")).join(grouped.size().rename("n"))
    return table[[c for k in keys for c in (f"{k}:mean", f"{k}:std")] + ["n"]]
