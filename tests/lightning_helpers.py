"""A user-style Lightning VICReg module on the embedded digits, written the way lightly's
examples write one (backbone, projection_head, a loss, SGD), for the callback's tests and
benchmark."""

from __future__ import annotations

import lightning
import torch
import torch.nn.functional as F
from adadim.training.callbacks import LossTerms
from torch import nn


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits: images N×1×8×8 in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(data.target)


def augment(x: torch.Tensor) -> torch.Tensor:
    """A random shift and noise, drawn from the global RNG (as most user code does)."""
    shift = torch.randint(-1, 2, (2,))
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(-2, -1))
    return x + 0.1 * torch.randn_like(x)


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor) -> dict[str, torch.Tensor]:
    """VICReg (Bardes, Ponce & LeCun, ICLR 2022): its weighted invariance, variance and
    covariance terms; the loss is their sum."""
    invariance = F.mse_loss(z1, z2)
    variance, covariance = 0.0, 0.0
    for z in (z1, z2):
        z = z - z.mean(dim=0)
        std = torch.sqrt(z.var(dim=0) + 1e-4)
        variance = variance + F.relu(1 - std).mean()
        cov = (z.T @ z) / (len(z) - 1)
        off = cov - torch.diag(torch.diag(cov))
        covariance = covariance + off.pow(2).sum() / z.shape[1]
    return {"invariance": 25 * invariance, "variance": 25 * variance, "covariance": covariance}


class VICReg(lightning.LightningModule):
    """``expose_terms``: set ``loss_terms`` for DynamicsCallback's gradient shares."""

    def __init__(self, width: int = 16, out: int = 32, expose_terms: bool = False) -> None:
        super().__init__()
        self.expose_terms = expose_terms
        self.backbone = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.projection_head = nn.Sequential(
            nn.Linear(4 * width, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, out)
        )

    def forward(self, x):
        return self.projection_head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, labels = batch
        z1, z2 = self(augment(x)), self(augment(x))
        terms = vicreg_terms(z1, z2)
        loss = terms["invariance"] + terms["variance"] + terms["covariance"]
        if self.expose_terms:
            self.loss_terms = LossTerms(terms, (z1, z2))
        self.log("train_loss", loss)
        with torch.no_grad():  # a user's own accuracy: nearest class mean of the batch's R
            r = F.normalize(self.backbone(x), dim=1)
            means = torch.stack([r[labels == c].mean(0) if (labels == c).any() else r[0] * 0 for c in range(10)])
            self.log("val_acc", (r @ means.T).argmax(1).eq(labels).float().mean(), on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def digits_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128) -> torch.utils.data.DataLoader:
    dataset = torch.utils.data.TensorDataset(images, labels)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)


def quiet_trainer(root, **kwargs) -> lightning.Trainer:
    """A CPU Trainer with no progress bar, summary or checkpoints unless asked."""
    settings = {
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": str(root),
        "log_every_n_steps": 1,
    }
    settings.update(kwargs)
    return lightning.Trainer(**settings)
