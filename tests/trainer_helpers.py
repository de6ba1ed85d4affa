"""Small, fast trainer configurations for the tests."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"trainer/samples_per_s"}


def tiny_overrides(root: Path, run_id: str, **extra) -> list[str]:
    values = {
        "data.name": "synthetic",
        "data.synthetic_samples": 256,
        "data.batch_size": 32,
        "model.width": 8,
        "model.projector": "[64,32]",
        "optim.epochs": 3,
        "optim.warmup_epochs": 1,
        "optim.lr": 0.5,
        "dynamics.every": 2,
        "adadim.every": 3,
        "eval.final_probe_epochs": 5,
        "eval.lowlabel_epochs": 20,
        "eval.lowlabel_draws": 2,
        "run.checkpoint_every_steps": 4,
        "run.log_every": 1,
        "run.progress": "false",
        "run.root": str(root),
        "run.id": run_id,
        "wandb.mode": "disabled",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def untimed(rows: list[dict]) -> list[dict]:
    """History rows without their wall-clock keys, which differ between identical runs."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "adadim.training.cli", *args]


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO) + os.pathsep + out.get("PYTHONPATH", "")
    # An in-process W&B run of this test session exports its service's address; a child that
    # inherited it would share that service (and its run ids) instead of starting its own.
    for key in [k for k in out if k.startswith("WANDB_SERVICE") or k == "WANDB__SERVICE"]:
        out.pop(key)
    out.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps_per_epoch(overrides: list[str]) -> int:
    from adadim.training.config import load_config
    from adadim.training.data import load_splits

    cfg = load_config(None, overrides)
    return len(load_splits(cfg.data).ssl_train) // cfg.data.batch_size


def wait_for(condition, timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll ``condition()`` until it holds; fail clearly when ``timeout`` seconds pass first."""
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def history_rows(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


# A CIFAR-10 JPEG archive (test.tar.gz holding test/<class>/*.jpg): ADADIM_CIFAR10_JPEG, or the
# data folder the development machines keep beside the checkout.
CIFAR_JPEG = Path(os.environ.get("ADADIM_CIFAR10_JPEG", REPO.parent / "shared/data/cifar10-jpeg")) / "test.tar.gz"


def cifar_jpeg_folder(root: Path, n_train: int, n_val: int) -> Path:
    """An image folder of the archive's first n_train (train/) and next n_val (val/) JPEGs per class."""
    import tarfile

    counts: dict = {}
    with tarfile.open(CIFAR_JPEG) as archive:
        for member in archive:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3:
                continue
            n = counts[parts[1]] = counts.get(parts[1], 0) + 1
            if n <= n_train + n_val:
                target = root / ("train" if n <= n_train else "val") / parts[1] / parts[2]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
    return root


def kill_after_rows_then_resume(args: list[str], history_file: Path, rows: int = 40, timeout: float = 120):
    """Start ``args`` (an `adadim train` command line), SIGKILL it once ``history_file`` holds
    ``rows`` rows, then run the same command to the end; returns the resumed process."""
    import signal
    import subprocess

    proc = subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(
        lambda: proc.poll() is not None or history_rows(history_file) >= rows, timeout, f"{rows} rows before the kill"
    )
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return subprocess.run(args, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
