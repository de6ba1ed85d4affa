"""The training configuration: a typed OmegaConf schema, YAML files and key=value overrides.

`load_config(path, overrides)` merges, in order: the schema defaults, the YAML file (a path
or the name of a bundled config such as ``digits``), and OmegaConf dotlist overrides
(``optim.lr=0.1``, the form W&B sweeps pass through ``${args_no_hyphens}``). Unknown keys and
wrong types are refused by the schema; `validate` refuses values no run could use. Every
refusal is a `ConfigError` with a one-line reason.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from adadim.dynamics import DEFAULT_METRICS, METRIC_GROUPS
from adadim.dynamics.run_format import flatten
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .controller import METHODS
from .mode_keys import ModeKeyError, dotted_keys
from .mode_keys import apply as apply_mode_keys
from .setpoints import TARGETS
from .steering import DIRECTIONS

DATASETS = ("digits", "synthetic", "cifar10", "cifar100", "stl10", "imagefolder")
BACKBONES = ("small_cnn", "cifar_cnn", "resnet18", "resnet50")
OPTIMIZERS = ("sgd", "adamw", "lars")
CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration no run can start from."""


@dataclass
class AugmentConfig:
    """Strengths of the on-device augmentation (``data.augment_on=device``); null keeps the
    preset's default (`adadim.training.augment`). The first six apply to the digits preset
    (digits, synthetic), the rest to the colour presets (CIFAR, STL-10, image folders)."""

    rotation_deg: float | None = None  # angle uniform in ±rotation_deg
    scale: list[float] | None = None  # [low, high] zoom factor
    shift_px: float | None = None  # shift uniform in ±shift_px pixels
    noise_std: float | None = None  # Gaussian pixel noise
    erase_p: float | None = None  # probability of erasing a rectangle
    erase_px: list[int] | None = None  # [low, high] side of the erased rectangle, in pixels
    crop_scale: list[float] | None = None  # [low, high] crop area fraction
    jitter: list[float] | None = None  # brightness, contrast, saturation, hue
    jitter_p: float | None = None  # probability of the colour jitter
    grayscale_p: float | None = None  # probability of converting a view to grayscale
    flip_p: float | None = None  # probability of a horizontal flip
    blur_p: float | None = None  # probability of a Gaussian blur
    solarize_p: float | None = None  # probability of solarizing a view


DIGITS_STRENGTHS = ("rotation_deg", "scale", "shift_px", "noise_std", "erase_p", "erase_px")


def augment_strengths(augment) -> dict[str, Any]:
    """The strengths set in a ``data.augment`` section (nulls dropped), as `BatchAugmenter`
    keyword arguments (pairs as tuples)."""
    values = (
        cast(dict[str, Any], OmegaConf.to_container(augment))
        if isinstance(augment, DictConfig)
        else dict(vars(augment))
    )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if v is not None}


@dataclass
class DataConfig:
    name: str = "digits"  # digits | synthetic | cifar10 | cifar100 | stl10 | imagefolder
    root: str | None = None  # required for cifar10/cifar100/stl10/imagefolder
    download: bool = False  # let torchvision download cifar/stl10 (needs internet)
    batch_size: int = 256  # global batch, split across ranks
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    # device: the loader yields plain image batches and the trainer augments whole batches on
    # the training device (fast); loader: per-sample torchvision transforms in the DataLoader.
    augment_on: str = "device"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    test_fraction: float = 0.25  # digits: stratified held-out test split
    split_seed: int = 0  # seed of the train/test (digits) and train/validation splits, independent of run.seed
    val_fraction: float = 0.1  # labelled training images held out for validation (0: none)
    # seed of the train/validation split alone (null: split_seed); another value re-draws the
    # validation images from the same training images and leaves the test split as it is
    val_seed: int | None = None
    per_class_limit: int | None = None  # keep at most this many training images per class
    synthetic_samples: int = 512  # images in the synthetic dataset (tests and smoke runs)
    synthetic_classes: int = 4  # classes of the synthetic dataset
    synthetic_size: int = 8  # synthetic images are 1 x size x size
    skip_bad_images: bool = False  # image folders: leave out images that do not decode (counted on stderr)
    # image folders (imagefolder, or cifar10/cifar100 as train/ and test/ class folders): decode
    # images of one size under 128 px once into a uint8 cache that later runs memory-map
    # (docs/training.md, "Data"); false: decode every image every epoch
    image_cache: bool = True
    cache_dir: str | None = None  # where the image cache lives (null: $XDG_CACHE_HOME/adadim/images)


@dataclass
class ModelConfig:
    backbone: str = "small_cnn"  # small_cnn | cifar_cnn | resnet18 | resnet50
    cifar_stem: bool = True  # 3x3 stride-1 stem, no max-pool, for 32x32 images
    width: int = 32  # small_cnn / cifar_cnn base width; R has 4x / 8x this many features
    projector: list[int] = field(default_factory=lambda: [512, 512])  # hidden..., output width
    view_batches: str = "joint"  # joint: both views in one batch (BatchNorm over both) | separate: one per view


@dataclass
class LossConfig:
    temperature: float = 0.2  # NT-Xent's temperature τ
    invariance_weight: float = 25.0  # VICReg's invariance coefficient λ
    variance_weight: float = 25.0  # VICReg's variance coefficient μ
    covariance_weight: float = 1.0  # VICReg's covariance coefficient ν
    barlow_lambda: float = 5e-3  # Barlow Twins' off-diagonal weight λ


@dataclass
class AdaDimConfig:
    alpha: float = 0.5  # method=fixed
    alpha_start: float = 0.0  # method=linear|cosine
    alpha_end: float = 1.0  # method=linear|cosine: alpha at the last step
    gamma: float = 0.0  # beta = gamma * alpha weights the MI term (0: off)
    every: int = 10  # AdaDim: recompute alpha from erank(Z) every k steps
    ema: float = 0.0  # AdaDim: alpha <- ema * alpha + (1 - ema) * new
    normalization: str = "dim"  # erank / min(N, D_Z) ("dim") or log erank / log min(N, D_Z) ("log")
    invert: bool = False  # use 1 - normalized erank
    alpha_min: float = 0.0  # AdaDim: lower clip of alpha
    alpha_max: float = 1.0  # AdaDim: upper clip of alpha
    mi_sign: str = "maximize"  # the MI term is subtracted (maximize) or added (minimize)
    mi_order: float = 2.0  # Renyi order of the MI term
    mi_kernel: str = "cosine"  # kernel of the MI term: cosine | linear | gaussian
    # Where AdaDim reads erank(Z): the fixed probe set (batch-size free; needs dynamics.source=probe)
    # or the training batch (the paper's description; depends on the batch size).
    erank_source: str = "probe"
    # grad: divide the two main terms by running estimates of their gradient norms w.r.t. Z, so
    # alpha is NT-Xent's share of the update (beyond the paper). none: alpha is a loss weight.
    balance: str = "none"
    balance_momentum: float = 0.9  # EMA of those gradient-norm estimates


@dataclass
class SteerConfig:
    """method=steer: a PI controller sets alpha so that dynamics/ratio_H_I follows a setpoint
    path (`adadim.training.steering`). Gains act on the relative error (setpoint - ratio) / setpoint;
    the defaults were tuned on digits."""

    target: str = "constant"  # constant | linear | cosine | run
    value: float = 2.0  # target=constant
    start: float = 3.0  # target=linear|cosine: the setpoint at the first step ...
    end: float = 2.0  # ... and at the last
    target_run: str | None = None  # target=run: an earlier run's directory (its history.jsonl)
    smooth: int = 3  # target=run: rolling median over this many of its measurements
    # Tuned on digits (docs/steering.md); the controller class's own defaults (0.4,
    # 0.2) are the synthetic-plant tuning its tests use.
    kp: float = 1.0
    ki: float = 0.5  # per control step (one dynamics measurement)
    kd: float = 0.0  # derivative gain (0: a PI controller)
    alpha_init: float = 0.5  # alpha during the warm-up, and the controller's operating point
    alpha_min: float = 0.0  # lower clip of alpha
    alpha_max: float = 1.0  # upper clip of alpha
    rate_limit: float = 0.1  # largest change of alpha per control step
    warmup_steps: int = 20  # optimizer steps with alpha held at alpha_init (the ratio's first fall)
    direction: str = "1"  # 1: more NT-Xent raises the ratio; -1: lowers it; auto: identify after the warm-up
    identify_steps: int = 2  # direction=auto: control steps per block of the high-low-low-high probe
    identify_delta: float = 0.2  # direction=auto: the probe's alpha offset from alpha_init


@dataclass
class ByolConfig:
    """method=byol (Grill et al., NeurIPS 2020): the target network is an EMA of the online
    backbone and projector, its rate tau rising from tau_base to 1 on a cosine over training."""

    tau_base: float = 0.99  # solo-learn's CIFAR value (0.996 on ImageNet at batch 4096)
    predictor_hidden: int = 512  # hidden width of the predictor MLP (its output is Z's width)


@dataclass
class OptimConfig:
    name: str = "lars"  # sgd | adamw | lars
    lr: float = 0.3  # base lr, scaled by batch_size / 256
    weight_decay: float = 1e-4  # decoupled for adamw; biases and norms excluded for lars
    momentum: float = 0.9  # sgd and lars momentum
    lars_eta: float = 0.02  # LARS trust coefficient η
    warmup_epochs: float = 10.0  # linear warm-up of the learning rate, then cosine decay
    min_lr_fraction: float = 0.0  # the cosine decay's final learning rate, as a fraction of the peak
    epochs: int = 400  # passes over the SSL training split
    max_steps: int | None = None  # cap the run at this many steps; the cosine ends there, the warm-up keeps its epochs
    probe_lr: float = 0.1  # the online linear probe's lr (no weight decay)


@dataclass
class DynamicsConfig:
    every: int = 10  # run the monitor every k optimizer steps, and at the last step (0: never)
    # probe: a fixed, seeded probe set with fixed views, in eval mode (flat curves for a frozen
    # network); batch: each measured step's own training batch (mixes in batch noise).
    source: str = "probe"
    # images in the probe set; null: 1024 digits, 4096 CIFAR, 2048 others; more than the training
    # split holds is capped, and config.yaml records the cap
    probe_size: int | None = None
    probe_batch: int = 512  # chunk size of the probe forward pass (bounds memory)
    # batch: BatchNorm uses each fixed probe chunk's statistics (running statistics are put back),
    # so a measurement depends on the weights alone; running: eval mode, BatchNorm running
    # statistics (they also carry the recent training batches).
    probe_norm: str = "batch"
    grad_shares: bool = True  # log each loss term's gradient norm w.r.t. Z and its share
    # metric groups the monitor computes (docs/dynamics.md)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    order: float = 2.0  # Renyi order of every entropy and MI
    kernel: str = "cosine"  # cosine | linear | gaussian
    n_permutations: int = 4  # permutations of the sampled baseline I_RZ_perm
    seed: int = 0  # seed of the probe set's draw and of the permutations
    # At the end of training, measure the probe set on this many fresh view draws of the final
    # weights and write noise_floor.json (0: off; the coupling claim reads it).
    noise_floor_repeats: int = 0


@dataclass
class EvalConfig:
    every_epochs: int = 1  # online linear probe + kNN on the test split
    knn_k: int = 20  # plain kNN: majority vote of the k nearest
    knn_weighted_k: int = 200  # weighted kNN (Wu et al. 2018): k and temperature
    knn_temperature: float = 0.07  # weighted kNN's temperature
    final_probe: bool = True  # linear probe on the frozen backbone at the end
    final_probe_epochs: int = 100  # epochs of the final full linear probe
    lowlabel_k: list[int] = field(default_factory=lambda: [10])  # labelled images per class; first is the headline
    lowlabel_draws: int = 5  # label draws averaged over (the same for every run)
    seed: int = 0  # seed of the label draws and the probes, independent of run.seed
    lowlabel_epochs: int = 200  # epochs of each low-label linear probe
    lowlabel_every_epochs: int = 0  # also log eval/lowlabel_top1 every n epochs (0: only at the end)
    random_init_baseline: bool = True  # the same final evaluation on a randomly initialised backbone


@dataclass
class WandbConfig:
    # null: W&B's environment decides (WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY), else offline
    # and "adadim" (`adadim.training.wandb_env`)
    mode: str | None = None  # online | offline | disabled
    project: str | None = None  # null: WANDB_PROJECT, else adadim
    entity: str | None = None  # null: WANDB_ENTITY, else W&B's default
    group: str | None = None  # W&B run group (the analysis groups runs by it)
    name: str | None = None  # W&B display name (default: the run id)
    tags: list[str] = field(default_factory=list)  # W&B tags


@dataclass
class RunConfig:
    root: str = "runs"  # folder that holds the run directories
    id: str | None = None  # default: <method>-<dataset>-<seed>-<timestamp>
    seed: int = 0  # seed of the weights, the views and the batch order
    device: str = "auto"  # auto | cpu | cuda
    checkpoint_every_steps: int = 500  # write a checkpoint every k optimizer steps (and on SIGTERM and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    log_every: int = 1  # write a history row every k steps
    progress: bool = True  # print a progress bar
    retain_freed_memory: bool = True  # glibc keeps freed heap for reuse (faster CPU steps; see runtime.py)
    resume: bool = True  # continue from the newest checkpoint when the run directory exists


@dataclass
class TrainConfig:
    # adadim | vicreg | simclr | barlow | fixed | linear | cosine | steer | byol (docs/training.md)
    method: str = "adadim"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adadim: AdaDimConfig = field(default_factory=AdaDimConfig)
    steer: SteerConfig = field(default_factory=SteerConfig)
    byol: ByolConfig = field(default_factory=ByolConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    run: RunConfig = field(default_factory=RunConfig)


def bundled_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _resolve_path(config: str) -> Path:
    path = Path(config)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{config}.yaml"
    if bundled.is_file():
        return bundled
    raise ConfigError(f"config file {config!r} not found (bundled configs: {', '.join(bundled_configs())})")


def _one_line(error: Exception) -> str:
    message = " ".join(str(error).split("\n")[0].split())
    key = getattr(error, "full_key", None)
    return f"{key}: {message}" if key and key not in message else message


# A run id or sweep name becomes a folder name: no separators, no leading dot, no spaces.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# What `adadim eval --run` may change: how the run is scored, never what was trained.
EVAL_RUN_KEYS = ("eval.*", "data.num_workers", "run.device")


def is_safe_name(name: str) -> bool:
    """A name usable as one path segment: letters, digits, '-', '_', '.', starting with a
    letter or digit (so never '.', '..' or a hidden file), at most 100 characters."""
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None


def yaml_comment(text: str) -> bool:
    """True when YAML would drop the end of ``text`` as a comment (``exp #1`` reads as ``exp``)."""
    if "#" not in text:
        return False
    try:
        tokens = [t for t in yaml.scan(text) if not isinstance(t, yaml.StreamStartToken | yaml.StreamEndToken)]
    except yaml.YAMLError:
        return False  # not YAML at all: the parser reports that on its own
    end = max((t.end_mark.index for t in tokens), default=0)
    return text[end:].strip().startswith("#")


def parse_overrides(overrides: list[str]) -> DictConfig:
    """OmegaConf dotlist overrides (``key=value``, values read as YAML), each checked on its own
    so an error names the override. A value YAML would cut at a ``#`` is refused, not truncated."""
    parsed = OmegaConf.create()
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if yaml_comment(value):
            raise ConfigError(
                f"override {item!r}: YAML reads everything from '#' on as a comment; quote the value: {key}='{value}'"
            )
        try:
            parsed = cast(DictConfig, OmegaConf.merge(parsed, OmegaConf.from_dotlist([item])))
        except yaml.YAMLError as error:
            raise ConfigError(
                f"override {item!r}: the value {value!r} is not valid YAML ({_one_line(error)}); "
                f"to pass it as text, quote it: {key}='{value}'"
            ) from None
        except (OmegaConfBaseException, ValueError) as error:
            raise ConfigError(f"override {item!r}: {_one_line(error)}") from None
    return parsed


def read_config_file(path: str | Path) -> DictConfig:
    """One YAML config file as a mapping (safe loader: Python tags are refused)."""
    try:
        loaded = OmegaConf.load(path)
    except OSError as error:
        # OmegaConf reports a YAML file that holds a bare scalar as an OSError too.
        raise ConfigError(f"cannot read {path}: {error.strerror or _one_line(error)}") from None
    except (yaml.YAMLError, OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"cannot read {path}: {_one_line(error)}") from None
    if not isinstance(loaded, DictConfig):
        kind = "a list" if isinstance(loaded, ListConfig) else type(loaded).__name__
        raise ConfigError(f"{path} holds {kind}, not a mapping of config keys")
    return loaded


def _merge(*parts: DictConfig) -> DictConfig:
    """The schema defaults, then each part in order; unknown keys and wrong types refused."""
    cfg = OmegaConf.structured(TrainConfig)
    try:
        for part in parts:
            cfg = OmegaConf.merge(cfg, part)
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(_one_line(error)) from None
    return cfg


def user_set_keys(config: str | None, overrides: list[str] | None) -> set[str]:
    """The dotted keys the user set: their overrides, and every key of their own config file.
    A bundled config file's keys are defaults, not the user's."""
    keys = dotted_keys(parse_overrides(list(overrides or [])))
    if config is not None and _resolve_path(config).parent.resolve() != CONFIG_DIR.resolve():
        keys |= dotted_keys(read_config_file(_resolve_path(config)))
    return keys


def load_config(config: str | None = None, overrides: list[str] | None = None, check_files: bool = True) -> DictConfig:
    """Schema defaults <- YAML file <- dotlist overrides, validated. ``check_files=False``
    skips the check that the dataset's folder exists (a sweep file is checked before the
    machine that will hold the data runs it)."""
    parts = [read_config_file(_resolve_path(config))] if config is not None else []
    cfg = _merge(*parts, parse_overrides(list(overrides or [])))
    try:
        for note in apply_mode_keys(cfg, user_set_keys(config, overrides)):
            print(f"adadim: {note}", file=sys.stderr)
    except ModeKeyError as error:
        raise ConfigError(str(error)) from None
    validate(cfg, check_files)
    return cfg


def load_saved_config(run_dir: str | Path) -> DictConfig:
    """A run's own ``config.yaml``, through the same schema and validation as a new config.
    Refuses a folder that is not a run, and a garbled or foreign file, with one line."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    loaded = read_config_file(path)
    try:
        cfg = _merge(loaded)
        validate(cfg)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return cfg


def _allowed(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == a or (a.endswith(".*") and key.startswith(a[:-1])) for a in allowed)


def override_saved_config(
    cfg: DictConfig, overrides: list[str], allowed: tuple[str, ...] = EVAL_RUN_KEYS
) -> DictConfig:
    """A saved run's config with ``overrides`` applied, through the same schema and validation
    as `load_config`. Only keys matching ``allowed`` (``eval.*``: any key under eval) may
    change; any other key is refused, named, even when its value would not change."""
    for item in overrides:
        key = str(item).partition("=")[0].strip()
        if "=" in str(item) and not _allowed(key, allowed):
            raise ConfigError(
                f"{key} cannot be changed for a trained run; only {', '.join(allowed)} can "
                "(a different training config needs a new run)"
            )
    merged = _merge(cfg, parse_overrides(list(overrides)))
    validate(merged)
    return merged


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _require_finite(cfg: DictConfig) -> None:
    """Every number must be finite: ``inf`` passes most range checks (``optim.lr=inf`` > 0)."""

    def walk(node, prefix: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            name = f"{prefix}{key}" if isinstance(node, dict) else f"{prefix[:-1]}[{key}]"
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value}")
            walk(value, f"{name}.")

    walk(OmegaConf.to_container(cfg, resolve=True), "")


def _validate_augment(d: DictConfig) -> None:
    """Ranges of the ``data.augment`` strengths, and only those of the dataset's preset."""
    strengths = augment_strengths(d.augment)
    digits = d.name in ("digits", "synthetic")
    wrong = sorted(k for k in strengths if (k in DIGITS_STRENGTHS) != digits)
    _require(
        not wrong,
        f"data.augment.{', data.augment.'.join(wrong)}: not a strength of dataset {d.name!r}'s preset; "
        f"it takes {', '.join(k for k in vars(AugmentConfig()) if (k in DIGITS_STRENGTHS) == digits)}",
    )

    def pair(key: str, ok, rule: str) -> None:
        if key in strengths:
            v = strengths[key]
            _require(len(v) == 2 and ok(*v), f"data.augment.{key} must be [low, high] with {rule}, got {list(v)}")

    size = 8 if d.name == "digits" else d.synthetic_size
    pair("scale", lambda lo, hi: 0 < lo <= hi, "0 < low <= high")
    pair("erase_px", lambda lo, hi: 1 <= lo <= hi <= size, f"1 <= low <= high <= {size} (the image size)")
    pair("crop_scale", lambda lo, hi: 0 < lo <= hi <= 1, "0 < low <= high <= 1")
    for key in ("rotation_deg", "shift_px", "noise_std"):
        if key in strengths:
            _require(strengths[key] >= 0, f"data.augment.{key} must be >= 0, got {strengths[key]}")
    for key in ("erase_p", "jitter_p", "grayscale_p", "flip_p", "blur_p", "solarize_p"):
        if key in strengths:
            _require(0 <= strengths[key] <= 1, f"data.augment.{key} must be in [0, 1], got {strengths[key]}")
    if "jitter" in strengths:
        j = strengths["jitter"]
        _require(
            len(j) == 4 and min(j) >= 0 and j[3] <= 0.5,
            f"data.augment.jitter must be [brightness, contrast, saturation, hue] >= 0, hue <= 0.5, got {list(j)}",
        )


def _validate_steer(cfg: DictConfig) -> None:
    """The steer section, and what method=steer needs from the dynamics: its measured ratio."""
    steer = cfg.steer
    _require(steer.target in TARGETS, f"steer.target must be one of {', '.join(TARGETS)}, got {steer.target!r}")
    if steer.target == "run":
        _require(
            bool(steer.target_run), "steer.target_run is required with steer.target=run (an earlier run's directory)"
        )
    for key in {"constant": ("value",), "linear": ("start", "end"), "cosine": ("start", "end")}.get(steer.target, ()):
        _require(steer[key] > 0, f"steer.{key} must be > 0 (a ratio; the error is relative to it), got {steer[key]}")
    _require(steer.smooth >= 1, f"steer.smooth must be >= 1, got {steer.smooth}")
    for key in ("kp", "ki", "kd"):
        _require(steer[key] >= 0, f"steer.{key} must be >= 0, got {steer[key]}")
    _require(steer.kp > 0 or steer.ki > 0, "steer.kp and steer.ki cannot both be 0 (alpha would never move)")
    for key in ("alpha_init", "alpha_min", "alpha_max"):
        _require(0 <= steer[key] <= 1, f"steer.{key} must be in [0, 1], got {steer[key]}")
    _require(
        steer.alpha_min <= steer.alpha_init <= steer.alpha_max,
        f"need steer.alpha_min <= steer.alpha_init <= steer.alpha_max, got "
        f"{steer.alpha_min}, {steer.alpha_init}, {steer.alpha_max}",
    )
    _require(0 < steer.rate_limit <= 1, f"steer.rate_limit must be in (0, 1], got {steer.rate_limit}")
    _require(steer.warmup_steps >= 0, f"steer.warmup_steps must be >= 0, got {steer.warmup_steps}")
    _require(
        steer.direction in DIRECTIONS,
        f"steer.direction must be one of {', '.join(DIRECTIONS)}, got {steer.direction!r}",
    )
    _require(steer.identify_steps >= 1, f"steer.identify_steps must be >= 1, got {steer.identify_steps}")
    _require(0 < steer.identify_delta <= 0.5, f"steer.identify_delta must be in (0, 0.5], got {steer.identify_delta}")
    if steer.direction == "auto":
        # Both probe levels must differ from alpha_init, or one level's samples are lost and the
        # sign falls back to +1 without evidence.
        _require(
            steer.alpha_min < steer.alpha_init < steer.alpha_max,
            "steer.direction=auto needs steer.alpha_min < steer.alpha_init < steer.alpha_max (it probes alpha "
            f"above and below alpha_init), got {steer.alpha_min}, {steer.alpha_init}, {steer.alpha_max}",
        )
    if cfg.method == "steer":
        dynamics = cfg.dynamics
        _require(dynamics.every >= 1, "method=steer needs dynamics.every >= 1: alpha is set at each measurement")
        _require(
            dynamics.source == "probe",
            f"method=steer needs dynamics.source=probe (the fixed probe set), got {dynamics.source!r}",
        )
        _require(
            "mutual_information" in dynamics.metrics,
            "method=steer needs 'mutual_information' in dynamics.metrics (it measures dynamics/ratio_H_I)",
        )


def validate(cfg: DictConfig, check_files: bool = True) -> None:
    """Refuse values no run can use, before any work starts (``check_files``: also that the
    dataset's folder exists)."""
    _require_finite(cfg)
    _require(cfg.method in METHODS, f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    data = cfg.data
    _require(data.name in DATASETS, f"unknown dataset {data.name!r}; choose one of {', '.join(DATASETS)}")
    if data.name in ("cifar10", "cifar100", "stl10", "imagefolder"):
        _require(
            data.root is not None, f"data.root is required for dataset {data.name!r} (the folder holding its files)"
        )
        _require(
            not check_files or data.download or Path(data.root).is_dir(),
            f"data.root {data.root!r} does not exist (data.download=true fetches {data.name})",
        )
    _require(data.batch_size >= 2, f"data.batch_size must be >= 2, got {data.batch_size}")
    _require(data.num_workers >= 0, f"data.num_workers must be >= 0, got {data.num_workers}")
    _require(
        data.augment_on in ("device", "loader"), f"data.augment_on must be device or loader, got {data.augment_on!r}"
    )
    _validate_augment(data)
    _require(0 < data.test_fraction < 1, f"data.test_fraction must be in (0, 1), got {data.test_fraction}")
    _require(0 <= data.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {data.val_fraction}")
    _require(data.per_class_limit is None or data.per_class_limit >= 1, "data.per_class_limit must be >= 1 or null")
    _require(
        data.synthetic_samples >= 8 and data.synthetic_classes >= 2 and data.synthetic_size >= 4,
        "synthetic data is too small",
    )
    model = cfg.model
    _require(model.backbone in BACKBONES, f"unknown backbone {model.backbone!r}; choose one of {', '.join(BACKBONES)}")
    _require(
        len(model.projector) >= 1 and all(w >= 1 for w in model.projector), "model.projector must list widths >= 1"
    )
    _require(model.width >= 1, f"model.width must be >= 1, got {model.width}")
    _require(
        model.view_batches in ("joint", "separate"),
        f"model.view_batches must be joint or separate, got {model.view_batches!r}",
    )
    loss = cfg.loss
    _require(loss.temperature > 0, f"loss.temperature must be > 0, got {loss.temperature}")
    for key in ("invariance_weight", "variance_weight", "covariance_weight", "barlow_lambda"):
        _require(loss[key] >= 0, f"loss.{key} must be >= 0, got {loss[key]}")
    adadim = cfg.adadim
    for key in ("alpha", "alpha_start", "alpha_end", "alpha_min", "alpha_max"):
        _require(0 <= adadim[key] <= 1, f"adadim.{key} must be in [0, 1], got {adadim[key]}")
    _require(adadim.alpha_min <= adadim.alpha_max, "adadim.alpha_min must be <= adadim.alpha_max")
    _require(adadim.gamma >= 0, f"adadim.gamma must be >= 0, got {adadim.gamma}")
    _require(adadim.every >= 1, f"adadim.every must be >= 1, got {adadim.every}")
    _require(0 <= adadim.ema < 1, f"adadim.ema must be in [0, 1), got {adadim.ema}")
    _require(
        adadim.normalization in ("dim", "log"),
        f"adadim.normalization must be 'dim' or 'log', got {adadim.normalization!r}",
    )
    _require(
        adadim.mi_sign in ("maximize", "minimize"),
        f"adadim.mi_sign must be 'maximize' or 'minimize', got {adadim.mi_sign!r}",
    )
    _require(adadim.mi_order > 0, f"adadim.mi_order must be > 0, got {adadim.mi_order}")
    _require(adadim.mi_kernel in ("cosine", "linear", "gaussian"), f"unknown adadim.mi_kernel {adadim.mi_kernel!r}")
    _require(
        adadim.erank_source in ("probe", "batch"),
        f"adadim.erank_source must be 'probe' or 'batch', got {adadim.erank_source!r}",
    )
    _require(adadim.balance in ("none", "grad"), f"adadim.balance must be 'none' or 'grad', got {adadim.balance!r}")
    _require(
        0 <= adadim.balance_momentum < 1, f"adadim.balance_momentum must be in [0, 1), got {adadim.balance_momentum}"
    )
    _validate_steer(cfg)
    optim = cfg.optim
    _require(optim.name in OPTIMIZERS, f"unknown optimizer {optim.name!r}; choose one of {', '.join(OPTIMIZERS)}")
    _require(optim.lr >= 0, f"optim.lr must be >= 0 (0 freezes the network), got {optim.lr}")
    _require(optim.probe_lr > 0, f"optim.probe_lr must be > 0, got {optim.probe_lr}")
    _require(optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {optim.weight_decay}")
    _require(0 <= optim.momentum < 1, f"optim.momentum must be in [0, 1), got {optim.momentum}")
    _require(optim.epochs >= 1, f"optim.epochs must be >= 1, got {optim.epochs}")
    _require(optim.warmup_epochs >= 0, f"optim.warmup_epochs must be >= 0, got {optim.warmup_epochs}")
    _require(0 <= optim.min_lr_fraction <= 1, f"optim.min_lr_fraction must be in [0, 1], got {optim.min_lr_fraction}")
    _require(
        optim.max_steps is None or optim.max_steps >= 1, f"optim.max_steps must be >= 1 or null, got {optim.max_steps}"
    )
    dynamics = cfg.dynamics
    _require(dynamics.every >= 0, f"dynamics.every must be >= 0, got {dynamics.every}")
    unknown = [k for k in dynamics.metrics if k not in METRIC_GROUPS]
    _require(not unknown, f"unknown dynamics.metrics {unknown}; choose from {', '.join(METRIC_GROUPS)}")
    _require(dynamics.order > 0, f"dynamics.order must be > 0, got {dynamics.order}")
    _require(dynamics.kernel in ("cosine", "linear", "gaussian"), f"unknown dynamics.kernel {dynamics.kernel!r}")
    _require(dynamics.n_permutations >= 1, f"dynamics.n_permutations must be >= 1, got {dynamics.n_permutations}")
    _require(
        dynamics.source in ("probe", "batch"), f"dynamics.source must be 'probe' or 'batch', got {dynamics.source!r}"
    )
    _require(
        dynamics.probe_size is None or dynamics.probe_size >= 2,
        f"dynamics.probe_size must be >= 2, got {dynamics.probe_size}",
    )
    _require(dynamics.probe_batch >= 1, f"dynamics.probe_batch must be >= 1, got {dynamics.probe_batch}")
    _require(
        dynamics.probe_norm in ("batch", "running"),
        f"dynamics.probe_norm must be 'batch' or 'running', got {dynamics.probe_norm!r}",
    )
    _require(
        dynamics.noise_floor_repeats == 0 or dynamics.noise_floor_repeats >= 5,
        "dynamics.noise_floor_repeats must be 0 (off) or >= 5 (the coupling claim reads >= 5 draws), "
        f"got {dynamics.noise_floor_repeats}",
    )
    byol = cfg.byol
    _require(0 <= byol.tau_base < 1, f"byol.tau_base must be in [0, 1), got {byol.tau_base}")
    _require(byol.predictor_hidden >= 1, f"byol.predictor_hidden must be >= 1, got {byol.predictor_hidden}")
    evaluation = cfg.eval
    for key in ("every_epochs", "lowlabel_every_epochs"):
        _require(evaluation[key] >= 0, f"eval.{key} must be >= 0, got {evaluation[key]}")
    for key in ("knn_k", "knn_weighted_k", "final_probe_epochs", "lowlabel_draws", "lowlabel_epochs"):
        _require(evaluation[key] >= 1, f"eval.{key} must be >= 1, got {evaluation[key]}")
    _require(evaluation.knn_temperature > 0, f"eval.knn_temperature must be > 0, got {evaluation.knn_temperature}")
    _require(
        len(evaluation.lowlabel_k) >= 1 and all(k >= 1 for k in evaluation.lowlabel_k),
        "eval.lowlabel_k must list counts >= 1",
    )
    wandb = cfg.wandb
    _require(
        wandb.mode in (None, "online", "offline", "disabled"),
        f"wandb.mode must be online, offline or disabled, got {wandb.mode!r}",
    )
    run = cfg.run
    _require(run.device in ("auto", "cpu", "cuda"), f"run.device must be auto, cpu or cuda, got {run.device!r}")
    _require(run.checkpoint_every_steps >= 1, "run.checkpoint_every_steps must be >= 1")
    _require(run.keep_checkpoints >= 1, "run.keep_checkpoints must be >= 1")
    _require(run.log_every >= 1, "run.log_every must be >= 1")
    if run.id is not None:
        _require(
            is_safe_name(run.id),
            f"run.id {run.id!r} must start with a letter or digit and hold only letters, digits, '-', '_', '.'"
            " (at most 100)",
        )


def to_flat_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as {dotted.key: value}, for W&B and the runs table."""
    return flatten(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True)))
