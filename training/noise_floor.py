"""`adadim noise-floor --run DIR`: how much the dynamics move when the network does not.

The probe set fixes the images and their views, so a frozen network gives flat curves. What
remains uncertain is how much a measurement depends on *which* views were drawn. This command
loads a run's newest checkpoint, draws the probe set's two views afresh K times (new seeds each
repeat, same images), measures the monitor on each draw in eval mode, and writes
``noise_floor.json`` next to the run:

    {"version": 1, "step": <checkpoint step>, "repeats": K, "source": "probe",
     "mean": {key: float}, "sd": {key: float}, "samples": {key: [K floats]}}

The analysis reads it: each metric's SD is the measurement noise, and the correlation of
consecutive differences of ``samples`` is the coupling that pure measurement noise produces.
With ``dynamics.noise_floor_repeats`` = K > 0 the trainer measures the same file itself at the
end of training, on the final weights still in memory (`measure_floor`).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import cast

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import CheckpointError, load_into, load_latest, owner_run_id
from .config import ConfigError, TrainConfig, validate
from .data import load_splits
from .image_folder import DatasetError, error_line
from .models import build_model
from .probe import build_monitor, build_probe, probe_size
from .run_logger import write_json_atomic

FILENAME = "noise_floor.json"
FORMAT_VERSION = 1


def load_trained_model(run_dir: Path):
    """(config, SSLModel with the newest checkpoint's weights, its step, the data splits)."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        cfg = cast(DictConfig, OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(config_path)))
    except Exception as error:  # a config.yaml that is not the trainer's
        raise ConfigError(f"{config_path} cannot be read as a run config: {str(error).splitlines()[0]}") from None
    validate(cfg)
    latest = load_latest(run_dir / "checkpoints")
    if latest is None:
        raise ConfigError(f"{run_dir} has no readable checkpoint")
    state = latest[1]
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise ConfigError(f"{latest[0]} is not an adadim checkpoint (no model or step)")
    splits = load_splits(cfg.data)
    model = build_model(cfg, splits.in_channels, splits.num_classes)
    load_into(model, latest[0], state, owner_run_id(run_dir), config_path)
    return cfg, model, int(state["step"]), splits


def measure_noise_floor(run_dir: Path, repeats: int = 20, device: str = "cpu") -> dict:
    """K measurements of the same checkpoint on fresh view draws of the run's probe images."""
    if repeats < 3:
        raise ConfigError(f"--repeats must be >= 3, got {repeats}")
    cfg, model, step, splits = load_trained_model(run_dir)
    target = torch.device(device)
    return measure_floor(cfg, model.to(target), splits, step, repeats, target, _recorded_sigmas(run_dir))


def measure_floor(cfg, model, splits, step: int, repeats: int, device, sigmas=None, autocast=None) -> dict:
    """The noise floor of ``model`` (an SSLModel at optimizer step ``step``): the monitor on
    ``repeats`` fresh view draws of the run's probe images; the content of ``noise_floor.json``."""
    settings = cfg.dynamics
    monitor = build_monitor(settings, sigmas)
    size = probe_size(cfg.data.name, settings.probe_size, len(splits.ssl_train))
    samples: dict[str, list[float]] = {}
    for repeat in range(repeats):
        # Same images as the run's probe set (its seed), new views each repeat (another seed).
        probe = build_probe(cfg.data, splits, size, settings.seed, view_seed=settings.seed + 1 + repeat)
        r_views, z_views = probe.forward(model, device, settings.probe_batch, settings.probe_norm, autocast)
        for key, value in monitor(r_views, z_views).items():
            samples.setdefault(key, []).append(float(value))
    keep = {k: v for k, v in samples.items() if k != "dynamics/n_samples"}
    return {
        "version": FORMAT_VERSION,
        "step": step,
        "repeats": repeats,
        "source": "probe",
        "mean": {k: _finite_or_none(statistics.fmean(v)) for k, v in keep.items()},
        "sd": {k: _finite_or_none(statistics.stdev(v)) for k, v in keep.items()},
        "samples": {k: [_finite_or_none(x) for x in v] for k, v in keep.items()},
    }


SUMMARY_KEYS = ("dynamics/H_R", "dynamics/I_RZ_excess", "dynamics/ratio_H_I")


def floor_summary(floor: dict) -> dict:
    """The floor's SDs of the headline keys, as the run summary's ``dynamics/floor_sd_*``."""
    sd = floor["sd"]
    return {
        f"dynamics/floor_sd_{key.split('/')[1]}": sd[key] if sd.get(key) is not None else math.nan
        for key in SUMMARY_KEYS
        if key in sd
    }


def write_noise_floor(run_dir: Path, floor: dict) -> Path:
    """``noise_floor.json`` in the run directory, written atomically."""
    out = run_dir / FILENAME
    write_json_atomic(out, floor)
    return out


def _finite_or_none(value: float):
    return value if math.isfinite(value) else None


def _recorded_sigmas(run_dir: Path) -> tuple[float, float] | None:
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return None
    values = json.loads(summary.read_text())
    if "dynamics/sigma_R" in values and "dynamics/sigma_Z" in values:
        return float(values["dynamics/sigma_R"]), float(values["dynamics/sigma_Z"])
    return None


def add_parser(commands, name: str = "noise-floor", help_text: str = "") -> None:
    p = commands.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a run directory (its newest checkpoint is measured)")
    p.add_argument("--repeats", type=int, default=20, help="fresh view draws to measure (default 20)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def run(args) -> int:
    run_dir = Path(args.run)
    try:
        result = measure_noise_floor(run_dir, args.repeats, args.device)
        out = write_noise_floor(run_dir, result)
    except (ConfigError, CheckpointError, FileNotFoundError, PermissionError) as error:
        print(f"adadim noise-floor: {error}", file=sys.stderr)
        return 2
    except DatasetError as error:  # an unreadable image
        print(f"adadim noise-floor: {error_line(error)}", file=sys.stderr)
        return 2
    print(f"noise floor of {run_dir} at step {result['step']} over {result['repeats']} view draws -> {out}")
    for key in ("dynamics/H_R", "dynamics/I_RZ_excess", "dynamics/ratio_H_I"):
        if key in result["sd"] and result["sd"][key] is not None:
            print(f"  {key:<24} mean {result['mean'][key]:.4f}  sd {result['sd'][key]:.5f}")
    return 0
