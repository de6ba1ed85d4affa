"""adadim.analysis: read runs and turn them into studies, tables and figures.

No model code here: runs are read from their files or from W&B, never rebuilt.
"""

from .claims_table import claims
from .loading import load_runs
from .runset import DEFAULT_ACCURACY, RunSet

__all__ = ["DEFAULT_ACCURACY", "RunSet", "claims", "load_runs"]
