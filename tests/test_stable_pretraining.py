"""A peer's own method with the callback: stable-pretraining's VICReg module (``spt.Module`` with
its ``vicreg`` forward and ``VICRegLoss``), trained by a real ``lightning.Trainer`` on the
embedded digits, measured by DynamicsCallback through the module's ``backbone`` and
``projector`` attributes. Skipped where stable-pretraining is not installed
(``pip install 'adadim[peers]'``)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("stable_pretraining")

import lightning
import pandas as pd
import stable_pretraining as spt
import torch
from adadim.dynamics import MonitorSettings, draw_views
from adadim.training.callbacks import DynamicsCallback
from lightning.pytorch.loggers import CSVLogger
from lightning_helpers import augment, digits
from stable_pretraining.forward import vicreg
from torch import nn


def _two_views(samples):
    """A batch as stable-pretraining's forward functions take it: a dict of two view dicts."""
    x = torch.stack([s[0] for s in samples])
    y = torch.stack([s[1] for s in samples])
    return {"views": [{"image": augment(x), "label": y}, {"image": augment(x), "label": y}]}


def test_stable_pretrainings_vicreg_module_is_measured_by_the_callback(tmp_path):
    images, labels = digits()
    lightning.seed_everything(0, verbose=False)
    backbone = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )
    module = spt.Module(
        forward=vicreg,
        backbone=backbone,
        projector=nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32)),
        vicreg_loss=spt.losses.VICRegLoss(),
        optim={"optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9}},
    )
    settings = MonitorSettings()
    callback = DynamicsCallback(views=draw_views(images[:128], augment, seed=0), every=3, settings=settings)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images[:512], labels[:512]), batch_size=128, shuffle=True, collate_fn=_two_views
    )
    trainer = lightning.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=CSVLogger(str(tmp_path), name="spt"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, loader)

    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    measured = metrics.dropna(subset=["dynamics/H_R"])
    assert measured["trainer/step"].tolist() == [0, 3, 6, trainer.global_step]  # 2 epochs of 4 batches
    for key in settings.keys():
        assert key in measured, key
        assert all(math.isfinite(v) for v in measured[key]), key
    assert measured["dynamics/H_R"].nunique() > 1  # the representation moved as spt trained it
