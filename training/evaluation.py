"""Evaluation of the frozen representation R: kNN and linear probes.

- kNN top-1: cosine similarity to the labelled training features, majority vote over the
  k nearest (ties go to the class with the larger summed similarity).
- Linear probe: a linear classifier on standardized frozen features (mean and std from the
  training features), trained with AdamW (lr 1e-2, weight decay 1e-4, batch 256, cosine
  schedule) for a fixed number of epochs under its own seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def extract_features(
    backbone: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    for images, targets in loader:
        features.append(backbone(images.to(device, non_blocking=True)).float().flatten(1).cpu())
        labels.append(torch.as_tensor(targets))
    backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)


@torch.no_grad()
def knn_top1(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, k: int = 20
) -> float:
    train_n, test_n = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    k = min(k, len(train_x))
    classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for start in range(0, len(test_n), 1024):
        sims, idx = (test_n[start : start + 1024] @ train_n.T).topk(k, dim=1)
        votes = F.one_hot(train_y[idx], classes).float()
        score = votes.sum(dim=1) + 1e-6 * (votes * sims.unsqueeze(-1)).sum(dim=1)
        correct += int((score.argmax(dim=1) == test_y[start : start + 1024]).sum())
    return correct / len(test_y)


def linear_probe_top1(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    epochs: int = 100,
    seed: int = 0,
    batch_size: int = 256,
) -> float:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    generator = torch.Generator().manual_seed(seed)
    probe = nn.Linear(train_x.shape[1], classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe.reset_parameters()
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    steps = epochs * max(1, -(-len(train_x) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(probe(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        return float((probe(test_x).argmax(1) == test_y).float().mean())
