"""What the replay-based algorithms share: the update loop over sampled minibatches,
target networks, per-batch logging and the frame budget."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch import nn

from rl_lightning.algorithms.base import RLModule
from rl_lightning.errors import ConfigError


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` (one fused call)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def adam(module: "OffPolicyModule", params, lr: float) -> torch.optim.Adam:
    """Adam, fused (faster on CPU and GPU) unless mixed precision needs gradient unscaling."""
    fused = "mixed" not in str(module.trainer.precision) if module._trainer is not None else True
    return torch.optim.Adam(params, lr=lr, fused=fused)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy of ``module`` without gradients."""
    import copy

    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


class OffPolicyModule(RLModule):
    """Base of DQN, SAC and TD3: each training step is one gradient update on a minibatch
    sampled by ``ReplayDataModule``. Subclasses implement :meth:`update`, returning the loss
    (automatic optimization) or ``None`` (manual), and a dict of detached statistics."""

    #: shown in pairing errors
    action_kind = "continuous"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._stats: list[dict[str, torch.Tensor]] = []

    def connect_spec(self, spec) -> None:
        """Check the action space fits the algorithm before building."""
        discrete_wanted = self.action_kind == "discrete"
        if spec.discrete != discrete_wanted:
            kind = "discrete" if spec.discrete else "continuous"
            raise ConfigError(
                f"{type(self).__name__} needs {self.action_kind} actions, but {spec.env_id!r} has {kind} actions "
                f"(use {'DQN or PPO' if spec.discrete else 'SAC, TD3 or PPO'})."
            )
        super().connect_spec(spec)

    def update(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """One gradient update."""
        raise NotImplementedError

    def training_step(self, dataloader_iter: Iterator) -> torch.Tensor | None:
        """Sample (collecting first when the last collection's updates are done), update."""
        (batch, self.at_boundary), _, _ = next(dataloader_iter)
        if not self._stats:
            self.update_start = time.perf_counter()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        loss, stats = self.update(batch)
        self.updates += 1
        self._stats.append(stats)
        if self.at_boundary:
            self._end_of_batch()
        return loss

    def _end_of_batch(self) -> None:
        """Log the means of the updates since the last collection."""
        keys = self._stats[0].keys()
        means = torch.stack([torch.stack([s[k] for k in keys]) for s in self._stats]).mean(0).tolist()
        self._stats.clear()
        optimizers = self.optimizers()
        first = optimizers[0] if isinstance(optimizers, list) else optimizers
        self.end_of_batch({**dict(zip(keys, means)), "train/lr": first.param_groups[0]["lr"]})
