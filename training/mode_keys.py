"""Settings that only one mode reads: refused when the user sets them for another mode.

A key such as ``adadim.alpha`` is read only by ``method=fixed``; set beside ``method=vicreg``
it would be recorded in ``config.yaml`` and shown by the analysis as if it mattered. Only keys
the user set count (an override, or their own config file): a bundled config file writes
defaults for every mode and is never refused for it.

Where the user's intent is unambiguous the key implies its mode instead (``steer.target_run``
alone means ``steer.target=run``), and the note says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class ReadBy:
    """``keys`` are read only when the setting ``mode`` has one of ``values``."""

    keys: tuple[str, ...]  # exact keys, or a section as "steer.*"
    mode: str
    values: tuple[str, ...]


# Checked in order: a method that ignores the whole steer section is named before a target.
RULES = (
    ReadBy(("steer.*",), "method", ("steer",)),
    ReadBy(("byol.*",), "method", ("byol",)),
    ReadBy(("adadim.alpha",), "method", ("fixed",)),
    ReadBy(("adadim.alpha_start", "adadim.alpha_end"), "method", ("linear", "cosine")),
    ReadBy(
        ("adadim.ema", "adadim.normalization", "adadim.invert", "adadim.alpha_min", "adadim.alpha_max"),
        "method",
        ("adadim",),
    ),
    ReadBy(("adadim.erank_source",), "method", ("adadim",)),
    ReadBy(("steer.value",), "steer.target", ("constant",)),
    ReadBy(("steer.start", "steer.end"), "steer.target", ("linear", "cosine")),
    ReadBy(("steer.target_run", "steer.smooth"), "steer.target", ("run",)),
    ReadBy(("steer.identify_steps", "steer.identify_delta"), "steer.direction", ("auto",)),
    # Image folders: data.name=imagefolder, or cifar10/cifar100 laid out as class folders.
    ReadBy(
        ("data.skip_bad_images", "data.image_cache", "data.cache_dir"),
        "data.name",
        ("imagefolder", "cifar10", "cifar100"),
    ),
)

# A key that names its mode when the user left the mode unset.
IMPLIES = {"steer.target_run": ("steer.target", "run")}


class ModeKeyError(ValueError):
    """A key the chosen mode never reads."""


def dotted_keys(node: Any, prefix: str = "") -> set[str]:
    """Every leaf key of a nested mapping as ``section.key`` (lists are one value)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node)
    if not isinstance(node, Mapping):
        return {prefix[:-1]} if prefix else set()
    keys: set[str] = set()
    for key, value in node.items():
        keys |= dotted_keys(value, f"{prefix}{key}.") if isinstance(value, Mapping | DictConfig) else {prefix + key}
    return keys


def _matches(key: str, pattern: str) -> bool:
    return key == pattern or (pattern.endswith(".*") and key.startswith(pattern[:-1]))


def implied(values: Mapping[str, Any], user_keys: Iterable[str]) -> dict[str, Any]:
    """The modes the user's keys imply, for modes the user did not set and that differ."""
    user = set(user_keys)
    out = {}
    for key, (mode, value) in IMPLIES.items():
        if key in user and values.get(key) is not None and mode not in user and values.get(mode) != value:
            out[mode] = value
    return out


def conflict(values: Mapping[str, Any], user_keys: Iterable[str]) -> str | None:
    """One line naming the first user-set key that the config's mode never reads, or None.
    ``values`` holds at least every mode setting (``method``, ``steer.target``, ...)."""
    user = sorted(set(user_keys))
    for rule in RULES:
        if values.get(rule.mode) in rule.values:
            continue
        for key in user:
            if any(_matches(key, pattern) for pattern in rule.keys):
                wanted = " or ".join(f"{rule.mode}={v}" for v in rule.values)
                return (
                    f"{key} is read only with {wanted}, and this config has {rule.mode}={values.get(rule.mode)}; "
                    f"drop {key} or set {wanted}"
                )
    return None


def apply(cfg: DictConfig, user_keys: Iterable[str]) -> list[str]:
    """Set the modes the user's keys imply (returning a note for each), then refuse a user-set
    key the resulting mode never reads (`ModeKeyError`)."""
    user = set(user_keys)
    values = {rule.mode: OmegaConf.select(cfg, rule.mode) for rule in RULES}
    values.update({key: OmegaConf.select(cfg, key) for key in IMPLIES})
    notes = []
    for mode, value in implied(values, user).items():
        OmegaConf.update(cfg, mode, value)
        values[mode] = value
        source = next(k for k, (m, _) in IMPLIES.items() if m == mode)
        notes.append(f"{source} implies {mode}={value}")
    problem = conflict(values, user)
    if problem:
        raise ModeKeyError(problem)
    return notes
