"""Callbacks: evaluation, video, frame-scheduled checkpoints, progress in frames, and the
safety nets every CLI run has (graceful stop on signals, NaN/Inf guard)."""

from rl_lightning.callbacks.checkpoint import FrameCheckpoint
from rl_lightning.callbacks.evaluation import Evaluation
from rl_lightning.callbacks.frame_limit import FrameLimit
from rl_lightning.callbacks.graceful_stop import GracefulStop
from rl_lightning.callbacks.nan_guard import NanGuard
from rl_lightning.callbacks.optional import OptionalCallback
from rl_lightning.callbacks.progress import FrameProgressBar
from rl_lightning.callbacks.video import Video

__all__ = [
    "Evaluation", "FrameCheckpoint", "FrameLimit", "FrameProgressBar", "GracefulStop", "NanGuard", "OptionalCallback",
    "Video",
]
