"""Input checks shared by every estimator.

They run before any arithmetic so that a bad call fails with a message that names the
problem, instead of a NaN or a shape error deep inside a matrix product.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch

KERNELS = ("cosine", "linear", "gaussian")
Sigma = float | tuple[float | None, float | None] | list[float | None] | None
_Estimator = TypeVar("_Estimator", bound=Callable[..., Any])


def check_features(x: torch.Tensor, name: str = "x", min_samples: int = 2) -> None:
    """Require a 2-D floating tensor with at least `min_samples` rows and only finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (samples x features), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples (rows), got {x.shape[0]}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s)")


def check_same_samples(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of samples, got {x.shape[0]} and {y.shape[0]}"
        )
    if x.device != y.device:
        raise ValueError(f"{names[0]} is on {x.device} but {names[1]} is on {y.device}")


def check_order(order: float, name: str = "order") -> float:
    """Rényi order: a finite real number > 0 (order 1 is the von Neumann limit)."""
    try:
        value = float(order)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {order!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {order!r}")
    return value


def warn_alpha_renamed(owner: str, stacklevel: int = 3) -> None:
    # The default stacklevel points the warning at the caller of a decorated public function.
    warnings.warn(
        f"{owner}: alpha= is deprecated and will be removed in the next release; pass the Rényi order as order=",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def accepts_alpha_for_order(fn: _Estimator) -> _Estimator:
    """Let ``fn`` take the Rényi order under its old keyword ``alpha=`` for one more release.

    The order was called ``alpha``, which clashed with AdaDim's loss weight α. ``alpha=`` still
    works, with a DeprecationWarning; passing both names is an error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "alpha" in kwargs:
            if "order" in kwargs:
                raise TypeError(f"{fn.__name__}() got both order= and its deprecated name alpha=; pass order= only")
            warn_alpha_renamed(f"{fn.__name__}()")
            kwargs["order"] = kwargs.pop("alpha")
        return fn(*args, **kwargs)

    return cast(_Estimator, wrapper)


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    return kernel


def check_sigma(sigma: float | None, name: str = "sigma") -> float | None:
    if sigma is None:
        return None
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or None, got {sigma!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 or None, got {sigma!r}")
    return value


def check_sigma_pair(sigma: Sigma) -> tuple[float | None, float | None]:
    """Gaussian widths of a pair of inputs: one value (or None) for both, or a (sigma_x, sigma_y) pair."""
    if isinstance(sigma, (tuple, list)):
        if len(sigma) != 2:
            raise ValueError(f"sigma must be a number, None or a (sigma_x, sigma_y) pair, got {sigma!r}")
        return check_sigma(sigma[0], "sigma_x"), check_sigma(sigma[1], "sigma_y")
    width = check_sigma(sigma)
    return width, width


def check_positive(value: float, name: str, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value
