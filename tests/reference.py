"""An independent float64 NumPy/SciPy reference for the dynamics estimators.

Written from the published formulas (cited in the `dynamics` docstrings), with no code shared
with `dynamics`: every spectrum comes from a full eigendecomposition of the N×N (or D×D) matrix
in float64. A Gaussian ``sigma`` for a pair of inputs may be one width or a (sigma_x, sigma_y) pair.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.spatial.distance import pdist, squareform


def gram(x, kernel: str, sigma: float | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if kernel == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        k = unit @ unit.T
    elif kernel == "linear":
        k = x @ x.T
    elif kernel == "gaussian":
        if sigma is None:
            sigma = float(np.median(pdist(x, "euclidean")))
        k = np.exp(-squareform(pdist(x, "sqeuclidean")) / (2 * sigma**2))
    else:
        raise ValueError(kernel)
    return k / np.trace(k)


def spectrum_entropy(eigenvalues, alpha: float) -> float:
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None)
    if alpha < 1:
        # Eigenvalues under the usual numerical-rank cut (as in numpy.linalg.matrix_rank) are
        # round-off of exact zeros; λ^α with α < 1 would magnify them.
        lam = np.where(lam > lam.max() * len(lam) * np.finfo(np.float64).eps, lam, 0.0)
    lam = lam / lam.sum()
    lam = lam[lam > 0]
    if alpha == 1:
        return float(-(lam * np.log(lam)).sum())
    return float(np.log((lam**alpha).sum()) / (1 - alpha))


def entropy(a: np.ndarray, alpha: float) -> float:
    return spectrum_entropy(linalg.eigvalsh(a), alpha)


def renyi_entropy(x, alpha, kernel, sigma=None) -> float:
    return entropy(gram(x, kernel, sigma), alpha)


def _pair(sigma):
    return tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma, sigma)


def joint_entropy(x, y, alpha, kernel, sigma=None) -> float:
    sigma_x, sigma_y = _pair(sigma)
    ab = gram(x, kernel, sigma_x) * gram(y, kernel, sigma_y)
    return entropy(ab / np.trace(ab), alpha)


def mutual_information(x, y, alpha, kernel, sigma=None) -> float:
    sigma_x, sigma_y = _pair(sigma)
    return (
        renyi_entropy(x, alpha, kernel, sigma_x)
        + renyi_entropy(y, alpha, kernel, sigma_y)
        - joint_entropy(x, y, alpha, kernel, sigma)
    )


def effective_rank(x, eps: float = 0.0) -> float:
    s = linalg.svdvals(np.asarray(x, dtype=np.float64))
    p = s / s.sum() + eps
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def uniformity(z, t: float = 2.0) -> float:
    z = np.asarray(z, dtype=np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(np.log(np.mean(np.exp(-t * pdist(z, "sqeuclidean")))))


def alignment(z1, z2, alpha: float = 2.0) -> float:
    z1 = np.asarray(z1, dtype=np.float64)
    z2 = np.asarray(z2, dtype=np.float64)
    z1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    z2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    return float(np.mean(np.linalg.norm(z1 - z2, axis=1) ** alpha))


def lidar(e, delta: float = 1e-4, eps: float = 1e-7) -> float:
    """Straight from the definition: Σ_w^{-1/2} by eigendecomposition, D×D eigenvalues."""
    e = np.asarray(e, dtype=np.float64)
    n, q, d = e.shape
    mu_i = e.mean(axis=1)
    mu = mu_i.mean(axis=0)
    sigma_b = sum(np.outer(m - mu, m - mu) for m in mu_i) / n
    dev = (e - mu_i[:, None, :]).reshape(n * q, d)
    sigma_w = dev.T @ dev / (n * q) + delta * np.eye(d)
    w, v = linalg.eigh(sigma_w)
    inv_sqrt = v @ np.diag(w**-0.5) @ v.T
    lam = np.clip(linalg.eigvalsh(inv_sqrt @ sigma_b @ inv_sqrt), 0, None)
    p = (lam + eps) / (lam + eps).sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def alpha_req(x, first: int, last: int, weighted: bool = True) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    lam = np.sort(linalg.eigvalsh(xc.T @ xc / (len(x) - 1)))[::-1]
    ranks = np.arange(first, last + 1, dtype=np.float64)
    y = np.log(lam[first - 1 : last])
    w = 1 / ranks if weighted else np.ones_like(ranks)
    # Weighted least squares through numpy's lstsq on sqrt(w)-scaled rows.
    design = np.stack([np.ones_like(ranks), np.log(ranks)], axis=1)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    fitted = design @ coef
    ybar = np.average(y, weights=w)
    r2 = 1 - np.sum(w * (y - fitted) ** 2) / np.sum(w * (y - ybar) ** 2)
    return float(-coef[1]), float(r2)
