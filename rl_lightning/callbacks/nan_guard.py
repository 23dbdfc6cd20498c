"""Stop a run whose loss or parameters stop being finite, or whose update diverged, before it
is checkpointed."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from rl_lightning.algorithms.base import batch_consumed


class NonFiniteError(FloatingPointError):
    """A loss, metric or parameter became NaN or infinite."""


class DivergedError(NonFiniteError):
    """A metric passed its divergence limit (see :class:`NanGuard`): the run failed."""


#: Divergence limits of :class:`NanGuard`: a metric whose absolute value passes its limit
#: stops the run. A healthy PPO update keeps its approximate KL divergence well below 1 (the
#: policy moves a little per batch); a limit of 100 nats is only reached when the update blew
#: up, e.g. with a learning rate far too large.
DIVERGENCE_LIMITS = {"train/approx_kl": 100.0}


class NanGuard(Callback):
    """Checks the loss of every training step, and the logged metrics and all parameters at
    every batch boundary; on NaN/Inf it stops the run with a message naming the value and
    the frame. It runs before the checkpoint callback of the same step, so ``last.ckpt`` and
    ``best.ckpt`` keep the last good state.

    It also treats divergence as a failure: a logged metric whose absolute value passes its
    limit in ``limits`` (by default :data:`DIVERGENCE_LIMITS`: ``train/approx_kl`` above 100)
    stops the run the same way, with :class:`DivergedError`.

    Args:
        check_parameters: also check every parameter at batch boundaries.
        limits: metric name -> largest absolute value of a run that has not diverged;
            ``None`` is :data:`DIVERGENCE_LIMITS`, ``{}`` checks finiteness only.
    """

    def __init__(self, check_parameters: bool = True, limits: dict[str, float] | None = None) -> None:
        self.check_parameters = check_parameters
        self.limits = dict(DIVERGENCE_LIMITS if limits is None else limits)
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
        if not batch_consumed(pl_module):
            return
        for key, value in trainer.callback_metrics.items():
            if not math.isfinite(float(value)):
                self._fail(trainer, f"metric {key} is {float(value)}", frames)
        for key, limit in self.limits.items():
            value = trainer.callback_metrics.get(key)
            if value is not None and abs(float(value)) > limit:
                self._fail(trainer, f"metric {key} is {float(value):.4g}, beyond its divergence limit {limit:g}",
                           frames, DivergedError)
        if self.check_parameters:
            # one fused pass (a norm is NaN/Inf when any element is)
            with torch.no_grad():
                finite = bool(torch.stack(torch._foreach_norm(self._params)).isfinite().all()) if self._params else True
            if not finite:
                for name, param in pl_module.named_parameters():
                    if not torch.isfinite(param).all():
                        self._fail(trainer, f"parameter {name} holds NaN/Inf", frames)

    @staticmethod
    def _fail(trainer: L.Trainer, what: str, frames: int | None, error: type = NonFiniteError) -> None:
        where = f" at frame {frames}" if frames is not None else ""
        last = next((c.last_model_path for c in trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")), "")
        kept = f"; the last good checkpoint is kept: {last}" if last else "; no checkpoint had been written yet"
        kind = "the run diverged" if error is DivergedError else "non-finite value"
        hint = " (lower the learning rate)" if error is DivergedError else ""
        raise error(f"{kind}: {what}{where} (step {trainer.global_step}){hint}{kept}.")
