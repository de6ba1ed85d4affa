"""The image path of the cifar10-cpu config: the one-time decode, the data share of a training
step, and a whole step against the per-image folder path.

``--root`` is CIFAR-10 as class folders (``train/<class>/*.jpg`` and ``test/<class>/*.jpg``,
e.g. the extracted CIFAR-10 JPEGs). In one process:

1. Cold decode: ``load_splits`` of the cifar10-cpu config into an empty cache directory
   decodes all train and test images once (target: 60,000 JPEGs in <= 60 s; printed as a ratio
   to that target).
2. Warm load: the same call again; the cache's digest checks and memory maps, as a ratio to
   the cold decode.
3. Steps with the cache: ``setup`` and ``train_step`` of the cifar10-cpu config with
   ``method=vicreg``, steps without the probe set, dynamics or α reads (the plain update: the
   smallest step, so the largest data share). The data part of a step is timed on its own:
   the loader's next batch, and the two views drawn and moved by the augmenter. Printed: its
   share of a step (target <= 10%).
4. The same steps with ``data.image_cache=false``: every image decoded and resized one at a
   time by the loader, then the same batched augmentation on the device.
5. The same steps with ``data.image_cache=false data.augment_on=loader``: the folder path as it
   was before the cache and the batched augmentation, every image decoded and both of its views
   drawn one at a time by torchvision's per-sample transforms (the same preset).
Printed: each path's step time as a ratio to the cached step's (target >= 2 against the
per-image path).

    python benchmarks/bench_image_path.py --root DATA [--steps 30] [--warmup 3] [--workers 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from adadim.training.config import load_config
from adadim.training.data import load_splits
from adadim.training.runtime import retain_freed_memory
from adadim.training.trainer import StepPlan, setup, train_step

QUIET = StepPlan(log=False, measure=False, grads=False, probe=False)


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def step_times(overrides: list[str], steps: int, warmup: int) -> dict[str, float]:
    """Median seconds of the data part and of the whole step (data included) over ``steps``."""
    cfg = load_config("cifar10-cpu", overrides)
    run = setup(cfg)
    try:
        batches = iter(run.loader)
        data, whole = [], []
        for step in range(warmup + steps):
            batch, fetch = timed(next, batches)
            views = 0.0
            if run.augmenter is not None:  # else the loader drew the views (augment_on=loader)
                _, views = timed(run.augmenter.views, batch[0].to(run.device), step)
            _, update = timed(train_step, run, batch, step, QUIET)
            if step >= warmup:
                data.append(fetch + views)
                whole.append(fetch + update)
    finally:
        run.lock.release()  # type: ignore[union-attr]
    return {"data": statistics.median(data), "step": statistics.median(whole)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="CIFAR-10 as train/ and test/ class folders")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="data.num_workers for both paths")
    args = parser.parse_args()
    retain_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        base = [
            f"data.root={args.root}",
            f"data.cache_dir={tmp}/cache",
            f"data.num_workers={args.workers}",
            f"run.root={tmp}/runs",
            "run.progress=false",
            "wandb.mode=disabled",
            "dynamics.every=0",
            "method=vicreg",
        ]
        cfg = load_config("cifar10-cpu", base)
        splits, cold = timed(load_splits, cfg.data)
        n = len(splits.labeled_train) + len(splits.test) + (len(splits.val) if splits.val is not None else 0)
        _, warm = timed(load_splits, cfg.data)
        cached = step_times([*base, "run.id=cached"], args.steps, args.warmup)
        per_image = step_times([*base, "run.id=per-image", "data.image_cache=false"], args.steps, args.warmup)
        loader = ["data.image_cache=false", "data.augment_on=loader"]
        per_sample = step_times([*base, "run.id=per-sample", *loader], args.steps, args.warmup)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data.num_workers={args.workers}")
    print(f"cold decode of {n:,} images: {cold:.1f} s, {cold / 60:.3f}x the 60 s target ({n / cold:,.0f} img/s)")
    print(f"warm load from the cache: {warm / cold:.3f}x the cold decode")
    batch = cfg.data.batch_size
    paths = {
        "cached, batched views": cached,
        "per-image decode, batched views": per_image,
        "per-image decode, per-sample views": per_sample,
    }
    for name, times in paths.items():
        print(
            f"{name:<35} {batch / times['step']:>5.0f} img/s; data part {times['data'] / times['step']:.3f} of a step; "
            f"step {times['step'] / cached['step']:.2f}x the cached step"
        )


if __name__ == "__main__":
    main()
