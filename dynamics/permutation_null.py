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


def frobenius_joint_entropies(
    a: torch.Tensor, b: torch.Tensor, perms: list[torch.Tensor], closed_form_null: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """S_2 of A∘B/tr, of every sampled A∘(πBπᵀ)/tr, and (``closed_form_null``) the closed-form
    S_2^null, without forming any Hadamard product: ‖A∘C‖_F² = ⟨A∘A, C∘C⟩ and
    tr(A∘C) = ⟨diag A, diag C⟩. The null reuses the sums ‖A‖_F², ‖B‖_F², so it costs O(N) more."""
    a_sq, b_sq = a * a, b * b
    a_sq_flat = a_sq.flatten()
    diag_a, diag_b = torch.diagonal(a), torch.diagonal(b)

    def joint(b_sq_permuted: torch.Tensor, diag_b_permuted: torch.Tensor) -> torch.Tensor:
        # A pairwise-summed reduction: a BLAS dot accumulates 16M float32 terms too loosely.
        return -torch.log((a_sq_flat * b_sq_permuted.flatten()).sum() / torch.dot(diag_a, diag_b_permuted) ** 2)

    s_ab = joint(b_sq, diag_b)
    # Two index_selects gather πBπᵀ about 3x faster than one 2-D advanced index on the CPU.
    permuted = [joint(b_sq.index_select(0, p).index_select(1, p), diag_b[p]) for p in perms]
    s_null = None
    if closed_form_null:
        frobenius, trace_sq = expected_purity_from_sums(diag_a, a_sq.sum(), diag_b, b_sq.sum())
        s_null = -torch.log(frobenius / trace_sq).to(s_ab.dtype)
    return s_ab, permuted, s_null


__all__ = [
    "expected_permuted_purity",
    "expected_purity_from_sums",
    "frobenius_joint_entropies",
    "null_joint_entropy_order2",
    "permutations",
]
