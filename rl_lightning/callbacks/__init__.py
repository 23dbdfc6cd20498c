"""Callbacks: evaluation, frame-scheduled checkpoints, progress in frames."""

from rl_lightning.callbacks.checkpoint import FrameCheckpoint
from rl_lightning.callbacks.evaluation import Evaluation
from rl_lightning.callbacks.progress import FrameProgressBar

__all__ = ["Evaluation", "FrameCheckpoint", "FrameProgressBar"]
