"""adadim.dynamics: exact, fast estimators of a representation's dynamics, in pure torch.

Every function takes torch tensors with samples in rows, returns 0-d tensors (or tuples of
them), uses natural logs, and builds an autograd graph only when its inputs require grad.
The Rényi order is the argument ``order`` (``alpha=`` is its deprecated name). Dependence
between two representations is read from ``excess_mutual_information``, not from the raw
``mutual_information``.
"""

from .entropy import (
    ExcessMI,
    entropy_of_gram,
    excess_mutual_information,
    joint_entropy,
    mutual_information,
    permuted_mutual_information,
    renyi_entropy,
)
from .geometry import alignment, uniformity
from .instrument import InstrumentError, ProbeInstrument, draw_views
from .kernels import gram_matrix, median_heuristic_sigma
from .monitor import DEFAULT_METRICS, METRIC_GROUPS, DynamicsMonitor, MonitorSettings
from .spectrum import alpha_req, effective_rank, lidar, white_noise_effective_rank

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_GROUPS",
    "DynamicsMonitor",
    "ExcessMI",
    "InstrumentError",
    "MonitorSettings",
    "ProbeInstrument",
    "alignment",
    "alpha_req",
    "draw_views",
    "effective_rank",
    "entropy_of_gram",
    "excess_mutual_information",
    "gram_matrix",
    "joint_entropy",
    "lidar",
    "median_heuristic_sigma",
    "mutual_information",
    "permuted_mutual_information",
    "renyi_entropy",
    "uniformity",
    "white_noise_effective_rank",
]
