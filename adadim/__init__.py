"""adadim: representational dynamics of self-supervised learning.

The toolkit's four packages are ``adadim.dynamics`` (estimators and the metric registry),
``adadim.training`` (the trainer and its baselines), ``adadim.analysis`` (runs to figures,
claims and dashboards) and ``adadim.sweeps`` (W&B sweeps, the local runner and studies).
Importing ``adadim`` loads none of them, so ``import adadim`` stays cheap.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("adadim")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
