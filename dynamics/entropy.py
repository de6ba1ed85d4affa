"""Matrix-based Rényi entropy, joint entropy and mutual information.

Sanchez Giraldo, Rao & Principe, "Measures of entropy from data using infinitely divisible
kernels", IEEE T-IT 2015 (arXiv 1211.2459). For a trace-one PSD Gram matrix A with
eigenvalues λ_i:

- S_α(A) = log(Σ λ_i^α) / (1 - α), and S_1(A) = -Σ λ_i log λ_i (von Neumann);
- S_α(A, B) = S_α(A∘B / tr(A∘B));
- I_α(A; B) = S_α(A) + S_α(B) - S_α(A, B), with 0 ≤ I ≤ min(S_A, S_B) and S ≤ log N.

Computation (all natural logs, results in nats):

- α = 2 needs no eigendecomposition: Σ λ_i² = ‖A‖_F², so S_2 = -log ‖A‖_F² ("fast path").
- Any other α takes the eigenvalues of A in float64, clamps the negative ones (round-off of
  a PSD matrix) to 0 and renormalizes them to sum to one. float64 is used for every α ≠ 2,
  not only α < 1: near α = 1 the formula divides by (1 - α) and float32 cancellation would
  dominate the result. For α < 1, eigenvalues under the numerical-rank tolerance
  λ_max · N · eps(dtype of A) are set to 0, since λ^α would turn their round-off into
  entropy.
- For the cosine and linear kernels a single entropy is computed on the smaller side of the
  Gram matrix (N×N or D×D share their non-zero spectrum). The joint matrix A∘B has no such
  dual, so it is always N×N.
- Autocast is switched off and half-precision inputs are upcast to float32.

Gradients flow when the inputs require them (the MI loss term uses this); otherwise no graph
is built.

Saturation: every entropy is at most log N for a batch of N. With high-dimensional cosine
features S(R, Z) sits near log N and I(R;Z) mostly tracks S(Z), so report
``permuted_mutual_information`` (the no-dependence baseline) beside I.
"""

from __future__ import annotations

import contextlib
import math

import torch

from ._validation import check_features, check_kernel, check_order, check_same_samples, check_sigma
from .kernels import feature_map, gram_matrix, hadamard_normalized, trace_normalize

METHODS = ("auto", "eigh")
_TINY = 1e-300


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose 'auto' (fast paths) or 'eigh' (N×N eigendecomposition)")
    return method


def measurement_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precisions are measured in float32; float32 and float64 are kept."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def working_precision(x: torch.Tensor) -> torch.Tensor:
    return x.to(measurement_dtype(x.dtype))


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type with no autocast support
        return contextlib.nullcontext()


def spectrum_entropy(eigenvalues: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rényi entropy of order alpha of a non-negative spectrum, normalized to sum to one."""
    p = eigenvalues / eigenvalues.sum()
    positive = p > 0
    # Clamping before log/pow keeps gradients finite at zero eigenvalues.
    q = p.clamp_min(_TINY)
    if alpha == 1.0:
        return -torch.where(positive, q * torch.log(q), torch.zeros_like(q)).sum()
    power_sum = torch.where(positive, q.pow(alpha), torch.zeros_like(q)).sum()
    return torch.log(power_sum) / (1.0 - alpha)


def entropy_of_gram(a: torch.Tensor, alpha: float = 2.0, method: str = "auto") -> torch.Tensor:
    """S_alpha of a trace-one PSD matrix, by the Frobenius identity at alpha = 2 (``auto``)
    or by its float64 eigenvalues."""
    alpha = check_order(alpha)
    _check_method(method)
    if alpha == 2.0 and method == "auto":
        return -torch.log((a * a).sum())
    eigenvalues = torch.linalg.eigvalsh(a.double()).clamp_min(0.0)
    if alpha < 1.0:
        # λ^α with α < 1 inflates round-off (1e-16 becomes 1e-8 at α = 0.5), so eigenvalues
        # below the numerical-rank tolerance of A's own precision count as exact zeros.
        tol = eigenvalues.max() * a.shape[0] * torch.finfo(a.dtype).eps
        eigenvalues = torch.where(eigenvalues > tol, eigenvalues, torch.zeros_like(eigenvalues))
    return spectrum_entropy(eigenvalues, alpha).to(a.dtype)


def _entropy_of_input(
    x: torch.Tensor, alpha: float, kernel: str, method: str, gram: torch.Tensor | None, sigma: float | None
) -> torch.Tensor:
    features = feature_map(x, kernel) if method == "auto" else None
    if features is not None and (gram is None or alpha != 2.0):
        n, d = features.shape
        # FFᵀ and FᵀF share their non-zero eigenvalues; take the smaller one.
        small = features.T @ features if d < n else features @ features.T
        return entropy_of_gram(trace_normalize(small), alpha, method)
    if gram is None:
        gram = gram_matrix(x, kernel, sigma)
    return entropy_of_gram(gram, alpha, method)


def _per_log_n(value: torch.Tensor, n: int, normalize: bool) -> torch.Tensor:
    """value / log N when asked: entropies and MI of N samples are at most log N."""
    return value / math.log(n) if normalize else value


def _validate_one(x, alpha, kernel, sigma, method, name="x"):
    check_features(x, name)
    check_kernel(kernel)
    check_sigma(sigma)
    _check_method(method)
    return check_order(alpha)


def _validate_pair(x, y, alpha, kernel, sigma, method):
    alpha = _validate_one(x, alpha, kernel, sigma, method, "x")
    check_features(y, "y")
    check_same_samples(x, y)
    return alpha


def renyi_entropy(
    x: torch.Tensor,
    alpha: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """Matrix-based Rényi entropy S_alpha (nats) of the N samples in the rows of x (N×D).

    ``normalize=True`` divides by log N, the maximum, giving a value in [0, 1].
    ``method="eigh"`` forces the eigendecomposition of the N×N Gram matrix (no fast path, no
    dual side); it exists for verification.
    """
    alpha = _validate_one(x, alpha, kernel, sigma, method)
    x = working_precision(x)
    with autocast_off(x.device):
        s = _entropy_of_input(x, alpha, kernel, method, gram=None, sigma=sigma)
    return _per_log_n(s, x.shape[0], normalize)


def joint_entropy(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """S_alpha(A, B) = S_alpha(A∘B / tr(A∘B)) for the Gram matrices of x and y (same N).

    ``sigma`` (Gaussian kernel) applies to both inputs; with None each gets its own median
    width.
    """
    alpha = _validate_pair(x, y, alpha, kernel, sigma, method)
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        a, b = gram_matrix(x, kernel, sigma), gram_matrix(y, kernel, sigma)
        s = entropy_of_gram(hadamard_normalized(a, b), alpha, method)
    return _per_log_n(s, x.shape[0], normalize)


def mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """Matrix-based mutual information I_alpha(x; y) = S(A) + S(B) - S(A, B), in nats."""
    alpha = _validate_pair(x, y, alpha, kernel, sigma, method)
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        terms = information_terms(x, y, alpha, kernel, sigma, method)
    i = terms["mutual_information"]
    return _per_log_n(i, x.shape[0], normalize)


def permutations(n: int, count: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    """`count` seeded sample permutations; the same seed gives the same ones on any device."""
    generator = torch.Generator().manual_seed(int(seed))
    return [torch.randperm(n, generator=generator).to(device) for _ in range(count)]


def permuted_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
    n_permutations: int = 5,
    seed: int = 0,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """The no-dependence baseline: I_alpha(x; πy), averaged over ``n_permutations`` seeded
    random sample permutations π of y.

    Permuting y's samples keeps S(B) and breaks the pairing, so this is the value I takes
    when x and y are independent at this N, D and kernel. Report it beside I: at large N
    the two can be close (see the module docstring).
    """
    alpha = _validate_pair(x, y, alpha, kernel, sigma, method)
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations!r}")
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        terms = information_terms(x, y, alpha, kernel, sigma, method, n_permutations=int(n_permutations), seed=seed)
    i = terms["permuted_mutual_information"]
    return _per_log_n(i, x.shape[0], normalize)


def information_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    kernel: str,
    sigma: float | None,
    method: str = "auto",
    n_permutations: int = 0,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Every information quantity of (x, y) from one pair of Gram matrices.

    Inputs are assumed validated. Returns the entropies ``entropy_x``, ``entropy_y``,
    ``joint_entropy``, ``mutual_information`` and, when ``n_permutations > 0``,
    ``permuted_mutual_information`` (mean over the permutations), plus the Gram matrices
    ``gram_x`` and ``gram_y`` for callers that reuse them.
    """
    a, b = gram_matrix(x, kernel, sigma), gram_matrix(y, kernel, sigma)
    s_a = _entropy_of_input(x, alpha, kernel, method, gram=a, sigma=sigma)
    s_b = _entropy_of_input(y, alpha, kernel, method, gram=b, sigma=sigma)
    perms = permutations(x.shape[0], n_permutations, seed, x.device) if n_permutations > 0 else []
    if alpha == 2.0 and method == "auto":
        s_ab, permuted = _frobenius_joint_entropies(a, b, perms)
    else:
        s_ab = entropy_of_gram(hadamard_normalized(a, b), alpha, method)
        permuted = [entropy_of_gram(hadamard_normalized(a, b[p][:, p]), alpha, method) for p in perms]
    out = {
        "entropy_x": s_a,
        "entropy_y": s_b,
        "joint_entropy": s_ab,
        "mutual_information": s_a + s_b - s_ab,
        "gram_x": a,
        "gram_y": b,
    }
    if perms:
        # S(πBπᵀ) = S(B): only the joint entropy changes under the permutation.
        out["permuted_mutual_information"] = s_a + s_b - torch.stack(permuted).mean()
    return out


def _frobenius_joint_entropies(
    a: torch.Tensor, b: torch.Tensor, perms: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """S_2 of A∘B/tr and of every A∘(πBπᵀ)/tr without forming the Hadamard products:
    ‖A∘C‖_F² = ⟨A∘A, C∘C⟩ and tr(A∘C) = ⟨diag A, diag C⟩."""
    a_sq, b_sq = (a * a).flatten(), b * b
    diag_a, diag_b = torch.diagonal(a), torch.diagonal(b)

    def joint(b_sq_permuted: torch.Tensor, diag_b_permuted: torch.Tensor) -> torch.Tensor:
        # A pairwise-summed reduction: a BLAS dot accumulates 16M float32 terms too loosely.
        return -torch.log((a_sq * b_sq_permuted.flatten()).sum() / torch.dot(diag_a, diag_b_permuted) ** 2)

    s_ab = joint(b_sq, diag_b)
    permuted = [joint(b_sq[p[:, None], p[None, :]], diag_b[p]) for p in perms]
    return s_ab, permuted


__all__ = [
    "entropy_of_gram",
    "information_terms",
    "joint_entropy",
    "mutual_information",
    "permuted_mutual_information",
    "renyi_entropy",
    "spectrum_entropy",
]
