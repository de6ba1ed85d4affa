"""The training loop: one readable function, `train(cfg)`.

Per step: two views -> backbone -> R -> projector -> Z; the controller sets alpha and beta;
L = (1 - α)·L_dim + α·L_NT-Xent - s·β·I(R;Z) is back-propagated (the online probe's
cross-entropy on the detached R rides along and never reaches the backbone); every
``dynamics.every`` steps the monitor measures this step's own R and Z; at each
``eval.every_epochs`` the online probe and kNN are scored on the test split; at the end a
linear probe is fitted on the frozen backbone (and on a randomly initialised one, as the
reference). Only rank 0 (``master_process``) logs.
"""

from __future__ import annotations

import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from adadim.dynamics import DynamicsMonitor, MonitorSettings
from adadim.dynamics.monitor import gather_rows
from omegaconf import DictConfig, OmegaConf

from .checkpoint import checkpoints, load_latest, save_checkpoint
from .config import ConfigError
from .controller import WeightController
from .data import GlobalBatchSampler, TwoViews, evaluation_loaders, load_splits, train_loader
from .data import two_view_transform as augmentation
from .evaluation import evaluate_representation, evaluate_splits, extract_features, knn_top1
from .losses import barlow_twins_loss, gather_with_grad, mutual_information_term, nt_xent_loss, vicreg_loss
from .models import SSLModel, build_backbone
from .optim import build_optimizer, learning_rate, set_lr
from .run_logger import NullLogger, RunLogger

STEP, EPOCH = "trainer/step", "trainer/epoch"


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the run stops and keeps its last good checkpoint."""


@dataclass
class Distributed:
    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def master_process(self) -> bool:
        return self.rank == 0


def setup_distributed(device_choice: str) -> Distributed:
    """Single process, or the process group torchrun describes in the environment."""
    use_cuda = torch.cuda.is_available() if device_choice == "auto" else device_choice == "cuda"
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda but no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(0, 0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, local_rank, world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def _broadcast(value, dist: Distributed):
    if dist.world == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def resolve_run_id(cfg: DictConfig, dist: Distributed) -> str:
    if cfg.run.id:
        return cfg.run.id
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return _broadcast(f"{cfg.method}-{cfg.data.name}-s{cfg.run.seed}-{stamp}", dist)


def _check_resume_config(cfg: DictConfig, run_dir: Path) -> None:
    """A resumed run must continue the same experiment; only presentation may change."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved, now = OmegaConf.load(saved_path), OmegaConf.to_container(cfg, resolve=True)
    saved = OmegaConf.to_container(saved, resolve=True)
    for container in (saved, now):
        container["run"].pop("progress", None)
    if saved != now:
        from .config import to_flat_dict

        a, b = to_flat_dict(OmegaConf.create(saved)), to_flat_dict(OmegaConf.create(now))
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise ConfigError(f"run {run_dir.name} exists with a different config ({', '.join(diff)}); use a new run.id")


class StopRequest:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step boundary."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def agreed(self, dist: Distributed, device: torch.device) -> int:
        """Every rank stops at the same step: the largest signal seen by any rank."""
        if dist.world == 1:
            return self.signum
        flag = torch.tensor([self.signum], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _checkpoint_state(model, optimizer, controller, step: int, device: torch.device) -> dict:
    state = {
        "step": step,
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "controller": controller.state_dict(),
        "rng_cpu": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _to_floats(row: dict) -> dict:
    """Tensor values as floats through a single device-to-host copy (one sync, not one per key)."""
    keys = [k for k, v in row.items() if isinstance(v, torch.Tensor)]
    if keys:
        values = torch.stack([row[k].detach().float().reshape(()) for k in keys]).tolist()
        row = {**row, **dict(zip(keys, values, strict=True))}
    return row


def _due(epochs_done: int, every: int) -> bool:
    return every > 0 and epochs_done > 0 and epochs_done % every == 0


def _features(backbone, loaders: dict, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {name: extract_features(backbone, loader, device) for name, loader in loaders.items()}


def _evaluate_online(model, loaders, device, settings, lowlabel: bool) -> dict:
    """Per-epoch scores on the test split: the online probe, kNN, and optionally low-label."""
    feats = _features(_unwrap(model).backbone, {k: loaders[k] for k in ("train", "test")}, device)
    (train_x, train_y), (test_x, test_y) = feats["train"], feats["test"]
    with torch.no_grad():
        logits = _unwrap(model).probe(test_x.to(device)).cpu()
    out = {
        "eval/knn_top1": knn_top1(train_x, train_y, test_x, test_y, settings.knn_k),
        "eval/linear_top1": float((logits.argmax(1) == test_y).float().mean()),
    }
    if lowlabel:
        scores = evaluate_representation(train_x, train_y, {"": (test_x, test_y)}, settings, full_probe=False)
        out["eval/lowlabel_top1"] = scores["lowlabel_top1"]
    return out


def _final_evaluation(cfg, backbone, loaders, device, splits) -> dict:
    """The evaluation protocol on the frozen backbone, on test ("final/...") and validation
    ("final/val_..."), and the same for a randomly initialised backbone ("final/random_init_...")."""

    def score(net, prefix):
        scores = evaluate_splits(_features(net, loaders, device), cfg.eval, cfg.eval.final_probe)
        return {f"{prefix}{k}": v for k, v in scores.items()}

    out = score(backbone, "final/")
    if cfg.eval.random_init_baseline:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.run.seed)  # the same initialisation the run started from
            random_backbone = build_backbone(
                cfg.model.backbone, splits.in_channels, cfg.model.width, cfg.model.cifar_stem
            )
        out.update(score(random_backbone.to(device), "final/random_init_"))
        out.pop("final/random_init_lowlabel_draws", None)
    return out


def train(cfg: DictConfig) -> dict:
    """Run (or resume) one training run; returns its summary. Raises ConfigError for a config
    that cannot run, NonFiniteLoss when the loss diverges."""
    dist = setup_distributed(cfg.run.device)
    device, master_process = dist.device, dist.master_process
    run_id = resolve_run_id(cfg, dist)
    run_dir = Path(cfg.run.root) / run_id
    if cfg.run.resume:
        _check_resume_config(cfg, run_dir)
    elif checkpoints(run_dir / "checkpoints"):
        raise ConfigError(f"run {run_id} already has checkpoints and run.resume=false; use a new run.id")

    torch.manual_seed(cfg.run.seed)
    splits = load_splits(cfg.data)
    backbone = build_backbone(cfg.model.backbone, splits.in_channels, cfg.model.width, cfg.model.cifar_stem)
    model = SSLModel(backbone, list(cfg.model.projector), splits.num_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    global_batch = cfg.data.batch_size
    try:
        sampler = GlobalBatchSampler(len(splits.ssl_train), global_batch, cfg.run.seed, dist.rank, dist.world)
    except ValueError as error:  # batch larger than the data, or not divisible by the ranks
        raise ConfigError(str(error)) from None
    dataset = TwoViews(splits.ssl_train, augmentation(cfg.data.name, splits.image_size), cfg.run.seed)
    loader = train_loader(dataset, sampler, cfg.data.num_workers)
    steps_per_epoch = sampler.batches_per_epoch
    total_steps = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.max_steps is not None:
        total_steps = min(total_steps, cfg.optim.max_steps)
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)
    base_lr = cfg.optim.lr * global_batch / 256

    optimizer = build_optimizer(model, cfg.optim)
    a = cfg.adadim
    controller = WeightController(
        cfg.method, total_steps, a.gamma, a.alpha, a.alpha_start, a.alpha_end, a.every, a.ema,
        a.normalization, a.invert, a.alpha_min, a.alpha_max,
    )  # fmt: skip
    dy = cfg.dynamics
    monitor = DynamicsMonitor(
        MonitorSettings(
            metrics=tuple(dy.metrics), alpha=dy.order, kernel=dy.kernel, n_permutations=dy.n_permutations, seed=dy.seed
        )
    )

    start_step = 0
    resumed = load_latest(run_dir / "checkpoints", map_location=device) if cfg.run.resume else None
    if resumed is not None:
        _, state = resumed
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        controller.load_state_dict(state["controller"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        start_step = int(state["step"])

    if dist.world > 1:
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None
        )

    logger = RunLogger(cfg, run_dir, run_id, start_step if resumed else None) if master_process else NullLogger()
    eval_loaders = {}
    if master_process:
        eval_loaders = evaluation_loaders(splits, cfg.data.name, cfg.data.num_workers)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    sign = 1.0 if a.mi_sign == "maximize" else -1.0
    stop = StopRequest()
    stop.install()
    progress = None
    if master_process and cfg.run.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total_steps, initial=start_step, desc=run_id, dynamic_ncols=True)
    latest = {}
    step, exit_signal, last_saved = start_step, 0, start_step
    online_eval_seconds = 0.0
    loop_started = tick = time.perf_counter()
    try:
        while step < total_steps and not exit_signal:
            epoch = step // steps_per_epoch
            sampler.set_epoch(epoch, step % steps_per_epoch)
            dataset.set_epoch(epoch)
            model.train()
            for x1, x2, labels in loader:
                lr = learning_rate(step, total_steps, warmup_steps, base_lr, cfg.optim.min_lr_fraction)
                set_lr(optimizer, lr)
                x1, x2, labels = (t.to(device, non_blocking=True) for t in (x1, x2, labels))
                if device.type == "cuda":
                    x1, x2 = (
                        x1.contiguous(memory_format=torch.channels_last),
                        x2.contiguous(memory_format=torch.channels_last),
                    )
                with autocast:
                    (r1, r2), (z1, z2), logits = model(x1, x2)
                z1, z2 = z1.float(), z2.float()
                z_alpha = gather_rows(z1.detach()) if controller.needs_embedding(step) else None
                weights = controller.step(step, z_alpha)

                z1_all, z2_all = gather_with_grad(z1), gather_with_grad(z2)
                vic = vicreg_loss(
                    z1_all, z2_all, cfg.loss.invariance_weight, cfg.loss.variance_weight, cfg.loss.covariance_weight
                )
                nt = nt_xent_loss(z1, z2, cfg.loss.temperature)
                row = {}
                if cfg.method == "barlow":
                    barlow = barlow_twins_loss(z1_all, z2_all, cfg.loss.barlow_lambda)
                    dimension_loss = barlow.loss
                    row["train/loss_barlow"] = barlow.loss
                else:
                    dimension_loss = vic.loss
                if weights.beta > 0:
                    r_all = (gather_with_grad(r1.float()), gather_with_grad(r2.float()))
                    mi = mutual_information_term(r_all, (z1_all, z2_all), a.mi_order, a.mi_kernel)
                else:
                    mi = torch.zeros((), device=device)
                loss = (1 - weights.alpha) * dimension_loss + weights.alpha * nt - sign * weights.beta * mi
                probe_loss = F.cross_entropy(logits.float(), labels, ignore_index=-1)

                if not torch.isfinite(loss):
                    raise NonFiniteLoss(
                        f"the loss became {float(loss.detach())} at step {step}; the run stopped. "
                        f"Last good checkpoint: {load_last_path(run_dir)}"
                    )
                optimizer.zero_grad(set_to_none=True)
                (loss + probe_loss).backward()
                optimizer.step()

                dynamics = {}
                if dy.every and step % dy.every == 0:
                    dynamics = monitor((r1.detach(), r2.detach()), (z1.detach(), z2.detach()))
                now = time.perf_counter()
                row.update({
                    STEP: step,
                    EPOCH: (step + 1) / steps_per_epoch,
                    "train/loss": loss,
                    "train/loss_vicreg": vic.loss,
                    "train/vicreg_invariance": vic.invariance,
                    "train/vicreg_variance": vic.variance,
                    "train/vicreg_covariance": vic.covariance,
                    "train/loss_nt_xent": nt,
                    "train/loss_mi": mi,
                    "train/probe_loss": probe_loss,
                    "train/lr": lr,
                    "trainer/samples_per_s": global_batch / max(now - tick, 1e-9),
                    "adadim/alpha": weights.alpha,
                    "adadim/beta": weights.beta,
                    "adadim/erank_z_norm": controller.erank_norm,
                    **dynamics,
                })  # fmt: skip
                tick = now
                step += 1

                epochs_done = step // steps_per_epoch if step % steps_per_epoch == 0 else 0
                online = _due(epochs_done, cfg.eval.every_epochs)
                lowlabel = _due(epochs_done, cfg.eval.lowlabel_every_epochs)
                if master_process and (online or lowlabel):
                    started = time.perf_counter()
                    row.update(_evaluate_online(model, eval_loaders, device, cfg.eval, lowlabel))
                    model.train()
                    online_eval_seconds += time.perf_counter() - started
                    tick += time.perf_counter() - started  # keeps samples/s a training figure
                row = _to_floats(row)
                latest.update(row)
                if (step - 1) % cfg.run.log_every == 0 or dynamics or "eval/knn_top1" in row or step == total_steps:
                    logger.log(row)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(
                        loss=f"{latest['train/loss']:.3f}",
                        alpha=f"{latest['adadim/alpha']:.2f}",
                        H_R=f"{latest.get('dynamics/H_R', math.nan):.2f}",
                        I_RZ=f"{latest.get('dynamics/I_RZ', math.nan):.2f}",
                    )
                if step % cfg.run.checkpoint_every_steps == 0 and master_process:
                    save_checkpoint(
                        run_dir / "checkpoints",
                        step,
                        _checkpoint_state(model, optimizer, controller, step, device),
                        cfg.run.keep_checkpoints,
                    )
                    last_saved = step
                exit_signal = stop.agreed(dist, device)
                if step >= total_steps or exit_signal:
                    break
        if master_process and last_saved != step:
            save_checkpoint(
                run_dir / "checkpoints",
                step,
                _checkpoint_state(model, optimizer, controller, step, device),
                cfg.run.keep_checkpoints,
            )
        if exit_signal:
            logger.set_summary({"trainer/step": step})
            logger.finish("interrupted", exit_code=128 + exit_signal)
            return {"state": "interrupted", "signal": exit_signal, "step": step, "run_dir": str(run_dir)}
        loop_seconds = time.perf_counter() - loop_started
        final, started = {}, time.perf_counter()
        if master_process:
            final = _final_evaluation(cfg, _unwrap(model).backbone, eval_loaders, device, splits)
        timing = {
            "trainer/loop_seconds": loop_seconds,
            "trainer/online_eval_seconds": online_eval_seconds,
            "trainer/final_eval_seconds": time.perf_counter() - started,
        }
        summary = {**latest, **final, **timing, "trainer/step": step, "run_dir": str(run_dir)}
        logger.set_summary(summary)
        logger.finish("finished")
        return {**summary, "state": "finished"}
    except NonFiniteLoss:
        logger.finish("failed: non-finite loss", exit_code=1)
        raise
    except BaseException:
        logger.finish("crashed", exit_code=1)
        raise
    finally:
        stop.restore()
        if progress is not None:
            progress.close()
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def load_last_path(run_dir: Path) -> str:
    found = checkpoints(run_dir / "checkpoints")
    return str(found[-1]) if found else "none (no checkpoint was written yet)"
