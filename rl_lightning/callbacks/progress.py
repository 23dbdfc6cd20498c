"""A progress bar counted in environment frames."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override

#: (metric, label, format) shown after the bar when present.
_SHOWN = (
    ("time/fps", "fps", "{:.0f}"),
    ("train/episode_return", "return", "{:.1f}"),
    ("eval/return_mean", "eval", "{:.1f}"),
)


class FrameProgressBar(TQDMProgressBar):
    """Frames collected out of ``data.total_frames``, with frames/s, the latest training
    episode return and the latest evaluation return. Updated once per collected batch.

    Args:
        refresh_rate: ``0`` hides the bar; any other value shows it.
    """

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        bar = self.train_progress_bar
        bar.reset(total=getattr(trainer.datamodule, "total_frames", None))
        bar.unit = "frames"
        bar.set_description("Training")

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable or not getattr(pl_module, "at_boundary", True):
            return
        bar.n = pl_module.frames
        bar.total = max(bar.total or 0, bar.n)
        metrics = trainer.callback_metrics
        bar.set_postfix(
            {label: fmt.format(float(metrics[key])) for key, label, fmt in _SHOWN if key in metrics}, refresh=False
        )
        bar.refresh()

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_progress_bar.close()
