"""adadim.sweeps: W&B sweep definitions (the YAML files here) and their launcher, online
through W&B or offline on one machine with the same YAML."""

from .local import LocalSweep
from .spec import Sweep, SweepError, load_sweep

__all__ = ["LocalSweep", "Sweep", "SweepError", "load_sweep"]
