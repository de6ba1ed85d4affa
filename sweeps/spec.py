"""Sweep files in W&B's own format: loading, validation against the trainer's config, and
trial generation for the local runner.

A sweep file is refused, before anything runs, when it has an unknown top-level key, an
unsupported search method, no metric, a command that is not ``adadim train`` (or the
torchrun wrapper) with ``${args_no_hyphens}``, an unknown parameter, or a value the
trainer's config would refuse (an unsupported method among them).
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


def format_value(value: Any) -> str:
    """A value as an OmegaConf dotlist literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def overrides(params: dict) -> list[str]:
    return [f"{k}={format_value(v)}" for k, v in params.items()]


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
        return Parameter(key, "categorical", list(spec["values"]))
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


def _check_command(command) -> None:
    text = " ".join(map(str, command or []))
    if "${args_no_hyphens}" not in text or not (("adadim" in text and "train" in text) or "torchrun-train.sh" in text):
        raise SweepError("command must run 'adadim train' (or sweeps/torchrun-train.sh) with ${args_no_hyphens}")


def _check_against_config(params: list[Parameter]) -> None:
    """Every value (or both bounds) must be accepted by the trainer's config on its own."""
    from adadim.training.config import ConfigError, load_config

    for p in params:
        candidates = p.values if p.values is not None else [p.low, p.high]
        for value in candidates:
            try:
                load_config(None, [f"{p.key}={format_value(value)}"])
            except ConfigError as error:
                raise SweepError(f"parameter {p.key!r} = {value!r}: {error}") from None


def load_sweep(name: str) -> Sweep:
    path = resolve_path(name)
    try:
        raw = yaml.safe_load(path.read_text())
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
    if not metric.get("name") or metric.get("goal", "maximize") not in ("maximize", "minimize"):
        raise SweepError(f"{path}: metric needs a name and a goal of maximize or minimize")
    _check_command(raw.get("command"))
    if not isinstance(raw.get("parameters"), dict) or not raw["parameters"]:
        raise SweepError(f"{path}: no parameters")
    params = [_parameter(k, v) for k, v in raw["parameters"].items()]
    if method == "grid":
        bad = [p.key for p in params if p.values is None]
        if bad:
            raise SweepError(f"{path}: a grid sweep needs value or values for {', '.join(bad)}")
    _check_against_config(params)
    name = raw.get("name") or path.stem
    return Sweep(name, method, metric["name"], metric.get("goal", "maximize"), params, raw.get("run_cap"), raw, path)


# ---- trials ------------------------------------------------------------------------------


def effective(params: dict) -> dict:
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


def grid_trials(sweep: Sweep) -> list[dict]:
    keys = [p.key for p in sweep.parameters]
    seen, trials = set(), []
    for combo in itertools.product(*(p.values for p in sweep.parameters)):
        params = effective(dict(zip(keys, combo, strict=True)))
        fingerprint = json.dumps(params, sort_keys=True, default=str)
        if fingerprint not in seen:
            seen.add(fingerprint)
            trials.append(params)
    return trials


def _sample(p: Parameter, rng: np.random.Generator):
    if p.values is not None:
        return p.values[int(rng.integers(len(p.values)))]
    if p.distribution == "int_uniform":
        return int(rng.integers(int(p.low), int(p.high) + 1))
    if p.distribution == "log_uniform_values":
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    value = float(rng.uniform(p.low, p.high))
    return round(value / p.q) * p.q if p.q else value


def random_trials(sweep: Sweep, count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [effective({p.key: _sample(p, rng) for p in sweep.parameters}) for _ in range(count)]
