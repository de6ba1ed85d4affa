"""Our trainer against a plain VICReg loop built on lightly, same data, same CNN, same wall clock.

``--config digits`` (the default) or ``--config cifar10-cpu`` (which needs ``data.root=...``).
In one process, on one device:

1. ``adadim.training.trainer.train`` with the bundled digits config and ``method=vicreg``
   (its defaults otherwise). Two short calibration runs (10 and 30 epochs) measure what one more
   epoch costs and what a run pays once, and ``optim.epochs`` is set so that its training loop
   fills ``--budget`` seconds, so its learning-rate schedule completes inside the budget.
   With cifar10-cpu, whose epoch is long, the calibration runs are 20 and 60 optimizer steps
   and the budget sets ``optim.max_steps`` (the schedule then completes at that step).
2. A plain loop of the kind one writes from scratch, lightly's ``VICRegLoss``, AdamW (lr 1e-3,
   wd 1e-4) at a constant rate, batch 256. It trains for exactly the wall-clock seconds the
   trainer's loop took.
   - digits: the same CNN (``adadim.training.models``) with a 512-512 projector (the digits
     default projects 1024-512), inputs standardized, the batch augmented with tensor ops
     (rotation ±10°, scale 0.9-1.1, shift ±1 px, Gaussian noise 0.1, erasing a 2-3 px patch
     with p 0.5).
   - cifar10-cpu: the config's network (cifar_cnn and its projector) and the same batched
     augmentation (``BatchAugmenter`` with the CIFAR preset, normalized), on the same cached
     uint8 images.

Paired: at one seed the plain loop draws its batches in the trainer's order (the trainer's
seeded permutation of the training images each epoch), and on cifar10-cpu it also starts from the
trainer's initial weights (both seed the global RNG, then build the same network) and draws the
same views at each step (the augmenter is seeded by seed and step). A pair of runs then differs
by the system, by how many steps each fits into the same seconds and, with the trainer's own
recipe, by the learning-rate schedule (the loop's is a constant 1e-3), not by the luck of its
draws: with the order drawn independently (``randperm``), swapping the order alone moved the
trainer's low-label score by about a point at seed 0 (results/recipe-cifar10-cpu). The batch is
256 for both (another ``data.batch_size`` is refused).

Both frozen backbones (the plain loop's with its input standardization in front) are then
scored by our evaluation protocol (``adadim.training.evaluation.evaluate_splits`` with the
config's ``eval`` section, on the test split), and so are the raw pixels, as the floor.
img/s counts the images trained per second of each training loop. Both systems run with the
trainer's heap setting (``run.retain_freed_memory``), set once for the process.

lightly is an optional dependency: ``pip install 'adadim[bench]'``.

    python benchmarks/bench_peer.py [--budget 120] [--seed 0 1 2]
    python benchmarks/bench_peer.py --config cifar10-cpu --budget 300 --seed 0 1 2 -- data.root=DATA

With several seeds, each seed is one pair of runs (the length is calibrated once, at the first),
and a last table gives the mean ratio and ours minus the peer with a 95% t interval over seeds,
then the interval of the per-seed img/s ratio (the one to read when seeds ran on machines of
different speeds, where the img/s difference mixes scales).
``--length N`` skips the calibration and runs the trainer at that length (the key above), to add
seeds to an earlier run at its length or to run the config's own length; ``--budget`` then only
labels the report (without it the report says "each trainer run's seconds"), and the plain loop
still gets each trainer run's seconds. (The trainer stops at whichever comes first, max_steps or
the config's epochs, so on cifar10-cpu a length past its epochs' steps is refused.)

``--save DIR`` writes each seed's pair as ``DIR/seed-<seed>.json`` (the rows as measured, the
config, the length, the overrides, the commit and the machine), refusing up front a seed the
folder already holds. ``--pool DIR/seed-*.json`` trains nothing: it prints the saved pairs and
the table over their seeds, so seeds run in separate invocations, or on separate machines, pool
through the same arithmetic. Saved pairs pool only at one config, one length and the same
overrides apart from ``data.root`` and ``data.cache_dir``.

    python benchmarks/bench_peer.py --config cifar10-cpu --length 1750 --seed 5 --save DIR -- data.root=DATA
    python benchmarks/bench_peer.py --pool DIR/seed-*.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from adadim.training.config import ConfigError, load_config
from adadim.training.data import (
    DatasetNotFound,
    GlobalBatchSampler,
    build_augmenter,
    evaluation_loaders,
    in_memory_images,
    load_splits,
)
from adadim.training.evaluation import evaluate_splits, extract_features
from adadim.training.models import build_backbone, projector
from adadim.training.provenance import git_state
from adadim.training.run_logger import write_json_atomic
from adadim.training.runtime import retain_freed_memory
from adadim.training.trainer import train
from scipy import stats
from torch import nn

KEYS = ("lowlabel_top1", "knn_top1", "linear_top1")
OURS, PEER = "adadim train method=vicreg", "plain loop, lightly VICRegLoss"
PEER_BATCH = 256  # the plain loop's batch; the trainer's data.batch_size must match it


def require_lightly():
    try:
        from lightly.loss import VICRegLoss
    except ImportError:
        sys.exit("bench_peer.py needs lightly for the peer loop: pip install 'adadim[bench]' (or pip install lightly)")
    return VICRegLoss


# ---- the plain loop -------------------------------------------------------------------------


class Standardized(nn.Module):
    """The backbone with the plain loop's input standardization in front, for evaluation."""

    def __init__(self, backbone: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.backbone, self.mean, self.std = backbone, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


def augment(x: torch.Tensor) -> torch.Tensor:
    """Affine (rotation ±10°, scale 0.9-1.1, shift ±1 px), noise 0.1, erase a 2-3 px patch (p 0.5)."""
    n, _, h, w = x.shape
    angle = torch.deg2rad(torch.empty(n).uniform_(-10, 10))
    scale = torch.empty(n).uniform_(0.9, 1.1)
    shift = torch.empty(n, 2).uniform_(-1, 1) * 2 / w
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False)
    x = x + 0.1 * torch.randn_like(x)
    size = torch.randint(2, 4, (n, 2))
    top = (torch.rand(n) * (h - size[:, 0] + 1)).long()
    left = (torch.rand(n) * (w - size[:, 1] + 1)).long()
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    patch = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + size[:, 0]).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + size[:, 1]).view(n, 1, 1))
        & (torch.rand(n) < 0.5).view(n, 1, 1)
    )
    return x.masked_fill(patch.unsqueeze(1), 0.0)


def plain_loop(
    images: torch.Tensor, in_channels: int, budget: float, seed: int, loss_fn, cfg=None, augmenter=None
) -> tuple[nn.Module, dict]:
    """Train for ``budget`` seconds; returns the frozen backbone (standardizing its input on
    digits) and its timing. With ``cfg`` and ``augmenter`` (cifar10-cpu): that config's network,
    and views drawn by ``augmenter`` from the uint8 ``images``."""
    torch.manual_seed(seed)
    if cfg is None:
        backbone = build_backbone("small_cnn", in_channels, 32)
        model = nn.Sequential(backbone, projector(backbone.out_dim, [512, 512]))
        mean, std = float(images.mean()), float(images.std())
        data = (images - mean) / std
    else:
        backbone = build_backbone(cfg.model.backbone, in_channels, cfg.model.width, cfg.model.cifar_stem)
        model = nn.Sequential(backbone, projector(backbone.out_dim, list(cfg.model.projector)))
        data = images
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    batch, steps, epoch = PEER_BATCH, 0, 0
    # The trainer's batch order at this seed (its sampler's seeded permutation per epoch), so
    # that a pair of runs shares its draws (module docstring, "Paired").
    sampler = GlobalBatchSampler(len(data), batch, seed)
    model.train()
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        sampler.set_epoch(epoch)
        epoch += 1
        for indices in sampler:
            x = data[torch.tensor(indices)]
            if augmenter is None:
                x1, x2 = augment(x), augment(x)
            else:
                x1, x2 = augmenter.views(x, steps)
            loss = loss_fn(model(x1), model(x2))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if time.perf_counter() - started >= budget:
                break
    seconds = time.perf_counter() - started
    frozen = Standardized(backbone.eval(), mean, std) if cfg is None else backbone.eval()
    return frozen, {
        "steps": steps,
        "seconds": seconds,
        "img_s": steps * batch / seconds,
    }


# ---- our trainer ----------------------------------------------------------------------------


# How each config's length is set to fill the budget: the key, and its two calibration values.
LENGTH = {"digits": ("optim.epochs", 10, 30), "cifar10-cpu": ("optim.max_steps", 20, 60)}
# Overrides that say where the data lies on one machine: saved pairs that differ only in these pool.
LOCATION_KEYS = ("data.root", "data.cache_dir")


def run_trainer(config: str, overrides: list[str], root: Path, run_id: str) -> dict:
    cfg = load_config(config, ["method=vicreg", *overrides, f"run.root={root}", f"run.id={run_id}"])
    return train(cfg)


def length_for_budget(config: str, overrides: list[str], root: Path, budget: float) -> int:
    """The epochs (or steps) whose training loop fills ``budget`` seconds, from two short runs
    (final evaluation cut down): their difference gives the cost of one more unit, and what is
    left is what a run pays once (warm-up, the first and last measurements). One short run
    would spread that once-only cost over its few units and undershoot the budget."""
    key, short, long = LENGTH[config]
    seconds = {}
    for length in (short, long):
        quick = [*overrides, f"{key}={length}", "eval.final_probe=false", "eval.random_init_baseline=false"]
        seconds[length] = run_trainer(config, quick, root, f"calibration-{length}")["trainer/loop_seconds"]
    per_unit = (seconds[long] - seconds[short]) / (long - short)
    if per_unit <= 0:  # drift swamped the difference: charge everything per unit
        return max(1, math.floor(budget * long / seconds[long]))
    once = max(0.0, seconds[short] - short * per_unit)
    return max(1, math.floor((budget - once) / per_unit))


# ---- scoring and report ---------------------------------------------------------------------


def score(network: nn.Module, cfg, splits) -> dict:
    """Our protocol on a frozen network, the way the trainer's final evaluation runs it."""
    loaders = evaluation_loaders(splits, cfg.data.name, cfg.data.num_workers)
    features = {name: extract_features(network, loader, torch.device("cpu")) for name, loader in loaders.items()}
    return evaluate_splits(features, cfg.eval, full_probe=True)


def header(budget: float | None, length: str, torch_version: str | None = None, threads: object = None) -> str:
    spent = "each trainer run's seconds" if budget is None else f"{budget:.0f} s"
    torch_version = torch.__version__ if torch_version is None else torch_version
    threads = torch.get_num_threads() if threads is None else threads
    return f"torch {torch_version}, {threads} threads; budget {spent}; trainer {length}"


def report(rows: dict[str, dict], heading: str) -> None:
    print(heading)
    print(f"{'system':<34} {'img/s':>7} {'low-label':>10} {'kNN':>7} {'linear':>7} {'steps':>6} {'seconds':>8}")
    for name, r in rows.items():
        img_s = f"{r['img_s']:>7.0f}" if "img_s" in r else f"{'-':>7}"
        steps = f"{r['steps']:>6d}" if "steps" in r else f"{'-':>6}"
        seconds = f"{r['seconds']:>8.1f}" if "seconds" in r else f"{'-':>8}"
        scores = " ".join(f"{100 * r[k]:>{w}.2f}" for k, w in zip(KEYS, (10, 7, 7), strict=True))
        print(f"{name:<34} {img_s} {scores} {steps} {seconds}")
    ours, peer = rows[OURS], rows[PEER]
    ratios = " ".join(f"{ours[k] / peer[k]:>{w}.3f}" for k, w in zip(KEYS, (10, 7, 7), strict=True))
    print(f"{'ratio ours/peer':<34} {ours['img_s'] / peer['img_s']:>7.3f} {ratios}", flush=True)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """The mean and its 95% t interval; identical values leave no spread to build one from."""
    mean, sem = statistics.mean(values), float(stats.sem(values))
    low, high = (mean, mean) if sem == 0 else stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def report_seeds(pairs: list[tuple[dict, dict]]) -> None:
    """Over seeds: the mean ratio, and ours minus the peer in points with a 95% t interval
    (paired by seed: each seed is one independent pair of runs). The img/s difference is in
    img/s, so over seeds run on machines of different speeds it mixes scales; the interval of
    the per-seed img/s ratio, printed last, is the one to read then."""
    print(f"\nover {len(pairs)} seeds (paired by seed; 95% t interval of the difference)")
    print(f"{'':<12} {'mean ratio':>10} {'ours - peer':>12} {'95% interval':>18}")
    for key in ("img_s", *KEYS):
        ratio = sum(ours[key] / peer[key] for ours, peer in pairs) / len(pairs)
        scale = 1.0 if key == "img_s" else 100.0
        mean, low, high = t_interval([scale * (ours[key] - peer[key]) for ours, peer in pairs])
        print(f"{key:<12} {ratio:>10.3f} {mean:>+12.2f} {f'[{low:+.2f}, {high:+.2f}]':>18}")
    mean, low, high = t_interval([ours["img_s"] / peer["img_s"] for ours, peer in pairs])
    print(f"img_s ratio {mean:.4f}, 95% t interval of the per-seed ratio [{low:.4f}, {high:.4f}]")


# ---- saved pairs ----------------------------------------------------------------------------


class SavedPairError(Exception):
    """A saved pair that cannot be read, or saved pairs that do not pool."""


def machine() -> dict:
    """The commit and the machine a pair ran on, saved with it; read once, at the start, since
    the code that runs is the code loaded then."""
    commit, dirty = git_state(Path(__file__).resolve().parent)
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "commit": commit,
        "dirty": dirty,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def saved_path(directory: Path, seed: int) -> Path:
    return directory / f"seed-{seed}.json"


def save_pair(directory: Path, record: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved_path(directory, record["seed"]), record)


def is_number(value: object) -> bool:
    """A finite positive number (JSON's integers may be too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:
        return False


def read_pair(path: Path) -> dict:
    """One saved pair, checked: its fields present and of their types, its scores and speeds
    finite and positive, so that a damaged or hand-edited file is named rather than printed."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SavedPairError(f"{path}: not a readable saved pair ({error})") from None
    if not isinstance(record, dict):
        raise SavedPairError(f"{path}: not a saved pair (a JSON {type(record).__name__}, not an object)")
    missing = [k for k in ("config", "length_key", "length", "seed", "overrides", "ours", "peer") if k not in record]
    if missing:
        raise SavedPairError(f"{path}: not a saved pair (missing {', '.join(missing)})")

    def refuse(field: str, what: str) -> SavedPairError:
        return SavedPairError(f"{path}: {field} is {record_value(record, field)!r}, not {what}")

    if isinstance(record["seed"], bool) or not isinstance(record["seed"], int):
        raise refuse("seed", "an integer")
    if isinstance(record["length"], bool) or not isinstance(record["length"], int) or record["length"] < 1:
        raise refuse("length", "an integer >= 1")
    if not isinstance(record["overrides"], list) or not all(isinstance(o, str) for o in record["overrides"]):
        raise refuse("overrides", "a list of key=value strings")
    if record.get("budget") is not None and not is_number(record["budget"]):
        raise refuse("budget", "null or a positive number")
    for system in ("ours", "peer", "raw"):
        if system == "raw" and "raw" not in record:
            continue
        if not isinstance(record[system], dict):
            raise refuse(system, "an object of scores")
        for k in (*(("img_s",) if system != "raw" else ()), *KEYS):
            if not is_number(record[system].get(k)):
                raise refuse(f"{system}.{k}", "a positive finite number")
        steps = record[system].get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise refuse(f"{system}.steps", "a whole number of steps")
        if record[system].get("seconds") is not None and not is_number(record[system]["seconds"]):
            raise refuse(f"{system}.seconds", "a positive number of seconds")
    return record


def record_value(record: dict, field: str) -> object:
    """``record``'s value at a dotted ``field`` (``ours.img_s``), None where it is absent."""
    value: object = record
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def pooled_overrides(record: dict) -> list[str]:
    return sorted(o for o in record["overrides"] if o.split("=", 1)[0] not in LOCATION_KEYS)


def read_pairs(paths: list[Path]) -> list[dict]:
    """Saved pairs that pool: at least two, distinct seeds, one config, one length and the same
    overrides (the data's location aside); sorted by seed."""
    records = [read_pair(path) for path in paths]
    if len(records) < 2:
        raise SavedPairError("pooling needs at least two saved pairs")
    first = records[0]
    for path, record in zip(paths[1:], records[1:], strict=True):
        for field in ("config", "length_key", "length"):
            if record[field] != first[field]:
                raise SavedPairError(f"{path}: {field} {record[field]!r} differs from {paths[0]}'s {first[field]!r}")
        if pooled_overrides(record) != pooled_overrides(first):
            raise SavedPairError(
                f"{path}: overrides {record['overrides']} differ from {paths[0]}'s {first['overrides']}"
            )
    seeds = [record["seed"] for record in records]
    if len(set(seeds)) != len(seeds):
        raise SavedPairError(f"the saved pairs repeat a seed: {sorted(seeds)}")
    return sorted(records, key=lambda record: record["seed"])


def pool(paths: list[Path]) -> None:
    """Each saved pair's rows, then the table over their seeds."""
    records = read_pairs(paths)
    for record in records:
        commit = str(record.get("commit", "?"))[:7] + ("+dirty" if record.get("dirty") else "")
        where = f"commit {commit}, {record.get('cpu', '?')}, {record.get('cores', '?')} cores"
        print(f"seed {record['seed']} ({where})")
        given = " (given)" if record.get("length_given") else ""
        length = f"{record['length_key']}={record['length']}{given}"
        heading = header(record.get("budget"), length, str(record.get("torch", "?")), record.get("threads", "?"))
        rows = {OURS: record["ours"], PEER: record["peer"]}
        if isinstance(record.get("raw"), dict):
            rows["raw pixels"] = record["raw"]
        report(rows, heading)
        print()
    report_seeds([(record["ours"], record["peer"]) for record in records])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(LENGTH), help="digits (the default) or cifar10-cpu")
    parser.add_argument(
        "--budget", type=float, help="training seconds for each system (default 120; with --length, only a label)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        nargs="+",
        help="one pair of runs per seed (default 0); put key=value overrides before --seed, or after --",
    )
    parser.add_argument(
        "--length",
        type=int,
        help="the trainer's optim.epochs (digits) or optim.max_steps (cifar10-cpu) instead of calibrating it"
        " to the budget; to add seeds to an earlier run at that run's length",
    )
    parser.add_argument("--save", type=Path, metavar="DIR", help="write each seed's pair to DIR/seed-<seed>.json")
    parser.add_argument(
        "--pool", type=Path, nargs="+", metavar="FILE", help="train nothing: pool pairs saved by --save"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides for our trainer (e.g. data.root=...)")
    args = parser.parse_args()
    if args.pool is not None:
        given = [
            f"--{name}" for name in ("config", "budget", "seed", "length", "save") if getattr(args, name) is not None
        ]
        if given or args.overrides:
            parser.error(f"--pool trains nothing; {' '.join(given + args.overrides)} would have no effect")
        try:
            pool(args.pool)
        except SavedPairError as error:
            sys.exit(f"bench_peer.py: {error}")
        return
    args.config = args.config or "digits"
    args.seed = args.seed or [0]
    if args.budget is None and args.length is None:
        args.budget = 120.0
    if args.budget is not None and args.budget <= 0:
        parser.error("--budget must be > 0")
    if args.length is not None and args.length < 1:
        parser.error("--length must be >= 1")
    if len(set(args.seed)) != len(args.seed):
        parser.error(f"--seed repeats a seed: {args.seed}")
    if args.save is not None:  # refused before anything runs: a saved pair is never overwritten
        held = [str(saved_path(args.save, seed)) for seed in args.seed if saved_path(args.save, seed).exists()]
        if held:
            sys.exit(f"bench_peer.py: {', '.join(held)} already saved; move aside or choose another --save")
        try:  # made now, so that a folder that cannot hold the pairs fails before the first run
            args.save.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            sys.exit(f"bench_peer.py: --save {args.save} cannot be made a folder ({error.strerror})")
        if not os.access(args.save, os.W_OK):
            sys.exit(f"bench_peer.py: --save {args.save} is not writable")
        provenance = machine()
    # The trainer's process setting (run.retain_freed_memory), for both systems alike.
    retain_freed_memory()
    loss_class = require_lightly()
    base = ["run.progress=false", "wandb.mode=disabled", *args.overrides]
    try:
        cfg = load_config(args.config, ["method=vicreg", *base])
        if cfg.data.batch_size != PEER_BATCH:  # refused before the data is read
            asked = cfg.data.batch_size
            sys.exit(f"bench_peer.py: the plain loop trains at batch {PEER_BATCH}; data.batch_size={asked} unpairs it")
        splits = load_splits(cfg.data)
    except (ConfigError, DatasetNotFound) as error:
        sys.exit(f"bench_peer.py: {error}")
    key = LENGTH[args.config][0]
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        # Unless given, the length is calibrated once, at the first seed: a step costs the same
        # at every seed.
        length = args.length
        if length is None:
            length = length_for_budget(args.config, [*base, f"run.seed={args.seed[0]}"], Path(tmp), args.budget)
        if key == "optim.max_steps":  # the trainer would stop at its epochs first, unannounced
            per_epoch = GlobalBatchSampler(len(splits.ssl_train), cfg.data.batch_size, 0).batches_per_epoch
            most = per_epoch * cfg.optim.epochs
            if length > most:
                sys.exit(f"bench_peer.py: {key}={length} is past the config's {most} steps; raise optim.epochs")
        raw = score(nn.Flatten(), cfg, splits)
        for seed in args.seed:
            overrides = [*base, f"run.seed={seed}", f"{key}={length}"]
            summary = run_trainer(args.config, overrides, Path(tmp), f"ours-{seed}")
            ours = {k: summary[f"final/{k}"] for k in KEYS}
            seconds, steps = summary["trainer/loop_seconds"], int(summary["trainer/step"])
            ours.update(steps=steps, seconds=seconds, img_s=steps * cfg.data.batch_size / seconds)
            peer = run_peer(args.config, cfg, splits, seconds, seed, loss_class)
            if len(args.seed) > 1:
                print(f"seed {seed}")
            given = " (given)" if args.length is not None else ""
            report({OURS: ours, PEER: peer, "raw pixels": raw}, header(args.budget, f"{key}={length}{given}"))
            pairs.append((ours, peer))
            if args.save is not None:
                record = {"config": args.config, "length_key": key, "length": length, "length_given": bool(given)}
                record.update(seed=seed, budget=args.budget, overrides=list(args.overrides))
                save_pair(args.save, {**record, "ours": ours, "peer": peer, "raw": raw, **provenance})
    if len(pairs) > 1:
        report_seeds(pairs)


def run_peer(config: str, cfg, splits, seconds: float, seed: int, loss_class) -> dict:
    """The plain loop for ``seconds`` at ``seed``, scored by our protocol."""
    if config == "digits":
        images = torch.stack([splits.ssl_train[i][0] for i in range(len(splits.ssl_train))])
        network, peer = plain_loop(images, splits.in_channels, seconds, seed, loss_class())
    else:
        memory = in_memory_images(splits.ssl_train)
        assert memory is not None, "cifar10-cpu's images are held in memory (the image cache)"
        images = memory[0][memory[2]]
        augmenter = build_augmenter(cfg.data, splits, seed, 0, "cpu")
        network, peer = plain_loop(images, splits.in_channels, seconds, seed, loss_class(), cfg, augmenter)
    peer.update(score(network, cfg, splits))
    return peer


if __name__ == "__main__":
    main()
