"""Evaluation of the frozen representation R: kNN, weighted kNN, full and low-label probes.

Design notes: docs/training.md, "Design notes: evaluation".
"""

from __future__ import annotations

import hashlib
import statistics

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .models import channels_last


@torch.no_grad()
def extract_features(
    backbone: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    for images, targets in loader:
        features.append(backbone(channels_last(images.to(device, non_blocking=True))).float().flatten(1).cpu())
        labels.append(torch.as_tensor(targets))
    backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)


@torch.no_grad()
def _knn_accuracy(train_x, train_y, test_x, test_y, k: int, temperature: float | None) -> float:
    """Top-1 of cosine kNN: majority vote (ties to the larger summed similarity) when
    temperature is None, else votes weighted by exp(similarity / temperature)."""
    train_n, test_n = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    k = min(k, len(train_x))
    classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for start in range(0, len(test_n), 1024):
        sims, idx = (test_n[start : start + 1024] @ train_n.T).topk(k, dim=1)
        votes = F.one_hot(train_y[idx], classes).float()
        if temperature is None:
            score = votes.sum(dim=1) + 1e-6 * (votes * sims.unsqueeze(-1)).sum(dim=1)
        else:
            score = (votes * (sims / temperature).exp().unsqueeze(-1)).sum(dim=1)
        correct += int((score.argmax(dim=1) == test_y[start : start + 1024]).sum())
    return correct / len(test_y)


def knn_top1(train_x, train_y, test_x, test_y, k: int = 20) -> float:
    return _knn_accuracy(train_x, train_y, test_x, test_y, k, None)


def weighted_knn_top1(train_x, train_y, test_x, test_y, k: int = 200, temperature: float = 0.07) -> float:
    return _knn_accuracy(train_x, train_y, test_x, test_y, k, temperature)


def _standardizer(features: torch.Tensor):
    mean, std = features.mean(0), features.std(0) + 1e-6
    return lambda x: (x - mean) / std


def _fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, epochs: int, seed: int, batch_size: int) -> nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    probe = nn.Linear(x.shape[1], classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe.reset_parameters()
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    steps = epochs * max(1, -(-len(x) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(probe(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return probe


@torch.no_grad()
def _top1(probe: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((probe(x).argmax(1) == y).float().mean())


def lowlabel_draws(labels: torch.Tensor, per_class: int, n_draws: int, seed: int) -> list[torch.Tensor]:
    """`n_draws` index sets with `per_class` random images of every class (all of a class's
    images where it has fewer). Draw d depends only on (labels, per_class, d, seed)."""
    draws = []
    for d in range(n_draws):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + per_class * 7919 + d)
        chosen = []
        for c in torch.unique(labels).tolist():
            members = torch.nonzero(labels == c).flatten()
            chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
        draws.append(torch.cat(chosen).sort().values)
    return draws


def draws_digest(draws: list[torch.Tensor]) -> str:
    """A short fingerprint of a set of draws, to check two runs were scored on the same ones."""
    h = hashlib.sha1()
    for d in draws:
        h.update(d.numpy().astype("int64").tobytes())
    return h.hexdigest()[:12]


def evaluate_splits(features: dict[str, tuple[torch.Tensor, torch.Tensor]], settings, full_probe: bool = True) -> dict:
    """The protocol with its probes fitted on ``features["train"]``, scored on ``"test"`` (keys
    without prefix) and, when present, ``"val"`` (keys prefixed ``val_``)."""
    targets = {"": features["test"], **({"val_": features["val"]} if "val" in features else {})}
    return evaluate_representation(*features["train"], targets, settings, full_probe)


def evaluate_representation(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    settings,
    full_probe: bool = True,
) -> dict[str, float | str]:
    """The evaluation protocol on frozen features, scored on every target split.

    ``targets`` maps a key prefix (``""`` for test, ``"val_"`` for validation) to features and
    labels; ``settings`` is the ``eval`` config section. Keys: ``{prefix}linear_top1`` (full
    probe), ``{prefix}knn_top1``, ``{prefix}knn_weighted_top1``, ``{prefix}lowlabel_top1`` and
    ``_std`` (the first k), per k ``{prefix}lowlabel_top1_k{k}`` and ``_std``, and
    ``lowlabel_draws`` (a digest of the draws).
    """
    classes = int(max([int(train_y.max())] + [int(y.max()) for _, y in targets.values()])) + 1
    standardize = _standardizer(train_x)
    train_s = standardize(train_x)
    targets_s = {name: (standardize(x), y) for name, (x, y) in targets.items()}
    out: dict[str, float | str] = {}
    for name, (x, y) in targets.items():
        out[f"{name}knn_top1"] = knn_top1(train_x, train_y, x, y, settings.knn_k)
        out[f"{name}knn_weighted_top1"] = weighted_knn_top1(
            train_x, train_y, x, y, settings.knn_weighted_k, settings.knn_temperature
        )
    if full_probe:
        probe = _fit_probe(train_s, train_y, classes, settings.final_probe_epochs, settings.seed, 256)
        for name, (x, y) in targets_s.items():
            out[f"{name}linear_top1"] = _top1(probe, x, y)
    all_draws = []
    for i, per_class in enumerate(settings.lowlabel_k):
        draws = lowlabel_draws(train_y, per_class, settings.lowlabel_draws, settings.seed)
        all_draws += draws
        scores: dict[str, list[float]] = {name: [] for name in targets}
        for d, idx in enumerate(draws):
            probe = _fit_probe(train_s[idx], train_y[idx], classes, settings.lowlabel_epochs, settings.seed + d, 256)
            for name, (x, y) in targets_s.items():
                scores[name].append(_top1(probe, x, y))
        for name, values in scores.items():
            mean, std = statistics.fmean(values), statistics.pstdev(values)
            out[f"{name}lowlabel_top1_k{per_class}"], out[f"{name}lowlabel_top1_k{per_class}_std"] = mean, std
            if i == 0:
                out[f"{name}lowlabel_top1"], out[f"{name}lowlabel_top1_std"] = mean, std
    out["lowlabel_draws"] = draws_digest(all_draws)
    return out
