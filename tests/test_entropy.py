import math

import numpy as np
import pytest
import reference as ref
import torch
from adadim.dynamics import joint_entropy, mutual_information, permuted_mutual_information, renyi_entropy
from conftest import random_features

ORDERS = [0.5, 1.0, 2.0, 5.0]
KERNELS = ["cosine", "linear", "gaussian"]


# ---- analytic values -------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kernel", ["cosine", "linear"])
@pytest.mark.parametrize("method", ["auto", "eigh"])
def test_identity_gram_gives_log_n(order, kernel, method):
    # Orthonormal rows: K = I, so A = I / N and every order gives log N.
    n = 12
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    x = q[:n] * 3.0
    s = renyi_entropy(x, order, kernel, method=method)
    assert float(s) == pytest.approx(math.log(n), abs=1e-10)
    assert float(renyi_entropy(x, order, kernel, normalize=True, method=method)) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_rank_one_gram_gives_zero(order, kernel):
    x = torch.ones(9, 4, dtype=torch.float64) * torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    assert float(renyi_entropy(x, order, kernel)) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("order", ORDERS)
def test_class_kernel_gives_renyi_entropy_of_class_histogram(order):
    counts = [5, 3, 8, 1]
    labels = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    x = torch.nn.functional.one_hot(labels, len(counts)).double()  # cosine K_ij = 1[same class]
    p = np.array(counts, dtype=float) / sum(counts)
    expected = -(p * np.log(p)).sum() if order == 1.0 else np.log((p**order).sum()) / (1 - order)
    assert float(renyi_entropy(x, order, "cosine")) == pytest.approx(expected, abs=1e-10)
    # I(x; x) for a 0/1 kernel: A∘A = A, so the joint equals S(A) and I = S(A).
    assert float(mutual_information(x, x, order, "cosine")) == pytest.approx(expected, abs=1e-10)


# ---- bounds ----------------------------------------------------------------------------
# Every entropy lies in [0, log N]. I is NOT confined to [0, min(S_A, S_B)]: it can be negative
# (Rényi entropy of order != 1 is not subadditive) and, with the linear kernel normalized by its
# trace, exceed min(S_A, S_B). With constant-diagonal kernels (cosine, Gaussian) the upper bound
# holds at every order (Bapat & Sunder majorization of Schur products).


def _bounded_pairs(rng, n=40):
    for trial in range(3):
        x = random_features(n, 8, rng)
        y = torch.tanh(x @ torch.randn(8, 16, generator=rng, dtype=torch.float64)) + 0.5 * trial * torch.randn(
            n, 16, generator=rng, dtype=torch.float64
        )
        yield x, y
    yield random_features(n, 3, rng), random_features(n, 5, rng)  # independent, low-dimensional


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_every_entropy_lies_between_zero_and_log_n(order, kernel, rng):
    n, tol = 40, 1e-9
    for x, y in _bounded_pairs(rng, n):
        for s in (renyi_entropy(x, order, kernel), renyi_entropy(y, order, kernel), joint_entropy(x, y, order, kernel)):
            assert -tol <= float(s) <= math.log(n) + tol


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_constant_diagonal_kernels_keep_i_below_min_entropy(order, kernel, rng):
    # N·B is a correlation matrix, so λ(A∘NB) ≺ λ(A): S(A,B) >= max(S_A, S_B), I <= min(S_A, S_B).
    tol = 1e-9
    for x, y in _bounded_pairs(rng):
        s_x, s_y = renyi_entropy(x, order, kernel), renyi_entropy(y, order, kernel)
        assert float(mutual_information(x, y, order, kernel)) <= min(float(s_x), float(s_y)) + tol


def test_order_2_mi_is_negative_for_a_class_kernel_example():
    # Labels (x, y) = (0,1), (1,0), (1,1), (1,1), (1,1): cosine on one-hot labels is the 0/1 class
    # kernel, A∘B the kernel of the label pair, so I_2 = H_2(X) + H_2(Y) - H_2(X, Y) with
    # H_2(X) = H_2(Y) = log(25/17) and H_2(X, Y) = log(25/11): I_2 = log(275/289) < 0.
    labels_x, labels_y = torch.tensor([0, 1, 1, 1, 1]), torch.tensor([1, 0, 1, 1, 1])
    x = torch.nn.functional.one_hot(labels_x, 2).double()
    y = torch.nn.functional.one_hot(labels_y, 2).double()
    i2 = float(mutual_information(x, y, 2.0, "cosine"))
    assert i2 == pytest.approx(math.log(275 / 289), abs=1e-12)
    assert i2 == pytest.approx(-0.0497, abs=1e-4)
    assert i2 == pytest.approx(ref.mutual_information(x, y, 2.0, "cosine"), abs=1e-12)
    # At order 1 a 0/1 kernel gives Shannon MI, which is never negative.
    assert float(mutual_information(x, y, 1.0, "cosine")) >= 0.0


@pytest.mark.parametrize("order", [1.0, 2.0])
def test_linear_kernel_mi_exceeds_min_entropy_for_independent_data(order):
    # Independent Gaussian x and y whose sample norms vary (log-normal scales): A = K / tr K puts
    # the joint's mass on the samples with the largest norm products, below both marginals'.
    gen = torch.Generator().manual_seed(0)
    draws, exceed = 100, 0
    for _ in range(draws):
        x = random_features(64, 8, gen) * torch.exp(torch.randn(64, 1, generator=gen, dtype=torch.float64))
        y = random_features(64, 8, gen) * torch.exp(torch.randn(64, 1, generator=gen, dtype=torch.float64))
        s_min = min(float(renyi_entropy(x, order, "linear")), float(renyi_entropy(y, order, "linear")))
        exceed += float(mutual_information(x, y, order, "linear")) > s_min + 1e-9
    assert exceed >= 0.2 * draws  # about 40% at order 1 and 60% at order 2 here


# ---- invariances -----------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("order", [1.0, 2.0, 3.0])
def test_invariances(kernel, order, rng):
    n = 30
    x = random_features(n, 6, rng)
    y = x @ torch.randn(6, 10, generator=rng, dtype=torch.float64) + 0.3 * random_features(n, 10, rng)
    i0 = float(mutual_information(x, y, order, kernel))
    h0 = float(renyi_entropy(x, order, kernel))

    perm = torch.randperm(n, generator=rng)
    assert float(mutual_information(x[perm], y[perm], order, kernel)) == pytest.approx(i0, abs=1e-10)

    rot_x, _ = torch.linalg.qr(torch.randn(6, 6, generator=rng, dtype=torch.float64))
    rot_y, _ = torch.linalg.qr(torch.randn(10, 10, generator=rng, dtype=torch.float64))
    assert float(mutual_information(x @ rot_x, y @ rot_y, order, kernel)) == pytest.approx(i0, abs=1e-10)

    # A global scale leaves every kernel unchanged (the Gaussian width follows the median).
    assert float(renyi_entropy(7.5 * x, order, kernel)) == pytest.approx(h0, abs=1e-10)
    assert float(mutual_information(0.2 * x, 4.0 * y, order, kernel)) == pytest.approx(i0, abs=1e-10)
    if kernel == "cosine":
        scales = torch.rand(n, 1, generator=rng, dtype=torch.float64) + 0.1
        assert float(renyi_entropy(scales * x, order, kernel)) == pytest.approx(h0, abs=1e-10)


# ---- agreement with the independent reference ------------------------------------------


@pytest.mark.parametrize("order", [0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", [(50, 8), (24, 64)])
def test_float64_matches_reference(order, kernel, shape, rng):
    n, d = shape
    x = random_features(n, d, rng)
    y = torch.relu(x @ torch.randn(d, 20, generator=rng, dtype=torch.float64)) + 0.1 * random_features(n, 20, rng)
    assert float(renyi_entropy(x, order, kernel)) == pytest.approx(ref.renyi_entropy(x, order, kernel), abs=1e-10)
    assert float(joint_entropy(x, y, order, kernel)) == pytest.approx(ref.joint_entropy(x, y, order, kernel), abs=1e-10)
    assert float(mutual_information(x, y, order, kernel)) == pytest.approx(
        ref.mutual_information(x, y, order, kernel), abs=1e-10
    )


@pytest.mark.parametrize("order", [1.0, 1.01, 2.0, 4.0])
@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_within_1e4_nats_of_reference(order, kernel, rng):
    x = random_features(256, 64, rng)
    y = torch.relu(x @ torch.randn(64, 128, generator=rng, dtype=torch.float64))
    x32, y32 = x.float(), y.float()
    assert abs(float(renyi_entropy(x32, order, kernel)) - ref.renyi_entropy(x, order, kernel)) < 1e-4
    assert abs(float(mutual_information(x32, y32, order, kernel)) - ref.mutual_information(x, y, order, kernel)) < 1e-4


def test_gaussian_with_explicit_sigma_matches_reference(rng):
    x = random_features(40, 5, rng)
    for sigma in (0.5, 2.0, 10.0):
        assert float(renyi_entropy(x, 1.5, "gaussian", sigma=sigma)) == pytest.approx(
            ref.renyi_entropy(x, 1.5, "gaussian", sigma), abs=1e-10
        )


@pytest.mark.parametrize("order", [1.0, 2.0])
def test_gaussian_widths_can_differ_between_the_two_inputs(order, rng):
    x, y = random_features(40, 5, rng), 3.0 * random_features(40, 7, rng)
    for sigma in ((0.7, 4.0), (None, 2.5), (1.5, None)):
        expected = ref.mutual_information(x, y, order, "gaussian", sigma)
        assert float(mutual_information(x, y, order, "gaussian", sigma=sigma)) == pytest.approx(expected, abs=1e-10)
        assert float(joint_entropy(x, y, order, "gaussian", sigma=sigma)) == pytest.approx(
            ref.joint_entropy(x, y, order, "gaussian", sigma), abs=1e-10
        )
    # One width means the same width for both inputs.
    assert float(mutual_information(x, y, order, "gaussian", sigma=2.0)) == pytest.approx(
        float(mutual_information(x, y, order, "gaussian", sigma=(2.0, 2.0))), abs=1e-12
    )


# ---- fast paths against the eigen path --------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_frobenius_fast_path_matches_eigh(kernel, dtype, tol, rng):
    x = random_features(200, 32, rng).to(dtype)
    y = torch.tanh(x @ torch.randn(32, 300, generator=rng, dtype=dtype))
    for fn in (renyi_entropy,):
        assert float(fn(x, 2.0, kernel)) == pytest.approx(float(fn(x, 2.0, kernel, method="eigh")), abs=tol)
    for fn in (joint_entropy, mutual_information):
        assert float(fn(x, y, 2.0, kernel)) == pytest.approx(float(fn(x, y, 2.0, kernel, method="eigh")), abs=tol)


@pytest.mark.parametrize("kernel", ["cosine", "linear"])
@pytest.mark.parametrize("order", [0.5, 1.0, 3.0])
def test_feature_side_matches_sample_side(kernel, order, rng):
    # D < N: the auto path decomposes the D×D side; it must equal the N×N spectrum's entropy.
    x = random_features(120, 10, rng)
    assert float(renyi_entropy(x, order, kernel)) == pytest.approx(
        float(renyi_entropy(x, order, kernel, method="eigh")), abs=1e-10
    )


# ---- permutation baseline --------------------------------------------------------------


def test_permutation_baseline_is_seeded_and_below_dependent_mi(rng):
    x = random_features(64, 4, rng)
    y = x @ torch.randn(4, 32, generator=rng, dtype=torch.float64)
    a = permuted_mutual_information(x, y, n_permutations=6, seed=3)
    b = permuted_mutual_information(x, y, n_permutations=6, seed=3)
    c = permuted_mutual_information(x, y, n_permutations=6, seed=4)
    assert float(a) == float(b)
    assert float(a) != float(c)
    # Low-dimensional, strongly dependent data at small N: the pairing carries information.
    assert float(mutual_information(x, y)) > float(a) + 0.1
    # The baseline is the mean of I(x; πy) over the same seeded permutations.
    gen = torch.Generator().manual_seed(3)
    manual = np.mean([float(mutual_information(x, y[torch.randperm(64, generator=gen)])) for _ in range(6)])
    assert float(a) == pytest.approx(manual, abs=1e-10)


# ---- gradients -------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1.0, 2.0])
def test_mutual_information_is_differentiable_when_asked(order, rng):
    x = random_features(32, 8, rng).requires_grad_(True)
    y = random_features(32, 8, rng)
    i = mutual_information(x, y, order)
    i.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # No grad requested: no graph.
    assert not mutual_information(x.detach(), y, order).requires_grad


def test_gradient_matches_finite_differences(rng):
    x = random_features(10, 3, rng).requires_grad_(True)
    y = random_features(10, 4, rng)
    assert torch.autograd.gradcheck(lambda t: mutual_information(t, y, 2.0, "cosine"), (x,))
    assert torch.autograd.gradcheck(lambda t: renyi_entropy(t, 1.5, "gaussian", sigma=1.0), (x,))


# ---- the deprecated name of the order ---------------------------------------------------


@pytest.mark.parametrize("fn", [renyi_entropy, joint_entropy, mutual_information, permuted_mutual_information])
def test_alpha_keyword_still_works_with_a_deprecation_warning(fn, rng):
    x, y = random_features(20, 3, rng), random_features(20, 4, rng)
    args = (x,) if fn is renyi_entropy else (x, y)
    with pytest.warns(DeprecationWarning, match="alpha= is deprecated.*order="):
        old = fn(*args, alpha=1.5)
    assert float(old) == float(fn(*args, order=1.5))
    with pytest.raises(TypeError, match="both order= and its deprecated name alpha="):
        fn(*args, order=1.5, alpha=1.5)


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda x, y: renyi_entropy(x[:1]), "at least 2 samples"),
        (lambda x, y: mutual_information(x, y[:5]), "same number of samples"),
        (lambda x, y: renyi_entropy(torch.where(x > 1, float("nan"), x)), "NaN or Inf"),
        (lambda x, y: mutual_information(x, torch.full_like(y, float("inf"))), "NaN or Inf"),
        (lambda x, y: renyi_entropy(x, order=0.0), "order must be a finite number > 0"),
        (lambda x, y: renyi_entropy(x, order=-1.0), "order must be a finite number > 0"),
        (lambda x, y: renyi_entropy(x, kernel="rbf"), "unknown kernel 'rbf'"),
        (lambda x, y: renyi_entropy(x, kernel="gaussian", sigma=-1.0), "sigma must be"),
        (lambda x, y: mutual_information(x, y, kernel="gaussian", sigma=(1.0, 0.0)), "sigma_y must be"),
        (lambda x, y: mutual_information(x, y, kernel="gaussian", sigma=(1.0, 2.0, 3.0)), "pair"),
        (lambda x, y: renyi_entropy(x[0]), "must be 2-D"),
        (lambda x, y: renyi_entropy(x, method="svd"), "unknown method"),
        (lambda x, y: permuted_mutual_information(x, y, n_permutations=0), "n_permutations"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message, rng):
    x, y = random_features(10, 3, rng), random_features(10, 4, rng)
    with pytest.raises(ValueError, match=message):
        call(x, y)
