"""Read ``noise_floor.json`` (written by ``adadim noise-floor --run DIR``) and the coupling that
measurement noise alone produces.

The file holds K repeated measurements of one checkpoint on fresh view draws:
``{"version": 1, "step", "repeats": K, "source", "mean": {key: x}, "sd": {key: x},
"samples": {key: [K values]}}``. The network does not change between the K measurements, so
the correlation of consecutive differences of two keys' samples is the coupling of ΔH(R) and
ΔI(R;Z) that pure measurement noise gives: the floor that training-time coupling has to beat.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FILENAME = "noise_floor.json"
FORMAT_VERSION = 1
EXCESS = "dynamics/I_RZ_excess"


def find_noise_floor(run_id: str, source) -> Path | None:
    """The run's ``noise_floor.json``: in its run directory, which is the loaded source itself
    or, for W&B offline files (``<run>/wandb/offline-run-*/run-<id>.wandb``), the nearest
    ancestor named after the run."""
    if source is None or (isinstance(source, float) and math.isnan(source)) or str(source).startswith("wandb:"):
        return None
    path = Path(str(source))
    for folder in [path, *list(path.parents)[:3]]:
        if folder == path or folder.name == run_id:
            candidate = folder / FILENAME
            if candidate.is_file():
                return candidate
    return None


def read_noise_floor(path: Path) -> dict:
    """The parsed file; ValueError with a one-line reason when it is not a version-1 noise floor."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a version-{FORMAT_VERSION} noise floor")
    samples = data.get("samples")
    if not isinstance(samples, dict) or not samples:
        raise ValueError(f"{path}: no samples")
    return data


def _samples(floor: dict, key: str) -> np.ndarray | None:
    samples = floor["samples"]
    if key in samples:
        return np.asarray(samples[key], dtype=float)
    if key == EXCESS and "dynamics/I_RZ" in samples and "dynamics/I_RZ_perm" in samples:
        # Files from before the excess was logged: the excess is I(R;Z) minus its permutation null.
        return np.asarray(samples["dynamics/I_RZ"], dtype=float) - np.asarray(
            samples["dynamics/I_RZ_perm"], dtype=float
        )
    return None


def floor_coupling(floor: dict, h: str = "dynamics/H_R", i: str = EXCESS) -> tuple[float, int]:
    """(Pearson r of consecutive differences of the two keys' samples, number of differences).
    ValueError when the keys are missing, of unequal length, or have fewer than 5 samples."""
    a, b = _samples(floor, h), _samples(floor, i)
    if a is None or b is None:
        raise ValueError(f"the noise floor has no samples of {h if a is None else i}")
    if len(a) != len(b) or len(a) < 5:
        raise ValueError(f"the noise floor needs >= 5 paired samples of {h} and {i}, has {len(a)} and {len(b)}")
    da, db = np.diff(a), np.diff(b)
    if not (np.all(np.isfinite(da)) and np.all(np.isfinite(db))) or np.ptp(da) == 0 or np.ptp(db) == 0:
        raise ValueError("the noise floor's samples are constant or not finite")
    return float(np.corrcoef(da, db)[0, 1]), len(da)
