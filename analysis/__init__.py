"""adadim.analysis: read runs and turn them into studies and figures (no model code here)."""
