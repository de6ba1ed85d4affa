"""The monitor's row-block fast path gives the numbers of the full N×N computation."""

from __future__ import annotations

import pytest
import torch
from adadim.dynamics import DynamicsMonitor, MonitorSettings
from adadim.dynamics.entropy import information_terms
from adadim.dynamics.geometry import uniformity
from adadim.dynamics.gram_blocks import blocked_order2_terms
from adadim.dynamics.instrument import INSTRUMENT_METRICS
from adadim.dynamics.kernels import feature_map

KEYS = ("entropy_x", "entropy_y", "joint_entropy", "mutual_information", "null_mutual_information")


@pytest.mark.parametrize("kernel", ["cosine", "linear"])
@pytest.mark.parametrize(("n", "block"), [(37, 8), (64, 64), (50, 256)])
def test_blocks_of_the_triangle_give_the_full_matrices_terms(rng, kernel, n, block):
    x = torch.randn(n, 12, generator=rng, dtype=torch.float64)
    y = x[:, :5] + 0.3 * torch.randn(n, 5, generator=rng, dtype=torch.float64)
    full = information_terms(x, y, 2.0, kernel, None, null_permutations=2)
    fx, fy = feature_map(x, kernel), feature_map(y, kernel)
    assert fx is not None and fy is not None
    blocked = blocked_order2_terms(fx, fy, 2.0 if kernel == "cosine" else None, block=block)
    for key in (*KEYS, "excess_mutual_information"):
        assert float(blocked[key]) == pytest.approx(float(full[key]), rel=1e-12, abs=1e-12), key
    if kernel == "cosine":
        assert float(blocked["uniformity_y"]) == pytest.approx(float(uniformity(y)), rel=1e-12)


def test_the_monitor_without_the_sampled_baseline_matches_it_with(rng):
    # With the sampled baseline the monitor takes the full matrices; without, the blocks.
    r = [torch.randn(300, 24, generator=rng) for _ in range(2)]
    z = [torch.randn(300, 8, generator=rng) + v[:, :8] for v in r]
    blocked = DynamicsMonitor(MonitorSettings(metrics=INSTRUMENT_METRICS))(r, z)
    full = DynamicsMonitor(MonitorSettings())(r, z)
    for key, value in blocked.items():
        assert value == pytest.approx(full[key], rel=2e-5, abs=2e-6), key
