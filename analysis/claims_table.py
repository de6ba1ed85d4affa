"""The claims table: one row per claim of the AdaDim paper, each with its pre-declared test.

Design notes: docs/analysis.md, "Design notes: claims_table".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from . import inference
from .foreign import KEY_MAP_PREFIX
from .method_comparison import compare_methods
from .runset import DEFAULT_ACCURACY, RunSet
from .studies import (
    H_R,
    I_EXCESS,
    RATIO,
    coupling_per_run,
    coupling_values,
    equilibrium,
    equilibrium_points,
    group_means,
    grouping_column,
    mean_test,
    unsettled_runs,
)

CLAIMS = ("ratio_accuracy", "optimum_H_R", "optimum_I_RZ_excess", "coupling_early_late", "method_comparison")
COLUMNS = ("claim", "test", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "supported", "n", "note")
TESTS = {
    "ratio_accuracy": "equilibrium H(R)/I_excess vs accuracy: between arms, Pearson r of group means (t, G - 2 "
    "df); within arms, Pearson r of arm-centred runs (t, n - G - 1 df); p = min(1, 2 min(p_within, p_between)), "
    "two-sided; estimate and Fisher-z CI of the part with the smaller p",
    "optimum": "Simonsohn's two lines on equilibrium {x}: rise (b1 > 0) then fall (b2 < 0), both significant; "
    "random intercept per group; estimate: b2",
    "method_comparison": "accuracy of adadim minus each baseline arm, one-sided (paired by seed where the "
    "seeds match, else Welch); Holm across the baselines; all must be significant; estimate: minus the best baseline",
    "coupling_early_late": "per run, Fisher z of r(ΔH(R), ΔI_excess): early - floor > 0 and early - late > 0, "
    "both significant; random intercept per group; estimate: mean early - late",
}


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.3g}"


def _units(data: pd.DataFrame) -> str:
    return f"{len(data)} runs in {data['group'].nunique()} groups"


def _unsettled_note(eq: pd.DataFrame, metric: str, ids) -> str:
    bad = [r for r in unsettled_runs(eq, metric) if r in set(ids)]
    if not bad:
        return ""
    shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
    return f"; {len(bad)} run(s) not settled on {metric} (trend in the last window): {shown}"


def _row(claim: str, test: str, result: dict, sign_ok: bool, n: int, note: str) -> dict:
    return {
        "claim": claim,
        "test": test,
        "estimate": result.get("estimate", np.nan),
        "ci_low": result.get("ci_low", np.nan),
        "ci_high": result.get("ci_high", np.nan),
        "p_value": result.get("p_value", np.nan),
        "sign_ok": bool(sign_ok),
        "n": n,
        "note": note,
    }


def _missing(claim: str, test: str, reason: str) -> dict:
    return _row(claim, test, {}, False, 0, f"not tested: {reason}")


def _within(data: pd.DataFrame) -> dict | None:
    """Pearson r of ratio and accuracy centred on their arm means (fixed arm effects), its
    t test on n - G - 1 df and Fisher-z CI; None when it has fewer than 2 df or no spread."""
    centred = data[["x", "y"]] - data.groupby("group")[["x", "y"]].transform("mean")
    groups = data["group"].nunique()
    df = len(data) - groups - 1
    if df < 2 or np.ptp(centred["x"]) == 0 or np.ptp(centred["y"]) == 0:
        return None
    r = float(np.corrcoef(centred["x"], centred["y"])[0, 1])
    t = r * math.sqrt(df / max(1.0 - r * r, 1e-300))
    low, high = inference.correlation_ci(r, df + 2)
    return {"estimate": r, "ci_low": low, "ci_high": high, "p_value": float(2 * stats.t.sf(abs(t), df)), "df": df}


def _between(means: pd.DataFrame) -> dict | None:
    if len(means) < 4 or means["x"].nunique() < 3 or means["y"].nunique() < 2:
        return None
    test_result = stats.pearsonr(means["x"], means["y"])
    r, p = float(test_result.statistic), float(test_result.pvalue)
    low, high = inference.correlation_ci(r, len(means))
    return {"estimate": r, "ci_low": low, "ci_high": high, "p_value": p}


def _ratio_row(rs, eq, accuracy, by, ratio_sign, alpha) -> dict:
    claim, test = "ratio_accuracy", TESTS["ratio_accuracy"]
    if RATIO not in eq:
        return _missing(claim, test, f"the history has no {RATIO}")
    data = equilibrium_points(rs, RATIO, accuracy, by, eq)
    means = group_means(data)
    between, within = _between(means), _within(data)
    if between is None and within is None:
        return _missing(claim, test, f"needs >= 4 groups with distinct means or >= 2 within-arm df, has {_units(data)}")
    parts = {name: part for name, part in (("within", within), ("between", between)) if part is not None}
    decisive = min(parts, key=lambda name: parts[name]["p_value"])
    result = dict(parts[decisive])
    result["p_value"] = min(1.0, len(parts) * result["p_value"])
    claimed = [np.sign(part["estimate"]) for part in parts.values() if part["p_value"] < alpha] or [
        np.sign(result["estimate"])
    ]
    sign_ok = len(set(claimed)) == 1 and (ratio_sign == 0 or claimed[0] == np.sign(ratio_sign))
    note = f"decided by {decisive}; "
    if within is not None:
        note += f"within r = {_fmt(within['estimate'])} p = {_fmt(within['p_value'])} ({within['df']} df); "
    else:
        note += "within: untestable (< 2 df); "
    if between is not None:
        _, p_perm = inference.permutation_pearson(means["x"].to_numpy(), means["y"].to_numpy())
        note += (
            f"between r = {_fmt(between['estimate'])} p = {_fmt(between['p_value'])}, n = {len(means)} group means "
            f"of {len(data)} runs; exact permutation p = {_fmt(p_perm)} (secondary)"
        )
    else:
        note += f"between: untestable (needs >= 4 groups with distinct means, has {_units(data)})"
    units = len(data) if decisive == "within" else len(means)
    return _row(claim, test, result, sign_ok, units, note + _unsettled_note(eq, RATIO, data.index))


def _method_row(rs, accuracy) -> dict:
    claim, test = "method_comparison", TESTS["method_comparison"]
    # By arm: AdaDim is the plain arm (γ = 0, no balancing), not its MI or balancing variants
    # pooled into one "method", which would count several arms' runs as one arm's seeds.
    column = "arm" if "arm" in rs.runs else "method"
    result, note = compare_methods(rs.runs, accuracy, method=column)
    if not result:
        return _missing(claim, test, note)
    return _row(claim, test, result, result["sign_ok"], result["n"], note)


def _optimum_row(rs, eq, x, accuracy, by) -> dict:
    claim, test = f"optimum_{x.split('/')[-1]}", TESTS["optimum"].format(x=x)
    if x not in eq:
        return _missing(claim, test, f"the history has no {x}")
    data = equilibrium_points(rs, x, accuracy, by, eq)
    lines = inference.two_lines(data["x"], data["y"], data["group"].to_numpy())
    if not math.isfinite(lines.p_value):
        return _missing(claim, test, f"{lines.reason} ({_units(data)})")
    result = {"estimate": lines.b2, "ci_low": lines.ci2[0], "ci_high": lines.ci2[1], "p_value": lines.p_value}
    quad = inference.quadratic(data["x"], data["y"])
    note = (
        f"{_units(data)}; breakpoint {x} = {_fmt(lines.breakpoint)}; rise b1 = {_fmt(lines.b1)} "
        f"[{_fmt(lines.ci1[0])}, {_fmt(lines.ci1[1])}] p = {_fmt(lines.p1)}; fall b2 p = {_fmt(lines.p2)}; "
        f"quadratic vertex {_fmt(quad['vertex'])} (descriptive)"
    )
    sign_ok = lines.b1 > 0 and lines.b2 < 0
    return _row(claim, test, result, sign_ok, len(data), note + _unsettled_note(eq, x, data.index))


def _coupling_row(rs, early, late, by) -> dict:
    claim, test = "coupling_early_late", TESTS["coupling_early_late"]
    try:
        per_run = coupling_per_run(rs, early, late, by=by)
    except KeyError as error:
        return _missing(claim, test, str(error.args[0] if error.args else error))
    usable = per_run[np.isfinite(per_run[["z_early", "z_late", "z_floor"]]).all(axis=1)]
    if len(usable) < 3:
        return _missing(claim, test, f"needs >= 3 runs with early, late and floor coupling, has {len(usable)}")
    above_floor = mean_test(coupling_values(usable, "early - floor"), usable["group"])
    early_late = mean_test(coupling_values(usable, "early - late"), usable["group"])
    p = max(above_floor["p_value"], early_late["p_value"])
    result = {k: early_late[k] for k in ("estimate", "ci_low", "ci_high")} | {"p_value": p}
    sources = usable["floor_source"].value_counts()
    r_early, r_late, r_floor = (inference.fisher_mean(usable[f"r_{w}"]) for w in ("early", "late", "floor"))
    note = (
        f"{len(usable)} runs in {usable['group'].nunique()} groups; r early {_fmt(r_early)}, "
        f"late {_fmt(r_late)}, floor {_fmt(r_floor)} "
        f"(Fisher-z means); early - floor {_fmt(above_floor['estimate'])} p = {_fmt(above_floor['p_value'])}; "
        f"early - late p = {_fmt(early_late['p_value'])}; floor from noise_floor.json: "
        f"{int(sources.get('noise_floor.json', 0))} runs, surrogate (late-window residuals): "
        f"{int(sources.get('surrogate', 0))} runs"
    )
    bad_files = [f"{r}: {n}" for r, n in zip(per_run["run_id"], per_run["floor_note"], strict=True) if n]
    if bad_files:
        note += "; unusable noise floors: " + "; ".join(bad_files[:3])
    if len(usable) < len(per_run):
        note += f"; {len(per_run) - len(usable)} run(s) with too few changes in a window left out"
    sign_ok = above_floor["estimate"] > 0 and early_late["estimate"] > 0
    return _row(claim, test, result, sign_ok, len(usable), note)


def _accuracy_named(rs, accuracy: str, claim: str, note: str) -> str:
    """The accuracy claims name the run's own key when a key map renamed it (runs from other trainers)."""
    column = KEY_MAP_PREFIX + accuracy
    if claim == "coupling_early_late" or column not in rs.runs:
        return note
    foreign = sorted(set(rs.runs[column].dropna().astype(str)))
    return f"accuracy: {', '.join(foreign)} (as {accuracy})" + (f"; {note}" if note else "")


def claims(
    rs: RunSet,
    accuracy: str = DEFAULT_ACCURACY,
    by: str = "auto",
    window: float = 0.2,
    early: tuple[float, float] = (0.0, 0.3),
    late: tuple[float, float] = (0.7, 1.0),
    ratio_sign: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per claim (``CLAIMS``), columns ``COLUMNS``; see the module docstring. A claim
    that cannot be tested (a missing key, too few runs) has NaN p-values, ``supported``
    False and the reason in ``note``; it does not count in Holm's family."""
    if ratio_sign not in (-1, 0, 1):
        raise ValueError(f"ratio_sign must be -1, 0 or 1, got {ratio_sign}")
    by = grouping_column(rs, by)
    if accuracy not in rs.runs:
        available = sorted(c for c in rs.runs.columns if str(c).startswith("final/"))
        raise KeyError(f"no accuracy key {accuracy!r} in the runs; available: {', '.join(available) or 'none'}")
    eq = equilibrium(rs, [RATIO, H_R, I_EXCESS], window)
    rows = [
        _ratio_row(rs, eq, accuracy, by, ratio_sign, alpha),
        _optimum_row(rs, eq, H_R, accuracy, by),
        _optimum_row(rs, eq, I_EXCESS, accuracy, by),
        _coupling_row(rs, early, late, by),
        _method_row(rs, accuracy),
    ]
    table = pd.DataFrame(rows)
    table["note"] = [_accuracy_named(rs, accuracy, row["claim"], row["note"]) for _, row in table.iterrows()]
    table["p_holm"] = inference.holm(table["p_value"].to_numpy(float))
    table["supported"] = (table["p_holm"] < alpha) & table["sign_ok"]
    return table[list(COLUMNS)]
