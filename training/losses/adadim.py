"""The AdaDim objective: Kokilepersaud, Prabhushankar & AlRegib, "AdaDim: Dimensionality
Adaptation for SSL Representational Dynamics", arXiv 2505.12576.

Design notes: docs/training.md, "Design notes: adadim".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .barlow import barlow_twins_loss
from .distributed import gather_with_grad
from .gradient_shares import norm_shares, term_gradient_norms
from .mutual_information import mutual_information_term
from .nt_xent import nt_xent_loss
from .vicreg import VICRegTerms, vicreg_loss

DIMENSION_LOSSES = ("vicreg", "barlow")
TERMS = ("dimension", "nt_xent", "mi")


@dataclass(frozen=True)
class ObjectiveSettings:
    """The fixed parts of the objective (from the ``loss`` and ``adadim`` config sections)."""

    dimension_loss: str = "vicreg"
    temperature: float = 0.2
    invariance_weight: float = 25.0
    variance_weight: float = 25.0
    covariance_weight: float = 1.0
    barlow_lambda: float = 5e-3
    mi_order: float = 2.0
    mi_kernel: str = "cosine"
    mi_sign: float = 1.0  # +1 maximizes I(R;Z), -1 minimizes it

    def __post_init__(self) -> None:
        if self.dimension_loss not in DIMENSION_LOSSES:
            raise ValueError(f"dimension_loss must be one of {DIMENSION_LOSSES}, got {self.dimension_loss!r}")
        if self.mi_sign not in (1.0, -1.0):
            raise ValueError(f"mi_sign must be +1 (maximize) or -1 (minimize), got {self.mi_sign!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")


class ObjectiveTerms(NamedTuple):
    """The back-propagated ``loss`` and each unweighted term; a term is None when it was not
    computed (weight 0 and not a log step). ``weighted`` holds each weighted term, in the
    graph, for gradient measurements."""

    loss: torch.Tensor
    dimension: torch.Tensor | None
    vicreg: VICRegTerms | None
    nt_xent: torch.Tensor | None
    mi: torch.Tensor | None
    weighted: dict[str, torch.Tensor]


def _maybe(needed: bool, logged: bool, compute):
    """Compute a term with gradient when it carries weight, without when only logged."""
    if needed:
        return compute()
    if logged:
        with torch.no_grad():
            return compute()
    return None


def adadim_objective(
    r_views: Sequence[torch.Tensor],
    z_views: Sequence[torch.Tensor],
    alpha: float,
    beta: float,
    settings: ObjectiveSettings = ObjectiveSettings(),
    log_all: bool = False,
    balance: tuple[float, float] | None = None,
) -> ObjectiveTerms:
    """The objective on this rank's two views of R (B×D_R) and Z (B×D_Z).

    VICReg and Barlow Twins see the global batch (views gathered across ranks with gradient);
    NT-Xent takes its negatives from every rank; the MI term sees the global batch.
    ``balance`` = (running ‖∇_Z L_dim‖, running ‖∇_Z L_NT-Xent‖) switches on gradient balancing.
    """
    if len(r_views) != 2 or len(z_views) != 2:
        raise ValueError(f"the objective needs exactly two views of R and Z, got {len(r_views)} and {len(z_views)}")
    alpha, beta = float(alpha), float(beta)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    s = settings
    z1, z2 = (z.float() for z in z_views)
    dimension_weight, nt_weight = 1.0 - alpha, alpha
    if balance is not None:
        g_dim, g_nt = (max(float(g), 1e-12) for g in balance)
        scale = (1.0 - alpha) * g_dim + alpha * g_nt
        dimension_weight, nt_weight = (1.0 - alpha) * scale / g_dim, alpha * scale / g_nt

    gathered: tuple[torch.Tensor, torch.Tensor] = (z1, z2)  # replaced by the gathered views when used
    if dimension_weight > 0 or beta > 0 or log_all:
        gathered = (gather_with_grad(z1), gather_with_grad(z2))

    vic = barlow = None
    if s.dimension_loss == "barlow":
        barlow = _maybe(dimension_weight > 0, log_all, lambda: barlow_twins_loss(*gathered, s.barlow_lambda).loss)
        # VICReg is logged beside Barlow Twins for comparison; it never carries weight here.
        vic = _maybe(
            False,
            log_all,
            lambda: vicreg_loss(*gathered, s.invariance_weight, s.variance_weight, s.covariance_weight),
        )
        dimension = barlow
    else:
        vic = _maybe(
            dimension_weight > 0,
            log_all,
            lambda: vicreg_loss(*gathered, s.invariance_weight, s.variance_weight, s.covariance_weight),
        )
        dimension = vic.loss if vic is not None else None
    nt = _maybe(nt_weight > 0, log_all, lambda: nt_xent_loss(z1, z2, s.temperature))

    def mi_term():
        r_all = (gather_with_grad(r_views[0].float()), gather_with_grad(r_views[1].float()))
        return mutual_information_term(r_all, gathered, s.mi_order, s.mi_kernel)

    mi = _maybe(beta > 0, log_all, mi_term)

    weighted: dict[str, torch.Tensor] = {}
    if dimension_weight > 0:
        weighted["dimension"] = dimension_weight * dimension
    if nt_weight > 0:
        weighted["nt_xent"] = nt_weight * nt
    if beta > 0:
        weighted["mi"] = -s.mi_sign * beta * mi
    if not weighted:
        raise AssertionError("every weight is zero")  # alpha in [0, 1] makes this impossible
    loss = torch.stack(list(weighted.values())).sum()
    return ObjectiveTerms(loss, dimension, vic, nt, mi, weighted)


def gradient_norms(terms: ObjectiveTerms, z_views: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """‖∂(weighted term)/∂Z‖ for each term that carries weight, Z being this rank's two views."""
    return term_gradient_norms(terms.weighted, z_views)


def gradient_shares(norms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each weighted term's share of the summed gradient norms; terms without weight get 0.
    A term beyond the objective's own (method=byol's ``byol``) gets its share too."""
    shares = norm_shares(norms)
    zero = torch.zeros_like(next(iter(shares.values())))
    return {name: shares.get(name, zero) for name in dict.fromkeys((*TERMS, *norms))}
