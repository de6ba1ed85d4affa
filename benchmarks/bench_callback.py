"""The cost of DynamicsCallback on a Lightning run on the embedded digits.

A user-style VICReg LightningModule (tests/lightning_helpers.py) trains on scikit-learn's 8×8
digits on the CPU, once without the callback and once with it at the default cadence
(every 50 optimizer steps, plus the first and the last step, default metrics) on a probe of
512 images. It
prints both wall times, the time spent inside the callback's measurements, and the overhead
as a ratio of the training time (target <= 5%). The two runs are seeded alike; the callback
perturbs nothing, so they train the same weights.

    python benchmarks/bench_callback.py [--epochs 20] [--probe 512] [--every 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightning
import torch
from adadim.dynamics import draw_views
from adadim.training.callbacks import DynamicsCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lightning_helpers import VICReg, augment, digits, digits_loader, quiet_trainer


class TimedCallback(DynamicsCallback):
    """The callback, with the seconds its measurements take summed."""

    seconds = 0.0
    count = 0

    def _measure(self, trainer, step: int) -> None:
        started = time.perf_counter()
        super()._measure(trainer, step)
        self.seconds += time.perf_counter() - started
        self.count += 1


def fit(root: Path, images, labels, epochs: int, callbacks: list) -> float:
    lightning.seed_everything(0, verbose=False)
    trainer = quiet_trainer(root, max_epochs=epochs, callbacks=callbacks, logger=False)
    started = time.perf_counter()
    trainer.fit(VICReg(), digits_loader(images, labels))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--probe", type=int, default=512, help="probe images")
    parser.add_argument("--every", type=int, default=50, help="the callback's cadence (its default: 50)")
    args = parser.parse_args()
    images, labels = digits()
    views = draw_views(images[: args.probe], augment, seed=0)
    callback = TimedCallback(views=views, every=args.every)
    with tempfile.TemporaryDirectory() as tmp:
        fit(Path(tmp) / "warm", images, labels, 1, [])  # first-call costs out of both timings
        plain = fit(Path(tmp) / "plain", images, labels, args.epochs, [])
        measured = fit(Path(tmp) / "measured", images, labels, args.epochs, [callback])
    steps = args.epochs * (len(images) // 128)
    print(f"torch {torch.__version__}, lightning {lightning.__version__}, {torch.get_num_threads()} threads, CPU")
    print(
        f"VICReg on digits: {args.epochs} epochs, {steps} optimizer steps; "
        f"probe {args.probe} images, every {args.every}"
    )
    print(f"training without the callback {plain:.2f} s, with it {measured:.2f} s")
    print(
        f"{callback.count} measurements took {callback.seconds:.2f} s "
        f"({1e3 * callback.seconds / callback.count:.0f} ms each)"
    )
    print(f"overhead: measurements / training time = {callback.seconds / plain:.3f}x (target <= 0.05)")
    print(f"overhead: (with - without) / without = {(measured - plain) / plain:.3f}x")


if __name__ == "__main__":
    main()
