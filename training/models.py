"""Backbones (R) and projector (Z).

- ``small_cnn``: three 3×3 conv-BN-ReLU stages with one 2×2 max-pool and a global average
  pool, for the 8×8 digits; R has 4·width features.
- ``cifar_cnn``: five 3×3 conv-BN-ReLU layers for 32×32 images on a CPU: a stride-2 stem,
  then stages at 16, 8 and 4 px joined by 2×2 max-pools, and a global average pool; R has
  8·width features. The stem's stride quarters the cost of every later layer
  (results/recipe-cifar10-cpu/).
- ``resnet18`` / ``resnet50``: torchvision models with no pretrained weights and the
  classifier removed (R has 512 / 2048 features). ``cifar_stem`` swaps the 7×7 stride-2 stem
  and max-pool for a 3×3 stride-1 conv, the usual recipe for 32×32 images.
- Projector: Linear-BN-ReLU for every hidden width, then a plain Linear to the last width.
- Predictor (method=byol only): the same MLP shape on Z, Linear-BN-ReLU-Linear back to Z's width.
"""

from __future__ import annotations

import torch
from torch import nn


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Image batches in the layout the models run in (4-d tensors only; others pass through)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _conv_block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_block(in_channels, width),
            *_conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            *_conv_block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class CifarCNN(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 24) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_block(in_channels, width, stride=2),
            *_conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            *_conv_block(2 * width, 4 * width),
            *_conv_block(4 * width, 4 * width),
            nn.MaxPool2d(2),
            *_conv_block(4 * width, 8 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def resnet(name: str, in_channels: int = 3, cifar_stem: bool = True) -> nn.Module:
    from torchvision import models

    net = getattr(models, name)(weights=None)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    net.out_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def build_backbone(name: str, in_channels: int, width: int = 32, cifar_stem: bool = True) -> nn.Module:
    if name == "small_cnn":
        return SmallCNN(in_channels, width)
    if name == "cifar_cnn":
        return CifarCNN(in_channels, width)
    if name in ("resnet18", "resnet50"):
        return resnet(name, in_channels, cifar_stem)
    raise ValueError(f"unknown backbone {name!r}")


def projector(in_dim: int, widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths[:-1]:
        layers += [nn.Linear(in_dim, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        in_dim = width
    layers.append(nn.Linear(in_dim, widths[-1]))
    return nn.Sequential(*layers)


def per_view(module: nn.Module, x1: torch.Tensor, x2: torch.Tensor, separate: bool):
    """``module`` on both views: one batch of both (``separate=False``; BatchNorm's statistics
    over both views) or one pass per view (BatchNorm per view)."""
    if separate:
        return module(x1), module(x2)
    out = module(torch.cat([x1, x2]))
    return out[: x1.shape[0]], out[x1.shape[0] :]


class SSLModel(nn.Module):
    """Backbone, projector and the online linear probe in one module (one DDP wrapper).

    ``forward(x1, x2)`` returns R and Z for both views and the probe's logits on the detached
    R of the first view; the probe never sends gradient into the backbone. With
    ``predictor_hidden`` (BYOL's online network) the model also holds a predictor, and
    ``forward(x1, x2, predict=True)`` appends its outputs for both views.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_widths: list[int],
        num_classes: int,
        predictor_hidden: int | None = None,
        separate_views: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.separate_views = separate_views
        out_dim = int(backbone.out_dim)  # type: ignore[arg-type]  # every backbone here sets out_dim
        self.projector = projector(out_dim, list(projector_widths))
        self.probe = nn.Linear(out_dim, num_classes)
        if predictor_hidden is not None:
            out = list(projector_widths)[-1]
            self.predictor = projector(out, [predictor_hidden, out])

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, predict: bool = False):
        r1, r2 = per_view(self.backbone, x1, x2, self.separate_views)
        z1, z2 = per_view(self.projector, r1, r2, self.separate_views)
        logits = self.probe(r1.detach())
        if predict:
            # From the returned views, so that gradients with respect to them (the gradient
            # shares) see the predictor's path.
            return (r1, r2), (z1, z2), logits, per_view(self.predictor, z1, z2, self.separate_views)
        return (r1, r2), (z1, z2), logits


def build_model(cfg, in_channels: int, num_classes: int) -> SSLModel:
    """The run's model from its config: method=byol's online network adds the predictor."""
    backbone = build_backbone(cfg.model.backbone, in_channels, cfg.model.width, cfg.model.cifar_stem)
    hidden = cfg.byol.predictor_hidden if cfg.method == "byol" else None
    separate = cfg.model.view_batches == "separate"
    return SSLModel(backbone, list(cfg.model.projector), num_classes, hidden, separate)
