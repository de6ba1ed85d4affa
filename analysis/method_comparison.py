"""The paper's headline comparison as a test: does the AdaDim arm beat every baseline arm?

Pre-declared (Kokilepersaud et al., arXiv 2505.12576, claim AdaDim > SimCLR, VICReg, BYOL,
Barlow Twins on linear evaluation):

- per baseline, the difference of mean accuracy (AdaDim - baseline) with a one-sided test in
  the claimed direction: paired by seed (Student's t on the per-seed differences) when both
  arms hold exactly the same seeds once each, else Welch's t;
- Holm's correction across the baselines present;
- supported only when every baseline's Holm-adjusted p is below alpha (an intersection-union
  test: the row's p is the largest Holm-adjusted p) and every difference is positive.

The estimate is the difference to the best baseline (the highest mean accuracy), with its
two-sided confidence interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from . import inference

REFERENCE = "adadim"
BASELINES = ("vicreg", "simclr", "byol", "barlow")


def _seeded(frame: pd.DataFrame, accuracy: str, seed: str) -> pd.Series:
    values = pd.to_numeric(frame[accuracy], errors="coerce")
    keys = frame[seed] if seed in frame else pd.Series(range(len(frame)), index=frame.index)
    return pd.Series(values.to_numpy(float), index=keys.to_numpy()).dropna()


def compare_pair(reference: pd.Series, baseline: pd.Series, confidence: float = 0.95) -> dict:
    """One baseline: reference and baseline accuracies indexed by seed. Paired when the seed
    sets match (each seed once), Welch otherwise; one-sided p for reference > baseline."""
    paired = (
        reference.index.is_unique
        and baseline.index.is_unique
        and set(reference.index) == set(baseline.index)
        and len(reference) >= 2
    )
    if paired:
        diff = reference - baseline.loc[reference.index]
        result = stats.ttest_1samp(diff.to_numpy(), 0.0, alternative="greater")
        ci = stats.ttest_1samp(diff.to_numpy(), 0.0).confidence_interval(confidence)
        estimate = float(diff.mean())
    else:
        result = stats.ttest_ind(reference.to_numpy(), baseline.to_numpy(), equal_var=False, alternative="greater")
        ci = stats.ttest_ind(reference.to_numpy(), baseline.to_numpy(), equal_var=False).confidence_interval(confidence)
        estimate = float(reference.mean() - baseline.mean())
    return {
        "estimate": estimate,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p_value": float(result.pvalue),
        "test": "paired" if paired else "Welch",
        "n": (len(reference), len(baseline)),
    }


def compare_methods(
    runs: pd.DataFrame,
    accuracy: str,
    method: str = "method",
    seed: str = "run.seed",
    reference: str = REFERENCE,
    baselines=BASELINES,
) -> tuple[dict, str]:
    """(result, note): the row's estimate, CI, p_value (largest Holm-adjusted p), ``sign_ok``,
    ``n`` (runs compared), and a note naming each baseline's difference and the best baseline.
    ``result`` is empty when the reference or every baseline lacks two finite runs."""
    if method not in runs:
        return {}, f"no {method!r} column in the runs"
    arm = {name: _seeded(runs[runs[method] == name], accuracy, seed) for name in (reference, *baselines)}
    if len(arm[reference]) < 2:
        return {}, f"needs >= 2 {reference} runs with {accuracy}, has {len(arm[reference])}"
    present = [b for b in baselines if len(arm[b]) >= 2]
    if not present:
        return {}, f"needs a baseline arm ({', '.join(baselines)}) with >= 2 runs"
    pairs = {b: compare_pair(arm[reference], arm[b]) for b in present}
    holm = inference.holm([pairs[b]["p_value"] for b in present])
    best = max(present, key=lambda b: arm[b].mean())
    top = pairs[best]
    result = {
        "estimate": top["estimate"],
        "ci_low": top["ci_low"],
        "ci_high": top["ci_high"],
        "p_value": float(np.max(holm)),
        "sign_ok": all(pairs[b]["estimate"] > 0 for b in present),
        "n": len(arm[reference]) + sum(len(arm[b]) for b in present),
    }
    parts = [
        f"{b} {_fmt(pairs[b]['estimate'])} ({pairs[b]['test']}, p = {_fmt(pairs[b]['p_value'])}, Holm {_fmt(h)})"
        for b, h in zip(present, holm, strict=True)
    ]
    note = (
        f"{reference} ({len(arm[reference])} runs) minus: " + "; ".join(parts) + f"; best baseline: {best}"
        f" (mean {_fmt(float(arm[best].mean()))} vs {_fmt(float(arm[reference].mean()))})"
    )
    missing = [b for b in baselines if b not in present]
    if missing:
        note += f"; absent: {', '.join(missing)}"
    return result, note


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.3g}"
