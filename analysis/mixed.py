"""A linear model with a random intercept per group, fitted by REML, with Satterthwaite
degrees of freedom for each coefficient.

Runs of one method share that method's effect on everything measured, so they are not
independent: treating 18 runs of 6 methods as 18 independent points makes p-values far too
small. The random intercept absorbs each group's shared offset; the Satterthwaite degrees of
freedom then tell how much independent information a coefficient really rests on, between
the number of groups (when the groups differ a lot) and the number of runs (when they do
not). This is the approach of lmerTest (Kuznetsova, Brockhoff & Christensen 2017, J. Stat.
Softw. 82(13)); the REML criterion is Patterson & Thompson's (1971), the degrees of freedom
Satterthwaite's (1946) as applied to mixed models by Giesbrecht & Burns (1985).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


@dataclass(frozen=True)
class MixedFit:
    coef: np.ndarray
    se: np.ndarray
    df: np.ndarray  # Satterthwaite degrees of freedom, per coefficient
    sigma2_error: float  # within-group (residual) variance
    sigma2_group: float  # between-group variance of the random intercept
    n: int
    groups: int

    def t(self, k: int) -> float:
        return float(self.coef[k] / self.se[k]) if self.se[k] > 0 else math.nan

    def p_value(self, k: int) -> float:
        """Two-sided p-value of coefficient k = 0."""
        t = self.t(k)
        return float(2 * stats.t.sf(abs(t), self.df[k])) if math.isfinite(t) else math.nan

    def ci(self, k: int, confidence: float = 0.95) -> tuple[float, float]:
        half = stats.t.ppf(0.5 + confidence / 2, self.df[k]) * self.se[k]
        return float(self.coef[k] - half), float(self.coef[k] + half)


def _profiled_reml(log_ratio: float, y, x, zz, n, p) -> float:
    """-2 REML log-likelihood with the residual variance profiled out, at σ_u²/σ_e² = e^log_ratio."""
    h = np.eye(n) + math.exp(log_ratio) * zz
    return _criterion(h, y, x, n, p)


def _criterion(h, y, x, n, p) -> float:
    h_inv = np.linalg.inv(h)
    xhx = x.T @ h_inv @ x
    beta = np.linalg.solve(xhx, x.T @ h_inv @ y)
    r = y - x @ beta
    quad = float(r @ h_inv @ r)
    if quad <= 0:
        return -math.inf
    return (n - p) * math.log(quad) + np.linalg.slogdet(h)[1] + np.linalg.slogdet(xhx)[1]


def random_intercept(y, x, groups) -> MixedFit:
    """Fit y = x β + u_group + e by REML. ``x`` holds the fixed-effect columns (include the
    intercept); ``groups`` labels each row. With one group, or one row per group, there is no
    random effect to estimate and the fit is ordinary least squares with n - p degrees of
    freedom."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    n, p = x.shape
    labels, index = np.unique(np.asarray(groups), return_inverse=True)
    z = np.zeros((n, len(labels)))
    z[np.arange(n), index] = 1.0
    zz = z @ z.T
    if n - p < 1 or np.linalg.matrix_rank(x) < p:
        raise ValueError(f"cannot fit {p} coefficients to {n} rows")
    if 1 < len(labels) < n:
        best = optimize.minimize_scalar(
            _profiled_reml, bounds=(-12.0, 8.0), args=(y, x, zz, n, p), method="bounded", options={"xatol": 1e-4}
        )
        ratio = math.exp(best.x) if best.fun < _criterion(np.eye(n), y, x, n, p) else 0.0
    else:
        ratio = 0.0
    h = np.eye(n) + ratio * zz
    h_inv = np.linalg.inv(h)
    xhx_inv = np.linalg.inv(x.T @ h_inv @ x)
    beta = xhx_inv @ x.T @ h_inv @ y
    r = y - x @ beta
    sigma2_e = float(r @ h_inv @ r) / (n - p)
    sigma2_u = ratio * sigma2_e
    cov = sigma2_e * xhx_inv
    se = np.sqrt(np.diag(cov))
    if ratio == 0.0 and not 1 < len(labels) < n:
        df = np.full(p, float(n - p))
    else:
        df = _satterthwaite(x, zz, sigma2_e, sigma2_u, n, p)
    return MixedFit(beta, se, df, sigma2_e, sigma2_u, n, len(labels))


def _satterthwaite(x, zz, s2e, s2u, n, p) -> np.ndarray:
    """df_k = 2 Var(β_k)² / (g' A g): g the gradient of Var(β_k) in (σ_e², σ_u²), A the
    inverse of the REML information ½ tr(P V_i P V_j)."""
    v = s2e * np.eye(n) + s2u * zz
    v_inv = np.linalg.inv(v)
    c = np.linalg.inv(x.T @ v_inv @ x)
    proj = v_inv - v_inv @ x @ c @ x.T @ v_inv
    derivs = (np.eye(n), zz)
    pv = [proj @ d for d in derivs]
    info = 0.5 * np.array([[np.sum(a * b.T) for b in pv] for a in pv])
    try:
        a_cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        a_cov = np.linalg.pinv(info)
    w = [c @ x.T @ v_inv @ d @ v_inv @ x @ c for d in derivs]  # dC/dθ_i
    df = np.empty(p)
    for k in range(p):
        g = np.array([wi[k, k] for wi in w])
        denom = float(g @ a_cov @ g)
        df[k] = 2 * c[k, k] ** 2 / denom if denom > 0 else n - p
    return np.clip(df, 1.0, float(n - p))
