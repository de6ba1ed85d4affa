"""method=byol: the loss against an independent reference, the EMA target, τ's schedule, and a
short run that logs what every method logs."""

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from adadim.cli import main
from adadim.dynamics.keys import is_registered
from adadim.training.byol import BYOLTarget, byol_objective, tau_at
from adadim.training.config import load_config
from adadim.training.losses.adadim import ObjectiveSettings
from adadim.training.losses.byol import byol_loss
from adadim.training.models import SmallCNN, SSLModel
from adadim.training.trainer import train
from trainer_helpers import history, tiny_overrides


def _solo_learn_byol(p, z):
    """solo-learn's / stable-pretraining's byol_loss_func (simplified=True)."""
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()


def test_loss_matches_the_reference_formula_and_the_normalized_mse():
    gen = torch.Generator().manual_seed(3)
    p1, p2, t1, t2 = (torch.randn(16, 8, generator=gen, dtype=torch.float64) for _ in range(4))
    got = byol_loss(p1, p2, t1, t2)
    reference = _solo_learn_byol(p1, t2) + _solo_learn_byol(p2, t1)
    assert float(got) == pytest.approx(float(reference), rel=1e-6)

    def normalized_mse(a, b):  # Grill et al. eq. 2: the squared distance of unit vectors
        return ((a / a.norm(dim=1, keepdim=True) - b / b.norm(dim=1, keepdim=True)) ** 2).sum(1).mean()

    assert float(got) == pytest.approx(float(normalized_mse(p1, t2) + normalized_mse(p2, t1)), rel=1e-6)


def test_loss_is_zero_for_aligned_and_four_for_opposite_predictions():
    t = torch.randn(10, 6)
    assert float(byol_loss(3 * t, 2 * t, t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(byol_loss(-t, -t, t, t)) == pytest.approx(8.0, abs=1e-5)


def test_loss_sends_no_gradient_to_the_targets():
    p1, p2, t1, t2 = (torch.randn(4, 5, requires_grad=True) for _ in range(4))
    byol_loss(p1, p2, t1, t2).backward()
    assert t1.grad is None and t2.grad is None
    assert p1.grad is not None and p1.grad.abs().sum() > 0


def test_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        byol_loss(torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 6), torch.randn(4, 6))


def test_tau_follows_the_cosine_schedule_from_tau_base_to_one():
    assert tau_at(0, 10, 0.9) == pytest.approx(0.9)
    assert tau_at(5, 10, 0.9) == pytest.approx(0.95)  # 1 - 0.1 * (cos(pi/2) + 1) / 2
    assert tau_at(10, 10, 0.9) == pytest.approx(1.0)
    assert tau_at(2, 10, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi * 0.2) + 1) / 2)
    values = [tau_at(k, 100, 0.99) for k in range(101)]
    assert all(a < b for a, b in pairwise(values))


def _online(seed=0, hidden=16):
    torch.manual_seed(seed)
    return SSLModel(SmallCNN(1, 4), [32, 8], 10, predictor_hidden=hidden)


def test_ema_update_matches_a_hand_computation():
    online = _online()
    target = BYOLTarget(online, tau_base=0.9, total_steps=10)
    start = [p.detach().clone() for p in target.network.parameters()]
    with torch.no_grad():  # the online network moves (as an optimizer step would)
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    target.update(online, step=5)
    online_params = [*online.backbone.parameters(), *online.projector.parameters()]
    for before, after, theta in zip(start, target.network.parameters(), online_params, strict=True):
        assert torch.allclose(after, 0.95 * before + 0.05 * theta, atol=1e-6)
    assert target.tau == pytest.approx(tau_at(6, 10, 0.9))


def test_the_target_receives_no_gradient_and_the_online_network_does():
    online = _online()
    target = BYOLTarget(online, tau_base=0.99, total_steps=10)
    x1, x2 = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    (r1, r2), (z1, z2), _, predictions = online(x1, x2, predict=True)
    terms = byol_objective(target, (x1, x2), predictions, (r1, r2), (z1, z2), ObjectiveSettings(), log_all=True)
    terms.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in target.network.parameters())
    for part in (online.backbone, online.projector, online.predictor):
        assert all(p.grad is not None for p in part.parameters())
    # The other methods' terms are measured for the log, outside the graph.
    assert terms.vicreg is not None and not terms.vicreg.loss.requires_grad
    assert set(terms.weighted) == {"byol"}


@pytest.mark.slow
def test_byol_trains_and_logs_every_key_vicreg_logs(tmp_path):
    byol = train(load_config(None, tiny_overrides(tmp_path, "byol", method="byol", **{"optim.epochs": 1})))
    vicreg = train(load_config(None, tiny_overrides(tmp_path, "vicreg", method="vicreg", **{"optim.epochs": 1})))
    rows, reference = history(tmp_path / "byol"), history(tmp_path / "vicreg")
    keys = set().union(*rows)
    assert set().union(*reference) <= keys
    assert {"train/loss_byol", "train/byol_tau", "adadim/grad_share_byol"} <= keys
    assert all(is_registered(k) for k in keys)
    assert all(r["train/loss"] == r["train/loss_byol"] for r in rows)
    taus = [r["train/byol_tau"] for r in rows]
    assert taus == sorted(taus) and taus[0] > 0.99 - 1e-9
    shares = [r["adadim/grad_share_byol"] for r in rows if "adadim/grad_share_byol" in r]
    assert shares and all(s == pytest.approx(1.0) for s in shares)
    assert math.isfinite(byol["train/loss"]) and math.isfinite(vicreg["train/loss"])
    assert math.isfinite(byol["final/lowlabel_top1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [("byol.tau_base=1.0", "byol.tau_base must be in [0, 1)"), ("byol.predictor_hidden=0", "predictor_hidden")],
)
def test_bad_byol_settings_are_refused_with_exit_2(override, message, tmp_path, capsys):
    assert main(["train", *tiny_overrides(tmp_path, "bad", method="byol"), override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
