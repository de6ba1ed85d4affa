"""Sweep files in W&B's own format: loading, validation against the trainer's config, and
trial generation for the local runner.

A sweep file is refused, before anything runs, when it has an unknown top-level key, an
unsupported search method, no metric, a command other than one of `COMMANDS`, a name that
is not a safe folder name, an unknown parameter, or a value the trainer's config would
refuse (an unsupported method among them). A grid larger than a limit (`MAX_TRIALS`) is
refused before it is built.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from adadim.training.config import is_safe_name, yaml_comment
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

SEARCH_METHODS = ("grid", "random", "bayes")
TOP_LEVEL = {
    "name",
    "description",
    "method",
    "metric",
    "parameters",
    "command",
    "program",
    "early_terminate",
    "run_cap",
    "project",
    "entity",
}
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "log_uniform_values", "q_uniform")
SWEEP_DIR = Path(__file__).parent
ARGS = "${args_no_hyphens}"
# The commands a sweep may run, as token lists (W&B's optional leading "${env}" aside).
COMMANDS = (
    f"[adadim, train, {ARGS}]",
    f"[python, -m, adadim.training.cli, train, {ARGS}]",
    f"[bash, sweeps/torchrun-train.sh, {ARGS}]",
)
PYTHONS = ("python", "python3", "${interpreter}")
# The most trials a local sweep builds at once (a grid's size, or --count); --max-trials changes it.
MAX_TRIALS = 10_000


class SweepError(ValueError):
    """A sweep file that cannot run, with the reason."""


@dataclass
class Parameter:
    key: str
    distribution: str
    values: list | None = None
    low: float | None = None
    high: float | None = None
    q: float | None = None
    probabilities: list[float] | None = None  # random search over `values`: their weights


@dataclass
class Sweep:
    name: str
    method: str
    metric: str
    goal: str
    parameters: list[Parameter]
    run_cap: int | None
    raw: dict
    path: Path
    config: str | None = None  # the trainer's --config, from the command; None: its default

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resolve_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    bundled = SWEEP_DIR / f"{name}.yaml"
    if bundled.is_file():
        return bundled
    raise SweepError(
        f"sweep file {name!r} not found (bundled: {', '.join(sorted(p.stem for p in SWEEP_DIR.glob('*.yaml')))})"
    )


_UNREADABLE = object()


def _read_plain(text: str):
    """What the trainer makes of ``key=text``, or _UNREADABLE (a '#' comment, a YAML error)."""
    if yaml_comment(text):
        return _UNREADABLE
    try:
        container = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={text}"]))
        assert isinstance(container, dict)  # a DictConfig's container is a dict
        return container["v"]
    except (yaml.YAMLError, OmegaConfBaseException, ValueError):
        return _UNREADABLE


def reads_back(text: str) -> bool:
    """Whether ``key=text`` reaches the trainer as ``text`` itself, or as the number, boolean,
    null or list it spells; False when YAML would cut (``exp #1``), reshape (``a: b``), empty
    or refuse it."""
    parsed = _read_plain(text)
    if isinstance(parsed, str):
        return parsed == text
    if parsed is None:
        return text.strip() in ("null", "Null", "NULL", "~")
    return parsed is not _UNREADABLE and not isinstance(parsed, dict)


def format_value(value: Any) -> str:
    """A value as an OmegaConf dotlist literal the trainer reads back unchanged: text that YAML
    would alter is double-quoted (a JSON string is a YAML double-quoted scalar). Text that spells
    a number, boolean, null or list is passed as written, as W&B passes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        # Inside [...] a comma or bracket in plain text would split or nest the list: text is quoted.
        items = (
            json.dumps(v) if isinstance(v, str) and isinstance(_read_plain(v), str) else format_value(v) for v in value
        )
        return "[" + ",".join(items) + "]"
    if isinstance(value, str) and not reads_back(value):
        return json.dumps(value)
    return str(value)


def overrides(params: dict) -> list[str]:
    return [f"{k}={format_value(v)}" for k, v in params.items()]


def _probabilities(key: str, spec: dict) -> list[float] | None:
    if "probabilities" not in spec:
        return None
    weights = spec["probabilities"]
    if not isinstance(weights, list) or len(weights) != len(spec["values"]):
        raise SweepError(f"parameter {key!r}: probabilities must list one weight per value")
    if any(not isinstance(w, int | float) or isinstance(w, bool) or not 0 <= w <= 1 for w in weights):
        raise SweepError(f"parameter {key!r}: probabilities must be numbers in [0, 1]")
    if abs(sum(weights) - 1) > 1e-6:
        raise SweepError(f"parameter {key!r}: probabilities must sum to 1, got {sum(weights)}")
    return [float(w) for w in weights]


def _parameter(key: str, spec: Any) -> Parameter:
    if not isinstance(spec, dict):
        raise SweepError(f"parameter {key!r} must be a mapping with value, values or distribution")
    unknown = set(spec) - {"value", "values", "distribution", "min", "max", "q", "probabilities"}
    if unknown:
        raise SweepError(f"parameter {key!r} has unsupported fields {sorted(unknown)}")
    dist = spec.get("distribution")
    if "value" in spec:
        return Parameter(key, "constant", [spec["value"]])
    if "values" in spec:
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise SweepError(f"parameter {key!r}: values must be a non-empty list")
        return Parameter(key, "categorical", list(spec["values"]), probabilities=_probabilities(key, spec))
    if "min" in spec and "max" in spec:
        low, high = spec["min"], spec["max"]
        if dist is None:
            dist = "int_uniform" if isinstance(low, int) and isinstance(high, int) else "uniform"
        if dist not in DISTRIBUTIONS[2:]:
            raise SweepError(
                f"parameter {key!r}: unsupported distribution {dist!r}; choose from {', '.join(DISTRIBUTIONS)}"
            )
        if not low < high:
            raise SweepError(f"parameter {key!r}: min must be < max")
        if dist == "log_uniform_values" and low <= 0:
            raise SweepError(f"parameter {key!r}: log_uniform_values needs min > 0")
        return Parameter(key, dist, None, low, high, spec.get("q"))
    raise SweepError(f"parameter {key!r} needs value, values, or min and max")


def command_config(tokens: list[str]) -> tuple[list[str], str | None]:
    """The command without a ``--config NAME`` just before the arguments, and that NAME (None
    when absent): how a sweep file picks the trainer's config, online and offline alike."""
    if len(tokens) >= 3 and tokens[-3] == "--config" and tokens[-1] == ARGS:
        return [*tokens[:-3], ARGS], tokens[-2]
    return tokens, None


def _allowed_command(tokens: list[str]) -> bool:
    if tokens[:1] == ["${env}"]:
        tokens = tokens[1:]
    tokens = command_config(tokens)[0]
    if tokens == ["adadim", "train", ARGS]:
        return True
    if len(tokens) == 5 and tokens[1:] == ["-m", "adadim.training.cli", "train", ARGS]:
        return tokens[0] in PYTHONS or Path(tokens[0]).name in ("python", "python3")
    if tokens[:1] == ["bash"]:
        tokens = tokens[1:]
    return len(tokens) == 2 and Path(tokens[0]).name == "torchrun-train.sh" and tokens[1] == ARGS


def _check_command(command) -> str | None:
    """The command as a token list: exactly one of `COMMANDS`, optionally with ``--config NAME``
    before the arguments; returns that NAME. Nothing else is run, so a command that merely
    mentions adadim and train is refused."""
    ok = isinstance(command, list) and all(isinstance(t, str) for t in command) and _allowed_command(command)
    if not ok:
        raise SweepError(
            f"command must run 'adadim train' with {ARGS} (optionally after --config NAME), as one of "
            f"{', '.join(COMMANDS)}; got {command!r}"
        )
    return command_config(command)[1]


def _check_against_config(params: list[Parameter], config: str | None = None) -> None:
    """The command's config must load, and every value (or both bounds) must be accepted by
    the trainer's config, on its own or beside the first value of every other parameter (a
    value that needs another key, as steer.target=run needs steer.target_run, is checked with
    the sweep's own value of that key)."""
    from adadim.training.config import ConfigError, load_config

    try:
        load_config(config, check_files=False)
    except (ConfigError, OSError) as error:
        raise SweepError(f"--config {config}: {error}") from None
    first = {p.key: (p.values[0] if p.values is not None else p.low) for p in params}
    for p in params:
        candidates = p.values if p.values is not None else [p.low, p.high]
        for value in candidates:
            alone = [f"{p.key}={format_value(value)}"]
            together = [f"{k}={format_value(v)}" for k, v in first.items() if k != p.key] + alone
            try:
                load_config(config, alone, check_files=False)
            except ConfigError:
                try:
                    load_config(config, together, check_files=False)
                except ConfigError as error:  # the reason beside the sweep's other values
                    raise SweepError(f"parameter {p.key!r} = {value!r}: {error}") from None


def load_sweep(name: str) -> Sweep:
    path = resolve_path(name)
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not a text file") from None
    except yaml.YAMLError as error:
        raise SweepError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a sweep file is a mapping")
    unknown = set(raw) - TOP_LEVEL
    if unknown:
        raise SweepError(f"{path}: unknown top-level keys {sorted(unknown)}")
    method = raw.get("method")
    if method not in SEARCH_METHODS:
        raise SweepError(f"{path}: search method {method!r} is not supported; choose {', '.join(SEARCH_METHODS)}")
    metric = raw.get("metric") or {}
    if (
        not isinstance(metric, dict)
        or not metric.get("name")
        or metric.get("goal", "maximize") not in ("maximize", "minimize")
    ):
        raise SweepError(f"{path}: metric needs a name and a goal of maximize or minimize")
    config = _check_command(raw.get("command"))
    if not isinstance(raw.get("parameters"), dict) or not raw["parameters"]:
        raise SweepError(f"{path}: no parameters")
    params = [_parameter(k, v) for k, v in raw["parameters"].items()]
    if method == "grid":
        bad = [p.key for p in params if p.values is None]
        if bad:
            raise SweepError(f"{path}: a grid sweep needs value or values for {', '.join(bad)}")
    weighted = [p.key for p in params if p.probabilities is not None]
    if weighted and method != "random":
        raise SweepError(f"{path}: probabilities weight a random search only; {method} cannot use them ({weighted[0]})")
    _check_against_config(params, config)
    name = raw.get("name") or path.stem
    # The name is a folder under --root and the prefix of every trial's run.id.
    if not is_safe_name(name) or len(name) > 80:
        raise SweepError(
            f"{path}: sweep name {name!r} is not a safe folder name: use at most 80 letters, digits, '-', '_', '.', "
            "starting with a letter or digit (set name: in the file)"
        )
    run_cap = raw.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1):
        raise SweepError(f"{path}: run_cap must be a positive integer, got {run_cap!r}")
    return Sweep(name, method, metric["name"], metric.get("goal", "maximize"), params, run_cap, raw, path, config)


def wandb_unsafe_values(sweep: Sweep) -> list[str]:
    """Values W&B would pass unquoted (``key=value``) that the trainer would not read back as
    written; the local runner quotes them, an online sweep cannot."""
    bad = []
    for p in sweep.parameters:
        for value in p.values or []:
            texts = value if isinstance(value, list) else [value]
            bad += [f"{p.key}={t}" for t in texts if isinstance(t, str) and not reads_back(t)]
    return bad


# ---- trials ------------------------------------------------------------------------------


def distinct_params(params: dict) -> dict:
    """Drop alpha settings the chosen method ignores, so the local runner runs each distinct
    trial once (an online W&B grid cannot skip them)."""
    method = params.get("method")
    out = dict(params)
    if method is not None and method != "fixed":
        out.pop("adadim.alpha", None)
    if method is not None and method not in ("linear", "cosine"):
        out.pop("adadim.alpha_start", None)
        out.pop("adadim.alpha_end", None)
    return out


def check_trial_modes(trials: list[dict], config: str | None, extra: list[str], first: int = 0) -> None:
    """Each trial as the trainer will read it: a key its mode never reads is refused, naming
    the trial, before any trial runs (the rule of `adadim.training.mode_keys`)."""
    from adadim.training import mode_keys
    from adadim.training.config import ConfigError, load_config, user_set_keys

    config = config or "digits"  # the trainer's own default
    try:
        base = load_config(config, extra, check_files=False)
        base_keys = user_set_keys(config, extra)
    except ConfigError as error:
        raise SweepError(f"the overrides given to every trial: {error}") from None
    modes = {rule.mode for rule in mode_keys.RULES} | set(mode_keys.IMPLIES)
    for index, params in enumerate(trials):
        values = {key: params.get(key, OmegaConf.select(base, key)) for key in modes}
        user = base_keys | set(params)
        values.update(mode_keys.implied(values, user))
        problem = mode_keys.conflict(values, user)
        if problem:
            raise SweepError(f"trial {first + index} {params}: {problem}")


def grid_size(sweep: Sweep) -> int:
    """Combinations in a grid, before skipping the ones that differ only in ignored settings."""
    return math.prod(len(values) for values in _grid_values(sweep))


def _grid_values(sweep: Sweep) -> list[list]:
    """Each parameter's values (`load_sweep` refuses a grid parameter without them)."""
    values = [p.values for p in sweep.parameters if p.values is not None]
    if len(values) != len(sweep.parameters):
        raise SweepError(f"{sweep.path}: a grid sweep needs value or values for every parameter")
    return values


def check_trial_count(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise SweepError(
            f"{what} {count:,} trials, more than the limit of {limit:,}; "
            "take fewer with --count, or raise the limit with --max-trials"
        )


def grid_trials(sweep: Sweep, limit: int = MAX_TRIALS, count: int | None = None) -> list[dict]:
    """Every distinct combination, in order; with ``count``, the first ``count`` of them. The
    size is checked against ``limit`` before anything is built."""
    if count is None:
        check_trial_count(grid_size(sweep), limit, "the grid has")
    else:
        check_trial_count(count, limit, "--count asks for")
    keys = [p.key for p in sweep.parameters]
    seen, trials = set(), []
    for combo in itertools.product(*_grid_values(sweep)):
        params = distinct_params(dict(zip(keys, combo, strict=True)))
        fingerprint = json.dumps(params, sort_keys=True, default=str)
        if fingerprint not in seen:
            seen.add(fingerprint)
            trials.append(params)
            if count is not None and len(trials) == count:
                break
    return trials


def _sample(p: Parameter, rng: np.random.Generator):
    if p.values is not None:
        return p.values[int(rng.choice(len(p.values), p=p.probabilities))]
    assert p.low is not None and p.high is not None  # _parameter sets both without values
    if p.distribution == "int_uniform":
        return int(rng.integers(int(p.low), int(p.high) + 1))
    if p.distribution == "log_uniform_values":
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    value = float(rng.uniform(p.low, p.high))
    return round(value / p.q) * p.q if p.q else value


def random_trials(sweep: Sweep, count: int, seed: int, limit: int = MAX_TRIALS) -> list[dict]:
    check_trial_count(count, limit, f"a {sweep.method} sweep of")
    rng = np.random.default_rng(seed)
    return [distinct_params({p.key: _sample(p, rng) for p in sweep.parameters}) for _ in range(count)]
