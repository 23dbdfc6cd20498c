"""Observation and reward normalization (``data.normalize_observation``, ``data.normalize_reward``).

The statistics are buffers of the model, so the checkpoint's ``state_dict`` carries them, a
resume restores them exactly, and every place that acts with the model (collector, evaluation,
``validate``, video, ``play``) normalizes with the same, current statistics. They change only
when an algorithm calls :meth:`Normalizer.update_observations` / :meth:`Normalizer.update_returns`
on a collected batch during training; acting never changes them (they are frozen outside training).

Observations are normalized as Stable-Baselines3's ``VecNormalize`` does,
``clip((obs - mean) / sqrt(var + eps), -clip, clip)``; rewards are divided by the standard
deviation of the running discounted return (no mean subtracted) and clipped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: added to variances before the square root (as Stable-Baselines3's ``VecNormalize``)
EPSILON = 1e-8

#: the keys of the normalization settings (``RLModule.normalization``; stored in checkpoints)
SETTINGS = ("observation", "reward", "clip_observation", "clip_reward", "epsilon", "num_envs")

Reduce = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class RunningMeanStd(nn.Module):
    """Running mean and variance of values of shape ``shape``, in float64, updated from batches
    with the parallel algorithm of Chan et al. (the update of
    ``gymnasium.wrappers.utils.RunningMeanStd``). Written in torch rather than using gymnasium's
    NumPy class so the statistics are module buffers (in the checkpoint's ``state_dict``, on the
    model's device) and the batch moments can be summed over DDP ranks.

    Args:
        shape: shape of one value (``()`` for scalars).
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))  # gymnasium's initial count

    @torch.no_grad()
    def update(self, x: torch.Tensor, reduce: Reduce = _identity) -> None:
        """Add the values ``x`` ``[n, *shape]``. ``reduce`` sums a tensor over processes
        (identity in one process), so every process adds the values of all of them."""
        x = x.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        packed = reduce(torch.cat([x.new_tensor([x.shape[0]]), x.sum(0).flatten()]))
        n, batch_mean = packed[0], packed[1:].view_as(self.mean)
        if n == 0:
            return
        batch_mean = batch_mean / n
        batch_var = reduce((x - batch_mean).square().sum(0)) / n  # two passes: no cancellation
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean.add_(delta * n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)


class Normalizer(nn.Module):
    """The normalizations a model was built with, and their statistics.

    Args:
        observation_shape: shape of one observation.
        gamma: discount of the running return whose standard deviation scales rewards.
        observation: normalize observations.
        reward: scale rewards.
        clip_observation: normalized observations are clipped to ``[-clip, clip]``.
        clip_reward: scaled rewards are clipped to ``[-clip, clip]``.
        epsilon: added to variances before the square root.
        num_envs: training environments of one process (one running return each).
    """

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        gamma: float,
        observation: bool = False,
        reward: bool = False,
        clip_observation: float = 10.0,
        clip_reward: float = 10.0,
        epsilon: float = EPSILON,
        num_envs: int = 1,
    ) -> None:
        super().__init__()
        self.settings = {"observation": bool(observation), "reward": bool(reward),
                         "clip_observation": float(clip_observation), "clip_reward": float(clip_reward),
                         "epsilon": float(epsilon), "num_envs": int(num_envs)}
        self.gamma = float(gamma)
        self.obs_rms = RunningMeanStd(tuple(observation_shape)) if observation else None
        self.return_rms = RunningMeanStd(()) if reward else None
        #: the discounted return of each training environment's running episode. Checkpointed
        #: through get_extra_state (part of the state_dict) rather than as a buffer: DDP
        #: broadcasts rank 0's buffers to every rank, and each rank runs its own episodes.
        self.returns = torch.zeros(int(num_envs), dtype=torch.float64)

    # --- applying ------------------------------------------------------------------------
    def observations(self, obs: torch.Tensor) -> torch.Tensor:
        """``clip((obs - mean) / sqrt(var + eps))`` in the observations' dtype (unchanged
        without observation normalization)."""
        if self.obs_rms is None:
            return obs
        mean = self.obs_rms.mean.to(obs.dtype)
        std = (self.obs_rms.var + self.settings["epsilon"]).sqrt().to(obs.dtype)
        clip = self.settings["clip_observation"]
        return ((obs - mean) / std).clamp(-clip, clip)

    def rewards(self, reward: torch.Tensor) -> torch.Tensor:
        """Rewards divided by the running return's standard deviation and clipped (unchanged
        without reward scaling)."""
        if self.return_rms is None:
            return reward
        std = (self.return_rms.var + self.settings["epsilon"]).sqrt().to(reward.dtype)
        clip = self.settings["clip_reward"]
        return (reward / std).clamp(-clip, clip)

    # --- learning the statistics (training only) -------------------------------------------
    def update_observations(self, obs: torch.Tensor, reduce: Reduce = _identity) -> None:
        """Add a collected batch's raw observations ``[..., *observation_shape]``."""
        if self.obs_rms is not None:
            self.obs_rms.update(obs, reduce)

    @torch.no_grad()
    def update_returns(self, reward: torch.Tensor, done: torch.Tensor, reduce: Reduce = _identity) -> None:
        """Run each environment's discounted return ``return * gamma + reward`` over a collected
        batch's steps (``reward`` and ``done`` ``[envs, steps]``, reset after an episode ends)
        and add the returns of every step to the statistics."""
        if self.return_rms is None:
            return
        reward = reward.detach().to(torch.float64).reshape(reward.shape[0], -1)
        done = done.reshape(reward.shape).to(reward.device)
        if reward.shape[0] != self.returns.shape[0]:
            raise ValueError(f"reward scaling runs one return per environment ({self.returns.shape[0]}), "
                             f"got rewards of {reward.shape[0]} environments.")
        ret = self.returns.to(reward.device)
        returns = torch.empty_like(reward)
        for t in range(reward.shape[1]):
            ret = ret * self.gamma + reward[:, t]
            returns[:, t] = ret
            ret = torch.where(done[:, t], torch.zeros_like(ret), ret)
        self.returns = ret
        self.return_rms.update(returns.flatten(), reduce)

    def get_extra_state(self) -> torch.Tensor:
        """The running returns (a plain tensor: checkpoints stay loadable with ``weights_only``)."""
        return self.returns.clone()

    def set_extra_state(self, state: torch.Tensor) -> None:
        """Restore :meth:`get_extra_state`, checking the number of environments."""
        if not isinstance(state, torch.Tensor) or state.shape != self.returns.shape:
            shape = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"the checkpoint's running returns have shape {shape}, this model runs "
                             f"{self.returns.shape[0]} environments.")
        self.returns = state.to(torch.float64).clone()
