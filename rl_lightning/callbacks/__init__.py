"""Callbacks: evaluation, video, frame-scheduled checkpoints, progress in frames."""

from rl_lightning.callbacks.checkpoint import FrameCheckpoint
from rl_lightning.callbacks.evaluation import Evaluation
from rl_lightning.callbacks.frame_limit import FrameLimit
from rl_lightning.callbacks.progress import FrameProgressBar
from rl_lightning.callbacks.video import Video

__all__ = ["Evaluation", "FrameCheckpoint", "FrameLimit", "FrameProgressBar", "Video"]
