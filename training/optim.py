"""Optimizers and the learning-rate schedule.

LARS (You, Gitman & Ginsburg 2017) as SSL recipes use it (solo-learn, VICReg): SGD with
momentum where each weight matrix's update is scaled by the trust ratio
η·‖w‖ / ‖g + λw‖; biases and normalization parameters (every 1-D tensor) get neither the
trust ratio nor weight decay. The online probe has its own parameter group: lr
``optim.probe_lr``, no weight decay, no LARS adaptation.

Schedule: linear warm-up over ``warmup_epochs`` then cosine decay to
``min_lr_fraction``·lr, per step. The base lr is scaled by batch_size / 256.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.02):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["lars"] and p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    grad = grad.mul(trust)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])
        return loss


def parameter_groups(model: nn.Module, weight_decay: float, ssl_lr: float, probe_lr: float) -> list[dict]:
    """SSL weights (decayed, adapted), SSL biases/norms (neither), and the probe, each with
    its peak learning rate (``peak_lr``), which the schedule scales."""
    decay, no_decay, probe = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("probe.") or ".probe." in name:
            probe.append(p)
        elif p.ndim <= 1:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True, "peak_lr": ssl_lr},
        {"params": no_decay, "weight_decay": 0.0, "lars": False, "peak_lr": ssl_lr},
        {"params": probe, "weight_decay": 0.0, "lars": False, "peak_lr": probe_lr},
    ]


def build_optimizer(model: nn.Module, cfg, batch_size: int) -> torch.optim.Optimizer:
    """cfg is the ``optim`` section. Both learning rates scale with batch / 256; the schedule
    (`apply_schedule`) sets each step's fraction of them. lr = 0 freezes the SSL weights while
    the online probe still trains."""
    scale = batch_size / 256
    groups = parameter_groups(model, cfg.weight_decay, cfg.lr * scale, cfg.probe_lr * scale)
    if cfg.name == "lars":
        return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, eta=cfg.lars_eta)
    # fused: one kernel for the whole update, on CPU as on CUDA (the per-parameter loop is
    # torch's CPU default).
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, fused=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


def schedule_fraction(step: int, total_steps: int, warmup_steps: int, min_fraction: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_fraction``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return min_fraction + (1.0 - min_fraction) * cosine


def apply_schedule(optimizer: torch.optim.Optimizer, fraction: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * fraction
