"""adadim.analysis: read runs and turn them into studies, tables and figures.

No model code here: runs are read from their files or from W&B, never rebuilt.
"""

from .loading import load_runs
from .runset import RunSet

__all__ = ["RunSet", "load_runs"]
