"""Barlow Twins: Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", ICML 2021.

L = Σ_i (1 - C_ii)² + λ Σ_{i≠j} C_ij², with C the cross-correlation of z1 and z2 after each
is standardized along the batch (biased variance, as a non-affine BatchNorm does).
λ = 5e-3 by default.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._checks import check_pair


class BarlowTerms(NamedTuple):
    loss: torch.Tensor
    on_diagonal: torch.Tensor
    off_diagonal: torch.Tensor


def _standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float = 5e-3) -> BarlowTerms:
    check_pair(z1, z2)
    c = _standardize(z1).T @ _standardize(z2) / z1.shape[0]
    diagonal = torch.diagonal(c)
    on = (1.0 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return BarlowTerms(on + off_diagonal_weight * off, on, off)
