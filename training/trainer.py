"""The training loop, in three readable parts: ``setup`` builds a `Run` from the config,
``train_step`` does one optimizer step, and ``train`` is the loop with its bookkeeping
(dynamics, evaluation, logging, checkpoints, stopping).

Design notes: docs/training.md, "Design notes: trainer".
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import torch
import torch.nn.functional as F
from adadim.dynamics import DynamicsMonitor
from adadim.dynamics.keys import EPOCH, STEP
from adadim.dynamics.monitor import Views, gather_rows
from adadim.dynamics.run_format import flatten
from omegaconf import DictConfig, OmegaConf

from .augment import BatchAugmenter
from .byol import BYOLTarget, byol_objective
from .checkpoint import (
    CheckpointError,
    checkpoints,
    identity,
    load_into,
    load_latest,
    record_refusal,
    refuse_lost_checkpoints,
    save_checkpoint,
)
from .config import ConfigError, load_saved_config
from .controller import WeightController
from .data import (
    GlobalBatchSampler,
    Splits,
    TwoViews,
    build_augmenter,
    evaluation_loaders,
    load_splits,
    train_loader,
    training_dataset,
)
from .evaluation import evaluate_representation, evaluate_splits, extract_features, knn_top1
from .losses.adadim import ObjectiveSettings, adadim_objective, gradient_norms, gradient_shares
from .models import build_backbone, build_model, channels_last
from .noise_floor import floor_summary, measure_floor, write_noise_floor
from .optim import apply_schedule, build_optimizer, schedule_fraction
from .probe import ProbeSet, build_monitor, build_probe, note_probe_capped, probe_size
from .provenance import provenance
from .run_lock import RunLock, RunLocked, acquire_run_lock, remove_unstarted
from .run_logger import NullLogger, RunLogger
from .runtime import Distributed, StopRequest, broadcast_object, setup_distributed
from .setpoints import SetpointPath, TargetRunError, read_run_path
from .steering import SteeringController
from .wandb_env import resolve as resolve_wandb


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the run stops and keeps its last good checkpoint."""


@dataclass
class Run:
    """Everything one training run holds between steps."""

    cfg: DictConfig
    dist: Distributed
    run_id: str
    run_dir: Path
    splits: Splits
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    controller: WeightController
    monitor: DynamicsMonitor
    objective: ObjectiveSettings
    sampler: GlobalBatchSampler
    dataset: torch.utils.data.Dataset  # TwoViews with data.augment_on=loader
    augmenter: BatchAugmenter | None  # the on-device augmenter (data.augment_on=device)
    loader: torch.utils.data.DataLoader
    probe: ProbeSet | None
    logger: NullLogger
    eval_loaders: dict
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    base_lr: float
    start_step: int = 0
    autocast: AbstractContextManager[Any] = field(default_factory=nullcontext)
    # Running gradient-norm estimates (dimension, NT-Xent) for adadim.balance=grad.
    grad_balance: list[float] | None = None
    # Fixed Gaussian kernel widths (R, Z), set at the first measurement.
    sigmas: tuple[float, float] | None = None
    lock: RunLock | None = None  # rank 0's lock on the run directory
    byol: BYOLTarget | None = None  # method=byol's target network
    # Wall time of the measurements (probe forward passes, monitor, gradient norms), summed.
    measure_seconds: float = 0.0
    # cfg as plain attributes, for the per-step code: an OmegaConf lookup costs tens of µs,
    # about 1% of a digits step at the ~15 lookups a step makes.
    settings: SimpleNamespace = field(init=False)

    def __post_init__(self) -> None:
        self.settings = _plain(self.cfg)

    @property
    def device(self) -> torch.device:
        return self.dist.device


def resolve_run_id(cfg: DictConfig, dist: Distributed) -> str:
    if cfg.run.id:
        return cfg.run.id
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return broadcast_object(f"{cfg.method}-{cfg.data.name}-s{cfg.run.seed}-{stamp}", dist)


def _check_resume_config(cfg: DictConfig, run_dir: Path, available: int) -> None:
    """A resumed run must continue the same experiment; only presentation may change.
    ``available``: the training split's size, which caps the probe size (see `_cap_probe_size`)."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    # Through the schema, so a section added after the run started (steer) reads as its
    # defaults rather than as a difference.
    saved_cfg = load_saved_config(run_dir)
    _cap_probe_size(saved_cfg, available, say=False)  # a config.yaml written before the cap was
    saved = cast(dict[str, Any], OmegaConf.to_container(saved_cfg, resolve=True))
    now = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    for container in (saved, now):
        for key in ("progress", "retain_freed_memory"):  # the process, not the experiment
            container["run"].pop(key, None)
    if saved != now:
        before, after = flatten(saved), flatten(now)
        diff = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        raise ConfigError(f"run {run_dir.name} exists with a different config ({', '.join(diff)}); use a new run.id")


def _plain(cfg: DictConfig) -> SimpleNamespace:
    def convert(value):
        if isinstance(value, dict):
            return SimpleNamespace(**{k: convert(v) for k, v in value.items()})
        return value

    return convert(OmegaConf.to_container(cfg, resolve=True))


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


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


# ---- setup ------------------------------------------------------------------------------


def _objective_settings(cfg: DictConfig) -> ObjectiveSettings:
    loss, adadim = cfg.loss, cfg.adadim
    return ObjectiveSettings(
        dimension_loss="barlow" if cfg.method == "barlow" else "vicreg",
        temperature=loss.temperature,
        invariance_weight=loss.invariance_weight,
        variance_weight=loss.variance_weight,
        covariance_weight=loss.covariance_weight,
        barlow_lambda=loss.barlow_lambda,
        mi_order=adadim.mi_order,
        mi_kernel=adadim.mi_kernel,
        mi_sign=1.0 if adadim.mi_sign == "maximize" else -1.0,
    )


def _setpoint_path(steer: DictConfig) -> SetpointPath:
    if steer.target == "run":
        try:
            return read_run_path(steer.target_run, steer.smooth)
        except TargetRunError as error:
            raise ConfigError(str(error)) from None
    if steer.target == "constant":
        return SetpointPath.constant(steer.value)
    return SetpointPath(steer.target, steer.start, steer.end)


def _steering(cfg: DictConfig) -> SteeringController | None:
    if cfg.method != "steer":
        return None
    steer = cfg.steer
    return SteeringController(
        _setpoint_path(steer),
        kp=steer.kp,
        ki=steer.ki,
        kd=steer.kd,
        alpha_init=steer.alpha_init,
        alpha_min=steer.alpha_min,
        alpha_max=steer.alpha_max,
        rate_limit=steer.rate_limit,
        warmup_steps=steer.warmup_steps,
        direction=steer.direction,
        identify_steps=steer.identify_steps,
        identify_delta=steer.identify_delta,
    )


def _controller(cfg: DictConfig, total_steps: int) -> WeightController:
    adadim = cfg.adadim
    return WeightController(
        method=cfg.method,
        total_steps=total_steps,
        gamma=adadim.gamma,
        alpha=adadim.alpha,
        alpha_start=adadim.alpha_start,
        alpha_end=adadim.alpha_end,
        every=adadim.every,
        ema=adadim.ema,
        normalization=adadim.normalization,
        invert=adadim.invert,
        alpha_min=adadim.alpha_min,
        alpha_max=adadim.alpha_max,
        steering=_steering(cfg),
    )


def _monitor(cfg: DictConfig, sigmas: tuple[float, float] | None = None) -> DynamicsMonitor:
    return build_monitor(cfg.dynamics, sigmas, gather=cfg.dynamics.source == "batch")


def setup(cfg: DictConfig) -> Run:
    """Build (or restore from the newest checkpoint) everything a run needs, holding the run
    directory's lock (release it with ``run.lock.release()``; `train` does). It leaves the
    host process's allocator alone: ``run.retain_freed_memory`` is applied by `adadim train`."""
    dist = setup_distributed(cfg.run.device)
    run_id = resolve_run_id(cfg, dist)
    run_dir = Path(cfg.run.root) / run_id
    resolve_wandb(cfg.wandb, run_dir)  # a WANDB_MODE it cannot follow is refused before the run directory
    existed = run_dir.exists()
    lock = _lock_run_dir(run_dir, dist)
    try:
        if not cfg.run.resume and checkpoints(run_dir / "checkpoints"):
            raise ConfigError(f"run {run_id} already has checkpoints and run.resume=false; use a new run.id")
        run = _build(cfg, dist, run_id, run_dir)
    except BaseException:
        if lock is not None:
            lock.release()
            if not existed:
                remove_unstarted(run_dir)
        raise
    run.lock = lock
    return run


def _lock_run_dir(run_dir: Path, dist: Distributed) -> RunLock | None:
    """Rank 0 holds the run directory's lock for the whole run; a second writer is refused at
    once (RunLocked names the holder's PID). Under DDP every rank learns the outcome."""
    lock, refusal = None, None
    if dist.master_process:
        try:
            lock = acquire_run_lock(run_dir)
        except RunLocked as error:
            refusal = error
    refused = broadcast_object(str(refusal) if refusal else "", dist)
    if refusal is not None:
        raise refusal
    if refused:
        raise RunLocked(run_dir, None)
    return lock


def _build(cfg: DictConfig, dist: Distributed, run_id: str, run_dir: Path) -> Run:
    device = dist.device

    torch.manual_seed(cfg.run.seed)
    splits = load_splits(cfg.data)
    available = len(splits.ssl_train)  # type: ignore[arg-type]  # map-style datasets are sized
    _cap_probe_size(cfg, available, dist.master_process)
    if cfg.run.resume:  # after the cap, which config.yaml records
        _check_resume_config(cfg, run_dir, available)
    # channels_last on every device: oneDNN's convolutions, pooling and BatchNorm run faster in
    # it on the CPU too (results/bench/).
    model = build_model(cfg, splits.in_channels, splits.num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)

    global_batch = cfg.data.batch_size
    try:
        sampler = GlobalBatchSampler(len(splits.ssl_train), global_batch, cfg.run.seed, dist.rank, dist.world)  # type: ignore[arg-type]  # map-style datasets are sized
    except ValueError as error:  # batch larger than the data, or not divisible by the ranks
        raise ConfigError(str(error)) from None
    dataset = training_dataset(splits, cfg.data, cfg.run.seed)
    steps_per_epoch = sampler.batches_per_epoch
    total_steps = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.max_steps is not None:
        total_steps = min(total_steps, cfg.optim.max_steps)

    probe = None
    if cfg.dynamics.source == "probe" and (cfg.dynamics.every or alpha_from_probe(cfg)):
        size = probe_size(cfg.data.name, cfg.dynamics.probe_size, len(splits.ssl_train))  # type: ignore[arg-type]  # map-style datasets are sized
        probe = build_probe(cfg.data, splits, size, cfg.dynamics.seed)

    optimizer = build_optimizer(model, cfg.optim, global_batch)
    controller = _controller(cfg, total_steps)
    run = Run(
        cfg=cfg,
        dist=dist,
        run_id=run_id,
        run_dir=run_dir,
        splits=splits,
        model=model,
        optimizer=optimizer,
        controller=controller,
        monitor=_monitor(cfg),
        objective=_objective_settings(cfg),
        sampler=sampler,
        dataset=dataset,
        augmenter=build_augmenter(cfg.data, splits, cfg.run.seed, dist.rank, device),
        loader=train_loader(dataset, sampler, cfg.data.num_workers),
        probe=probe,
        logger=NullLogger(),
        eval_loaders={},
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup_steps=round(cfg.optim.warmup_epochs * steps_per_epoch),
        base_lr=cfg.optim.lr * global_batch / 256,
        autocast=torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext(),
    )
    if cfg.method == "byol":
        run.byol = BYOLTarget(model, cfg.byol.tau_base, total_steps).to(device)

    required = ("model", "optimizer", "controller", "rng_cpu", "step", *(("byol",) if run.byol else ()))
    resumed = load_latest(run_dir / "checkpoints", map_location=device, required=required) if cfg.run.resume else None
    if cfg.run.resume and resumed is None:
        refuse_lost_checkpoints(run_dir, cfg.run.checkpoint_every_steps)
    if resumed is not None:
        try:
            load_into(model, resumed[0], resumed[1], run_id, run_dir / "config.yaml")
        except CheckpointError as error:
            record_refusal(run_dir, str(error))
            raise
        _restore(run, resumed[1])

    if dist.world > 1:
        if device.type == "cuda":
            run.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(run.model)
        run.model = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[dist.local_rank] if device.type == "cuda" else None
        )
    if dist.master_process:
        origin = provenance(device, dist.world)
        run.logger = RunLogger(cfg, run_dir, run_id, run.start_step if resumed else None, origin)
        run.eval_loaders = evaluation_loaders(splits, cfg.data.name, cfg.data.num_workers)
    return run


def _cap_probe_size(cfg: DictConfig, available: int, say: bool) -> None:
    """A ``dynamics.probe_size`` above the training split's size becomes that size in ``cfg``,
    so config.yaml and the W&B config record the probe set the run measures."""
    asked = cfg.dynamics.probe_size
    if asked is None or asked <= available:
        return
    cfg.dynamics.probe_size = probe_size(cfg.data.name, asked, available)
    if say:
        note_probe_capped(asked, cfg.dynamics.probe_size)


def alpha_from_probe(cfg: DictConfig | SimpleNamespace) -> bool:
    """AdaDim reads α on the probe set's embeddings (else on the training batch's)."""
    return cfg.method == "adadim" and cfg.adadim.erank_source == "probe" and cfg.dynamics.source == "probe"


def _checkpoint_state(run: Run, step: int) -> dict:
    state = {
        "step": step,
        "model": _unwrap(run.model).state_dict(),
        **identity(run.run_id, _unwrap(run.model)),
        "optimizer": run.optimizer.state_dict(),
        "controller": run.controller.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "grad_balance": list(run.grad_balance) if run.grad_balance is not None else [],
        "sigmas": list(run.sigmas) if run.sigmas is not None else [],
    }
    if run.byol is not None:
        state["byol"] = run.byol.state_dict()
    if run.device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(run.device)
    return state


def _restore(run: Run, state: dict) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.controller.load_state_dict(state["controller"])
    if run.byol is not None:
        run.byol.load_state_dict(state["byol"])
    torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and run.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"], run.device)
    run.grad_balance = list(state.get("grad_balance") or []) or None
    run.sigmas = tuple(state.get("sigmas") or []) or None
    if run.sigmas is not None:
        run.monitor = _monitor(run.cfg, run.sigmas)
    run.start_step = int(state["step"])


def save(run: Run, step: int) -> None:
    """The one place a checkpoint is written (rank 0)."""
    if run.dist.master_process:
        save_checkpoint(run.run_dir / "checkpoints", step, _checkpoint_state(run, step), run.cfg.run.keep_checkpoints)


# ---- one step ---------------------------------------------------------------------------


@dataclass
class StepPlan:
    """What happens at this step besides the update; all decided on the host, without syncs."""

    log: bool
    measure: bool  # the dynamics monitor
    grads: bool  # gradient norms and shares of the loss terms
    probe: bool  # a forward pass over the probe set (dynamics and/or AdaDim's α)


def plan_step(run: Run, step: int, eval_due: bool) -> StepPlan:
    cfg = run.settings
    every = cfg.dynamics.every
    last = step == run.total_steps - 1
    measure = bool(every) and (step % every == 0 or last)
    alpha_due = run.controller.needs_embedding(step)
    balance_due = cfg.adadim.balance == "grad" and step % cfg.adadim.every == 0
    grads = (measure and cfg.dynamics.grad_shares) or balance_due
    probe = run.probe is not None and (
        (measure and cfg.dynamics.source == "probe") or (alpha_due and alpha_from_probe(cfg))
    )
    log = step % cfg.run.log_every == 0 or measure or alpha_due or balance_due or eval_due or last
    return StepPlan(log=log, measure=measure, grads=grads, probe=probe)


def measure_probe(run: Run) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(R views, Z views) of the whole probe set (every rank measures all of it), its time
    counted in ``run.measure_seconds``."""
    started = time.perf_counter()
    settings = run.settings.dynamics
    assert run.probe is not None  # measuring steps are planned only for runs with a probe set
    views = run.probe.forward(_unwrap(run.model), run.device, settings.probe_batch, settings.probe_norm, run.autocast)
    run.measure_seconds += time.perf_counter() - started
    return views


def _require_finite(run: Run, r_views: Views, z_views: Views, step: int) -> None:
    """Diverged weights show in the outputs before the loss: stop before measuring them."""
    if not all(bool(torch.isfinite(v).all()) for v in (*r_views, *z_views)):  # measuring steps log anyway
        raise NonFiniteLoss(
            f"the loss became non-finite: the network's outputs are NaN or Inf at step {step}; the run "
            f"stopped. Last good checkpoint: {last_checkpoint(run.run_dir)}"
        )


def _dynamics(run: Run, r_views: Views, z_views: Views, step: int) -> dict[str, Any]:
    """The monitor's measurement of these views, its time counted in ``run.measure_seconds``."""
    started = time.perf_counter()
    _require_finite(run, r_views, z_views, step)
    if run.settings.dynamics.kernel == "gaussian" and run.sigmas is None:
        # One Gaussian width per run, fixed at the first measurement (on the probe set).
        widths = run.monitor.calibrate(r_views, z_views)
        run.sigmas = (widths["sigma_r"], widths["sigma_z"])
        run.logger.set_summary({"dynamics/sigma_R": run.sigmas[0], "dynamics/sigma_Z": run.sigmas[1]})
    measured = run.monitor(r_views, z_views)
    run.measure_seconds += time.perf_counter() - started
    return measured


def train_step(run: Run, batch, step: int, plan: StepPlan):
    """One optimizer step on a loader batch: ``(x, labels)`` (views drawn here, on the device)
    or ``(x1, x2, labels)`` (views drawn by the loader). Returns (the row of device tensors to
    log, empty at quiet steps, the loss)."""
    cfg, device, model = run.settings, run.device, run.model
    if run.augmenter is not None:
        x, labels = batch
        x1, x2 = run.augmenter.views(x.to(device, non_blocking=True), step)
    else:
        x1, x2, labels = batch
    fraction = schedule_fraction(step, run.total_steps, run.warmup_steps, cfg.optim.min_lr_fraction)
    apply_schedule(run.optimizer, fraction)
    lr = run.base_lr * fraction
    x1, x2, labels = (t.to(device, non_blocking=True) for t in (x1, x2, labels))
    x1, x2 = channels_last(x1), channels_last(x2)

    # Before the update: the state being updated. Planned at every step that measures the probe
    # set or reads α from it, so the branches below that use it find it.
    probe_views: Any = measure_probe(run) if plan.probe else None
    if probe_views is not None:
        _require_finite(run, probe_views[0], probe_views[1], step)
    measured: dict[str, Any] = {}
    # method=steer sets this step's α from the ratio measured on the probe views (the weights
    # before this update), so it measures before the forward pass; every other method measures
    # after the update is queued, so that on a GPU the read-back does not stall the step.
    steer_now = plan.measure and cfg.dynamics.source == "probe" and cfg.method == "steer"
    if steer_now:
        measured = _dynamics(run, probe_views[0], probe_views[1], step)
    with run.autocast:
        outputs = model(x1, x2, predict=True) if run.byol is not None else model(x1, x2)
    (r1, r2), (z1, z2), logits = outputs[:3]
    z1, z2 = z1.float(), z2.float()

    alpha_z = None
    if run.controller.needs_embedding(step):
        alpha_z = probe_views[1][0] if alpha_from_probe(cfg) else gather_rows(z1.detach())
    ratio = measured.get("dynamics/ratio_H_I") if plan.measure and cfg.method == "steer" else None
    weights = run.controller.step(step, alpha_z, ratio)

    balance = (run.grad_balance[0], run.grad_balance[1]) if run.grad_balance is not None else None
    if run.byol is not None:
        terms = byol_objective(
            run.byol, (x1, x2), outputs[3], (r1, r2), (z1, z2), run.objective, plan.log, run.autocast
        )
    else:
        terms = adadim_objective(
            (r1, r2), (z1, z2), weights.alpha, weights.beta, run.objective, log_all=plan.log, balance=balance
        )
    probe_loss = F.cross_entropy(logits.float(), labels, ignore_index=-1)

    row: dict[str, Any] = {}
    if plan.grads:
        started = time.perf_counter()
        # BYOL's loss reaches Z through the predictor, from the model's own output views.
        norms = gradient_norms(terms, outputs[1] if run.byol is not None else (z1, z2))
        if cfg.adadim.balance == "grad":
            _update_balance(run, norms, terms, weights.alpha)
        if plan.measure and cfg.dynamics.grad_shares:
            for name, share in gradient_shares(norms).items():
                row[f"adadim/grad_norm_{name}"] = norms.get(name, torch.zeros((), device=device))
                row[f"adadim/grad_share_{name}"] = share
        run.measure_seconds += time.perf_counter() - started

    run.optimizer.zero_grad(set_to_none=True)
    (terms.loss + probe_loss).backward()
    run.optimizer.step()
    if run.byol is not None:
        run.byol.update(_unwrap(model), step)

    if not plan.log:
        return row, terms.loss
    if plan.measure and cfg.dynamics.source == "probe" and not steer_now:
        measured = _dynamics(run, probe_views[0], probe_views[1], step)
    row.update(measured)
    if plan.measure and cfg.dynamics.source == "batch":
        row.update(_dynamics(run, (r1.detach(), r2.detach()), (z1.detach(), z2.detach()), step))
    if ratio is not None and run.controller.steering is not None:
        row.update(run.controller.steering.logged())
    zero = torch.zeros((), device=device)
    assert terms.vicreg is not None  # every term is computed at log steps (log_all)
    row.update({
        STEP: step,
        EPOCH: (step + 1) / run.steps_per_epoch,
        "train/loss": terms.loss,
        "train/loss_vicreg": terms.vicreg.loss,
        "train/vicreg_invariance": terms.vicreg.invariance,
        "train/vicreg_variance": terms.vicreg.variance,
        "train/vicreg_covariance": terms.vicreg.covariance,
        "train/loss_nt_xent": terms.nt_xent,
        "train/loss_mi": terms.mi if terms.mi is not None else zero,
        "train/probe_loss": probe_loss,
        "train/lr": lr,
        "adadim/alpha": weights.alpha,
        "adadim/beta": weights.beta,
        "adadim/erank_z_norm": run.controller.erank_norm,
    })  # fmt: skip
    if run.objective.dimension_loss == "barlow":
        row["train/loss_barlow"] = terms.dimension
    if run.byol is not None:
        row["train/loss_byol"] = terms.loss
        row["train/byol_tau"] = run.byol.tau
    return row, terms.loss


def _update_balance(run: Run, norms: dict, terms, alpha: float) -> None:
    """Running estimates of the unweighted gradient norms of the two main terms (EMA), from the
    weighted norms just measured. The first measurement seeds them."""
    momentum = run.cfg.adadim.balance_momentum
    current = list(run.grad_balance) if run.grad_balance is not None else [math.nan, math.nan]
    effective = _effective_weights(run, alpha)
    for i, name in enumerate(("dimension", "nt_xent")):
        if name in norms and effective[i] > 0:
            value = float(norms[name]) / effective[i]
            current[i] = value if math.isnan(current[i]) else momentum * current[i] + (1 - momentum) * value
    if not any(math.isnan(c) for c in current):
        run.grad_balance = current


def _effective_weights(run: Run, alpha: float) -> tuple[float, float]:
    if run.grad_balance is None:
        return 1.0 - alpha, alpha
    g_dim, g_nt = (max(g, 1e-12) for g in run.grad_balance)
    scale = (1.0 - alpha) * g_dim + alpha * g_nt
    return (1.0 - alpha) * scale / g_dim, alpha * scale / g_nt


# ---- evaluation ---------------------------------------------------------------------------


def _evaluate_online(run: Run, lowlabel: bool) -> dict:
    """Per-epoch scores on the test split: the online probe, kNN, and optionally low-label."""
    model, loaders, device, settings = _unwrap(run.model), run.eval_loaders, run.device, run.cfg.eval
    feats = _features(model.backbone, {k: loaders[k] for k in ("train", "test")}, device)
    (train_x, train_y), (test_x, test_y) = feats["train"], feats["test"]
    with torch.no_grad():
        logits = model.probe(test_x.to(device)).cpu()
    out: dict[str, float] = {
        "eval/knn_top1": knn_top1(train_x, train_y, test_x, test_y, settings.knn_k),
        "eval/linear_top1": float((logits.argmax(1) == test_y).float().mean()),
    }
    if lowlabel:
        scores = evaluate_representation(train_x, train_y, {"": (test_x, test_y)}, settings, full_probe=False)
        out["eval/lowlabel_top1"] = float(scores["lowlabel_top1"])
    model.train()
    return out


def final_evaluation(cfg, backbone, loaders, device, in_channels: int) -> dict:
    """The evaluation protocol on the frozen backbone, on test ("final/...") and validation
    ("final/val_..."), and the same for a randomly initialised backbone ("final/random_init_...")."""

    def score(net, prefix):
        scores = evaluate_splits(_features(net, loaders, device), cfg.eval, cfg.eval.final_probe)
        return {f"{prefix}{k}": v for k, v in scores.items()}

    out = score(backbone, "final/")
    if cfg.eval.random_init_baseline:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.run.seed)  # the same initialisation the run started from
            random_backbone = build_backbone(cfg.model.backbone, in_channels, cfg.model.width, cfg.model.cifar_stem)
        out.update(score(random_backbone.to(device), "final/random_init_"))
        out.pop("final/random_init_lowlabel_draws", None)
    return out


# ---- the loop -----------------------------------------------------------------------------


def _raise_if_non_finite(run: Run, first_bad: torch.Tensor) -> None:
    bad_step = int(first_bad)  # a host sync: only at log steps and before checkpoints
    if bad_step >= 0:
        raise NonFiniteLoss(
            f"the loss became non-finite (NaN or Inf) at step {bad_step}; the run stopped. "
            f"Last good checkpoint: {last_checkpoint(run.run_dir)}"
        )


def train(cfg: DictConfig) -> dict:
    """Run (or resume) one training run; returns its summary. Raises ConfigError for a config
    that cannot run, NonFiniteLoss when the loss diverges."""
    run = setup(cfg)
    settings = run.settings
    master_process = run.dist.master_process
    stop = StopRequest()
    stop.install()
    progress = None
    if master_process and cfg.run.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=run.total_steps, initial=run.start_step, desc=run.run_id, dynamic_ncols=True)
    latest: dict = {}
    step, exit_signal, last_saved = run.start_step, 0, run.start_step
    first_bad = torch.full((), -1, dtype=torch.long, device=run.device)  # first step with a non-finite loss
    online_eval_seconds = 0.0
    loop_started = tick = time.perf_counter()
    steps_since_log = 0
    try:
        while step < run.total_steps and not exit_signal:
            epoch = step // run.steps_per_epoch
            run.sampler.set_epoch(epoch, step % run.steps_per_epoch)
            if isinstance(run.dataset, TwoViews):
                run.dataset.set_epoch(epoch)
            run.model.train()
            for batch in run.loader:
                epochs_done = (step + 1) // run.steps_per_epoch if (step + 1) % run.steps_per_epoch == 0 else 0
                online = _due(epochs_done, settings.eval.every_epochs)
                lowlabel = _due(epochs_done, settings.eval.lowlabel_every_epochs)
                plan = plan_step(run, step, online or lowlabel)
                row, loss = train_step(run, batch, step, plan)
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
                step += 1
                steps_since_log += 1
                checkpoint_due = step % settings.run.checkpoint_every_steps == 0

                if plan.log or checkpoint_due:
                    _raise_if_non_finite(run, first_bad)
                if plan.log:
                    if master_process and (online or lowlabel):
                        started = time.perf_counter()
                        row.update(_evaluate_online(run, lowlabel))
                        online_eval_seconds += time.perf_counter() - started
                        tick += time.perf_counter() - started  # keeps samples/s a training figure
                    row = _to_floats(row)
                    now = time.perf_counter()
                    row["trainer/samples_per_s"] = steps_since_log * settings.data.batch_size / max(now - tick, 1e-9)
                    tick, steps_since_log = now, 0
                    latest.update(row)
                    run.logger.log(row)
                    if progress is not None:
                        progress.set_postfix(
                            loss=f"{latest['train/loss']:.3f}",
                            alpha=f"{latest['adadim/alpha']:.2f}",
                            H_R=f"{latest.get('dynamics/H_R', math.nan):.2f}",
                            I_ex=f"{latest.get('dynamics/I_RZ_excess', math.nan):.2f}",
                            refresh=False,
                        )
                if progress is not None:
                    progress.update(1)
                if checkpoint_due:
                    save(run, step)
                    last_saved = step
                # A signal is a host flag; under DDP the ranks agree on it where they sync anyway.
                if run.dist.world == 1 or plan.log or checkpoint_due:
                    exit_signal = stop.agreed(run.dist, run.device)
                if step >= run.total_steps or exit_signal:
                    break
        _raise_if_non_finite(run, first_bad)
        if last_saved != step:
            save(run, step)
        if exit_signal:
            run.logger.set_summary({STEP: step})
            run.logger.finish("interrupted", exit_code=128 + exit_signal)
            return {"state": "interrupted", "signal": exit_signal, "step": step, "run_dir": str(run.run_dir)}
        loop_seconds = time.perf_counter() - loop_started
        final, started = {}, time.perf_counter()
        if master_process:
            backbone = _unwrap(run.model).backbone
            final = final_evaluation(cfg, backbone, run.eval_loaders, run.device, run.splits.in_channels)
        timing = {
            "trainer/loop_seconds": loop_seconds,
            "trainer/online_eval_seconds": online_eval_seconds,
            "trainer/measure_seconds": run.measure_seconds,
            "trainer/final_eval_seconds": time.perf_counter() - started,
        }
        floor = _end_of_run_floor(run, step) if settings.dynamics.noise_floor_repeats else {}
        widths = {"dynamics/sigma_R": run.sigmas[0], "dynamics/sigma_Z": run.sigmas[1]} if run.sigmas else {}
        summary = {**latest, **final, **floor, **timing, **widths, STEP: step, "run_dir": str(run.run_dir)}
        run.logger.set_summary(summary)
        run.logger.finish("finished")
        return {**summary, "state": "finished"}
    except NonFiniteLoss:
        run.logger.finish("failed: non-finite loss", exit_code=1)
        raise
    except BaseException:
        run.logger.finish("crashed", exit_code=1)
        raise
    finally:
        stop.restore()
        if progress is not None:
            progress.close()
        if run.lock is not None:
            run.lock.release()
        if run.dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _end_of_run_floor(run: Run, step: int) -> dict:
    """The final weights' noise floor (``dynamics.noise_floor_repeats`` view draws of the probe
    images), written to noise_floor.json by rank 0; returns its summary keys and its wall time.
    Every rank measures, as with the probe set during training, so that SyncBatchNorm's
    collectives match."""
    started = time.perf_counter()
    repeats = run.settings.dynamics.noise_floor_repeats
    floor = measure_floor(run.cfg, _unwrap(run.model), run.splits, step, repeats, run.device, run.sigmas, run.autocast)
    if run.dist.master_process:
        write_noise_floor(run.run_dir, floor)
    return {**floor_summary(floor), "trainer/noise_floor_seconds": time.perf_counter() - started}


def last_checkpoint(run_dir: Path) -> str:
    """The newest checkpoint's path, for messages."""
    found = checkpoints(run_dir / "checkpoints")
    return str(found[-1]) if found else "none (no checkpoint was written yet)"
