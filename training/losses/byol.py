"""BYOL's loss: Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning", NeurIPS 2020.

The online network's prediction of one view regresses the target network's projection of the
other view, both l2-normalized: ‖q̄ − z̄'‖² = 2 − 2·cos(q, z'). The loss is symmetrized over the
two views (L + L̃, eq. 2 of the paper) and averaged over the batch. The target projections are
detached here, so the target branch never receives gradient whatever the caller passes.
Under torch.distributed each rank averages its own batch; DDP averages the gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_pair


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """Symmetric normalized MSE between online predictions (p1, p2) and target projections
    (t1, t2) of views 1 and 2 (B×D each): mean over the batch of
    (2 − 2·cos(p1, t2)) + (2 − 2·cos(p2, t1)); in [0, 8]."""
    check_pair(p1, p2, min_samples=1)
    check_pair(t1, t2, min_samples=1)
    check_pair(p1, t1, min_samples=1)
    t1, t2 = t1.detach(), t2.detach()
    cos12 = (F.normalize(p1.float(), dim=1) * F.normalize(t2.float(), dim=1)).sum(dim=1)
    cos21 = (F.normalize(p2.float(), dim=1) * F.normalize(t1.float(), dim=1)).sum(dim=1)
    return (2 - 2 * cos12).mean() + (2 - 2 * cos21).mean()
