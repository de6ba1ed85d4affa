"""Which registered metrics each dashboard section shows.

One answer for both dashboards (the W&B workspace and the offline page), read from the
metric registry (`adadim.dynamics.keys`) at call time, so a key added or renamed there shows
up, or fails, in both at once. Keys registered as patterns (``adadim/grad_share_*``) stay
patterns here: the workspace turns them into a metric regex, the offline page matches them
against the keys a run actually logged.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from adadim.dynamics import keys

# The axes of the information plane and the metric correlated with accuracy: named here because
# the plots are defined by them; `keys.metric` fails loudly if the registry renames one. The
# plane's y axis is I(R;Z)'s excess over its permutation null where a run logged it, else
# I(R;Z) itself (as in the analysis figures).
PLANE_X, RATIO = "dynamics/H_R", "dynamics/ratio_H_I"
PLANE_YS = ("dynamics/I_RZ_excess", "dynamics/I_RZ")
# A key also drawn over the panel of the metric it is a target for (method=steer's setpoint
# over the ratio it steers); the figures and the W&B workspace read this.
OVERLAYS = {"steer/setpoint": RATIO}
# What the offline page shows first (the quantities the paper's argument is about); every key
# here must be registered (tests/test_dashboard.py), and the user can add any other.
FIRST_VIEW = (
    "dynamics/H_R",
    "dynamics/H_Z",
    "dynamics/I_RZ",
    "dynamics/I_RZ_excess",
    "dynamics/ratio_H_I",
    "dynamics/erank_R",
    "dynamics/erank_Z",
    "adadim/alpha",
)
# Bookkeeping that is no dynamics curve of its own (the N that entropies are divided by).
NOT_A_CURVE = ("dynamics/n_samples",)


@dataclass(frozen=True)
class Section:
    title: str
    keys: tuple[str, ...]  # registered keys, in registry order
    patterns: tuple[str, ...] = ()  # registered key patterns (fnmatch syntax)
    kind: str = "line"  # "line": against the key's x axis; "bar": one value per run


def _patterns(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in getattr(keys, "PATTERNS", ()) if p.startswith(tuple(f"{s}/" for s in prefixes)))


def _curves(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for s in prefixes for k in keys.in_section(s) if keys.REGISTRY[k].x and k not in NOT_A_CURVE)


def sections() -> list[Section]:
    """The dashboard's sections, from the registry as it is now."""
    for key in (PLANE_X, RATIO, *OVERLAYS, *OVERLAYS.values()):
        keys.metric(key)
    plane_ys()
    final = tuple(k for k in keys.in_section("final") if not keys.REGISTRY[k].x)
    return [
        Section("Representation dynamics", _curves(("dynamics",)), _patterns(("dynamics",))),
        Section(
            "Loss terms, loss weights and gradient shares",
            _curves(("adadim", "train")),
            _patterns(("adadim", "train")),
        ),
        Section("Steering (method=steer)", _curves(("steer",)), _patterns(("steer",))),
        Section("Evaluation during training", _curves(("eval",)), _patterns(("eval",))),
        # final/* patterns (per-k low-label scores, the draws digest) depend on the config and
        # are not all numbers: the bars show the registered scores only.
        Section("Final scores", final, kind="bar"),
    ]


def plane_ys() -> list[str]:
    """The registered candidates for the information plane's y axis, preferred first."""
    found = [k for k in PLANE_YS if k in keys.REGISTRY]
    if not found:
        raise KeyError(f"none of {', '.join(PLANE_YS)} is a registered metric (see adadim.dynamics.keys)")
    return found


def plane_y(available) -> str | None:
    """The information plane's y axis for a run set that logged ``available`` keys."""
    return next((k for k in plane_ys() if k in set(available)), None)


def pattern_regex(pattern: str) -> str:
    """An fnmatch pattern as an anchored regular expression valid in Python and JavaScript."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return "^" + "".join(parts) + "$"


def matching(pattern: str, available) -> list[str]:
    return sorted(k for k in available if fnmatch.fnmatchcase(k, pattern))


def present(section: Section, available) -> list[str]:
    """The section's keys that a run set actually has: registered keys in registry order, then
    keys matched by the section's patterns."""
    available = set(available)
    out = [k for k in section.keys if k in available]
    for pattern in section.patterns:
        out += [k for k in matching(pattern, available) if k not in out]
    return out


def x_axis(key: str) -> str:
    """The step metric a key is plotted against (the registry's, else the optimizer step)."""
    return keys.REGISTRY[key].x if key in keys.REGISTRY and keys.REGISTRY[key].x else keys.STEP
