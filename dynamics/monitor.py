"""Turn R and Z (a probe set's, or one training step's) into a flat dict of dynamics metrics.

The keys are the ``dynamics/`` names of the metric registry (``adadim.dynamics.keys``). Views
are stacked along the sample axis before measuring (Ouyang et al., ICLR 2025, concatenate both
views), so B images with 2 views are measured on N = 2B samples. Under ``torch.distributed``
each view is gathered across ranks first, in rank order, so every rank gets the numbers one
process would get on the whole set.

Dependence is read from ``dynamics/I_RZ_excess``, I(R;Z) minus its expectation over random
sample permutations of Z (exact at order 2, see ``adadim.dynamics.permutation_null``): the raw
``dynamics/I_RZ`` of high-dimensional features is mostly self-similarity and reads several
nats for independent data. ``dynamics/ratio_H_I`` is H(R) / I_excess.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import InitVar, dataclass
from typing import Any

import torch

from ._validation import KERNELS, check_features, check_order, check_positive, check_sigma, warn_alpha_renamed
from .entropy import DEFAULT_NULL_PERMUTATIONS, autocast_off, information_terms
from .geometry import alignment_unchecked, uniformity_from_cosine
from .gram_blocks import blocked_order2_terms
from .kernels import feature_map, median_heuristic_sigma, normalized_rows
from .spectrum import alpha_req, effective_rank_unchecked, lidar

# One view (N×D, or N×C×H×W flattened) or several views of the same samples, stacked.
Views = torch.Tensor | Sequence[torch.Tensor]

PREFIX = "dynamics/"

# Metric groups a monitor can run, and the keys each one writes.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "entropy": ("H_R", "H_Z"),
    "mutual_information": ("H_RZ", "I_RZ", "I_RZ_excess", "ratio_H_I", "ratio_H_I_raw"),
    "permutation_baseline": ("I_RZ_perm",),
    "normalized": ("H_R_norm", "H_Z_norm", "H_RZ_norm", "I_RZ_norm", "I_RZ_excess_norm", "I_RZ_perm_norm"),
    "effective_rank": ("erank_R", "erank_Z"),
    "uniformity": ("uniformity_Z",),
    "alignment": ("alignment_Z",),
    "alpha_req": ("alpha_req_R", "alpha_req_R_r2", "alpha_req_Z", "alpha_req_Z_r2"),
    "lidar": ("lidar_R", "lidar_Z"),
}
DEFAULT_METRICS: tuple[str, ...] = (
    "entropy",
    "mutual_information",
    "permutation_baseline",
    "normalized",
    "effective_rank",
    "uniformity",
    "alignment",
)
_INFORMATION_GROUPS = {"entropy", "mutual_information", "permutation_baseline", "normalized"}
_EXCESS_GROUPS = {"mutual_information", "normalized"}


@dataclass(frozen=True)
class MonitorSettings:
    """What the monitor measures and how.

    - ``metrics``: names from ``METRIC_GROUPS``; ``alpha_req`` and ``lidar`` are off by default.
    - ``order``, ``kernel``: the Rényi order and kernel of every entropy and MI. Order 2 uses
      the Frobenius fast path and the exact permutation null. ``alpha=`` is the deprecated name
      of ``order`` (one more release, with a DeprecationWarning; it wins over a default order).
    - ``sigma``, ``sigma_r``, ``sigma_z``: Gaussian widths. ``sigma`` sets both; ``sigma_r`` /
      ``sigma_z`` override it for R / Z. A width left None is re-estimated by the median
      heuristic at every measurement; ``DynamicsMonitor.calibrate`` fixes it once instead.
    - ``n_permutations``, ``seed``: the sampled baseline ``I_RZ_perm`` = mean I(R; πZ).
    - ``null_permutations``: permutations behind ``I_RZ_excess`` at orders other than 2 (at
      least 2; at order 2 the null is exact and this is unused). They extend the baseline's
      seeded draws, so the first ``n_permutations`` are shared.
    - ``erank_eps``: 0 for Roy–Vetterli, 1e-7 for RankMe.
    - ``uniformity_t``, ``alignment_alpha``: Wang & Isola's t and α.
    - ``alpha_req_range``: 1-based eigenvalue ranks of the α-ReQ fit.
    - ``lidar_delta``, ``lidar_eps``: LiDAR's δ and ε.
    - ``gather``: gather the batch across ``torch.distributed`` ranks before measuring.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    order: float = 2.0
    kernel: str = "cosine"
    sigma: float | None = None
    sigma_r: float | None = None
    sigma_z: float | None = None
    n_permutations: int = 4
    null_permutations: int = DEFAULT_NULL_PERMUTATIONS
    seed: int = 0
    erank_eps: float = 0.0
    uniformity_t: float = 2.0
    alignment_alpha: float = 2.0
    alpha_req_range: tuple[int, int] = (11, 100)
    lidar_delta: float = 1e-4
    lidar_eps: float = 1e-7
    gather: bool = True
    alpha: InitVar[float | None] = None

    def __post_init__(self, alpha: float | None) -> None:
        if alpha is not None:
            if self.order != 2.0 and float(self.order) != float(alpha):
                raise TypeError(f"MonitorSettings got order={self.order!r} and alpha={alpha!r}; pass order= only")
            # stacklevel 4: helper -> __post_init__ -> __init__ -> the caller.
            warn_alpha_renamed("MonitorSettings", stacklevel=4)
            object.__setattr__(self, "order", alpha)
        metrics = tuple(self.metrics)
        unknown = [m for m in metrics if m not in METRIC_GROUPS]
        if unknown:
            raise ValueError(f"unknown dynamics metric(s) {unknown}; choose from {sorted(METRIC_GROUPS)}")
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "order", check_order(self.order))
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; choose one of {', '.join(KERNELS)}")
        for name in ("sigma", "sigma_r", "sigma_z"):
            object.__setattr__(self, name, check_sigma(getattr(self, name), name))
        if int(self.n_permutations) < 1:
            raise ValueError(f"n_permutations must be >= 1, got {self.n_permutations!r}")
        if int(self.null_permutations) < 2:
            raise ValueError(f"null_permutations must be >= 2, got {self.null_permutations!r}")
        check_positive(self.erank_eps, "erank_eps", allow_zero=True)
        check_positive(self.uniformity_t, "uniformity_t")
        check_positive(self.alignment_alpha, "alignment_alpha")
        check_positive(self.lidar_delta, "lidar_delta")
        check_positive(self.lidar_eps, "lidar_eps", allow_zero=True)
        object.__setattr__(self, "alpha_req_range", tuple(int(v) for v in self.alpha_req_range))

    @property
    def widths(self) -> tuple[float | None, float | None]:
        """The Gaussian widths (of R, of Z) in effect; None means the median heuristic each time."""
        return (
            self.sigma_r if self.sigma_r is not None else self.sigma,
            self.sigma_z if self.sigma_z is not None else self.sigma,
        )

    def keys(self) -> list[str]:
        """Every key this monitor can write (views-dependent keys included)."""
        return [PREFIX + key for group in self.metrics for key in METRIC_GROUPS[group]]


def _distributed_world() -> int:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x's rows from every rank, in rank order; ranks may hold different counts."""
    if _distributed_world() == 1:
        return x
    dist = torch.distributed
    world = dist.get_world_size()
    x = x.contiguous()
    count = torch.tensor([x.shape[0]], device=x.device)
    gathered = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(gathered, count)
    counts = [int(c) for c in gathered]
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:c] for piece, c in zip(pieces, counts, strict=True)], dim=0)


def _as_views(x: Views, name: str) -> list[torch.Tensor]:
    views = [x] if isinstance(x, torch.Tensor) else list(x)
    if not views:
        raise ValueError(f"{name} has no views")
    for i, view in enumerate(views):
        if not isinstance(view, torch.Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(view).__name__}")
    return [view.flatten(1) if view.dim() > 2 else view for view in views]


def _nan() -> torch.Tensor:
    return torch.tensor(math.nan)


class DynamicsMonitor:
    """Measure a representation R and an embedding Z.

    ``monitor(r, z)`` takes R and Z, each a tensor (N×D) or a sequence of views (each B×D,
    row i of every view being the same image). It returns ``{"dynamics/H_R": float, ...}``
    with the keys of ``settings.metrics``; ``alignment`` and ``lidar`` need at least two
    views and are left out otherwise. ``dynamics/n_samples`` records the N measured, for
    normalizing by log N later. Runs without gradient, in float32 or better, autocast off.

    ``calibrate(r, z)`` fixes the Gaussian widths once (see its docstring).
    """

    def __init__(self, settings: MonitorSettings | None = None, **overrides: Any) -> None:
        if settings is None:
            settings = MonitorSettings(**overrides)
        elif overrides:
            raise TypeError("pass either a MonitorSettings or keyword settings, not both")
        self.settings = settings

    def __call__(self, r: Views, z: Views) -> dict[str, float]:
        return self.measure(r, z)

    def _prepare(self, r: Views, z: Views) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Validated, detached, gathered views in float32 (float64 kept)."""
        s = self.settings
        r_views, z_views = _as_views(r, "r"), _as_views(z, "z")
        self._validate(r_views, z_views)
        r_views = [gather_rows(v.detach()) for v in r_views] if s.gather else [v.detach() for v in r_views]
        z_views = [gather_rows(v.detach()) for v in z_views] if s.gather else [v.detach() for v in z_views]
        r_views = [v.double() if v.dtype == torch.float64 else v.float() for v in r_views]
        z_views = [v.double() if v.dtype == torch.float64 else v.float() for v in z_views]
        return r_views, z_views

    @torch.no_grad()
    def calibrate(self, r: Views, z: Views) -> dict[str, float]:
        """Fix the Gaussian kernel widths of R and Z for every later measurement.

        Takes R and Z like ``measure`` (views stacked, gathered across ranks) and sets each
        width not fixed yet (``sigma_r`` / ``sigma_z``, or ``sigma`` for both) to the median
        heuristic on these samples: the median pairwise distance. Widths already fixed, by the
        settings or by an earlier call, are kept, so calling it again changes nothing. Returns
        ``{"sigma_r": ..., "sigma_z": ...}``, the widths now in effect, for the run's record.
        Meant for step 0 on a fixed probe set, so that later changes of H and I are not changes
        of the width. The widths are used by the ``gaussian`` kernel only.
        """
        r_views, z_views = self._prepare(r, z)
        with autocast_off(r_views[0].device):
            current_r, current_z = self.settings.widths
            sigma_r = current_r if current_r is not None else median_heuristic_sigma(torch.cat(r_views))
            sigma_z = current_z if current_z is not None else median_heuristic_sigma(torch.cat(z_views))
        self.settings = dataclasses.replace(self.settings, sigma_r=float(sigma_r), sigma_z=float(sigma_z))
        return {"sigma_r": float(sigma_r), "sigma_z": float(sigma_z)}

    @torch.no_grad()
    def measure(self, r: Views, z: Views) -> dict[str, float]:
        r_views, z_views = self._prepare(r, z)
        with autocast_off(r_views[0].device):
            values = self._measure(r_views, z_views)
        names = list(values)
        numbers = torch.stack([values[k].detach().to(torch.float64).cpu() for k in names]).tolist()
        return {PREFIX + k: float(v) for k, v in zip(names, numbers, strict=True)}

    def _validate(self, r_views: list[torch.Tensor], z_views: list[torch.Tensor]) -> None:
        for name, views in (("r", r_views), ("z", z_views)):
            for i, view in enumerate(views):
                check_features(view, f"{name}[{i}]", min_samples=1)
            if len({v.shape for v in views}) != 1:
                raise ValueError(
                    f"every view of {name} must have the same shape, got {[tuple(v.shape) for v in views]}"
                )
        if r_views[0].shape[0] != z_views[0].shape[0] or len(r_views) != len(z_views):
            raise ValueError(
                f"r and z must hold the same samples: got {len(r_views)} view(s) of {r_views[0].shape[0]} "
                f"and {len(z_views)} view(s) of {z_views[0].shape[0]}"
            )
        if r_views[0].shape[0] * len(r_views) * _distributed_world() < 2:
            raise ValueError("the dynamics monitor needs at least 2 samples in all")

    def _measure(self, r_views: list[torch.Tensor], z_views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        s = self.settings
        groups = set(s.metrics)
        r, z = torch.cat(r_views), torch.cat(z_views)
        n = r.shape[0]
        out: dict[str, torch.Tensor] = {"n_samples": torch.tensor(float(n))}
        cosine_z = uniformity = None
        if groups & _INFORMATION_GROUPS:
            n_perm = s.n_permutations if "permutation_baseline" in groups else 0
            null_perm = s.null_permutations if groups & _EXCESS_GROUPS else None
            if s.order == 2.0 and s.kernel in ("cosine", "linear") and not n_perm:
                # No permuted copies of Ky to gather: the triangle, block by block, suffices.
                t = s.uniformity_t if "uniformity" in groups and s.kernel == "cosine" else None
                fx, fy = feature_map(r, s.kernel), feature_map(z, s.kernel)
                assert fx is not None and fy is not None  # explicit-feature kernels
                terms = blocked_order2_terms(fx, fy, t)
            else:
                terms = information_terms(r, z, s.order, s.kernel, s.widths, "auto", n_perm, s.seed, null_perm)
            if "uniformity_y" in terms:
                uniformity = terms["uniformity_y"]
            elif s.kernel == "cosine" and "kernel_y" in terms:
                cosine_z = terms["kernel_y"]  # the cosine kernel's K is the cosine similarity matrix
            h_r, h_z, h_rz, i_rz = (terms[k] for k in ("entropy_x", "entropy_y", "joint_entropy", "mutual_information"))
            if "entropy" in groups:
                out.update(H_R=h_r, H_Z=h_z)
            if "mutual_information" in groups:
                excess = terms["excess_mutual_information"]
                out.update(
                    H_RZ=h_rz,
                    I_RZ=i_rz,
                    I_RZ_excess=excess,
                    ratio_H_I=h_r / excess if float(excess) > 0 else _nan(),
                    ratio_H_I_raw=h_r / i_rz if float(i_rz) > 1e-12 else _nan(),
                )
            if n_perm:
                out["I_RZ_perm"] = terms["permuted_mutual_information"]
            if "normalized" in groups:
                log_n = math.log(n)
                out.update(H_R_norm=h_r / log_n, H_Z_norm=h_z / log_n, H_RZ_norm=h_rz / log_n, I_RZ_norm=i_rz / log_n)
                out["I_RZ_excess_norm"] = terms["excess_mutual_information"] / log_n
                if n_perm:
                    out["I_RZ_perm_norm"] = terms["permuted_mutual_information"] / log_n
        if "effective_rank" in groups:
            # The views were validated in _prepare: no second pass for finiteness.
            eps = float(s.erank_eps)
            out.update(erank_R=effective_rank_unchecked(r, eps), erank_Z=effective_rank_unchecked(z, eps))
        if "uniformity" in groups and uniformity is None:
            if cosine_z is None:
                zn = normalized_rows(z)
                cosine_z = zn @ zn.T
            uniformity = uniformity_from_cosine(cosine_z, s.uniformity_t, in_place=True)  # a fresh matrix
        if uniformity is not None:
            out["uniformity_Z"] = uniformity
        if "alignment" in groups and len(z_views) >= 2:
            out["alignment_Z"] = alignment_unchecked(z_views[0], z_views[1], float(s.alignment_alpha))
        if "alpha_req" in groups:
            for name, x in (("R", r), ("Z", z)):
                exponent, r2 = alpha_req(x, s.alpha_req_range)
                out[f"alpha_req_{name}"], out[f"alpha_req_{name}_r2"] = exponent, r2
        if "lidar" in groups and len(r_views) >= 2:
            out["lidar_R"] = lidar(torch.stack(r_views, dim=1), s.lidar_delta, s.lidar_eps)
            out["lidar_Z"] = lidar(torch.stack(z_views, dim=1), s.lidar_delta, s.lidar_eps)
        return out
