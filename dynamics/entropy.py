"""Matrix-based Rényi entropy, joint entropy, mutual information and its permutation excess
(Sanchez Giraldo, Rao & Principe, "Measures of entropy from data using infinitely divisible
kernels", IEEE T-IT 2015, arXiv 1211.2459), in nats. Read dependence from the excess, not from
the raw I, which saturates for high-dimensional features.

Design notes: docs/dynamics.md, "Design notes: entropy".
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, NamedTuple

import torch

from ._validation import (
    Sigma,
    accepts_alpha_for_order,
    check_features,
    check_kernel,
    check_order,
    check_same_samples,
    check_sigma,
    check_sigma_pair,
)
from .kernels import feature_map, gram_matrix, hadamard_normalized, kernel_matrix, trace_normalize
from .permutation_null import null_joint_entropy_order2, order2_entropies, permutations

METHODS = ("auto", "eigh")
DEFAULT_NULL_PERMUTATIONS = 16
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


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type with no autocast support
        return contextlib.nullcontext()


def spectrum_entropy(eigenvalues: torch.Tensor, order: float) -> torch.Tensor:
    """Rényi entropy of the given order of a non-negative spectrum, normalized to sum to one."""
    p = eigenvalues / eigenvalues.sum()
    positive = p > 0
    # Clamping before log/pow keeps gradients finite at zero eigenvalues.
    q = p.clamp_min(_TINY)
    if order == 1.0:
        return -torch.where(positive, q * torch.log(q), torch.zeros_like(q)).sum()
    power_sum = torch.where(positive, q.pow(order), torch.zeros_like(q)).sum()
    return torch.log(power_sum) / (1.0 - order)


@accepts_alpha_for_order
def entropy_of_gram(a: torch.Tensor, order: float = 2.0, method: str = "auto") -> torch.Tensor:
    """S_order of a trace-one PSD matrix, by the Frobenius identity at order 2 (``auto``)
    or by its float64 eigenvalues."""
    order = check_order(order)
    _check_method(method)
    if order == 2.0 and method == "auto":
        return -torch.log((a * a).sum())
    eigenvalues = torch.linalg.eigvalsh(a.double()).clamp_min(0.0)
    if order < 1.0:
        # λ^q with q < 1 inflates round-off (1e-16 becomes 1e-8 at q = 0.5), so eigenvalues
        # below the numerical-rank tolerance of A's own precision count as exact zeros.
        tol = eigenvalues.max() * a.shape[0] * torch.finfo(a.dtype).eps
        eigenvalues = torch.where(eigenvalues > tol, eigenvalues, torch.zeros_like(eigenvalues))
    return spectrum_entropy(eigenvalues, order).to(a.dtype)


def _entropy_of_input(
    x: torch.Tensor, order: float, kernel: str, method: str, gram: torch.Tensor | None, sigma: float | None
) -> torch.Tensor:
    features = feature_map(x, kernel) if method == "auto" else None
    if features is not None and (gram is None or order != 2.0):
        n, d = features.shape
        # FFᵀ and FᵀF share their non-zero eigenvalues; take the smaller one.
        small = features.T @ features if d < n else features @ features.T
        return entropy_of_gram(trace_normalize(small), order, method)
    if gram is None:
        gram = gram_matrix(x, kernel, sigma)
    return entropy_of_gram(gram, order, method)


def _per_log_n(value: torch.Tensor, n: int, normalize: bool) -> torch.Tensor:
    """value / log N when asked: entropies of N samples are at most log N."""
    return value / math.log(n) if normalize else value


def _validate_one(
    x: torch.Tensor, order: float, kernel: str, sigma: float | None, method: str, name: str = "x"
) -> float:
    check_features(x, name)
    check_kernel(kernel)
    check_sigma(sigma)
    _check_method(method)
    return check_order(order)


def _validate_pair(
    x: torch.Tensor, y: torch.Tensor, order: float, kernel: str, sigma: Sigma, method: str
) -> tuple[float, tuple[float | None, float | None]]:
    check_features(x, "x")
    check_features(y, "y")
    check_same_samples(x, y)
    check_kernel(kernel)
    sigmas = check_sigma_pair(sigma)
    _check_method(method)
    return check_order(order), sigmas


@accepts_alpha_for_order
def renyi_entropy(
    x: torch.Tensor,
    order: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """Matrix-based Rényi entropy S_order (nats) of the N samples in the rows of x (N×D).

    ``normalize=True`` divides by log N, the maximum, giving a value in [0, 1].
    ``method="eigh"`` forces the eigendecomposition of the N×N Gram matrix (no fast path, no
    dual side); it exists for verification.
    """
    order = _validate_one(x, order, kernel, sigma, method)
    x = working_precision(x)
    with autocast_off(x.device):
        s = _entropy_of_input(x, order, kernel, method, gram=None, sigma=sigma)
    return _per_log_n(s, x.shape[0], normalize)


@accepts_alpha_for_order
def joint_entropy(
    x: torch.Tensor,
    y: torch.Tensor,
    order: float = 2.0,
    kernel: str = "cosine",
    sigma: float | tuple[float | None, float | None] | None = None,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """S_order(A, B) = S_order(A∘B / tr(A∘B)) for the Gram matrices of x and y (same N).

    ``sigma`` (Gaussian kernel) is one width for both inputs or a ``(sigma_x, sigma_y)`` pair;
    a None width is that input's own median heuristic.
    """
    order, (sigma_x, sigma_y) = _validate_pair(x, y, order, kernel, sigma, method)
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        a, b = gram_matrix(x, kernel, sigma_x), gram_matrix(y, kernel, sigma_y)
        s = entropy_of_gram(hadamard_normalized(a, b), order, method)
    return _per_log_n(s, x.shape[0], normalize)


@accepts_alpha_for_order
def mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    order: float = 2.0,
    kernel: str = "cosine",
    sigma: float | tuple[float | None, float | None] | None = None,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """Matrix-based mutual information I_order(x; y) = S(A) + S(B) - S(A, B), in nats.

    The raw value: it can be negative and, with the linear kernel, exceed min(S_A, S_B) (see
    the module docstring). ``excess_mutual_information`` subtracts its no-dependence value.
    """
    order, sigmas = _validate_pair(x, y, order, kernel, sigma, method)
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        terms = information_terms(x, y, order, kernel, sigmas, method)
    i = terms["mutual_information"]
    return _per_log_n(i, x.shape[0], normalize)


@accepts_alpha_for_order
def permuted_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    order: float = 2.0,
    kernel: str = "cosine",
    sigma: float | tuple[float | None, float | None] | None = None,
    n_permutations: int = 5,
    seed: int = 0,
    normalize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """The sampled no-dependence baseline: I_order(x; πy), averaged over ``n_permutations``
    seeded random sample permutations π of y.

    Permuting y's samples keeps S(B) and breaks the pairing, so this is the value I takes
    when x and y are independent at this N, D and kernel. ``excess_mutual_information`` is
    I minus this expectation (exact, with no sampling noise, at order 2).
    """
    order, sigmas = _validate_pair(x, y, order, kernel, sigma, method)
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations!r}")
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        terms = information_terms(x, y, order, kernel, sigmas, method, n_permutations=int(n_permutations), seed=seed)
    i = terms["permuted_mutual_information"]
    return _per_log_n(i, x.shape[0], normalize)


class ExcessMI(NamedTuple):
    """What ``excess_mutual_information(..., return_stderr=True)`` returns (0-d tensors, nats).

    ``excess = mutual_information - null``. ``stderr`` is the Monte-Carlo standard error of the
    null (and so of the excess): exactly 0 at order 2, where the null is in closed form.
    """

    excess: torch.Tensor
    stderr: torch.Tensor
    mutual_information: torch.Tensor
    null: torch.Tensor


@accepts_alpha_for_order
def excess_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    order: float = 2.0,
    kernel: str = "cosine",
    sigma: float | tuple[float | None, float | None] | None = None,
    n_permutations: int = DEFAULT_NULL_PERMUTATIONS,
    seed: int = 0,
    normalize: bool = False,
    method: str = "auto",
    return_stderr: bool = False,
) -> torch.Tensor | ExcessMI:
    """I_order(x; y) minus its expectation over uniformly random sample permutations of y (nats).

    Independent x and y give about 0 at any N, dimension and kernel; the raw I does not (it is
    dominated by self-similarity and can be several nats for independent data).

    - Order 2: the null is exact and has no sampling noise, O(N²) on top of I (the formula is
      in ``adadim.dynamics.permutation_null``). The null joint entropy is
      -log(E_π‖A∘B_π‖_F² / E_π tr(A∘B_π)²), the log of the expected purity over the expected
      squared trace; it differs from the mean of the sampled joint entropies only by Jensen's
      gap (< 1e-4 nats on 512 samples). ``n_permutations`` and ``seed`` are unused.
    - Other orders: the null is the mean of I(x; πy) over ``n_permutations`` (default 16, at
      least 2) seeded permutations, each an N×N float64 eigendecomposition. Its standard error
      is the sample SD / √n_permutations.

    Returns a 0-d tensor, or with ``return_stderr=True`` an ``ExcessMI(excess, stderr,
    mutual_information, null)``. ``normalize=True`` divides every field by log N.
    """
    order, sigmas = _validate_pair(x, y, order, kernel, sigma, method)
    n_permutations = int(n_permutations)
    if n_permutations < 2:
        raise ValueError(f"n_permutations must be >= 2 (a standard error needs two draws), got {n_permutations!r}")
    x, y = working_precision(x), working_precision(y)
    with autocast_off(x.device):
        terms = information_terms(x, y, order, kernel, sigmas, method, seed=seed, null_permutations=n_permutations)
    n = x.shape[0]
    excess = _per_log_n(terms["excess_mutual_information"], n, normalize)
    if not return_stderr:
        return excess
    return ExcessMI(
        excess,
        _per_log_n(terms["excess_stderr"], n, normalize),
        _per_log_n(terms["mutual_information"], n, normalize),
        _per_log_n(terms["null_mutual_information"], n, normalize),
    )


def information_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    order: float,
    kernel: str,
    sigma: Sigma,
    method: str = "auto",
    n_permutations: int = 0,
    seed: int = 0,
    null_permutations: int | None = None,
) -> dict[str, torch.Tensor]:
    """Every information quantity of (x, y) from one pair of Gram matrices.

    Inputs are assumed validated; ``sigma`` is one width or a ``(sigma_x, sigma_y)`` pair.
    Returns the entropies ``entropy_x``, ``entropy_y``, ``joint_entropy``,
    ``mutual_information``, y's kernel matrix ``kernel_y`` (before trace normalization; the
    cosine kernel's is the cosine similarity matrix) for callers that reuse it, and:

    - with ``n_permutations > 0``: ``permuted_mutual_information``, the mean of I(x; πy) over
      that many seeded permutations;
    - with ``null_permutations`` set: ``null_mutual_information`` (the expectation of I(x; πy)),
      ``excess_mutual_information`` and ``excess_stderr``. At order 2 the null is the closed
      form and ``null_permutations`` is unused; otherwise it is the mean over the first
      ``null_permutations`` seeded permutations (the same draws as the baseline's, extended).
    """
    sigma_x, sigma_y = sigma if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    kx, ky = kernel_matrix(x, kernel, sigma_x), kernel_matrix(y, kernel, sigma_y)
    want_excess = null_permutations is not None
    closed_form = want_excess and order == 2.0
    sampled_null = int(null_permutations) if null_permutations is not None and not closed_form else 0
    count = max(int(n_permutations), sampled_null)
    perms = permutations(x.shape[0], count, seed, x.device) if count > 0 else []
    s_null = None
    if order == 2.0 and method == "auto":
        # One pair of kernel matrices serves H(x), H(y), the joint and the null (Frobenius identity).
        order2 = order2_entropies(kx, ky, perms, closed_form, reuse_kx=True)
        s_a, s_b, s_ab, permuted = (order2[k] for k in ("entropy_x", "entropy_y", "joint_entropy", "permuted"))
        s_null = order2.get("null_joint_entropy")
    else:
        a, b = trace_normalize(kx), trace_normalize(ky)
        s_a = _entropy_of_input(x, order, kernel, method, gram=a, sigma=sigma_x)
        s_b = _entropy_of_input(y, order, kernel, method, gram=b, sigma=sigma_y)
        s_ab = entropy_of_gram(hadamard_normalized(a, b), order, method)
        joints = [entropy_of_gram(hadamard_normalized(a, b[p][:, p]), order, method) for p in perms]
        permuted = torch.stack(joints) if joints else torch.empty(0, dtype=s_ab.dtype, device=s_ab.device)
        if closed_form:
            s_null = null_joint_entropy_order2(a, b).to(s_ab.dtype)
    i = s_a + s_b - s_ab
    out = {
        "entropy_x": s_a,
        "entropy_y": s_b,
        "joint_entropy": s_ab,
        "mutual_information": i,
        "kernel_y": ky,
    }
    # S(πBπᵀ) = S(B): only the joint entropy changes under a permutation.
    permuted_mi = s_a + s_b - permuted.to(s_ab)  # dtype and device of the entropies
    if n_permutations > 0:
        out["permuted_mutual_information"] = permuted_mi[: int(n_permutations)].mean()
    if want_excess:
        if s_null is not None:  # the closed form (order 2)
            # I - I_null = S_null - S_ab: the marginal entropies cancel exactly.
            out["null_mutual_information"] = s_a + s_b - s_null
            out["excess_mutual_information"] = s_null - s_ab
            out["excess_stderr"] = torch.zeros((), dtype=s_ab.dtype, device=s_ab.device)
        else:
            draws = permuted_mi[:sampled_null]
            out["null_mutual_information"] = draws.mean()
            out["excess_mutual_information"] = i - draws.mean()
            out["excess_stderr"] = draws.std(correction=1) / math.sqrt(sampled_null)
    return out


__all__ = [
    "ExcessMI",
    "entropy_of_gram",
    "excess_mutual_information",
    "information_terms",
    "joint_entropy",
    "mutual_information",
    "permuted_mutual_information",
    "renyi_entropy",
    "spectrum_entropy",
]
