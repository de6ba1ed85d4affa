"""The permutation null of the matrix-based mutual information: I(x; πy) for random π.

Design notes: docs/dynamics.md, "Design notes: permutation_null".
"""

from __future__ import annotations

import torch

# Scalars of the closed form are combined in float64: Σ_{i≠j} A_ij² is a difference of two sums.
_F64 = torch.float64


def permutations(n: int, count: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    """`count` seeded sample permutations; the same seed gives the same ones on any device, and
    the first k of a longer draw are the k of a shorter one."""
    generator = torch.Generator().manual_seed(int(seed))
    return [torch.randperm(n, generator=generator).to(device) for _ in range(count)]


def _diagonal_and_offdiagonal(m_sq_sum: torch.Tensor, diag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    diag_sq = (diag.to(_F64) ** 2).sum()
    return diag_sq, m_sq_sum.to(_F64) - diag_sq


def expected_permuted_purity(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E_π ‖A∘B_π‖_F², E_π tr(A∘B_π)²) over uniformly random sample permutations π, exactly,
    in float64 (see the module docstring for the derivation)."""
    return expected_purity_from_sums(torch.diagonal(a), (a * a).sum(), torch.diagonal(b), (b * b).sum())


def expected_purity_from_sums(
    diag_a: torch.Tensor, frob_sq_a: torch.Tensor, diag_b: torch.Tensor, frob_sq_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The closed form from each matrix's diagonal and its ‖·‖_F², so callers that already hold
    those sums pay O(N) for the null."""
    n = diag_a.shape[0]
    pairs = n * (n - 1)
    diag_sq_a, off_sq_a = _diagonal_and_offdiagonal(frob_sq_a, diag_a)
    diag_sq_b, off_sq_b = _diagonal_and_offdiagonal(frob_sq_b, diag_b)
    frobenius = diag_sq_a * diag_sq_b / n + off_sq_a * off_sq_b / pairs
    trace_a, trace_b = diag_a.to(_F64).sum(), diag_b.to(_F64).sum()
    trace_sq = diag_sq_a * diag_sq_b / n + (trace_a**2 - diag_sq_a) * (trace_b**2 - diag_sq_b) / pairs
    return frobenius, trace_sq


def null_joint_entropy_order2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """S_2^null = -log(E‖A∘B_π‖_F² / E[tr(A∘B_π)²]), in float64."""
    frobenius, trace_sq = expected_permuted_purity(a, b)
    return -torch.log(frobenius / trace_sq)


def order2_entropies(
    kx: torch.Tensor, ky: torch.Tensor, perms: list[torch.Tensor], closed_form_null: bool, reuse_kx: bool = False
) -> dict[str, torch.Tensor]:
    """Every order-2 entropy of (x, y) from their two un-normalized kernel matrices, sharing them:
    S_2(K / tr K) = -log(‖K‖_F² / (tr K)²) for H(x), H(y), the joint (K = Kx∘Ky, with
    tr = ⟨diag Kx, diag Ky⟩), each sampled permutation's joint and the closed-form null (which is
    scale-free, so it takes Kx and Ky as they are). No trace-normalized copy is made.
    ``reuse_kx``: Kx may be overwritten (no gradient, and the caller no longer needs it).
    Returns ``entropy_x``, ``entropy_y``, ``joint_entropy``, ``permuted`` (one joint entropy per
    permutation, stacked) and, with ``closed_form_null``, ``null_joint_entropy``."""
    diag_x, diag_y = torch.diagonal(kx).clone(), torch.diagonal(ky).clone()
    trace_x, trace_y, trace_xy = diag_x.sum(), diag_y.sum(), torch.dot(diag_x, diag_y)
    for trace in (trace_x, trace_y):
        if float(trace.detach()) <= 0.0:
            raise ValueError("the Gram matrix has zero trace: every sample is the zero vector")
    # Each new N×N temporary costs a pass and page faults: without gradient, Kx is squared and
    # multiplied in place, so one temporary (Ky∘Ky) is all. Sums are pairwise (torch.sum): a
    # float32 norm or BLAS dot accumulates millions of terms too loosely for the excess.
    in_place = reuse_kx and not (kx.requires_grad or ky.requires_grad)
    ky_sq = ky * ky
    kx_sq = kx.square_() if in_place else kx * kx
    frob_x, frob_y = kx_sq.sum(), ky_sq.sum()

    def permuted_joint(p: torch.Tensor) -> torch.Tensor:
        frob = (kx_sq * ky_sq.index_select(0, p).index_select(1, p)).sum()
        return -torch.log(frob / torch.dot(diag_x, diag_y[p]) ** 2)

    # Two index_selects gather πBπᵀ about 3x faster than one 2-D advanced index on the CPU.
    permuted = [permuted_joint(p) for p in perms]
    out: dict[str, torch.Tensor] = {
        "permuted": torch.stack(permuted) if permuted else torch.empty(0, dtype=kx.dtype, device=kx.device)
    }
    joint = (kx_sq.mul_(ky_sq) if in_place else kx_sq * ky_sq).sum()
    out["entropy_x"] = -torch.log(frob_x / trace_x**2)
    out["entropy_y"] = -torch.log(frob_y / trace_y**2)
    out["joint_entropy"] = -torch.log(joint / trace_xy**2)
    if closed_form_null:
        frobenius, trace_sq = expected_purity_from_sums(diag_x, frob_x, diag_y, frob_y)
        out["null_joint_entropy"] = -torch.log(frobenius / trace_sq).to(out["joint_entropy"].dtype)
    return out


__all__ = [
    "expected_permuted_purity",
    "expected_purity_from_sums",
    "null_joint_entropy_order2",
    "order2_entropies",
    "permutations",
]
