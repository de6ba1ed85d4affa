"""model.view_batches: joint puts both views through the network as one batch (BatchNorm's
statistics over both), separate passes each view on its own (BatchNorm per view); the BYOL
target batches the views the way its online network does."""

import math

import pytest
import torch
from adadim.cli import main
from adadim.dynamics.keys import is_registered
from adadim.training.byol import BYOLTarget
from adadim.training.config import load_config
from adadim.training.models import SmallCNN, SSLModel, build_model
from adadim.training.trainer import train
from trainer_helpers import history, tiny_overrides


def _model(separate: bool, hidden: int | None = None) -> SSLModel:
    torch.manual_seed(0)
    return SSLModel(SmallCNN(1, 4), [32, 8], 10, predictor_hidden=hidden, separate_views=separate).train()


def _views():
    torch.manual_seed(1)
    return torch.randn(16, 1, 8, 8), 3.0 * torch.randn(16, 1, 8, 8) + 2.0


@pytest.mark.parametrize("separate", [False, True])
def test_in_training_the_first_views_outputs_depend_on_the_second_view_only_when_joint(separate):
    model = _model(separate, hidden=16)
    x1, x2 = _views()
    with torch.no_grad():
        (r_a, _), (z_a, _), _, (p_a, _) = model(x1, torch.zeros_like(x2), predict=True)
        (r_b, _), (z_b, _), _, (p_b, _) = model(x1, x2, predict=True)
    same = [torch.allclose(a, b, atol=1e-6) for a, b in ((r_a, r_b), (z_a, z_b), (p_a, p_b))]
    assert same == [separate] * 3


def test_separate_views_equal_one_pass_per_view():
    model = _model(True)
    x1, x2 = _views()
    with torch.no_grad():
        (r1, r2), (z1, z2), _ = model(x1, x2)
        assert torch.allclose(r1, model.backbone(x1)) and torch.allclose(r2, model.backbone(x2))
        assert torch.allclose(z1, model.projector(model.backbone(x1)))
        assert torch.allclose(z2, model.projector(model.backbone(x2)))


@pytest.mark.parametrize("separate", [False, True])
def test_the_byol_target_batches_the_views_as_its_online_network_does(separate):
    online = _model(separate, hidden=16)
    target = BYOLTarget(online, tau_base=0.99, total_steps=10)
    x1, x2 = _views()
    with torch.no_grad():
        t1, _ = target.project(x1, x2)
        _, (z1, _), _ = online(x1, x2)
    # Before any update the target is a copy of the online network: same batching, same output.
    assert torch.allclose(t1, z1, atol=1e-6)
    with torch.no_grad():
        alone, _ = target.project(x1, torch.zeros_like(x2))
    assert torch.allclose(t1, alone, atol=1e-6) == separate


def test_the_config_key_reaches_the_model(tmp_path):
    joint = build_model(load_config(None, tiny_overrides(tmp_path, "a")), 1, 10)
    separate = build_model(load_config(None, [*tiny_overrides(tmp_path, "b"), "model.view_batches=separate"]), 1, 10)
    assert (joint.separate_views, separate.separate_views) == (False, True)


def test_a_bad_value_is_refused_in_one_line(tmp_path, capsys):
    assert main(["train", *tiny_overrides(tmp_path, "bad"), "model.view_batches=both"]) == 2
    err = capsys.readouterr().err
    assert "model.view_batches must be joint or separate" in err and len(err.strip().splitlines()) == 1


def test_byol_trains_with_separate_views_and_the_choice_changes_the_run(tmp_path):
    summaries = {}
    for mode in ("joint", "separate"):
        overrides = tiny_overrides(tmp_path, mode, method="byol", **{"model.view_batches": mode, "optim.epochs": 1})
        summaries[mode] = train(load_config(None, overrides))
    rows = history(tmp_path / "separate")
    assert all(is_registered(k) for r in rows for k in r)
    assert any("adadim/grad_share_byol" in r for r in rows)
    assert math.isfinite(summaries["separate"]["train/loss"])
    # Same seed and data: only the batching of the views differs, and it changes the training.
    assert summaries["separate"]["train/loss"] != summaries["joint"]["train/loss"]
