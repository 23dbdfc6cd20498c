"""Run folders under ``experiments/``: creating, finding and describing them."""

from rl_lightning.runs.folders import latest_run, new_run_dir

__all__ = ["latest_run", "new_run_dir"]
