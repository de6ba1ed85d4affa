"""Spectral measures of a representation: effective rank, α-ReQ and LiDAR, and the expected
effective rank of white noise (a reference scale for the effective rank).

Singular values are taken from the eigenvalues of the smaller side of the Gram matrix,
formed and decomposed in float64: forming a float32 Gram squares the condition number, and
square roots of its eigenvalues are badly wrong for fast-decaying spectra. Eigenvalues under
the numerical-rank cut σ_1² · min(N, D) · eps64 count as zero, so singular values below about
1e-8 · σ_1 are not resolved; this is far below what changes an effective rank.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._validation import check_features, check_positive
from .entropy import autocast_off, measurement_dtype, spectrum_entropy


def squared_singular_values(x: torch.Tensor) -> torch.Tensor:
    """σ_k² of x (N×D) in float64, min(N, D) of them, descending, from the smaller Gram side."""
    x64 = x.double()
    n, d = x64.shape
    gram = x64 @ x64.T if n <= d else x64.T @ x64
    eigenvalues = torch.linalg.eigvalsh(gram).clamp_min(0.0).flip(0)
    # Below the numerical-rank cut an eigenvalue is round-off of an exact zero, and its
    # square root (1e-16 -> 1e-8) would otherwise count as a singular value.
    tol = eigenvalues[0] * eigenvalues.numel() * torch.finfo(torch.float64).eps
    return torch.where(eigenvalues > tol, eigenvalues, torch.zeros_like(eigenvalues))


def effective_rank(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """exp of the Shannon entropy of p_k = σ_k / Σσ + eps, on the singular values of x as
    given (N×D, not centred). The result is detached (no gradient).

    eps = 0 is Roy & Vetterli, "The effective rank: a measure of effective dimensionality",
    EUSIPCO 2007 (1 ≤ erank ≤ rank x). eps = 1e-7 is RankMe (Garrido et al., ICML 2023),
    which adds eps to every p_k without renormalizing. Other codebases use eps = 1e-5 or the
    variance ratios of centred data; those give different numbers.
    """
    check_features(x, "x", min_samples=1)
    return effective_rank_unchecked(x, check_positive(eps, "eps", allow_zero=True))


def effective_rank_unchecked(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``effective_rank`` of features already validated (2-D, floating, finite), as the
    monitor's are: the check is a pass over x."""
    with autocast_off(x.device), torch.no_grad():
        sigma = squared_singular_values(x).sqrt()
        total = sigma.sum()
        if float(total) == 0.0:
            raise ValueError("effective_rank is undefined for an all-zero matrix")
        p = sigma / total + eps
        entropy = -torch.where(p > 0, p * torch.log(p.clamp_min(1e-300)), torch.zeros_like(p)).sum()
        return torch.exp(entropy).to(measurement_dtype(x.dtype))


WHITE_NOISE_METHODS = ("marchenko_pastur", "monte_carlo")


def white_noise_effective_rank(
    n: int, d: int, method: str = "marchenko_pastur", draws: int = 4, seed: int = 0
) -> float:
    """Expected ``effective_rank`` (eps = 0) of an n×d matrix of i.i.d. standard Gaussians.

    A reference scale for the effective rank of N samples in D dimensions: dividing a measured
    erank by it gives a number near 1 for white-noise features at any (N, D), unlike dividing
    by min(N, D) (white noise reaches min(N, D) only when one side is much larger).

    - ``marchenko_pastur`` (default, deterministic, microseconds): with m = min(n, d),
      λ = m / max(n, d), the squared singular values / max(n, d) follow the Marchenko–Pastur
      law of ratio λ (Marchenko & Pastur, Math. USSR-Sbornik 1967), with density
      √((b - x)(x - a)) / (2πλx) on [a, b] = [(1 - √λ)², (1 + √λ)²]. For singular values s = √x,
      erank = exp(H(s / Σs)) → m · E[s] · exp(-E[s log s] / E[s]). The integrals use 256-node
      Gauss–Legendre quadrature after x = a + (b - a)(1 - cos θ)/2, which removes the edge
      singularities. This is the large-matrix limit: it matches the Monte-Carlo mean to
      about 0.2% once min(n, d) ≥ 30 (2.5% at 16×16).
    - ``monte_carlo``: the mean ``effective_rank`` of ``draws`` seeded float64 Gaussian
      matrices; exact in expectation at any size, at the cost of ``draws`` decompositions.
    """
    n, d = int(n), int(d)
    if n < 1 or d < 1:
        raise ValueError(f"white_noise_effective_rank needs n >= 1 and d >= 1, got n={n}, d={d}")
    if method not in WHITE_NOISE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(WHITE_NOISE_METHODS)}")
    if method == "monte_carlo":
        if int(draws) < 1:
            raise ValueError(f"draws must be >= 1, got {draws!r}")
        generator = torch.Generator().manual_seed(int(seed))
        draws_of_noise = (torch.randn(n, d, generator=generator, dtype=torch.float64) for _ in range(draws))
        return float(np.mean([float(effective_rank(x)) for x in draws_of_noise]))
    m = min(n, d)
    if m == 1:
        return 1.0  # a single singular value
    ratio = m / max(n, d)
    lo, hi = (1.0 - math.sqrt(ratio)) ** 2, (1.0 + math.sqrt(ratio)) ** 2
    nodes, weights = np.polynomial.legendre.leggauss(256)
    theta = (nodes + 1.0) * (math.pi / 2)
    x = lo + (hi - lo) * (1.0 - np.cos(theta)) / 2
    # density(x) dx in θ: the square root of the density cancels against dx/dθ.
    measure = weights * (math.pi / 2) * (hi - lo) ** 2 / 4 * np.sin(theta) ** 2 / (2 * math.pi * ratio * x)
    s = np.sqrt(x)
    mean_s = float((measure * s).sum())
    mean_s_log_s = float((measure * s * np.log(s)).sum())
    return float(m * mean_s * math.exp(-mean_s_log_s / mean_s))


def alpha_req(
    x: torch.Tensor, fit_range: tuple[int, int] = (11, 100), weighted: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The power-law decay exponent α of the covariance eigenspectrum, and the fit's R².

    Agrawal et al., "α-ReQ: Assessing representation quality by measuring eigenspectrum
    decay", NeurIPS 2022. The eigenvalues λ_1 ≥ λ_2 ≥ … of the centred covariance
    XᵀX / (N - 1) are fitted as log λ_i ≈ c - α log i over the 1-based ranks
    ``fit_range = (first, last)``, inclusive, by least squares weighted by 1/i (``weighted``;
    unweighted otherwise). R² is the weighted coefficient of determination of that fit.
    Ranks past the number of positive eigenvalues are dropped; at least 3 must remain.
    A larger α means faster decay; the paper finds α near 1 best.
    """
    check_features(x, "x", min_samples=3)
    first, last = (int(v) for v in fit_range)
    if first < 1 or last < first:
        raise ValueError(f"fit_range must be (first, last) with 1 <= first <= last, got {fit_range!r}")
    with autocast_off(x.device), torch.no_grad():
        centred = x.double() - x.double().mean(dim=0, keepdim=True)
        eigenvalues = squared_singular_values(centred) / (x.shape[0] - 1)
        positive = int((eigenvalues > eigenvalues[0] * 1e-12).sum()) if float(eigenvalues[0]) > 0 else 0
        last_usable = min(last, positive)
        if last_usable - first + 1 < 3:
            raise ValueError(
                f"alpha_req needs at least 3 positive eigenvalues in ranks {first}..{last}, but x "
                f"(N={x.shape[0]}, D={x.shape[1]}) has {positive}; lower fit_range"
            )
        ranks = torch.arange(first, last_usable + 1, dtype=torch.float64, device=x.device)
        log_rank = torch.log(ranks)
        log_eig = torch.log(eigenvalues[first - 1 : last_usable])
        w = 1.0 / ranks if weighted else torch.ones_like(ranks)
        w = w / w.sum()
        mean_x, mean_y = (w * log_rank).sum(), (w * log_eig).sum()
        cov_xy = (w * (log_rank - mean_x) * (log_eig - mean_y)).sum()
        var_x = (w * (log_rank - mean_x) ** 2).sum()
        slope = cov_xy / var_x
        residual = log_eig - (mean_y + slope * (log_rank - mean_x))
        total = (w * (log_eig - mean_y) ** 2).sum()
        r2 = 1.0 - (w * residual**2).sum() / total if float(total) > 0 else torch.ones((), dtype=torch.float64)
        return -slope, r2


def lidar(embeddings: torch.Tensor, delta: float = 1e-4, eps: float = 1e-7) -> torch.Tensor:
    """LiDAR (Thilak et al., "LiDAR: Sensing linear probing performance in joint embedding
    SSL architectures", ICLR 2024) of ``embeddings`` shaped (n samples, q views, D).

    With μ_i the mean of sample i's views and μ the mean of the μ_i:
    Σ_b = (1/n) Σ_i (μ_i - μ)(μ_i - μ)ᵀ, Σ_w = (1/(nq)) Σ_ij (e_ij - μ_i)(e_ij - μ_i)ᵀ + δI,
    Σ_L = Σ_w^{-1/2} Σ_b Σ_w^{-1/2}, p_i = (λ_i + eps) / Σ_j (λ_j + eps) over all D
    eigenvalues of Σ_L, and LiDAR = exp(-Σ p_i log p_i).

    Computed exactly without a matrix square root: with Σ_w = LLᵀ (Cholesky) and
    Y = L⁻¹ M, where M holds the centred μ_i as columns, Σ_L is similar to YYᵀ / n, whose
    non-zero eigenvalues are those of the n×n matrix YᵀY / n. The D - n missing eigenvalues
    are zeros. Float64 throughout. Defaults: δ = 1e-4, eps = 1e-7.
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 3:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
        raise ValueError(f"lidar expects a tensor shaped (n samples, q views, D), got {shape}")
    n, q, d = embeddings.shape
    if n < 2 or q < 2:
        raise ValueError(f"lidar needs at least 2 samples and 2 views each, got n={n}, q={q}")
    check_features(embeddings.reshape(n * q, d), "embeddings")
    delta = check_positive(delta, "delta")
    eps = check_positive(eps, "eps", allow_zero=True)
    with autocast_off(embeddings.device), torch.no_grad():
        e = embeddings.double()
        class_means = e.mean(dim=1)
        between = class_means - class_means.mean(dim=0, keepdim=True)  # n×D
        within = (e - class_means[:, None, :]).reshape(n * q, d)
        sigma_w = within.T @ within / (n * q) + delta * torch.eye(d, dtype=torch.float64, device=e.device)
        chol = torch.linalg.cholesky(sigma_w)
        y = torch.linalg.solve_triangular(chol, between.T, upper=False)  # D×n
        small = y.T @ y / n if n <= d else y @ y.T / n
        eigenvalues = torch.linalg.eigvalsh(small).clamp_min(0.0)
        if eigenvalues.numel() < d:
            eigenvalues = torch.cat([eigenvalues, eigenvalues.new_zeros(d - eigenvalues.numel())])
        shifted = eigenvalues + eps
        return torch.exp(spectrum_entropy(shifted, 1.0)).to(measurement_dtype(embeddings.dtype))
