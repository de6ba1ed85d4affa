"""Order-2 entropies of two explicit-feature kernels and the uniformity of the second, by row
blocks of the Gram matrices' upper triangle.

K = FFᵀ is symmetric, so each block of rows meets only the columns from its own first row on:
the block on the diagonal counts once and the rest twice. Half the products and the
elementwise work of the full N×N matrices, and no N×N temporary (a block is B×N), which on
the CPU also saves the page faults of fresh N×N allocations. Block sums are taken in the
working precision (pairwise, torch.sum) and added up in float64. Without gradient only: it is
the monitor's fast path for the cosine and linear kernels.
"""

from __future__ import annotations

import math

import torch

from .permutation_null import expected_purity_from_sums

BLOCK_ROWS = 256
_F64 = torch.float64


def blocked_order2_terms(
    fx: torch.Tensor, fy: torch.Tensor, uniformity_t: float | None = None, block: int = BLOCK_ROWS
) -> dict[str, torch.Tensor]:
    """The order-2 terms of ``entropy.information_terms`` (``entropy_x``, ``entropy_y``,
    ``joint_entropy``, ``mutual_information`` and the closed-form null's
    ``null_mutual_information``, ``excess_mutual_information``) of Kx = FxFxᵀ and Ky = FyFyᵀ,
    and with ``uniformity_t`` the Wang & Isola ``uniformity_y`` of Fy's rows (which must be
    unit rows: Ky is then their cosine matrix); float64 0-d tensors."""
    n = fx.shape[0]
    sums = torch.zeros(3, dtype=_F64, device=fx.device)  # ‖Kx‖², ‖Ky‖², ‖Kx∘Ky‖²
    diag_x, diag_y = [], []
    tops, exp_sums = [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        kx = fx[start:stop] @ fx[start:].T  # rows start:stop, columns start:n
        ky = fy[start:stop] @ fy[start:].T
        diag_x.append(torch.diagonal(kx[:, : stop - start]).clone())
        diag_y.append(torch.diagonal(ky[:, : stop - start]).clone())
        ky_sq = ky * ky
        if uniformity_t is not None:
            # 2t(cos - 1) = -t‖z_i - z_j‖², clamped at 0; the pair (i, i) left out.
            exponent = ky.mul_(2.0 * uniformity_t).sub_(2.0 * uniformity_t).clamp_max_(0.0)
            exponent[:, : stop - start].fill_diagonal_(-math.inf)
            top = exponent.max()
            exp_sums.append(_twice_off_diagonal(exponent.sub_(top).exp_(), stop - start))
            tops.append(top.to(_F64))
        kx_sq = kx.square_()
        frob_x = _twice_off_diagonal(kx_sq, stop - start)
        frob_y = _twice_off_diagonal(ky_sq, stop - start)
        sums += torch.stack([frob_x, frob_y, _twice_off_diagonal(kx_sq.mul_(ky_sq), stop - start)])
    dx, dy = torch.cat(diag_x), torch.cat(diag_y)
    trace_x, trace_y, trace_xy = dx.to(_F64).sum(), dy.to(_F64).sum(), torch.dot(dx.to(_F64), dy.to(_F64))
    if float(trace_x) <= 0.0 or float(trace_y) <= 0.0:
        raise ValueError("the Gram matrix has zero trace: every sample is the zero vector")
    frob_x, frob_y, joint = sums.unbind()
    frobenius, trace_sq = expected_purity_from_sums(dx, frob_x, dy, frob_y)
    s_a, s_b = -torch.log(frob_x / trace_x**2), -torch.log(frob_y / trace_y**2)
    s_ab, s_null = -torch.log(joint / trace_xy**2), -torch.log(frobenius / trace_sq)
    out = {
        "entropy_x": s_a,
        "entropy_y": s_b,
        "joint_entropy": s_ab,
        "mutual_information": s_a + s_b - s_ab,
        "null_mutual_information": s_a + s_b - s_null,
        "excess_mutual_information": s_null - s_ab,  # the marginal entropies cancel exactly
    }
    if uniformity_t is not None:
        top = torch.stack(tops).max()
        total = (torch.stack(exp_sums) * torch.exp(torch.stack(tops) - top)).sum()
        out["uniformity_y"] = torch.log(total) + top - math.log(n * (n - 1))
    return out


def _twice_off_diagonal(block: torch.Tensor, width: int) -> torch.Tensor:
    """Sum of a block row of a symmetric matrix over the whole matrix: its diagonal square once,
    the columns right of it twice (they stand for the mirrored block below the diagonal too)."""
    return block[:, :width].sum().to(_F64) + 2.0 * block[:, width:].sum().to(_F64)


__all__ = ["BLOCK_ROWS", "blocked_order2_terms"]
