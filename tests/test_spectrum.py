import math

import pytest
import reference as ref
import torch
from adadim.dynamics import alignment, alpha_req, effective_rank, lidar, uniformity, white_noise_effective_rank
from conftest import random_features


@pytest.mark.parametrize("n", [1, 5, 64])
def test_effective_rank_of_identity_is_n(n):
    assert float(effective_rank(torch.eye(n, dtype=torch.float64))) == pytest.approx(n, abs=1e-10)


def test_effective_rank_bounds_and_rank_one():
    assert float(effective_rank(torch.ones(10, 7, dtype=torch.float64))) == pytest.approx(1.0, abs=1e-10)
    x = random_features(50, 30, torch.Generator().manual_seed(0), rank=4)
    e = float(effective_rank(x))
    assert 1.0 <= e <= 4.0 + 1e-8


@pytest.mark.parametrize("shape", [(40, 12), (12, 40)])
@pytest.mark.parametrize("eps", [0.0, 1e-7, 1e-5])
def test_effective_rank_matches_svd_reference(shape, eps, rng):
    x = random_features(*shape, rng)
    assert float(effective_rank(x, eps)) == pytest.approx(ref.effective_rank(x, eps), abs=1e-10)


def test_effective_rank_is_accurate_in_float32_for_fast_decaying_spectra(rng):
    # σ_k = 10^(-k/4): a float32 Gram would lose the tail; the float64 Gram keeps it.
    n, d = 300, 60
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=rng, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=rng, dtype=torch.float64))
    sigma = 10.0 ** (-torch.arange(d, dtype=torch.float64) / 4)
    x = u @ torch.diag(sigma) @ v.T
    assert float(effective_rank(x.float())) == pytest.approx(ref.effective_rank(x), rel=1e-4)


def test_alpha_req_recovers_a_planted_power_law(rng):
    n, d, true_alpha = 400, 150, 1.3
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=rng, dtype=torch.float64))
    u = u - u.mean(dim=0)  # centred columns keep the covariance spectrum exact
    u, _ = torch.linalg.qr(u)
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=rng, dtype=torch.float64))
    lam = torch.arange(1, d + 1, dtype=torch.float64) ** -true_alpha
    x = u @ torch.diag((lam * (n - 1)).sqrt()) @ v.T + 5.0  # the offset is removed by centring
    exponent, r2 = alpha_req(x)
    assert float(exponent) == pytest.approx(true_alpha, abs=1e-8)
    assert float(r2) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("weighted", [True, False])
def test_alpha_req_matches_reference(weighted, rng):
    x = torch.relu(random_features(300, 120, rng))
    exponent, r2 = alpha_req(x, (11, 100), weighted=weighted)
    ref_alpha, ref_r2 = ref.alpha_req(x, 11, 100, weighted=weighted)
    assert float(exponent) == pytest.approx(ref_alpha, abs=1e-8)
    assert float(r2) == pytest.approx(ref_r2, abs=1e-8)


def test_alpha_req_refuses_too_few_ranks(rng):
    with pytest.raises(ValueError, match="at least 3 positive eigenvalues"):
        alpha_req(random_features(50, 8, rng))
    with pytest.raises(ValueError, match="fit_range"):
        alpha_req(random_features(50, 8, rng), (5, 2))


@pytest.mark.parametrize("n,q,d", [(20, 2, 8), (6, 3, 16), (30, 4, 5)])
def test_lidar_matches_definition(n, q, d, rng):
    e = random_features(n * q, d, rng).reshape(n, q, d)
    e = e + 3 * random_features(n, d, rng)[:, None, :]  # sample identity dominates
    assert float(lidar(e)) == pytest.approx(ref.lidar(e), rel=1e-9)
    assert float(lidar(e, delta=1e-2, eps=1e-5)) == pytest.approx(ref.lidar(e, 1e-2, 1e-5), rel=1e-9)


def test_lidar_is_one_when_views_carry_a_single_direction(rng):
    # Class means differ along one direction only: Σ_b has rank one, LiDAR ≈ 1.
    n, q, d = 50, 2, 10
    direction = torch.zeros(d, dtype=torch.float64)
    direction[0] = 1.0
    means = torch.randn(n, 1, generator=rng, dtype=torch.float64) * direction
    e = means[:, None, :] + 0.01 * torch.randn(n, q, d, generator=rng, dtype=torch.float64)
    assert float(lidar(e, eps=0.0)) == pytest.approx(1.0, abs=0.05)


def test_lidar_refuses_bad_shapes(rng):
    with pytest.raises(ValueError, match="n samples, q views, D"):
        lidar(random_features(10, 3, rng))
    with pytest.raises(ValueError, match="at least 2 samples and 2 views"):
        lidar(random_features(10, 3, rng).reshape(10, 1, 3))


def test_uniformity_and_alignment_match_reference(rng):
    z1, z2 = random_features(40, 16, rng), random_features(40, 16, rng)
    for t in (1.0, 2.0, 10.0):
        assert float(uniformity(z1, t)) == pytest.approx(ref.uniformity(z1, t), abs=1e-10)
    for a in (1.0, 2.0):
        assert float(alignment(z1, z2, a)) == pytest.approx(ref.alignment(z1, z2, a), abs=1e-10)
    assert float(alignment(z1, 3.0 * z1)) == pytest.approx(0.0, abs=1e-12)


def test_uniformity_extremes():
    # All samples identical: every distance is 0, uniformity = log 1 = 0 (its maximum).
    assert float(uniformity(torch.ones(8, 3))) == pytest.approx(0.0, abs=1e-6)
    # Antipodal pair: distance² 4, uniformity = -2·4.
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert float(uniformity(z)) == pytest.approx(-8.0, abs=1e-12)
    assert math.isfinite(float(uniformity(z, t=1e4)))


# ---- the effective rank of white noise -------------------------------------------------


@pytest.mark.parametrize("n,d", [(100, 30), (32, 64), (64, 512), (200, 200)])
def test_white_noise_erank_marchenko_pastur_matches_monte_carlo(n, d):
    analytic = white_noise_effective_rank(n, d)
    simulated = white_noise_effective_rank(n, d, method="monte_carlo", draws=8, seed=1)
    assert analytic == pytest.approx(simulated, rel=5e-3)
    # The simulation is itself the mean erank of Gaussian matrices, computed independently here.
    gen = torch.Generator().manual_seed(1)
    direct = sum(ref.effective_rank(torch.randn(n, d, generator=gen, dtype=torch.float64)) for _ in range(8)) / 8
    assert simulated == pytest.approx(direct, rel=1e-10)


def test_white_noise_erank_limits_and_symmetry():
    assert white_noise_effective_rank(50, 80) == white_noise_effective_rank(80, 50)
    assert white_noise_effective_rank(1, 40) == 1.0
    # Square matrices lose about 20% of min(n, d); a much wider one approaches min(n, d).
    square, wide = white_noise_effective_rank(256, 256), white_noise_effective_rank(256, 256 * 400)
    assert 0.75 * 256 < square < 0.85 * 256
    assert 0.995 * 256 < wide < 256
    sizes = [white_noise_effective_rank(64, d) for d in (64, 128, 512, 4096)]
    assert sizes == sorted(sizes)


def test_white_noise_erank_refuses_bad_input():
    with pytest.raises(ValueError, match="n >= 1 and d >= 1"):
        white_noise_effective_rank(0, 5)
    with pytest.raises(ValueError, match="unknown method"):
        white_noise_effective_rank(5, 5, method="exact")
    with pytest.raises(ValueError, match="draws"):
        white_noise_effective_rank(5, 5, method="monte_carlo", draws=0)
