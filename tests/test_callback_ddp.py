"""DynamicsCallback under DDP: two CPU processes (gloo) on a real lightning.Trainer.

``ddp_spawn`` rather than ``ddp``: Lightning's ``ddp`` launcher starts the other ranks by
re-running the command line, which under pytest would re-run the test session."""

from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("lightning")

import lightning
import torch
from adadim.analysis import load_runs
from adadim.dynamics import ProbeInstrument, draw_views
from adadim.training.callbacks import DynamicsCallback
from lightning.pytorch.loggers import CSVLogger
from lightning_helpers import VICReg, augment, digits, digits_loader, quiet_trainer


@pytest.mark.slow
def test_under_ddp_rank_zero_logs_each_measurement_once_with_the_one_process_numbers(tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch has no gloo backend")
    images, labels = digits()
    images, labels = images[:512], labels[:512]
    views = draw_views(images[:128], augment, seed=0)
    callback = DynamicsCallback(views=views, every=2)
    lightning.seed_everything(0, verbose=False)
    module = VICReg(expose_terms=True)
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=2,
        devices=2,
        strategy="ddp_spawn",
        callbacks=[callback],
        logger=CSVLogger(str(tmp_path / "logs"), name="ddp"),
    )
    started = time.perf_counter()
    trainer.fit(module, digits_loader(images, labels))  # 256 images a rank: 2 steps an epoch
    assert time.perf_counter() - started < 120  # it returns; no rank waits on another

    history = load_runs(tmp_path / "logs", progress=False, cache_dir=None).history
    measured = history.dropna(subset=["dynamics/H_R"])
    assert measured["trainer/step"].tolist() == [0, 2, 4]  # once each: rank 0 alone logs
    alone = ProbeInstrument(*views, model=module).measure()  # see below
    for key in alone:
        assert measured[key].map(math.isfinite).all(), key
    shares = history.dropna(subset=["adadim/grad_share_invariance"])
    assert shares["trainer/step"].tolist() == [0, 2]
    total = sum(shares[f"adadim/grad_share_{n}"] for n in ("invariance", "variance", "covariance"))
    assert total.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)

    # The main process holds rank 0's final weights: one process measuring them gets the last row.
    last = measured.iloc[-1]
    for key, value in alone.items():
        assert last[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
