"""The matrix-entropy MI term I(R;Z) of AdaDim, differentiable.

Kokilepersaud, Prabhushankar & AlRegib, arXiv 2505.12576, weight it by β = γ·α. The estimator
is `dynamics.mutual_information` (Sanchez Giraldo et al. 2015) on the two views stacked along
the batch, as Ouyang et al. (ICLR 2025) estimate it; α = 2 with cosine kernels by default,
which is smooth (no eigendecomposition).
"""

from __future__ import annotations

import torch
from adadim.dynamics import mutual_information


def mutual_information_term(
    r_views: tuple[torch.Tensor, torch.Tensor],
    z_views: tuple[torch.Tensor, torch.Tensor],
    alpha: float = 2.0,
    kernel: str = "cosine",
) -> torch.Tensor:
    r = torch.cat([v.flatten(1) for v in r_views])
    z = torch.cat(list(z_views))
    return mutual_information(r.float(), z.float(), alpha=alpha, kernel=kernel)
