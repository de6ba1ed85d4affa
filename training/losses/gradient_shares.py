"""Each named loss term's gradient norm with respect to Z, and its share of their sum: what
``adadim train`` logs as ``adadim/grad_norm_*`` and ``adadim/grad_share_*``, and what
``DynamicsCallback`` logs for a LightningModule that exposes its loss terms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def term_gradient_norms(terms: Mapping[str, torch.Tensor], z_views: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """‖∂term/∂Z‖ for each named scalar term, Z being the views that require gradient.

    ``torch.autograd.grad`` with ``retain_graph`` leaves ``.grad`` untouched, so measuring
    does not change the step that follows (bit for bit).
    """
    z = [v for v in z_views if v.requires_grad]
    out = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(value, z, retain_graph=True, allow_unused=True) if value.requires_grad and z else ()
        squares = [g.float().pow(2).sum() for g in grads if g is not None]
        out[name] = torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=value.device)
    return out


def norm_shares(norms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each term's share of the summed gradient norms (the shares sum to 1)."""
    total = torch.stack(list(norms.values())).sum().clamp_min(1e-30)
    return {name: norm / total for name, norm in norms.items()}


__all__ = ["norm_shares", "term_gradient_norms"]
