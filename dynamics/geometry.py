"""Uniformity and alignment of L2-normalized embeddings.

Wang & Isola, "Understanding contrastive representation learning through alignment and
uniformity on the hypersphere", ICML 2020:

- uniformity = log mean_{i<j} exp(-t ‖z_i - z_j‖²), t = 2 (lower is more uniform);
- alignment = mean_i ‖z_i - z_i'‖^α over positive pairs, α = 2 (lower is better aligned).
"""

from __future__ import annotations

import math

import torch

from ._validation import check_features, check_positive, check_same_samples
from .entropy import autocast_off, working_precision
from .kernels import normalized_rows


def uniformity_from_cosine(cosine: torch.Tensor, t: float = 2.0, in_place: bool = False) -> torch.Tensor:
    """Uniformity from the N×N cosine-similarity matrix of unit rows: ‖z_i - z_j‖² = 2 - 2 cos.

    The mean over i < j equals the mean over i ≠ j (the matrix is symmetric), so the
    diagonal is masked instead of gathering the upper triangle. ``in_place``: ``cosine`` may be
    overwritten (then no N×N temporary is made).
    """
    n = cosine.shape[0]
    # -t‖z_i - z_j‖² = 2t(cos - 1), clamped at 0 against round-off, in one buffer.
    exponent = cosine.mul_(2.0 * t) if in_place else cosine * (2.0 * t)
    exponent.sub_(2.0 * t).clamp_max_(0.0).fill_diagonal_(-math.inf)
    # log-sum-exp about the maximum keeps large t from underflowing every term to zero; in
    # place, as torch.logsumexp would allocate two more N×N temporaries.
    top = exponent.max()
    total = exponent.sub_(top).exp_().sum()
    return torch.log(total) + top - math.log(n * (n - 1))


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola uniformity of the rows of z (N×D) after L2 normalization."""
    check_features(z, "z")
    t = check_positive(t, "t")
    z = working_precision(z)
    with autocast_off(z.device):
        zn = normalized_rows(z)
        return uniformity_from_cosine(zn @ zn.T, t)


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Wang & Isola alignment between row-paired views z1 and z2 after L2 normalization."""
    check_features(z1, "z1", min_samples=1)
    check_features(z2, "z2", min_samples=1)
    check_same_samples(z1, z2, ("z1", "z2"))
    if z1.shape[1] != z2.shape[1]:
        raise ValueError(f"z1 and z2 must have the same dimension, got {z1.shape[1]} and {z2.shape[1]}")
    return alignment_unchecked(z1, z2, check_positive(alpha, "alpha"))


def alignment_unchecked(z1: torch.Tensor, z2: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alignment`` of views already validated (same shape, finite), as the monitor's are."""
    z1, z2 = working_precision(z1), working_precision(z2)
    with autocast_off(z1.device):
        distance: torch.Tensor = (normalized_rows(z1) - normalized_rows(z2)).norm(dim=1)
        return distance.pow(alpha).mean()
