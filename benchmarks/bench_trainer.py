"""Trainer throughput against a bare PyTorch loop of the same model, loss and data.

The bare loop is what a researcher would write by hand: the same SSLModel, the same two-view
data pipeline and the same AdaDim loss (VICReg + NT-Xent mixed by alpha from erank(Z) every
k steps, online probe included), with no logging, no dynamics, no checkpoints. It reads α where
the trainer's config does (``adadim.erank_source``: the probe set by default, one forward pass
over it every ``adadim.every`` steps), so the ratio is the trainer's overhead and not a
different objective; a second bare loop reads α from the training batch, the cheaper choice,
and is printed beside it. The trainer runs the digits config with its history, checkpoints and
W&B offline files on, at the default dynamics cadence, at α's cadence when that differs, and
with dynamics every step. Per-epoch evaluation and the final probes are off in all of them,
since the bare loop has none; the evaluation's own cost is reported apart. Every loop runs with
the trainer's heap setting (``run.retain_freed_memory``), set once for the process.

Throughput is samples per second over all steps but the first (warm-up), best of
``--repeats`` runs, all in this one process. Each repeat runs the loops back to back, so the
repeat's own ratios (loop / reference bare loop of that repeat) see the same machine state;
their median is printed beside the ratio of the bests, since on a shared CPU the speed drifts
by several percent within seconds. 150 epochs (600 steps) by default: a few rare one-off costs
and the drift weigh less than in a shorter run.

    python benchmarks/bench_trainer.py [--epochs 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from adadim.training.config import load_config
from adadim.training.controller import WeightController
from adadim.training.data import GlobalBatchSampler, build_augmenter, load_splits, train_loader, training_dataset
from adadim.training.losses import nt_xent_loss, vicreg_loss
from adadim.training.models import SSLModel, build_backbone, channels_last
from adadim.training.optim import apply_schedule, build_optimizer, schedule_fraction
from adadim.training.probe import build_probe, probe_size
from adadim.training.runtime import HostReads, retain_freed_memory
from adadim.training.trainer import alpha_from_probe, plan_step, setup, train, train_step


def bare_loop(cfg, alpha_from: str) -> float:
    """``alpha_from="probe"``: α from the effective rank of the probe set's embeddings, as the
    trainer's AdaDim reads it by default (``adadim.erank_source``), one forward pass over the
    probe set every ``adadim.every`` steps; ``"batch"``: from the training batch's own
    embeddings (no extra forward pass)."""
    torch.manual_seed(cfg.run.seed)
    splits = load_splits(cfg.data)
    probe = None
    if alpha_from == "probe":
        size = probe_size(cfg.data.name, cfg.dynamics.probe_size, len(splits.ssl_train))
        probe = build_probe(cfg.data, splits, size, cfg.dynamics.seed)
    model = SSLModel(
        build_backbone(cfg.model.backbone, splits.in_channels, cfg.model.width), list(cfg.model.projector), 10
    ).to(memory_format=torch.channels_last)  # the trainer's layout: this compares overheads, not layouts
    batch = cfg.data.batch_size
    sampler = GlobalBatchSampler(len(splits.ssl_train), batch, cfg.run.seed)
    # The same data path as the trainer: un-augmented batches, views drawn on the device.
    dataset = training_dataset(splits, cfg.data, cfg.run.seed)
    augmenter = build_augmenter(cfg.data, splits, cfg.run.seed, 0, "cpu")
    loader = train_loader(dataset, sampler, cfg.data.num_workers)
    per_epoch = len(splits.ssl_train) // batch
    total = per_epoch * cfg.optim.epochs
    warmup = round(cfg.optim.warmup_epochs * per_epoch)
    optimizer = build_optimizer(model, cfg.optim, batch)
    controller = WeightController("adadim", total, every=cfg.adadim.every)
    times, step = [], 0
    tick = time.perf_counter()
    for epoch in range(cfg.optim.epochs):
        sampler.set_epoch(epoch)
        for x, labels in loader:
            x1, x2 = (channels_last(v) for v in augmenter.views(x, step))
            apply_schedule(optimizer, schedule_fraction(step, total, warmup, 0.0))
            due = controller.needs_embedding(step)
            probe_z = None
            if due and probe is not None:  # before the update, as in the trainer
                views = probe.forward(model, torch.device("cpu"), cfg.dynamics.probe_batch, cfg.dynamics.probe_norm)
                probe_z = views[1][0]
            _, (z1, z2), logits = model(x1, x2)
            weights = controller.step(step, (z1.detach() if probe is None else probe_z) if due else None)
            nt_xent = nt_xent_loss(z1, z2, cfg.loss.temperature)
            loss = (1 - weights.alpha) * vicreg_loss(z1, z2).loss + weights.alpha * nt_xent
            optimizer.zero_grad(set_to_none=True)
            (loss + F.cross_entropy(logits, labels)).backward()
            optimizer.step()
            now = time.perf_counter()
            times.append(now - tick)
            tick, step = now, step + 1
    return batch * (len(times) - 1) / sum(times[1:])


def trainer_run(overrides: list[str], root: Path, run_id: str) -> float:
    cfg = load_config("digits", [*overrides, f"run.root={root}", f"run.id={run_id}"])
    train(cfg)
    rows = [json.loads(line) for line in (root / run_id / "history.jsonl").read_text().splitlines()]
    batch = cfg.data.batch_size
    # Each row's samples/s covers the steps since the previous row; step 0 (warm-up) is left out.
    steps = [r["trainer/step"] for r in rows]
    counts = [b - a for a, b in itertools.pairwise(steps)]
    seconds = sum(n * batch / r["trainer/samples_per_s"] for n, r in zip(counts, rows[1:], strict=True))
    return sum(counts) * batch / seconds


def host_reads_per_quiet_step(overrides: list[str], root: Path, steps: int = 30) -> tuple[float, int]:
    """Host reads (device syncs on a GPU) in the steps that do not log, and how many such steps ran.
    Logging every 10 steps, so 9 in 10 steps are quiet. On CUDA, torch's sync debug mode also
    raises on any synchronizing call inside those steps."""
    cfg = load_config("digits", [*overrides, f"run.root={root}", "run.id=sync-count", "run.log_every=10"])
    run = setup(cfg)
    reads, quiet, step = 0, 0, 0
    cuda = run.device.type == "cuda"
    while step < steps:
        run.sampler.set_epoch(step // run.steps_per_epoch, step % run.steps_per_epoch)
        for batch in run.loader:
            if step >= steps:
                break
            plan = plan_step(run, step, False)
            if not plan.log and cuda:
                torch.cuda.set_sync_debug_mode("error")
            with HostReads() as counter:
                train_step(run, batch, step, plan)
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
            if not plan.log:
                reads, quiet = reads + counter.count, quiet + 1
            step += 1
    run.logger.finish("finished")
    return reads / max(quiet, 1), quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # The trainer's process setting (run.retain_freed_memory), applied before any loop runs so
    # that the bare loop gets it too: this compares the loops, not allocators.
    retained = retain_freed_memory()
    common = [
        f"optim.epochs={args.epochs}",
        "eval.every_epochs=0",
        "eval.final_probe=false",
        "eval.random_init_baseline=false",
        "run.progress=false",
        "wandb.mode=offline",
    ]
    digits = load_config("digits")
    # The reference reads α as the trainer's config does; the other bare loop the other way.
    source = "probe" if alpha_from_probe(digits) else "batch"
    other = "batch" if source == "probe" else "probe"
    where = {"probe": "the probe set", "batch": "the training batch"}
    reference = f"bare loop, α from {where[source]} (as the trainer)"
    loops = {reference: source, f"bare loop, α from {where[other]}": other}
    cadences = {f"trainer, dynamics every {digits.dynamics.every} steps (default)": digits.dynamics.every}
    if digits.adadim.every != digits.dynamics.every:  # measuring at every α read
        cadences[f"trainer, dynamics every {digits.adadim.every} steps (= α's)"] = digits.adadim.every
    cadences["trainer, dynamics every step"] = 1
    results = {name: [] for name in [*loops, *cadences]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for repeat in range(args.repeats):
            for name, alpha_from in loops.items():
                results[name].append(bare_loop(load_config("digits", common), alpha_from))
            for position, (name, every) in enumerate(cadences.items()):
                run_id = f"loop{position}-every{every}-{repeat}"
                results[name].append(trainer_run([*common, f"dynamics.every={every}"], root, run_id))
        per_step, quiet = host_reads_per_quiet_step(common, root)
    threads = torch.get_num_threads()
    heap = "freed heap retained" if retained else "glibc defaults"
    print(
        f"torch {torch.__version__}, {threads} threads, digits config, {args.epochs} epochs, "
        f"best of {args.repeats}, {heap} in every loop"
    )
    bare = max(results[reference])
    print(f"{'loop':<50} {'samples/s':>10} {'ratio to bare':>14} {'paired ratios: median [min, max]':>33}")
    for name, values in results.items():
        best = max(values)
        paired = [v / b for v, b in zip(values, results[reference], strict=True)]
        spread = f"{statistics.median(paired):.3f} [{min(paired):.3f}, {max(paired):.3f}]"
        print(f"{name:<50} {best:>10.0f} {best / bare:>14.3f} {spread:>33}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"host reads per non-logging step ({device}, {quiet} steps, run.log_every=10): {per_step:.1f}")


if __name__ == "__main__":
    main()
