"""Stop a run whose loss or parameters stop being finite, before it is checkpointed."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override


class NonFiniteError(FloatingPointError):
    """A loss, metric or parameter became NaN or infinite."""


class NanGuard(Callback):
    """Checks the loss of every training step, and the logged metrics and all parameters at
    every batch boundary; on NaN/Inf it stops the run with a message naming the value and
    the frame. It runs before the checkpoint callback of the same step, so ``last.ckpt`` and
    ``best.ckpt`` keep the last good state.

    Args:
        check_parameters: also check every parameter at batch boundaries.
    """

    def __init__(self, check_parameters: bool = True) -> None:
        self.check_parameters = check_parameters
        self._params: list[torch.Tensor] = []

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        # the trainable parameters, listed once (walking the modules at every batch boundary
        # cost more than the check itself); target networks and other frozen copies are
        # derived from them
        self._params = [p for p in pl_module.parameters() if p.requires_grad]

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        frames = getattr(pl_module, "frames", None)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all():
            self._fail(trainer, f"the training loss is {loss.item()}", frames)
        if not getattr(pl_module, "at_boundary", True):
            return
        for key, value in trainer.callback_metrics.items():
            if not math.isfinite(float(value)):
                self._fail(trainer, f"metric {key} is {float(value)}", frames)
        if self.check_parameters:
            # one fused pass (a norm is NaN/Inf when any element is)
            with torch.no_grad():
                finite = bool(torch.stack(torch._foreach_norm(self._params)).isfinite().all()) if self._params else True
            if not finite:
                for name, param in pl_module.named_parameters():
                    if not torch.isfinite(param).all():
                        self._fail(trainer, f"parameter {name} holds NaN/Inf", frames)

    @staticmethod
    def _fail(trainer: L.Trainer, what: str, frames: int | None) -> None:
        where = f" at frame {frames}" if frames is not None else ""
        last = next((c.last_model_path for c in trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")), "")
        kept = f"; the last good checkpoint is kept: {last}" if last else "; no checkpoint had been written yet"
        raise NonFiniteError(f"non-finite value: {what}{where} (step {trainer.global_step}){kept}.")
