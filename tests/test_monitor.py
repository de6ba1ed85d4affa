import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from adadim import dynamics
from adadim.dynamics import DEFAULT_METRICS, METRIC_GROUPS, DynamicsMonitor, MonitorSettings
from adadim.dynamics.keys import is_registered, label
from conftest import random_features

CORE_KEYS = {
    "dynamics/H_R",
    "dynamics/H_Z",
    "dynamics/H_RZ",
    "dynamics/I_RZ",
    "dynamics/I_RZ_perm",
    "dynamics/I_RZ_excess",
    "dynamics/ratio_H_I",
    "dynamics/ratio_H_I_raw",
    "dynamics/erank_R",
    "dynamics/erank_Z",
    "dynamics/uniformity_Z",
    "dynamics/alignment_Z",
}


def _batch(generator, b=32, d_r=24, d_z=48, dtype=torch.float32):
    r1 = random_features(b, d_r, generator, dtype)
    r2 = r1 + 0.3 * random_features(b, d_r, generator, dtype)
    w = torch.randn(d_r, d_z, generator=generator, dtype=dtype)
    return (r1, r2), (torch.relu(r1 @ w), torch.relu(r2 @ w))


def test_default_monitor_writes_every_design_key_and_matches_the_functions(rng):
    (r1, r2), (z1, z2) = _batch(rng)
    out = DynamicsMonitor()((r1, r2), (z1, z2))
    assert CORE_KEYS <= set(out)
    assert set(out) == set(MonitorSettings().keys()) | {"dynamics/n_samples"}
    assert all(isinstance(v, float) for v in out.values())
    r, z = torch.cat([r1, r2]), torch.cat([z1, z2])
    assert out["dynamics/n_samples"] == 64
    expected = {
        "dynamics/H_R": dynamics.renyi_entropy(r),
        "dynamics/H_Z": dynamics.renyi_entropy(z),
        "dynamics/H_RZ": dynamics.joint_entropy(r, z),
        "dynamics/I_RZ": dynamics.mutual_information(r, z),
        "dynamics/I_RZ_perm": dynamics.permuted_mutual_information(r, z, n_permutations=4, seed=0),
        "dynamics/I_RZ_excess": dynamics.excess_mutual_information(r, z),
        "dynamics/I_RZ_excess_norm": dynamics.excess_mutual_information(r, z, normalize=True),
        "dynamics/erank_R": dynamics.effective_rank(r),
        "dynamics/erank_Z": dynamics.effective_rank(z),
        "dynamics/uniformity_Z": dynamics.uniformity(z),
        "dynamics/alignment_Z": dynamics.alignment(z1, z2),
        "dynamics/H_R_norm": dynamics.renyi_entropy(r, normalize=True),
        "dynamics/I_RZ_norm": dynamics.mutual_information(r, z, normalize=True),
    }
    for key, value in expected.items():
        assert out[key] == pytest.approx(float(value), abs=1e-5), key
    assert out["dynamics/I_RZ_excess"] > 0.1  # z depends on r
    assert out["dynamics/ratio_H_I"] == pytest.approx(out["dynamics/H_R"] / out["dynamics/I_RZ_excess"], rel=1e-6)
    assert out["dynamics/ratio_H_I_raw"] == pytest.approx(out["dynamics/H_R"] / out["dynamics/I_RZ"], rel=1e-6)


def test_every_key_is_registered_and_the_ratio_is_labelled_by_the_excess(rng):
    (r1, r2), (z1, z2) = _batch(rng, b=64, d_r=40, d_z=60)
    out = DynamicsMonitor(metrics=tuple(METRIC_GROUPS), order=1.0, alpha_req_range=(2, 20))((r1, r2), (z1, z2))
    assert set(out) == set(MonitorSettings(metrics=tuple(METRIC_GROUPS)).keys()) | {"dynamics/n_samples"}
    assert all(is_registered(k) for k in out), sorted(k for k in out if not is_registered(k))
    assert label("dynamics/ratio_H_I") == "H(R) / I_excess(R;Z)"
    assert label("dynamics/ratio_H_I_raw") == "H(R) / I(R;Z)"


def test_ratio_is_nan_when_the_excess_is_not_positive():
    # Independent data: the excess scatters around 0, so some seeds give a negative one.
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        r, z = random_features(24, 3, gen), random_features(24, 5, gen)
        if float(dynamics.excess_mutual_information(r, z)) <= 0:
            break
    else:
        pytest.fail("no seed gave a non-positive excess")
    out = DynamicsMonitor()(r, z)
    assert out["dynamics/I_RZ_excess"] <= 0
    assert math.isnan(out["dynamics/ratio_H_I"])
    assert out["dynamics/ratio_H_I_raw"] == pytest.approx(out["dynamics/H_R"] / out["dynamics/I_RZ"], rel=1e-6)


def test_order_other_than_2_samples_the_null_and_shares_the_baseline_draws(rng):
    (r1, r2), (z1, z2) = _batch(rng, dtype=torch.float64)
    out = DynamicsMonitor(order=1.0, n_permutations=4, null_permutations=16, seed=5)((r1, r2), (z1, z2))
    r, z = torch.cat([r1, r2]), torch.cat([z1, z2])
    excess = dynamics.excess_mutual_information(r, z, 1.0, n_permutations=16, seed=5)
    baseline = dynamics.permuted_mutual_information(r, z, 1.0, n_permutations=4, seed=5)
    assert out["dynamics/I_RZ_excess"] == pytest.approx(float(excess), abs=1e-10)
    assert out["dynamics/I_RZ_perm"] == pytest.approx(float(baseline), abs=1e-10)


def test_settings_choose_metrics_order_and_kernel(rng):
    (r1, r2), (z1, z2) = _batch(rng, dtype=torch.float64)
    monitor = DynamicsMonitor(metrics=("entropy", "effective_rank"), order=1.0, kernel="gaussian", erank_eps=1e-7)
    out = monitor((r1, r2), (z1, z2))
    assert set(out) == {"dynamics/n_samples", "dynamics/H_R", "dynamics/H_Z", "dynamics/erank_R", "dynamics/erank_Z"}
    r, z = torch.cat([r1, r2]), torch.cat([z1, z2])
    assert out["dynamics/H_R"] == pytest.approx(float(dynamics.renyi_entropy(r, 1.0, "gaussian")), abs=1e-10)
    assert out["dynamics/erank_Z"] == pytest.approx(float(dynamics.effective_rank(z, 1e-7)), abs=1e-10)


def test_optional_metrics_alpha_req_and_lidar(rng):
    (r1, r2), (z1, z2) = _batch(rng, b=64, d_r=40, d_z=60, dtype=torch.float64)
    out = DynamicsMonitor(metrics=("alpha_req", "lidar"), alpha_req_range=(2, 30))((r1, r2), (z1, z2))
    exponent, r2_fit = dynamics.alpha_req(torch.cat([r1, r2]), (2, 30))
    assert out["dynamics/alpha_req_R"] == pytest.approx(float(exponent), abs=1e-10)
    assert out["dynamics/alpha_req_R_r2"] == pytest.approx(float(r2_fit), abs=1e-10)
    assert out["dynamics/lidar_R"] == pytest.approx(float(dynamics.lidar(torch.stack([r1, r2], 1))), rel=1e-9)


def test_single_view_skips_view_metrics_and_bf16_is_measured_in_fp32(rng):
    (r1, _), (z1, _) = _batch(rng)
    out = DynamicsMonitor()(r1.bfloat16(), z1.bfloat16())
    assert "dynamics/alignment_Z" not in out and "dynamics/H_R" in out
    assert math.isfinite(out["dynamics/I_RZ"])


def test_monitor_builds_no_graph_and_flattens_feature_maps(rng):
    r = random_features(16, 2 * 3 * 3, rng, torch.float32).reshape(16, 2, 3, 3).requires_grad_(True)
    z = random_features(16, 8, rng, torch.float32)
    out = DynamicsMonitor(metrics=("entropy",))(r, z)
    assert out["dynamics/H_R"] == pytest.approx(float(dynamics.renyi_entropy(r.detach().flatten(1))), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"metrics": ("entropy", "bogus")}, "unknown dynamics metric"),
        ({"order": 0}, "order must be"),
        ({"null_permutations": 1}, "null_permutations"),
        ({"sigma_r": -1.0}, "sigma_r must be"),
        ({"sigma_z": float("nan")}, "sigma_z must be"),
        ({"kernel": "rbf"}, "unknown kernel"),
        ({"n_permutations": 0}, "n_permutations"),
        ({"erank_eps": -1}, "erank_eps"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MonitorSettings(**kwargs)


def test_deprecated_alpha_setting_is_the_order():
    with pytest.warns(DeprecationWarning, match="MonitorSettings: alpha= is deprecated"):
        settings = MonitorSettings(alpha=1.0)
    assert settings.order == 1.0
    with pytest.raises(TypeError, match="pass order= only"):
        MonitorSettings(order=3.0, alpha=1.0)


# ---- fixed Gaussian widths -------------------------------------------------------------


def test_calibrate_fixes_median_widths_once(rng):
    (r1, r2), (z1, z2) = _batch(rng, dtype=torch.float64)
    monitor = DynamicsMonitor(kernel="gaussian", metrics=("entropy", "mutual_information"))
    assert monitor.settings.widths == (None, None)
    widths = monitor.calibrate((r1, r2), (z1, z2))
    r, z = torch.cat([r1, r2]), torch.cat([z1, z2])
    assert widths == {"sigma_r": dynamics.median_heuristic_sigma(r), "sigma_z": dynamics.median_heuristic_sigma(z)}
    assert monitor.settings.widths == (widths["sigma_r"], widths["sigma_z"])
    # Later measurements of other data use the fixed widths, not their own medians.
    r_new, z_new = 3.0 * r + 1.0, torch.relu(z) + 0.5
    out = monitor(r_new, z_new)
    fixed = (widths["sigma_r"], widths["sigma_z"])
    assert out["dynamics/H_R"] == pytest.approx(
        float(dynamics.renyi_entropy(r_new, 2.0, "gaussian", sigma=widths["sigma_r"])), abs=1e-10
    )
    assert out["dynamics/I_RZ"] == pytest.approx(
        float(dynamics.mutual_information(r_new, z_new, 2.0, "gaussian", sigma=fixed)), abs=1e-10
    )
    assert out["dynamics/H_R"] != pytest.approx(float(dynamics.renyi_entropy(r_new, 2.0, "gaussian")), abs=1e-3)
    # Calibrating again keeps the widths already fixed.
    assert monitor.calibrate(r_new, z_new) == widths


def test_explicit_widths_win_over_calibration(rng):
    (r1, _), (z1, _) = _batch(rng, dtype=torch.float64)
    both = DynamicsMonitor(kernel="gaussian", sigma=2.0)
    assert both.settings.widths == (2.0, 2.0)
    assert both.calibrate(r1, z1) == {"sigma_r": 2.0, "sigma_z": 2.0}
    one = DynamicsMonitor(kernel="gaussian", sigma=2.0, sigma_z=5.0)
    assert one.calibrate(r1, z1) == {"sigma_r": 2.0, "sigma_z": 5.0}
    only_r = DynamicsMonitor(kernel="gaussian", sigma_r=1.5)
    assert only_r.calibrate(r1, z1) == {"sigma_r": 1.5, "sigma_z": dynamics.median_heuristic_sigma(z1)}


def test_bad_batches_are_refused(rng):
    (r1, r2), (z1, z2) = _batch(rng)
    monitor = DynamicsMonitor()
    with pytest.raises(ValueError, match="same samples"):
        monitor((r1, r2), (z1[:10], z2[:10]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        monitor((r1, r2), (z1 * float("nan"), z2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        monitor(r1[:1], z1[:1])
    with pytest.raises(ValueError, match="same shape"):
        monitor((r1, r2[:5]), (z1, z2))


def test_default_groups_are_known():
    assert set(DEFAULT_METRICS) <= set(METRIC_GROUPS)


# ---- torch.distributed: 2 gloo processes equal one process on the global batch ----------


def _distributed_worker(rank, world, init_file, shards, out_path):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        (r1, r2), (z1, z2) = shards[rank]
        out = DynamicsMonitor()((r1, r2), (z1, z2))
        gaussian = DynamicsMonitor(kernel="gaussian", metrics=("entropy",))
        widths = gaussian.calibrate((r1, r2), (z1, z2))
        if rank == 0:
            torch.save((out, widths), out_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path, rng):
    (r1, r2), (z1, z2) = _batch(rng, b=24)
    # Unequal shards exercise the padded gather.
    cut = 10
    shards = [
        ((r1[:cut], r2[:cut]), (z1[:cut], z2[:cut])),
        ((r1[cut:], r2[cut:]), (z1[cut:], z2[cut:])),
    ]
    out_path = tmp_path / "rank0.pt"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), shards, str(out_path)), nprocs=2, join=True)
    distributed, distributed_widths = torch.load(out_path)
    single = DynamicsMonitor()((r1, r2), (z1, z2))
    single_widths = DynamicsMonitor(kernel="gaussian").calibrate((r1, r2), (z1, z2))
    assert distributed_widths == pytest.approx(single_widths, rel=1e-6)
    assert distributed.keys() == single.keys()
    for key in single:
        assert distributed[key] == pytest.approx(single[key], abs=1e-6), key
