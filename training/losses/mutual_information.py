"""The matrix-entropy MI term I(R;Z) of AdaDim, differentiable.

Kokilepersaud, Prabhushankar & AlRegib, arXiv 2505.12576, weight it by β = γ·α. The estimator
is the matrix-based mutual information of Sanchez Giraldo, Rao & Principe (IEEE T-IT 2015),
computed by `adadim.dynamics` on the two views stacked along the batch, as Ouyang et al.
(ICLR 2025) estimate it; order 2 with cosine kernels by default, which is smooth (no
eigendecomposition).

Inside the loss the public estimator's input checks are skipped: they read the tensors on the
host (a device sync every step). A diverged network is caught by the trainer's non-finite flag.
"""

from __future__ import annotations

import torch
from adadim.dynamics.entropy import autocast_off, information_terms


def mutual_information_term(
    r_views: tuple[torch.Tensor, torch.Tensor],
    z_views: tuple[torch.Tensor, torch.Tensor],
    order: float = 2.0,
    kernel: str = "cosine",
) -> torch.Tensor:
    r = torch.cat([v.flatten(1) for v in r_views]).float()
    z = torch.cat(list(z_views)).float()
    if r.shape[0] != z.shape[0] or r.shape[0] < 2:
        raise ValueError(f"R and Z need the same number (>= 2) of samples, got {r.shape[0]} and {z.shape[0]}")
    with autocast_off(r.device):
        return information_terms(r, z, float(order), kernel, (None, None))["mutual_information"]
