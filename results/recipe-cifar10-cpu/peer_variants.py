"""The plain VICReg loop of benchmarks/bench_peer.py, with the trainer's parts swapped in one by one.

For finding what separates the trainer from the plain loop at equal length: a fixed number of
steps at a constant lr 1e-3 (the loop's optimizer), seed ``--seed``, scored by the bench's
protocol on the test split. Each flag swaps one part for the trainer's:

- ``--model trainer``: the trainer's ``SSLModel`` (both views in one batch, the online probe's
  head) instead of backbone + projector called per view;
- ``--opt trainer``: ``build_optimizer`` (fused AdamW, no weight decay on biases and norms, the
  probe's own group) instead of ``AdamW(model.parameters())``;
- ``--order trainer``: the trainer's ``GlobalBatchSampler`` permutation per epoch instead of
  ``torch.randperm`` from the global RNG (the order the bench's loop drew before it was paired);
- ``--probe``: the online probe's cross-entropy added to the loss. The probe sees R detached,
  so this cannot change the backbone; it is there to make the loop the trainer's step for step.
  (With ``--model peer --opt trainer`` the probe's head is not in the optimizer and stays at its
  initial weights; with ``--model trainer --opt peer`` it trains at the loop's lr.)

With every flag on, the first copy of this script scored the same as ``adadim train --config
cifar10-cpu method=vicreg optim.lr=1e-3 optim.warmup_epochs=0 optim.min_lr_fraction=1.0
optim.max_steps=996`` at seed 0, to the two decimals reported (results/recipe-cifar10-cpu).

    python results/recipe-cifar10-cpu/peer_variants.py --model trainer --opt trainer \
        --order trainer --probe -- data.root=DATA
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from adadim.training.config import load_config
from adadim.training.data import GlobalBatchSampler, build_augmenter, in_memory_images, load_splits
from adadim.training.models import build_backbone, build_model, projector
from adadim.training.optim import apply_schedule, build_optimizer
from adadim.training.runtime import retain_freed_memory
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_peer import require_lightly, score  # the bench's own scoring

KEYS = ("lowlabel_top1", "knn_top1", "linear_top1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for part in ("model", "opt", "order"):
        parser.add_argument(f"--{part}", choices=["peer", "trainer"], default="peer")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=996)
    parser.add_argument("overrides", nargs="*", help="key=value overrides (data.root=...)")
    args = parser.parse_args()
    retain_freed_memory()
    cfg = load_config("cifar10-cpu", ["method=vicreg", "optim.lr=1e-3", "wandb.mode=disabled", *args.overrides])
    torch.manual_seed(args.seed)
    splits = load_splits(cfg.data)
    memory = in_memory_images(splits.ssl_train)
    assert memory is not None, "cifar10-cpu's images are held in memory (the image cache)"
    images, labels = memory[0][memory[2]], memory[1][memory[2]]
    augmenter = build_augmenter(cfg.data, splits, args.seed, 0, "cpu")

    torch.manual_seed(args.seed)  # the same initial weights in every variant
    if args.model == "trainer":
        model = build_model(cfg, splits.in_channels, splits.num_classes)
        backbone, forward = model.backbone, lambda x1, x2: model(x1, x2)[1:]
    else:
        backbone = build_backbone(cfg.model.backbone, splits.in_channels, cfg.model.width, cfg.model.cifar_stem)
        head = projector(backbone.out_dim, list(cfg.model.projector))
        model = nn.Sequential(backbone, head)
        probe = nn.Linear(backbone.out_dim, splits.num_classes)

        def forward(x1, x2):
            r1 = backbone(x1)
            return (head(r1), model(x2)), probe(r1.detach())

    model = model.to(memory_format=torch.channels_last)
    if args.opt == "trainer":
        optimizer = build_optimizer(model, cfg.optim, cfg.data.batch_size)
        apply_schedule(optimizer, 1.0)  # constant lr
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        if args.probe and args.model == "peer":
            optimizer.add_param_group({"params": probe.parameters(), "lr": 0.1, "weight_decay": 0.0})

    loss_fn = require_lightly()()
    sampler = GlobalBatchSampler(len(images), cfg.data.batch_size, args.seed)
    model.train()
    step, epoch, started = 0, 0, time.perf_counter()
    while step < args.steps:
        if args.order == "trainer":
            sampler.set_epoch(epoch)
            batches = [torch.tensor(b) for b in sampler]
        else:
            order = torch.randperm(len(images))
            size = cfg.data.batch_size
            batches = [order[s : s + size] for s in range(0, len(order) - size + 1, size)]
        epoch += 1
        for indices in batches[: args.steps - step]:
            x1, x2 = augmenter.views(images[indices], step)
            (z1, z2), logits = forward(x1, x2)
            loss = loss_fn(z1, z2)
            if args.probe:
                loss = loss + F.cross_entropy(logits.float(), labels[indices])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    seconds = time.perf_counter() - started
    scores = score(backbone.eval(), cfg, splits)
    print(
        json.dumps({"args": vars(args), **{k: round(100 * scores[k], 2) for k in KEYS}, "seconds": round(seconds, 1)})
    )


if __name__ == "__main__":
    main()
