"""The AdaDim objective: its formula, the sign of the MI term, skipped zero-weight terms,
gradient measurements and gradient balancing."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from adadim.dynamics import mutual_information
from adadim.training.losses import adadim as objective_module
from adadim.training.losses import nt_xent_loss, vicreg_loss
from adadim.training.losses.adadim import ObjectiveSettings, gradient_norms, gradient_shares

SOURCE = Path(objective_module.__file__)


def _views(seed=0, b=24, dr=16, dz=12):
    g = torch.Generator().manual_seed(seed)
    r1, r2 = torch.randn(b, dr, generator=g), torch.randn(b, dr, generator=g)
    w = torch.randn(dr, dz, generator=g)
    z1 = (r1 @ w).requires_grad_()
    z2 = (r2 @ w + 0.1 * torch.randn(b, dz, generator=g)).requires_grad_()
    return (r1, r2), (z1, z2)


def check_formula_and_sign(objective) -> None:
    """What the objective must do; raises AssertionError when it does not."""
    r, z = _views()
    mi = mutual_information(torch.cat(r), torch.cat(z), order=2.0, kernel="cosine")
    vic = vicreg_loss(*z).loss
    nt = nt_xent_loss(*z, 0.2)
    for sign, name in ((1.0, "maximize"), (-1.0, "minimize")):
        settings = ObjectiveSettings(mi_sign=sign)
        terms = objective(r, z, 0.3, 0.05, settings)
        want = 0.7 * vic + 0.3 * nt - sign * 0.05 * mi
        assert torch.allclose(terms.loss, want, atol=1e-6), f"{name}: {terms.loss} != {want}"
        assert torch.allclose(terms.mi, mi, atol=1e-6)
    # Maximizing the MI term must lower the loss as I(R;Z) grows: dL/dI = -beta.
    up = objective(r, z, 0.3, 0.05, ObjectiveSettings(mi_sign=1.0)).loss
    down = objective(r, z, 0.3, 0.05, ObjectiveSettings(mi_sign=-1.0)).loss
    assert torch.allclose(up - down, -2 * 0.05 * mi, atol=2e-3), "maximize must subtract beta * I(R;Z)"


def test_formula_and_mi_sign():
    check_formula_and_sign(objective_module.adadim_objective)


def test_a_flipped_mi_sign_is_caught(tmp_path):
    """Mutation test: a copy of the objective with the MI term's sign flipped fails the checks."""
    text = SOURCE.read_text()
    original = 'weighted["mi"] = -s.mi_sign * beta * mi'
    assert original in text, "the mutation site moved; update this test"
    mutant_path = tmp_path / "adadim_mutant.py"
    mutant_path.write_text(text.replace(original, 'weighted["mi"] = s.mi_sign * beta * mi'))
    spec = importlib.util.spec_from_file_location(
        "adadim.training.losses.adadim_mutant", mutant_path, submodule_search_locations=None
    )
    mutant = importlib.util.module_from_spec(spec)
    mutant.__package__ = "adadim.training.losses"
    sys.modules[spec.name] = mutant
    try:
        spec.loader.exec_module(mutant)
        with pytest.raises(AssertionError):
            check_formula_and_sign(mutant.adadim_objective)
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("alpha,skipped", [(0.0, "nt_xent"), (1.0, "dimension")])
def test_zero_weight_terms_are_not_computed_unless_logged(alpha, skipped):
    r, z = _views()
    terms = objective_module.adadim_objective(r, z, alpha, 0.0)
    assert getattr(terms, skipped) is None and terms.mi is None
    assert set(terms.weighted) == ({"nt_xent"} if alpha == 1.0 else {"dimension"})
    logged = objective_module.adadim_objective(r, z, alpha, 0.0, log_all=True)
    value = getattr(logged, skipped)
    assert value is not None and not value.requires_grad  # logged, never back-propagated
    assert logged.mi is not None and not logged.mi.requires_grad
    assert torch.equal(logged.loss, terms.loss)


def test_barlow_replaces_vicreg_and_vicreg_is_still_logged():
    r, z = _views()
    terms = objective_module.adadim_objective(r, z, 0.0, 0.0, ObjectiveSettings(dimension_loss="barlow"), log_all=True)
    assert terms.vicreg is not None and not terms.vicreg.loss.requires_grad
    assert terms.dimension.requires_grad and not torch.allclose(terms.dimension, terms.vicreg.loss)


def test_bad_weights_are_refused():
    r, z = _views()
    with pytest.raises(ValueError, match="alpha must be in"):
        objective_module.adadim_objective(r, z, 1.5, 0.0)
    with pytest.raises(ValueError, match="beta must be"):
        objective_module.adadim_objective(r, z, 0.5, -1.0)
    with pytest.raises(ValueError, match="mi_sign"):
        ObjectiveSettings(mi_sign=0.0)


def test_gradient_norms_match_autograd_and_leave_grads_alone():
    r, z = _views()
    terms = objective_module.adadim_objective(r, z, 0.4, 0.1)
    norms = gradient_norms(terms, z)
    for name, value in terms.weighted.items():
        grads = torch.autograd.grad(value, z, retain_graph=True)
        want = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        assert norms[name] == pytest.approx(float(want), rel=1e-6)
    assert all(v.grad is None for v in z)
    shares = gradient_shares(norms)
    assert sum(float(v) for v in shares.values()) == pytest.approx(1.0)
    assert set(shares) == {"dimension", "nt_xent", "mi"}


def test_balance_makes_alpha_the_share_of_the_update():
    r, z = _views()
    plain = objective_module.adadim_objective(r, z, 0.5, 0.0)
    raw = gradient_norms(plain, z)
    g_dim, g_nt = float(raw["dimension"]) / 0.5, float(raw["nt_xent"]) / 0.5  # unweighted norms
    assert g_dim / g_nt > 2 or g_nt / g_dim > 2, "the test needs unequal gradient scales"
    for alpha in (0.2, 0.5, 0.8):
        balanced = objective_module.adadim_objective(r, z, alpha, 0.0, balance=(g_dim, g_nt))
        shares = gradient_shares(gradient_norms(balanced, z))
        assert float(shares["nt_xent"]) == pytest.approx(alpha, abs=1e-5)
    # At the ends it is the plain objective.
    for alpha in (0.0, 1.0):
        a = objective_module.adadim_objective(r, z, alpha, 0.0, balance=(g_dim, g_nt)).loss
        b = objective_module.adadim_objective(r, z, alpha, 0.0).loss
        assert torch.allclose(a, b)


def test_a_step_that_does_not_log_reads_nothing_from_the_device(tmp_path):
    from adadim.training.config import load_config
    from adadim.training.runtime import HostReads
    from adadim.training.trainer import plan_step, setup, train_step
    from trainer_helpers import tiny_overrides

    overrides = tiny_overrides(tmp_path, "quiet", **{"run.log_every": 100, "dynamics.every": 4, "adadim.every": 4})
    run = setup(load_config(None, overrides))
    seen = {}
    for step, batch in enumerate(run.loader):
        if step == 5:
            break
        plan = plan_step(run, step, False)
        with HostReads() as reads:
            row, _ = train_step(run, batch, step, plan)
        seen[step] = (plan.log, reads.count, sorted(row))
    run.logger.finish("finished")
    quiet = {s: v for s, v in seen.items() if not v[0]}
    assert set(quiet) == {1, 2, 3}
    assert all(count == 0 and not keys for _, count, keys in quiet.values()), quiet
    assert seen[4][0] and seen[4][1] > 0  # a measuring step reads, as it must
