"""`adadim eval`: the evaluation protocol outside training.

- ``--baseline raw``: the images themselves (flattened, after the evaluation transform);
- ``--baseline random``: the configured backbone, randomly initialised with ``run.seed``;
- ``--run RUN_DIR``: a trained run's backbone from its newest checkpoint.

Each prints (and with ``--json`` writes) the same keys the trainer puts under ``final/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .checkpoint import load_latest
from .config import ConfigError, TrainConfig, load_config, validate
from .data import evaluation_loaders, load_splits
from .evaluation import evaluate_splits, extract_features
from .models import SSLModel, build_backbone

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


def trained_backbone(run_dir: Path):
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(config_path))
    validate(cfg)
    latest = load_latest(run_dir / "checkpoints")
    if latest is None:
        raise ConfigError(f"{run_dir} has no readable checkpoint")
    splits = load_splits(cfg.data)
    backbone = build_backbone(cfg.model.backbone, splits.in_channels, cfg.model.width, cfg.model.cifar_stem)
    model = SSLModel(backbone, list(cfg.model.projector), splits.num_classes)
    model.load_state_dict(latest[1]["model"])
    return cfg, model.backbone, int(latest[1]["step"])


def main(args) -> int:
    try:
        if args.run:
            cfg, backbone, step = trained_backbone(Path(args.run))
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(args.overrides)))
            label = f"run {args.run} (step {step})"
        else:
            cfg = load_config(args.config, args.overrides)
            backbone = None if args.baseline == "raw" else random_backbone(cfg)
            label = f"{args.baseline} baseline ({cfg.data.name}, seed {cfg.run.seed})"
        scores = evaluate(cfg, backbone)
    except ConfigError as error:
        print(f"adadim eval: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"adadim eval: {error}", file=sys.stderr)
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
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2, sort_keys=True))
    return 0
