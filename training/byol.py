"""method=byol: the target network and the step's objective (Grill et al., "Bootstrap Your Own
Latent", NeurIPS 2020).

The online network is the run's model (backbone, projector, predictor); the target network is
a copy of its backbone and projector that never receives gradient and follows the online
weights as an exponential moving average after every optimizer step,

    ξ ← τ ξ + (1 − τ) θ,   τ_k = 1 − (1 − τ_base) · (cos(π k / K) + 1) / 2,

k the 0-based optimizer step and K the run's total steps, so τ rises from τ_base to 1.
Only parameters are averaged: the target's BatchNorm normalizes each batch with its own
statistics (it runs in train mode, like the online network), so its running buffers are never
read. The target's weights and τ are part of the checkpoint.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from .losses.adadim import ObjectiveSettings, ObjectiveTerms, adadim_objective
from .losses.byol import byol_loss
from .models import SSLModel, per_view


def tau_at(step: int, total_steps: int, tau_base: float) -> float:
    """The EMA rate after optimizer step ``step`` (0-based) of ``total_steps``."""
    k = min(max(int(step), 0), int(total_steps))
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / max(1, int(total_steps))) + 1.0) / 2.0


class BYOLTarget:
    """The target network of an online SSLModel: its backbone and projector, EMA-updated."""

    def __init__(self, online: SSLModel, tau_base: float, total_steps: int) -> None:
        self.network = nn.ModuleDict(
            {"backbone": copy.deepcopy(online.backbone), "projector": copy.deepcopy(online.projector)}
        )
        self.network.requires_grad_(False)
        self.tau_base, self.total_steps = float(tau_base), int(total_steps)
        self.tau = tau_at(0, self.total_steps, self.tau_base)  # the rate of the next update
        self.separate_views = online.separate_views

    @torch.no_grad()
    def project(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The target's projections of both views, batched as the online network batches them."""
        self.network.train()
        r1, r2 = per_view(self.network["backbone"], x1, x2, self.separate_views)
        z1, z2 = per_view(self.network["projector"], r1, r2, self.separate_views)
        return z1.float(), z2.float()

    @torch.no_grad()
    def update(self, online: nn.Module, step: int) -> None:
        """ξ ← τ_step ξ + (1 − τ_step) θ, after optimizer step ``step``."""
        tau = tau_at(step, self.total_steps, self.tau_base)
        for part in ("backbone", "projector"):
            for target, source in zip(self.network[part].parameters(), getattr(online, part).parameters(), strict=True):
                target.lerp_(source.detach(), 1.0 - tau)
        self.tau = tau_at(step + 1, self.total_steps, self.tau_base)

    def to(self, device) -> BYOLTarget:
        self.network.to(device)
        return self

    def state_dict(self) -> dict:
        return {"network": self.network.state_dict(), "tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.tau = float(state["tau"])


def byol_objective(
    target: BYOLTarget,
    x_views: Sequence[torch.Tensor],
    predictions: Sequence[torch.Tensor],
    r_views: Sequence[torch.Tensor],
    z_views: Sequence[torch.Tensor],
    settings: ObjectiveSettings,
    log_all: bool,
    autocast=None,
) -> ObjectiveTerms:
    """BYOL's loss as the step's one weighted term (``weighted["byol"]``, which the gradient
    shares read). ``log_all`` also measures the other methods' terms on the detached online
    R and Z, without gradient, so a BYOL run logs the same loss keys as every method."""
    with autocast if autocast is not None else torch.autocast(x_views[0].device.type, enabled=False):
        t1, t2 = target.project(*x_views)
    p1, p2 = (p.float() for p in predictions)
    loss = byol_loss(p1, p2, t1, t2)
    dimension = vicreg = nt_xent = mi = None
    if log_all:
        with torch.no_grad():
            logged = adadim_objective(
                [r.detach() for r in r_views], [z.detach() for z in z_views], 0.5, 0.0, settings, log_all=True
            )
        dimension, vicreg, nt_xent, mi = logged.dimension, logged.vicreg, logged.nt_xent, logged.mi
    return ObjectiveTerms(loss, dimension, vicreg, nt_xent, mi, {"byol": loss})
