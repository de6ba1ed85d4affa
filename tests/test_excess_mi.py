"""Excess mutual information: I(x; y) minus its expectation over random sample permutations of y."""

import functools
import itertools
import math

import numpy as np
import pytest
import reference as ref
import torch
from adadim.dynamics import ExcessMI, excess_mutual_information, mutual_information, renyi_entropy
from adadim.dynamics.permutation_null import expected_permuted_purity
from conftest import random_features

KERNELS = ["cosine", "linear", "gaussian"]

# ---- the order-2 closed form against the exact and the sampled expectation --------------


def _uneven(n, d, generator):
    """Gaussian rows with log-normal norms: the linear kernel's diagonal then varies with π."""
    scales = torch.exp(0.5 * torch.randn(n, 1, generator=generator, dtype=torch.float64))
    return random_features(n, d, generator) * scales


@pytest.mark.parametrize("kernel", KERNELS)
def test_closed_form_equals_the_average_over_all_permutations(kernel, rng):
    n = 6
    x, y = _uneven(n, 3, rng), _uneven(n, 4, rng)
    a, b = ref.gram(x, kernel), ref.gram(y, kernel)
    frob, trace_sq = [], []
    for p in itertools.permutations(range(n)):  # all 720
        ab = a * b[np.ix_(p, p)]
        frob.append((ab**2).sum())
        trace_sq.append(np.trace(ab) ** 2)
    e_frob, e_trace_sq = expected_permuted_purity(torch.from_numpy(a), torch.from_numpy(b))
    assert float(e_frob) == pytest.approx(np.mean(frob), rel=1e-12)
    assert float(e_trace_sq) == pytest.approx(np.mean(trace_sq), rel=1e-12)
    # The null is S_A + S_B + log(E‖A∘B_π‖² / E tr(A∘B_π)²); the excess is I minus it.
    out = excess_mutual_information(x, y, 2.0, kernel, return_stderr=True)
    marginals = ref.renyi_entropy(x, 2.0, kernel) + ref.renyi_entropy(y, 2.0, kernel)
    null = marginals + math.log(np.mean(frob) / np.mean(trace_sq))
    assert float(out.null) == pytest.approx(null, abs=1e-12)
    assert float(out.excess) == pytest.approx(ref.mutual_information(x, y, 2.0, kernel) - null, abs=1e-12)
    assert float(out.stderr) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("kernel", KERNELS)
def test_closed_form_agrees_with_2000_sampled_permutations(kernel, rng):
    # Clustered samples with uneven norms: the purity, and for the linear kernel the trace,
    # genuinely vary over permutations.
    n, draws = 256, 2000
    labels = torch.randint(0, 5, (n,), generator=rng)
    x = _uneven(n, 16, rng) + 2.0 * random_features(5, 16, rng)[labels]
    y = torch.tanh(x @ random_features(16, 32, rng) / 4) + 0.5 * random_features(n, 32, rng)
    a, b = ref.gram(x, kernel), ref.gram(y, kernel)
    a2, b2, diag_a, diag_b = a * a, b * b, np.diag(a), np.diag(b)
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(n), (draws, 1)), axis=1)
    frob = np.array([(a2 * b2[np.ix_(p, p)]).sum() for p in perms])
    trace_sq = np.array([(diag_a @ diag_b[p]) ** 2 for p in perms])
    e_frob, e_trace_sq = (float(v) for v in expected_permuted_purity(torch.from_numpy(a), torch.from_numpy(b)))
    se = frob.std(ddof=1) / math.sqrt(draws)
    assert se > 0 and abs(frob.mean() - e_frob) < 4 * se
    if kernel == "linear":
        se_t = trace_sq.std(ddof=1) / math.sqrt(draws)
        assert se_t > 0 and abs(trace_sq.mean() - e_trace_sq) < 4 * se_t
    else:  # constant diagonal: the trace does not depend on the permutation
        assert np.allclose(trace_sq, e_trace_sq, rtol=1e-12, atol=0)
    # The null I against the mean of the sampled I(x; πy) = S_A + S_B + log ρ_π. They differ by
    # Monte-Carlo error plus Jensen's gap, about Var(log ρ_π) / 2.
    log_rho = np.log(frob / trace_sq)
    s_ab = ref.renyi_entropy(x, 2.0, kernel) + ref.renyi_entropy(y, 2.0, kernel)
    sampled_null = s_ab + log_rho.mean()
    out = excess_mutual_information(x, y, 2.0, kernel, return_stderr=True)
    se_i = log_rho.std(ddof=1) / math.sqrt(draws)
    assert abs(float(out.null) - sampled_null) < 4 * se_i + log_rho.var() / 2 + 1e-12
    assert float(out.mutual_information) == pytest.approx(ref.mutual_information(x, y, 2.0, kernel), abs=1e-10)
    assert float(out.excess) > 0.1  # y depends on x


def test_float32_closed_form_matches_float64(rng):
    x = random_features(1024, 64, rng)
    y = torch.tanh(x @ random_features(64, 512, rng) / 8) + random_features(1024, 512, rng)
    for kernel in KERNELS:
        e64 = float(excess_mutual_information(x, y, 2.0, kernel))
        e32 = float(excess_mutual_information(x.float(), y.float(), 2.0, kernel))
        assert abs(e32 - e64) < 1e-4, kernel


# ---- sampled null at other orders ------------------------------------------------------


@pytest.mark.parametrize("order", [0.5, 1.0, 3.0])
def test_sampled_null_is_the_mean_over_the_seeded_permutations(order, rng):
    x = random_features(40, 4, rng)
    y = torch.tanh(x @ random_features(4, 12, rng)) + 0.3 * random_features(40, 12, rng)
    out = excess_mutual_information(x, y, order, "cosine", n_permutations=16, seed=7, return_stderr=True)
    gen = torch.Generator().manual_seed(7)
    draws = torch.stack([mutual_information(x, y[torch.randperm(40, generator=gen)], order) for _ in range(16)])
    assert float(out.null) == pytest.approx(float(draws.mean()), abs=1e-10)
    assert float(out.stderr) == pytest.approx(float(draws.std() / 4), abs=1e-10)
    assert float(out.excess) == pytest.approx(float(mutual_information(x, y, order) - draws.mean()), abs=1e-10)
    again = excess_mutual_information(x, y, order, "cosine", n_permutations=16, seed=7)
    assert float(again) == float(out.excess)


def test_sampled_standard_error_matches_the_spread_over_seeds():
    # The excess estimated with different seeds scatters with about the reported standard error.
    gen = torch.Generator().manual_seed(3)
    x = random_features(48, 6, gen)
    y = torch.tanh(x @ random_features(6, 16, gen)) + random_features(48, 16, gen)
    runs = [excess_mutual_information(x, y, 1.0, n_permutations=16, seed=s, return_stderr=True) for s in range(40)]
    spread = float(torch.stack([r.excess for r in runs]).std())
    typical_se = float(torch.stack([r.stderr for r in runs]).mean())
    assert 0.6 < spread / typical_se < 1.6


# ---- acceptance: independent data give ~0, planted dependence gives clearly > 0 ----------

N, D_R, D_Z = 512, 256, 1024


def _clustered(generator, d, labels, spread=0.5):
    centres = torch.randn(10, d, generator=generator)
    return centres[labels] + spread * torch.randn(len(labels), d, generator=generator)


@functools.cache
def _datasets():
    gen = torch.Generator().manual_seed(2024)
    iso = (torch.randn(N, D_R, generator=gen), torch.randn(N, D_Z, generator=gen))
    labels_r, labels_z = torch.randint(0, 10, (N,), generator=gen), torch.randint(0, 10, (N,), generator=gen)
    r = _clustered(gen, D_R, labels_r)
    clustered = (r, _clustered(gen, D_Z, labels_z))
    w = torch.randn(D_R, D_Z, generator=gen) / math.sqrt(D_R)
    planted = (r, torch.tanh(r @ w) + 0.1 * torch.randn(N, D_Z, generator=gen))
    return {"isotropic": iso, "clustered": clustered, "planted": planted}


@functools.cache
def _excess(kind: str, kernel: str, order: float) -> ExcessMI:
    # Cached: the planted-dependence test compares against the clustered independent case.
    return excess_mutual_information(*_datasets()[kind], order, kernel, return_stderr=True)


@pytest.mark.parametrize("order", [2.0, 1.0])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kind", ["isotropic", "clustered"])
def test_independent_data_give_about_zero(kind, kernel, order):
    out = _excess(kind, kernel, order)
    assert abs(float(out.excess)) < 0.05
    if kind == "isotropic" and kernel != "gaussian":
        assert float(out.mutual_information) > 4.0  # while the raw I reads several nats


# Thresholds for Z = tanh(R W) + noise on clustered R. With the median-heuristic width the
# Gaussian kernel in 256/1024 dimensions is nearly constant (all distances sit near the
# median), so its entropies are themselves small (H_2(R) = 0.89 nats against 2.67 for cosine)
# and its order-2 excess measures about 0.1 nats; the order-1 excess about 0.5. Its thresholds
# are set at half those values: still more than 40x the largest |excess| of the independent cases.
PLANTED_THRESHOLD = {("cosine", 2.0): 0.5, ("cosine", 1.0): 0.5, ("linear", 2.0): 0.5, ("linear", 1.0): 0.5}
PLANTED_THRESHOLD.update({("gaussian", 2.0): 0.05, ("gaussian", 1.0): 0.25})


@pytest.mark.parametrize("order", [2.0, 1.0])
@pytest.mark.parametrize("kernel", KERNELS)
def test_planted_dependence_gives_clearly_positive_excess(kernel, order):
    out = _excess("planted", kernel, order)
    assert float(out.excess) > PLANTED_THRESHOLD[kernel, order]
    assert float(out.excess) > 20 * float(out.stderr)
    assert float(out.excess) > 10 * abs(float(_excess("clustered", kernel, order).excess))


# ---- interface -------------------------------------------------------------------------


def test_return_forms_normalize_and_deprecated_alpha(rng):
    x = random_features(30, 4, rng)
    y = random_features(30, 6, rng) + x @ torch.ones(4, 6, dtype=torch.float64)
    value = excess_mutual_information(x, y)
    assert isinstance(value, torch.Tensor) and value.dim() == 0
    full = excess_mutual_information(x, y, return_stderr=True)
    assert isinstance(full, ExcessMI)
    assert float(full.excess) == float(value)
    assert float(full.excess) == pytest.approx(float(full.mutual_information - full.null), abs=1e-12)
    scaled = excess_mutual_information(x, y, 1.0, normalize=True, return_stderr=True)
    raw = excess_mutual_information(x, y, 1.0, return_stderr=True)
    for a, b in zip(scaled, raw, strict=True):
        assert float(a) == pytest.approx(float(b) / math.log(30), abs=1e-12)
    with pytest.warns(DeprecationWarning, match="order="):
        assert float(excess_mutual_information(x, y, alpha=2.0)) == float(value)


def test_excess_is_differentiable_at_order_2(rng):
    x = random_features(10, 3, rng).requires_grad_(True)
    y = random_features(10, 4, rng)
    assert torch.autograd.gradcheck(lambda t: excess_mutual_information(t, y, 2.0, "linear"), (x,))
    assert not excess_mutual_information(x.detach(), y).requires_grad


def test_identical_inputs_are_dependent_and_sample_order_is_irrelevant(rng):
    x = random_features(64, 8, rng)
    assert float(excess_mutual_information(x, x)) > 0.3  # 0.52 here; independent data give about 0
    y = torch.relu(x @ random_features(8, 16, rng))
    perm = torch.randperm(64, generator=rng)
    # Exact null at order 2: reordering the samples changes nothing.
    assert float(excess_mutual_information(x[perm], y[perm])) == pytest.approx(
        float(excess_mutual_information(x, y)), abs=1e-9
    )
    # Sampled null at order 1: the same seed now draws other pairings; agreement within the error.
    a = excess_mutual_information(x[perm], y[perm], 1.0, return_stderr=True)
    b = excess_mutual_information(x, y, 1.0, return_stderr=True)
    assert abs(float(a.excess - b.excess)) < 4 * math.hypot(float(a.stderr), float(b.stderr))
    assert float(renyi_entropy(x)) <= math.log(64)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"n_permutations": 1}, ValueError, "n_permutations must be >= 2"),
        ({"order": 0.0}, ValueError, "order must be"),
        ({"kernel": "rbf"}, ValueError, "unknown kernel"),
        ({"order": 1.0, "alpha": 1.0}, TypeError, "both order= and"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message, rng):
    x, y = random_features(10, 3, rng), random_features(10, 4, rng)
    with pytest.raises(error, match=message):
        excess_mutual_information(x, y, **kwargs)
    with pytest.raises(ValueError, match="same number of samples"):
        excess_mutual_information(x, y[:5])
