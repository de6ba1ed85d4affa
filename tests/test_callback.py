"""The probe instrument inside other trainers: a real lightning.Trainer with DynamicsCallback,
its runs read back by load_runs and `adadim analyze`, and the instrument against `adadim train`."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning")

import lightning
import torch
from adadim.analysis import load_runs
from adadim.cli import main
from adadim.dynamics import InstrumentError, MonitorSettings, ProbeInstrument, draw_views
from adadim.training.callbacks import DynamicsCallback, LossTerms, gradient_share_keys
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning_helpers import VICReg, augment, digits, digits_loader, quiet_trainer, vicreg_terms

GAUSSIAN = MonitorSettings(kernel="gaussian")


@pytest.fixture(scope="module")
def data():
    images, labels = digits()
    return images[:512], labels[:512], draw_views(images[:128], augment, seed=0)


def _fit(root, data, epochs, callbacks=(), logger=False, seed=0, module=None, **kwargs):
    images, labels, _ = data
    lightning.seed_everything(seed, verbose=False)
    module = module if module is not None else VICReg()
    trainer = quiet_trainer(root, max_epochs=epochs, callbacks=list(callbacks), logger=logger, **kwargs)
    trainer.fit(module, digits_loader(images, labels))
    return trainer, module


def test_a_lightning_run_with_the_callback_loads_with_every_dynamics_key(tmp_path, data):
    callback = DynamicsCallback(views=data[2], every=3, settings=GAUSSIAN)
    # mode="offline" explicitly: Lightning's offline flag only sets WANDB_MODE, which wandb ignores
    # once an earlier run in this process has set up its settings.
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="peer", mode="offline")
    trainer, _ = _fit(tmp_path, data, 2, [callback], logger)
    last = trainer.global_step  # 2 epochs of 4 batches
    logger.experiment.finish()

    rs = load_runs(tmp_path / "wandb", progress=False, cache_dir=None)
    assert len(rs) == 1, rs.skipped
    measured = rs.history.dropna(subset=["dynamics/H_R"])
    assert measured["trainer/step"].tolist() == [0, 3, 6, last]
    for key in GAUSSIAN.keys():
        assert measured[key].notna().all(), key
    run = rs.runs.iloc[0]
    # One pair of widths for the whole run, fixed at the first measurement.
    assert run["dynamics/sigma_R"] > 0 and run["dynamics/sigma_Z"] > 0
    assert measured["dynamics/sigma_R"].nunique() == 1 and measured["dynamics/sigma_Z"].nunique() == 1
    assert "val_acc" in rs.runs and "train_loss" in rs.history


def test_a_resumed_run_continues_with_the_saved_widths(tmp_path, data):
    first = DynamicsCallback(views=data[2], every=2, settings=GAUSSIAN)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    logger = CSVLogger(str(tmp_path), name="first")
    _fit(tmp_path, data, 1, [first, checkpoints], logger, enable_checkpointing=True)
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    widths, stopped_at = first.instrument.widths, first.instrument.last_step

    resumed = DynamicsCallback(views=data[2], every=2, settings=GAUSSIAN)
    logger2 = CSVLogger(str(tmp_path), name="resumed")
    trainer = quiet_trainer(tmp_path, max_epochs=2, callbacks=[resumed], logger=logger2)
    images, labels, _ = data
    trainer.fit(VICReg(), digits_loader(images, labels), ckpt_path=str(ckpt))
    assert resumed.instrument.widths == widths  # not re-calibrated on the resumed weights
    rs = load_runs(tmp_path, progress=False, cache_dir=None)
    steps = {
        run_id: rs.history.loc[rs.history.run_id == run_id].dropna(subset=["dynamics/H_R"]) for run_id in rs.runs.index
    }
    before, after = steps["first-version_0"], steps["resumed-version_0"]
    assert before["trainer/step"].max() == stopped_at
    assert after["trainer/step"].min() > stopped_at  # continues; the checkpoint's step is not measured twice
    assert set(after["dynamics/sigma_R"]) == {widths[0]}

    # The checkpoint's weights measured with the saved state give the first run's last point.
    state = torch.load(ckpt, weights_only=False)
    module = VICReg()
    module.load_state_dict(state["state_dict"])
    again = ProbeInstrument(*data[2], model=module, settings=GAUSSIAN)
    again.load_state_dict(state["callbacks"]["DynamicsCallback"])
    measured = again.measure()
    assert measured["dynamics/H_R"] == pytest.approx(before["dynamics/H_R"].iloc[-1], rel=1e-5)
    fresh = ProbeInstrument(*data[2], model=module, settings=GAUSSIAN).measure()
    assert fresh["dynamics/H_R"] != pytest.approx(measured["dynamics/H_R"], rel=1e-5)  # widths matter


def test_the_measurement_perturbs_nothing(tmp_path, data):
    # Measured at every step, gradient shares included: the weights still come out the same.
    callback = DynamicsCallback(views=data[2], every=1)
    modules = []
    for expose_terms in (True, False):
        lightning.seed_everything(0, verbose=False)
        modules.append(VICReg(expose_terms=expose_terms))
    _, with_callback = _fit(tmp_path / "a", data, 2, [callback], module=modules[0])
    _, without = _fit(tmp_path / "b", data, 2, [], module=modules[1])
    assert callback.instrument.last_step == 8 and callback._shares_step == 7
    state_a, state_b = with_callback.state_dict(), without.state_dict()
    assert any("running_mean" in k for k in state_a)  # BatchNorm statistics and weights, all compared
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key


def test_the_gradient_shares_of_a_modules_loss_terms_sum_to_one(tmp_path, data):
    callback = DynamicsCallback(views=data[2], every=2)
    lightning.seed_everything(0, verbose=False)
    module = VICReg(expose_terms=True)
    _fit(tmp_path, data, 2, [callback], CSVLogger(str(tmp_path / "logs"), name="shares"), module=module)
    history = load_runs(tmp_path / "logs", progress=False, cache_dir=None).history
    names = ("invariance", "variance", "covariance")
    shares = history.dropna(subset=["adadim/grad_share_invariance"])
    # Measuring steps with a batch after them: the last step (8) has no backward pass.
    assert shares["trainer/step"].tolist() == [0, 2, 4, 6]
    total = sum(shares[f"adadim/grad_share_{name}"] for name in names)
    assert total.tolist() == pytest.approx([1.0] * 4, abs=1e-6)
    for name in names:
        assert (shares[f"adadim/grad_norm_{name}"] > 0).all(), name
        assert shares[f"adadim/grad_share_{name}"].between(0, 1).all(), name
    # Each share is its norm over the summed norms.
    norms = sum(shares[f"adadim/grad_norm_{name}"] for name in names)
    ratio = shares["adadim/grad_norm_variance"] / norms
    assert shares["adadim/grad_share_variance"].tolist() == pytest.approx(ratio.tolist(), rel=1e-5)


def test_the_gradient_shares_match_adadim_trains_own(data):
    from adadim.training.losses.adadim import gradient_shares

    z1, z2 = (torch.randn(16, 8, requires_grad=True) for _ in range(2))
    terms = vicreg_terms(z1, z2)
    values = gradient_share_keys(LossTerms(terms, (z1, z2)))
    norms = {name: torch.tensor(values[f"adadim/grad_norm_{name}"]) for name in terms}
    grads = torch.autograd.grad(terms["covariance"], (z1, z2), retain_graph=True)
    covariance = torch.cat([g.flatten() for g in grads]).norm()
    assert values["adadim/grad_norm_covariance"] == pytest.approx(float(covariance), rel=1e-5)
    theirs = gradient_shares(norms)  # adadim train's shares of the same norms (its own terms at 0)
    for name in terms:
        assert values[f"adadim/grad_share_{name}"] == pytest.approx(float(theirs[name]), rel=1e-6), name
    assert z1.grad is None and z2.grad is None
    with pytest.raises(TypeError, match="must be a LossTerms"):
        gradient_share_keys({"invariance": terms["invariance"]})


def test_the_instrument_leaves_modes_statistics_and_the_rng_as_they_were(data):
    module = VICReg()
    module.train()
    module.projection_head[3].eval()  # a user's own mixed modes come back as they were
    before = {k: v.clone() for k, v in module.state_dict().items()}
    modes = [m.training for m in module.modules()]

    def noisy(x):  # an embed that draws from the global RNG
        r = module.backbone(x) + 0.0 * torch.randn(1)
        return r, module.projection_head(r)

    torch.manual_seed(3)
    ProbeInstrument(*data[2], noisy, model=module, chunk=32).measure()
    draw = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(draw, torch.rand(1))
    assert [m.training for m in module.modules()] == modes
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_the_instrument_measures_what_adadim_train_measures(tmp_path):
    from adadim.training.config import load_config
    from adadim.training.trainer import _dynamics, measure_probe, plan_step, setup, train_step
    from trainer_helpers import tiny_overrides

    run = setup(load_config(None, tiny_overrides(tmp_path, "same", **{"dynamics.kernel": "gaussian"})))
    try:
        for step, batch in enumerate(run.loader):  # a few updates, so BatchNorm holds statistics
            if step == 3:
                break
            train_step(run, batch, step, plan_step(run, step, False))
        ours = _dynamics(run, *measure_probe(run), 3)
        instrument = ProbeInstrument(run.probe.view1, run.probe.view2, model=run.model, settings=run.monitor.settings)
        theirs = instrument.measure()
    finally:
        run.logger.finish("finished")
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        assert theirs[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_bad_embeddings_and_probes_get_one_line_errors(data):
    view1, view2 = data[2]
    with pytest.raises(InstrumentError, match="at least 2 images"):
        ProbeInstrument(view1[:1], view2[:1], embed=lambda x: (x, x))
    with pytest.raises(InstrumentError, match="one shape"):
        ProbeInstrument(view1, view2[:10], embed=lambda x: (x, x))
    wrong = ProbeInstrument(view1, view2, embed=lambda x: (x.flatten(1)[:3], x.flatten(1)))
    with pytest.raises(InstrumentError, match=r"embed returned R of shape \(3, 64\) for 256 inputs at step 7"):
        wrong.measure(7)
    with pytest.raises(InstrumentError, match="pair of tensors"):
        ProbeInstrument(view1, view2, embed=lambda x: x).measure()
    with pytest.raises(InstrumentError, match="no module attributes 'backbone'"):
        ProbeInstrument(view1, view2, model=torch.nn.Linear(3, 3))
    nan = ProbeInstrument(view1, view2, embed=lambda x: (x.flatten(1) * float("nan"), x.flatten(1)))
    with pytest.raises(InstrumentError, match="NaN or Inf"):
        nan.measure()


@pytest.mark.slow
def test_a_csv_run_goes_through_analyze_with_a_key_map(tmp_path, data, capsys):
    for seed in (0, 1):
        callback = DynamicsCallback(views=data[2], every=2)
        _fit(tmp_path, data, 2, [callback], CSVLogger(str(tmp_path / "logs"), name=f"seed{seed}"), seed=seed)
    # Lightning writes the loss and the callback's values as separate lines of one step: the
    # loader merges them, so every measurement (steps 0, 2, 4, 6 and the last, 8) is kept.
    loaded = load_runs(tmp_path / "logs", cache_dir=None, progress=False, keys={"final/lowlabel_top1": "val_acc"})
    measured = loaded.history.dropna(subset=["dynamics/H_R"]).groupby("run_id")["trainer/step"].apply(list)
    assert all(steps == [0, 2, 4, 6, 8] for steps in measured), measured
    keys = tmp_path / "keys.yaml"
    keys.write_text("final/lowlabel_top1: val_acc\ntrain/loss: train_loss\n")
    out = tmp_path / "out"
    code = main(["analyze", str(tmp_path / "logs"), "--out", str(out), "--keys", str(keys), "--no-cache"])
    assert code == 0, capsys.readouterr().err
    assert (out / "report.html").is_file()
    claims = (out / "tables" / "claims.csv").read_text()
    assert "accuracy: val_acc (as final/lowlabel_top1)" in claims
    figures = {p.stem for p in (out / "figures").iterdir()}
    assert any("trajector" in name for name in figures) and any("plane" in name for name in figures), figures
    assert (
        main(["dashboard", "local", str(tmp_path / "logs"), "--out", str(tmp_path / "d.html"), "--keys", str(keys)])
        == 0
    )

    capsys.readouterr()
    keys.write_text("final/lowlabel_top1: test_acc\n")
    assert main(["analyze", str(tmp_path / "logs"), "--out", str(out), "--keys", str(keys), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "the key map names 'test_acc' (as final/lowlabel_top1) but the run has no such key" in err
    assert "Traceback" not in err
