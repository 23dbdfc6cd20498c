"""Stop training early at a frame count without changing the run's schedules."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from rl_lightning.algorithms.base import batch_consumed
from rl_lightning.errors import ConfigError


class FrameLimit(Callback):
    """Stops training at the first batch boundary at or past ``frames``.

    Unlike lowering ``data.total_frames``, learning-rate and clip schedules still run over
    the full budget, so the run so far is identical to the same stretch of the full run
    (used by ``reproduce``; also a quick way to try a config).

    Args:
        frames: frames after which training stops.
    """

    def __init__(self, frames: int) -> None:
        if frames < 1:
            raise ConfigError(f"FrameLimit frames must be >= 1, got {frames}.")
        self.frames = frames

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if batch_consumed(pl_module) and pl_module.frames >= self.frames:
            trainer.should_stop = True
