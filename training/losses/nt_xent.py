"""NT-Xent, the SimCLR loss: Chen et al., "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020.

Each of the 2B embeddings is classified against the 2B - 1 others by cosine similarity / τ,
with its other view as the target; the loss is the mean cross-entropy. Under
torch.distributed the candidates are gathered from every rank with gradients, so the
negatives are the global batch (2·B·world - 1 per anchor). τ = 0.2 is the common CIFAR
setting (0.1 on ImageNet).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_pair
from .distributed import gather_with_grad, world_and_rank


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent of two views (B×D each), negatives gathered across ranks."""
    check_pair(z1, z2, min_samples=1)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    all1, all2 = gather_with_grad(z1), gather_with_grad(z2)
    offset = world_and_rank()[1] * z1.shape[0]
    b, total = z1.shape[0], all1.shape[0]
    if 2 * total < 2:
        raise ValueError("NT-Xent needs at least one negative")
    anchors = torch.cat([z1, z2])  # 2B local anchors
    candidates = torch.cat([all1, all2])  # 2·total global candidates
    logits = anchors @ candidates.T / temperature
    local = torch.arange(b, device=z1.device) + offset
    self_index = torch.cat([local, local + total])
    positive = torch.cat([local + total, local])
    logits = logits.masked_fill(F.one_hot(self_index, 2 * total).bool(), float("-inf"))
    return F.cross_entropy(logits, positive)
