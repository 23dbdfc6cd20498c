"""Ctrl-C and SIGTERM end a run at the next batch boundary, with a checkpoint."""

from __future__ import annotations

import signal
import threading
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from rl_lightning.algorithms.base import batch_consumed


class GracefulStop(Callback):
    """On SIGINT (Ctrl-C) or SIGTERM, finish the update of the current batch, write the
    checkpoints (``FrameCheckpoint`` saves when training stops) and exit with status
    "interrupted" (exit code 1), so ``--ckpt_path last`` continues exactly there.
    A second Ctrl-C stops at once. Under DDP the request is shared by all ranks at the next
    batch boundary, so a signal to one process stops them all together.
    """

    def __init__(self) -> None:
        self.signal_received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signal_received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signal_received = signum
        rank_zero_info(
            f"\nReceived {signal.Signals(signum).name}: stopping after this batch's update and saving a "
            "checkpoint (Ctrl-C again to stop at once)."
        )

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handler)

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not batch_consumed(pl_module):
            return
        requested = self.signal_received is not None
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            self.signal_received = self.signal_received or signal.SIGTERM
            trainer.should_stop = True

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        total = getattr(trainer.datamodule, "total_frames", None)
        if total is not None and getattr(pl_module, "frames", 0) >= total:
            return  # the signal came with the last batch: the run finished its budget all the same
        if self.signal_received is not None:
            raise KeyboardInterrupt(f"stopped by {signal.Signals(self.signal_received).name}; checkpoint saved")

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
