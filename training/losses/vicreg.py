"""VICReg: Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022.

- invariance: MSE(z1, z2), averaged over batch and dimensions;
- variance: mean_j ReLU(1 - sqrt(Var(z_j) + 1e-4)) for each view, *averaged* over the two
  views (the halving of the official code; the paper's text sums them, see vicreg#8);
- covariance: Σ_{i≠j} C_ij² / D for each view, summed over the two views, with C the
  covariance of the mean-centred view (the mean is subtracted once, before both the variance
  and the covariance terms; vicreg#16 discusses the order).
Weights λ = 25 (invariance), μ = 25 (variance), ν = 1 (covariance).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._checks import check_pair


class VICRegTerms(NamedTuple):
    loss: torch.Tensor
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


def invariance_term(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(z1, z2)


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
) -> VICRegTerms:
    """The weighted VICReg loss of two views (B×D each) and its three unweighted terms."""
    check_pair(z1, z2)
    inv = invariance_term(z1, z2)
    var = 0.5 * (variance_term(z1) + variance_term(z2))
    cov = covariance_term(z1) + covariance_term(z2)
    total = invariance_weight * inv + variance_weight * var + covariance_weight * cov
    return VICRegTerms(total, inv, var, cov)
