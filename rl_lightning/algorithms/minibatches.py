"""The update loop of the algorithms that take several minibatch steps per collected batch."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from rl_lightning.algorithms.base import RLModule


class MinibatchUpdates(RLModule):
    """Base of PPO and GRPO: each collected batch becomes flat training data
    (:meth:`compute_advantages`), then one Lightning step per minibatch of a plan of epochs
    (:meth:`_minibatches` yields ``(minibatch, is_last)``); :meth:`compute_loss` gives each
    step's loss and statistics, and :meth:`_end_of_batch` logs their mean after the last one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._plan: Iterator[tuple[dict[str, torch.Tensor], bool]] | None = None
        self._stats: list[torch.Tensor] = []

    def compute_advantages(self, batch) -> dict[str, torch.Tensor]:
        """Flat training data of a collected batch."""
        raise NotImplementedError

    def _minibatches(self, data: dict[str, torch.Tensor]) -> Iterator[tuple[dict[str, torch.Tensor], bool]]:
        """The plan of a batch: ``(minibatch, is_last)`` pairs."""
        raise NotImplementedError

    def compute_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, detached statistics)`` of a minibatch."""
        raise NotImplementedError

    def _end_of_batch(self) -> None:
        """Log the mean statistics of the batch's steps (``self._stats``) and end the batch."""
        raise NotImplementedError

    def training_step(self, dataloader_iter: Iterator) -> torch.Tensor:
        """One minibatch update; a new batch is collected when the last one is used up.

        Taking the iterator (rather than a batch) stops Lightning from collecting the next
        batch ahead with the weights of the previous update.
        """
        if self._plan is None:
            batch, _, _ = next(dataloader_iter)
            self.update_start = time.perf_counter()
            self._plan = self._minibatches(self.compute_advantages(batch.to(self.device)))
        minibatch, self.at_boundary = next(self._plan)
        loss, stats = self.compute_loss(minibatch)
        self._stats.append(stats)
        if self.at_boundary:
            self._plan = None
            self._end_of_batch()
        return loss
