"""The statistical tests behind the studies and the claims table, on plain NumPy arrays.

Each function names the paper its method comes from. Nothing here knows about runs: the
studies decide what the units are (runs, or the means of groups of runs) and pass arrays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .mixed import random_intercept

Z_CLIP = 1 - 1e-12  # |r| = 1 has an infinite Fisher z


# ---- correlations and Fisher's z ---------------------------------------------------------------


def fisher_z(r) -> np.ndarray:
    """Fisher's (1915) variance-stabilising transform z = atanh(r), for averaging correlations."""
    return np.arctanh(np.clip(np.asarray(r, dtype=float), -Z_CLIP, Z_CLIP))


def fisher_mean(r) -> float:
    """The mean of correlations taken on Fisher's z scale and transformed back: averaging r
    directly is biased towards zero because r's sampling distribution is skewed near ±1."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    return float(np.tanh(fisher_z(r).mean())) if r.size else math.nan


# Standard error of z for each coefficient: Fisher for Pearson; Bonett & Wright (2000,
# Psychometrika 65:23-28) for Spearman and Kendall.
def _z_se(statistic: str, r: float, n: int) -> float:
    if statistic == "pearson":
        return 1 / math.sqrt(n - 3) if n > 3 else math.nan
    if statistic == "spearman":
        return math.sqrt((1 + r * r / 2) / (n - 3)) if n > 3 else math.nan
    if statistic == "kendall":
        return math.sqrt(0.437 / (n - 4)) if n > 4 else math.nan
    raise ValueError(f"unknown correlation {statistic!r}")


def correlation_ci(r: float, n: int, statistic: str = "pearson", confidence: float = 0.95) -> tuple[float, float]:
    """Interval on Fisher's z scale, transformed back to r."""
    se = _z_se(statistic, r, n)
    if not (math.isfinite(r) and math.isfinite(se)):
        return math.nan, math.nan
    half = stats.norm.ppf(0.5 + confidence / 2) * se
    z = fisher_z(r)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _pearson_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson r of x with every row of ys."""
    xc = x - x.mean()
    yc = ys - ys.mean(axis=1, keepdims=True)
    return (yc @ xc) / np.sqrt((yc * yc).sum(axis=1) * (xc @ xc))


def permutation_pearson(x, y, n_resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """(r, two-sided p) with y's order permuted; exact over all n! orders when n! <=
    n_resamples (720 for six units), else Monte Carlo with the observed order counted in
    (Phipson & Smyth 2010, so p is never 0)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    r = float(np.corrcoef(x, y)[0, 1])
    n = len(x)
    if math.factorial(n) <= n_resamples:
        orders = np.array(list(itertools.permutations(range(n))))
        null = _pearson_rows(x, y[orders])
        return r, float(np.mean(np.abs(null) >= abs(r) - 1e-12))
    rng = np.random.default_rng(seed)
    null = _pearson_rows(x, y[rng.permuted(np.tile(np.arange(n), (n_resamples, 1)), axis=1)])
    return r, float((1 + np.sum(np.abs(null) >= abs(r) - 1e-12)) / (n_resamples + 1))


def stratified_permutation_pearson(x, y, strata, n_resamples: int = 5000, seed: int = 0) -> tuple[float, float]:
    """The within-stratum association: Pearson r of x and y after subtracting each stratum's
    mean, with a two-sided p from permuting y only inside each stratum (a test of the
    within-group relation that between-group differences cannot produce)."""
    x, y, strata = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(strata)
    xc, yc = x.copy(), y.copy()
    blocks = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for idx in blocks:
        xc[idx] -= x[idx].mean()
        yc[idx] -= y[idx].mean()
    if np.ptp(xc) == 0 or np.ptp(yc) == 0:
        return math.nan, math.nan
    r = float(np.corrcoef(xc, yc)[0, 1])
    rng = np.random.default_rng(seed)
    order = np.tile(np.arange(len(y)), (n_resamples, 1))
    for idx in blocks:
        order[:, idx] = idx[rng.permuted(np.tile(np.arange(len(idx)), (n_resamples, 1)), axis=1)]
    null = _pearson_rows(xc, yc[order])
    return r, float((1 + np.sum(np.abs(null) >= abs(r) - 1e-12)) / (n_resamples + 1))


# ---- Holm -------------------------------------------------------------------------------


def holm(p_values) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values; NaN (a test that could not run) stays NaN
    and is not counted in the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


# ---- trend under autocorrelation ---------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    slope: float
    p_value: float
    n_effective: float  # the sample size the autocorrelation leaves


def trend_test(t, y) -> Trend:
    """OLS slope of y on t, tested with the effective sample size of Santer et al. (2000, J.
    Geophys. Res. 105:7337-7356): n_eff = n (1 - ρ) / (1 + ρ), the residual variance divided by
    n_eff - 2 and Student's t with n_eff - 2 degrees of freedom. ρ is the lag-1 autocorrelation
    of the residuals, bias-corrected as ρ + (1 + 3ρ) / n (Kendall 1954, Biometrika 41:403) and
    clipped to [0, 0.97].

    Consecutive measurements of one run are autocorrelated, so the plain OLS p-value finds
    trends in stationary noise far more often than its nominal rate. A Newey-West standard
    error does not fix this with the 10-60 points of an equilibrium window: on AR(1) noise with
    ρ = 0.6 it still rejected 29% (12 points) and 22% (30 points) of flat series at 5%, this
    test 12% and 8% (the OLS test: 28% and 29%)."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    n = len(t)
    if n < 4 or np.ptp(t) == 0:
        return Trend(math.nan, math.nan, math.nan)
    tc = t - t.mean()
    sxx = float(tc @ tc)
    slope = float(tc @ (y - y.mean())) / sxx
    resid = y - y.mean() - slope * tc
    rss = float(resid @ resid)
    if rss <= 1e-30 * max(1.0, float(y @ y)):  # an exact line: the slope is certain
        return Trend(slope, 0.0 if slope != 0 else 1.0, float(n))
    rho = float(resid[1:] @ resid[:-1]) / rss
    rho = min(max(rho + (1 + 3 * rho) / n, 0.0), 0.97)
    n_eff = n * (1 - rho) / (1 + rho)
    if n_eff <= 2:
        return Trend(slope, 1.0, n_eff)
    se = math.sqrt(rss / (n_eff - 2) / sxx)
    return Trend(slope, float(2 * stats.t.sf(abs(slope) / se, n_eff - 2)), n_eff)


# ---- interior optimum: Simonsohn's two lines ---------------------------------------------------


def _smoothing_spline(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Cubic smoothing spline at the knots x (sorted, distinct, y the mean at each knot and w
    its count; Reinsch form, Green & Silverman 1994, §2.3) with the penalty chosen by
    generalised cross-validation, its effective degrees of freedom capped at n - 2. Returns
    (fitted, standard errors of the fit). With M = W^-1/2 K W^-1/2 = V diag(e) V', the hat
    matrix is W^-1/2 V diag(1 / (1 + λe)) V' W^1/2 (Demmler & Reinsch 1975)."""
    n = len(x)
    h = np.diff(x)
    q = np.zeros((n, n - 2))
    r = np.zeros((n - 2, n - 2))
    for j in range(1, n - 1):
        q[j - 1, j - 1] = 1 / h[j - 1]
        q[j, j - 1] = -1 / h[j - 1] - 1 / h[j]
        q[j + 1, j - 1] = 1 / h[j]
        r[j - 1, j - 1] = (h[j - 1] + h[j]) / 3
        if j < n - 2:
            r[j - 1, j] = r[j, j - 1] = h[j] / 6
    root = 1 / np.sqrt(w)
    m = root[:, None] * (q @ np.linalg.solve(r, q.T)) * root[None, :]
    e, v = np.linalg.eigh((m + m.T) / 2)
    e = np.clip(e, 0, None)
    positive = e[e > e.max() * 1e-12]
    yt = v.T @ (np.sqrt(w) * y)
    best = None
    for lam in np.logspace(np.log10(1e-3 / positive.max()), np.log10(1e3 / positive.min()), 81):
        shrink = 1 / (1 + lam * e)
        df = float(shrink.sum())
        if df > n - 2:
            continue
        fitted = root * (v @ (shrink * yt))
        rss = float(w @ (y - fitted) ** 2)
        gcv = n * rss / (n - df) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, shrink, fitted, rss, df)
    if best is None:
        raise ValueError("no smoothing level leaves residual degrees of freedom; too few points")
    _, shrink, fitted, rss, df = best
    hat = root[:, None] * (v * shrink) @ v.T * np.sqrt(w)[None, :]
    sigma2 = rss / (n - df)
    se = np.sqrt(sigma2 * np.einsum("ij,j,ij->i", hat, 1 / w, hat))
    return fitted, se


def _line_fit(x: np.ndarray, y: np.ndarray, groups, xc: float, breakpoint_in_first: bool):
    """Interrupted regression y = a + b_low (x - xc)[low] + b_high (x - xc)[high] + c [high]
    (+ a random intercept per group); the observation at xc belongs to the first line or to
    the second. Returns the MixedFit, or None when a line has fewer than 2 distinct x."""
    low = x <= xc if breakpoint_in_first else x < xc
    high = ~low
    if len(np.unique(x[low])) < 2 or len(np.unique(x[high])) < 2:
        return None
    design = np.column_stack([np.ones_like(x), np.where(low, x - xc, 0.0), np.where(high, x - xc, 0.0), high * 1.0])
    try:
        return random_intercept(y, design, groups)
    except ValueError:
        return None


@dataclass(frozen=True)
class TwoLines:
    b1: float  # slope below the breakpoint (a rise, for an interior maximum)
    ci1: tuple[float, float]
    p1: float
    b2: float  # slope above it (a fall)
    ci2: tuple[float, float]
    p2: float
    breakpoint: float
    df1: float
    df2: float
    p_value: float  # max(p1, p2): both lines must be significant (an intersection-union test)
    reason: str = ""  # why the test could not run, when p_value is NaN


def two_lines(x, y, groups=None, confidence: float = 0.95) -> TwoLines:
    """Simonsohn's (2018, AMPPS 1:538-555) two-lines test of an interior maximum of y in x.

    1. A flexible fit (here a cubic smoothing spline with a GCV penalty; Simonsohn uses a GAM)
       gives ŷ and its standard error; among x strictly inside the 10th-90th percentiles, the
       "flat" region is where ŷ + SE reaches the largest ŷ.
    2. Two lines are fitted around the median of the flat region; the breakpoint then moves
       to the z2 / (z1 + z2) quantile of the flat region (the Robin Hood rule: the weaker line
       gets more points).
    3. The lines are refitted there (the breakpoint's own observation in the first line for
       the first slope, in the second for the second, as in Simonsohn's code). An interior
       maximum needs b1 > 0 and b2 < 0, each significant.

    With ``groups``, each interrupted regression has a random intercept per group
    (`adadim.analysis.mixed`, Satterthwaite degrees of freedom) instead of Simonsohn's
    heteroskedasticity-robust errors, because runs of one method are not independent.
    p_value is the larger of the two two-sided p-values."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    groups = np.zeros(len(x)) if groups is None else np.asarray(groups)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[keep], y[keep], groups[keep]
    nan2 = (math.nan, math.nan)

    def missing(reason: str, xc: float = math.nan) -> TwoLines:
        return TwoLines(math.nan, nan2, math.nan, math.nan, nan2, math.nan, xc, math.nan, math.nan, math.nan, reason)

    if len(x) == 0 or np.ptp(x) == 0:
        return missing("x does not vary")
    # Knots closer than 1e-6 of the range merge: the spline's penalty matrix grows as 1/h³.
    _, inverse, counts = np.unique(np.round((x - x.min()) / np.ptp(x), 6), return_inverse=True, return_counts=True)
    if len(counts) < 6:
        return missing(f"needs at least 6 distinct x values, has {len(counts)}")
    knots = np.bincount(inverse, weights=x) / counts
    means = np.bincount(inverse, weights=y) / counts
    fitted_knots, se_knots = _smoothing_spline(knots, means, counts.astype(float))
    fitted, se = fitted_knots[inverse], se_knots[inverse]
    lo, hi = np.quantile(x, [0.1, 0.9])
    middle = (x > lo) & (x < hi)
    if not middle.any():
        return missing("no x strictly inside its 10th-90th percentiles")
    top = fitted[middle].max()
    flat = x[middle][fitted[middle] + se[middle] >= top]

    def fit(xc: float):
        return _line_fit(x, y, groups, xc, True), _line_fit(x, y, groups, xc, False)

    first, second = fit(float(np.median(flat)))
    share = 0.5
    if first is not None and second is not None:
        z1, z2 = abs(first.t(1)), abs(second.t(2))
        if math.isfinite(z1 + z2) and z1 + z2 > 0:
            share = z2 / (z1 + z2)
    xc = float(np.quantile(flat, share))
    first, second = fit(xc)
    if first is None or second is None:
        return missing(f"a line has fewer than 2 distinct x values at the breakpoint {xc:.4g}", xc)
    p1, p2 = first.p_value(1), second.p_value(2)
    return TwoLines(
        float(first.coef[1]), first.ci(1, confidence), p1, float(second.coef[2]), second.ci(2, confidence), p2,
        xc, float(first.df[1]), float(second.df[2]), max(p1, p2),
    )  # fmt: skip


def quadratic(x, y) -> dict:
    """Descriptive only: the least-squares parabola c0 + c1 x + c2 x², its vertex and R². A
    parabola cannot tell a plateau from an inverted U, and its vertex -c1 / (2 c2) diverges as
    c2 -> 0, so no claim rests on it."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {"c0": math.nan, "c1": math.nan, "c2": math.nan, "vertex": math.nan, "r2": math.nan}
    if len(np.unique(x)) < 3:
        return out
    c2, c1, c0 = np.polyfit(x, y, 2)
    fitted = c0 + c1 * x + c2 * x * x
    total = float(np.sum((y - y.mean()) ** 2))
    out.update(c0=c0, c1=c1, c2=c2, vertex=-c1 / (2 * c2) if c2 != 0 else math.nan)
    out["r2"] = 1 - float(np.sum((y - fitted) ** 2)) / total if total > 0 else math.nan
    return out
