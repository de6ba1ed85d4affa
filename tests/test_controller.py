import math

import pytest
import torch
from adadim.training.controller import WeightController


def test_fixed_methods():
    assert WeightController("vicreg", 10).step(3).alpha == 0.0
    assert WeightController("barlow", 10).step(3).alpha == 0.0
    assert WeightController("simclr", 10).step(3).alpha == 1.0
    w = WeightController("fixed", 10, alpha=0.3, gamma=0.5).step(7)
    assert (w.alpha, w.beta) == (0.3, pytest.approx(0.15))


def test_linear_and_cosine_schedules():
    lin = WeightController("linear", 11, alpha_start=0.2, alpha_end=0.8)
    assert lin.step(0).alpha == pytest.approx(0.2)
    assert lin.step(5).alpha == pytest.approx(0.5)
    assert lin.step(10).alpha == pytest.approx(0.8)
    cos = WeightController("cosine", 11, alpha_start=0.0, alpha_end=1.0)
    assert cos.step(5).alpha == pytest.approx(0.5)
    assert cos.step(2).alpha == pytest.approx(0.5 * (1 - math.cos(math.pi * 0.2)))


def test_adadim_alpha_is_normalized_effective_rank():
    z_full = torch.eye(8)  # erank 8 = min(N, D)
    z_rank1 = torch.ones(8, 16)  # erank 1
    c = WeightController("adadim", 100, gamma=0.1, every=5)
    w = c.step(0, z_full)
    assert w.alpha == pytest.approx(1.0) and w.beta == pytest.approx(0.1)
    # Between updates alpha holds, and Z is not needed.
    assert c.step(3).alpha == pytest.approx(1.0)
    assert not c.needs_embedding(3) and c.needs_embedding(5)
    assert c.step(5, z_rank1).alpha == pytest.approx(1 / 8)
    inverted = WeightController("adadim", 100, invert=True)
    assert inverted.step(0, z_rank1).alpha == pytest.approx(7 / 8)
    log_norm = WeightController("adadim", 100, normalization="log")
    assert log_norm.step(0, torch.eye(4)[:, :4].repeat(1, 2)).alpha == pytest.approx(1.0)


def test_adadim_ema_and_clipping():
    c = WeightController("adadim", 100, every=1, ema=0.9, alpha_max=0.95)
    assert c.step(0, torch.eye(8)).alpha == pytest.approx(0.95)
    assert c.step(1, torch.ones(8, 8)).alpha == pytest.approx(0.9 * 0.95 + 0.1 * 0.125)
    state = c.state_dict()
    restored = WeightController("adadim", 100, every=1, ema=0.9)
    restored.load_state_dict(state)
    assert restored.current == c.current


def test_controller_refuses_unknown_choices():
    with pytest.raises(ValueError, match="unknown method"):
        WeightController("moco", 10)
    with pytest.raises(ValueError, match="normalization"):
        WeightController("adadim", 10, normalization="sqrt")
    with pytest.raises(ValueError, match="needs this step's embedding"):
        WeightController("adadim", 10).step(0)
