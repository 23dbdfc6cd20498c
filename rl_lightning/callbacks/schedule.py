"""The frame schedule of the periodic callbacks (evaluation, checkpoints)."""

from __future__ import annotations

import math
from typing import Any

from rl_lightning.algorithms.base import batch_consumed


class FrameSchedule:
    """Due at the batch boundary that reaches each multiple of ``every_frames`` frames, and at
    the last batch of training; ``every_frames`` 0 is due at the last batch only. The next frame
    it waits for (``next_frame``) is part of its owner's checkpointed state."""

    def __init__(self, every_frames: int) -> None:
        self.every_frames = every_frames
        self.next_frame: float = every_frames if every_frames else math.inf

    def due(self, trainer: Any, pl_module: Any) -> bool:
        """Whether the step that just ran is due; moves past every multiple reached."""
        if not batch_consumed(pl_module):
            return False
        frames = pl_module.frames
        if frames < self.next_frame and not trainer.should_stop:
            return False
        while self.next_frame <= frames:
            self.next_frame += self.every_frames
        return True


class Scheduled:
    """Mixin of a callback that acts on a :class:`FrameSchedule` (``self.schedule``)."""

    schedule: FrameSchedule

    @property
    def next_frame(self) -> float:
        """The frame count it acts at next (part of its checkpointed state)."""
        return self.schedule.next_frame

    @next_frame.setter
    def next_frame(self, value: float) -> None:
        self.schedule.next_frame = value
