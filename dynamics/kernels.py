"""Trace-normalized Gram matrices for the matrix-based entropy estimators.

Design notes: docs/dynamics.md, "Design notes: kernels".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import check_kernel, check_sigma


def normalized_rows(x: torch.Tensor) -> torch.Tensor:
    # eps keeps an all-zero row at zero instead of producing NaN.
    return F.normalize(x, p=2.0, dim=1, eps=1e-12)


def feature_map(x: torch.Tensor, kernel: str) -> torch.Tensor | None:
    """The explicit features F with K = FFᵀ, or None where the kernel has none (Gaussian)."""
    check_kernel(kernel)
    if kernel == "cosine":
        return normalized_rows(x)
    if kernel == "linear":
        return x
    return None


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """‖x_i - x_j‖² for all pairs, through one matrix product; clamped at 0 against round-off."""
    sq_norms = (x * x).sum(dim=1)
    d2 = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    # Round-off leaves small positives on the diagonal; the true value is exactly 0.
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return d2.masked_fill(eye, 0.0)


@torch.no_grad()
def median_heuristic_sigma(x: torch.Tensor) -> float:
    """The Gaussian width used when ``sigma=None``: the median pairwise distance (i < j)."""
    n = x.shape[0]
    d2 = squared_distances(x.detach())
    iu = torch.triu_indices(n, n, offset=1, device=x.device)
    dist = d2[iu[0], iu[1]].sqrt()
    sigma = _median(dist)
    if sigma <= 0.0:
        nonzero = dist[dist > 0]
        sigma = _median(nonzero) if nonzero.numel() else 1.0
    return sigma


def _median(values: torch.Tensor) -> float:
    # The usual median (mean of the two middle values); torch.median returns the lower one.
    ordered = values.sort().values
    m = ordered.numel()
    return float((ordered[(m - 1) // 2] + ordered[m // 2]) / 2)


def gram_matrix(x: torch.Tensor, kernel: str = "cosine", sigma: float | None = None) -> torch.Tensor:
    """The N×N trace-one Gram matrix A of the rows of x for the chosen kernel."""
    return trace_normalize(kernel_matrix(x, kernel, sigma))


def kernel_matrix(x: torch.Tensor, kernel: str = "cosine", sigma: float | None = None) -> torch.Tensor:
    """The N×N kernel matrix K of the rows of x, before trace normalization (A = K / tr K)."""
    check_kernel(kernel)
    sigma = check_sigma(sigma)
    if kernel == "gaussian":
        width = median_heuristic_sigma(x) if sigma is None else sigma
        return torch.exp(-squared_distances(x) / (2.0 * width * width))
    f = feature_map(x, kernel)
    assert f is not None  # cosine and linear kernels have explicit features
    return f @ f.T


def trace_normalize(k: torch.Tensor) -> torch.Tensor:
    trace = torch.diagonal(k).sum()
    if float(trace.detach()) <= 0.0:
        raise ValueError("the Gram matrix has zero trace: every sample is the zero vector")
    return k / trace


def hadamard_normalized(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A∘B / tr(A∘B): the joint Gram matrix of Sanchez Giraldo et al."""
    return trace_normalize(a * b)
