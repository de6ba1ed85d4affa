"""`adadim eval`: the evaluation protocol outside training.

- ``--baseline raw``: the images themselves (flattened, after the evaluation transform);
- ``--baseline random``: the configured backbone, randomly initialised with ``run.seed``;
- ``--run RUN_DIR``: a trained run's backbone from its newest checkpoint.

Each prints (and with ``--json`` writes) the same keys the trainer puts under ``final/``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from .checkpoint import load_into, load_latest, owner_run_id
from .config import ConfigError, load_config, load_saved_config, override_saved_config
from .data import evaluation_loaders, load_splits
from .evaluation import evaluate_splits, extract_features
from .image_folder import DatasetError, error_line
from .models import build_backbone, build_model
from .run_lock import RunDirectoryError

ROWS = ("linear_top1", "lowlabel_top1", "knn_top1", "knn_weighted_top1")


def evaluate(cfg, backbone: torch.nn.Module | None) -> dict:
    """The protocol on a backbone, or on raw pixels when backbone is None."""
    splits = load_splits(cfg.data)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.run.device != "cpu" else "cpu")
    feats = {}
    for name, loader in evaluation_loaders(splits, cfg.data.name, cfg.data.num_workers).items():
        if backbone is None:
            xs, ys = zip(*[(x.flatten(1).float(), torch.as_tensor(y)) for x, y in loader], strict=True)
            feats[name] = (torch.cat(xs), torch.cat(ys))
        else:
            feats[name] = extract_features(backbone.to(device), loader, device)
    return evaluate_splits(feats, cfg.eval, cfg.eval.final_probe)


def random_backbone(cfg) -> torch.nn.Module:
    splits = load_splits(cfg.data)
    torch.manual_seed(cfg.run.seed)
    return build_backbone(cfg.model.backbone, splits.in_channels, cfg.model.width, cfg.model.cifar_stem)


def trained_backbone(run_dir: Path, overrides: list[str] | None = None):
    """(config, backbone, step) of a run's newest checkpoint. ``overrides`` go through the
    training schema and validation, and may change only what scoring uses (`EVAL_RUN_KEYS`)."""
    cfg = override_saved_config(load_saved_config(run_dir), list(overrides or []))
    latest = load_latest(run_dir / "checkpoints")
    if latest is None:
        raise ConfigError(f"{run_dir} has no readable checkpoint")
    path, state = latest
    splits = load_splits(cfg.data)
    model = build_model(cfg, splits.in_channels, splits.num_classes)
    load_into(model, path, state, owner_run_id(run_dir), run_dir / "config.yaml")
    # The trainer's layout: the same oneDNN kernels, so the same features as its final evaluation.
    return cfg, model.backbone.to(memory_format=torch.channels_last), int(state["step"])


def _json_target(path: str) -> Path:
    """Where --json goes, checked before minutes of evaluation rather than after."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--json {path} is a folder, not a file")
    if not target.parent.is_dir():
        raise ConfigError(f"--json {path}: the folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ConfigError(f"--json {path}: not writable")
    return target


def main(args) -> int:
    try:
        json_path = _json_target(args.json) if args.json else None
        if args.run:
            cfg, backbone, step = trained_backbone(Path(args.run), list(args.overrides))
            label = f"run {args.run} (step {step})"
        else:
            cfg = load_config(args.config, args.overrides)
            backbone = None if args.baseline == "raw" else random_backbone(cfg)
            label = f"{args.baseline} baseline ({cfg.data.name}, seed {cfg.run.seed})"
        scores = evaluate(cfg, backbone)
    except (ConfigError, RunDirectoryError, FileNotFoundError) as error:  # the dataset's files among them
        print(f"adadim eval: {error}", file=sys.stderr)
        return 2
    except DatasetError as error:  # an unreadable image
        print(f"adadim eval: {error_line(error)}", file=sys.stderr)
        return 2
    print(label)
    k = cfg.eval.lowlabel_k[0]
    names = {"lowlabel_top1": f"low-label ({k}/class)", "knn_weighted_top1": "weighted kNN", "knn_top1": "kNN"}
    print(f"{'metric':<22} {'test':>8} {'val':>8}")
    for key in ROWS:
        if key in scores:
            val = scores.get(f"val_{key}")
            print(
                f"{names.get(key, 'linear (full)'):<22} {100 * scores[key]:>7.2f}% "
                + (f"{100 * val:>7.2f}%" if val is not None else "")
            )
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(scores, indent=2, sort_keys=True))
        except OSError as error:
            print(f"adadim eval: cannot write --json {json_path}: {error.strerror or error}", file=sys.stderr)
            return 2
    return 0
