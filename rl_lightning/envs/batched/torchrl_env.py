"""A TorchRL ``EnvBase`` view of a batched torch environment, for TorchRL's own collectors,
transforms and rollouts (``as_torchrl(make_torch_env("CartPole-v1", 1024))``).

rl_lightning's collector steps :class:`~rl_lightning.envs.batched.TorchVectorEnv` directly:
``EnvBase.step`` builds and checks TensorDicts on every call, which costs more than the physics
of these tasks (``python benchmarks/torch_envs_speed.py env`` times both)."""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from rl_lightning.envs.batched.base import TorchVectorEnv


class TorchRLView(EnvBase):
    """``env`` as a TorchRL environment with batch size ``[num_envs]``.

    ``step`` returns an episode's final observation under ``("next", "observation")``; the
    environment has already started the next episode, which the following ``reset`` of the
    finished rows (TorchRL's ``"_reset"`` mask, as ``rollout`` and the collectors send) hands out.

    Args:
        env: the batched environment (its device and dtype are the view's).
    """

    def __init__(self, env: TorchVectorEnv) -> None:
        super().__init__(device=env.device, batch_size=torch.Size([env.num_envs]))
        self.env = env
        n = env.num_envs
        obs_space, act_space = env.single_observation_space, env.single_action_space
        self.observation_spec = Composite(
            observation=Unbounded(shape=(n, *obs_space.shape), dtype=env.dtype, device=env.device), shape=(n,))
        if hasattr(act_space, "n"):
            self.action_spec = Categorical(int(act_space.n), shape=(n,), device=env.device)
        else:
            self.action_spec = Bounded(torch.as_tensor(np.broadcast_to(act_space.low, (n, *act_space.shape)).copy()),
                                       torch.as_tensor(np.broadcast_to(act_space.high, (n, *act_space.shape)).copy()),
                                       shape=(n, *act_space.shape), dtype=env.dtype, device=env.device)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=env.dtype, device=env.device)
        flag = lambda: Categorical(2, shape=(n, 1), dtype=torch.bool, device=env.device)  # noqa: E731
        self.done_spec = Composite(done=flag(), terminated=flag(), truncated=flag(), shape=(n,))
        self._next_obs: torch.Tensor | None = None

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is None or self._next_obs is None:
            obs = self.env.reset()
        else:  # the finished rows: their next episode began at the step that ended them
            obs = self._next_obs
        done = torch.zeros(self.env.num_envs, 1, dtype=torch.bool, device=self.device)
        return TensorDict({"observation": obs, "done": done, "terminated": done.clone(), "truncated": done.clone()},
                          batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs, reward, terminated, truncated, final = self.env.step(tensordict["action"])
        self._next_obs = obs
        terminated, truncated = terminated.unsqueeze(-1), truncated.unsqueeze(-1)
        return TensorDict({"observation": final, "reward": reward.unsqueeze(-1), "terminated": terminated,
                           "truncated": truncated, "done": terminated | truncated},
                          batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.env.generator.manual_seed(int(seed))


def as_torchrl(env: TorchVectorEnv) -> TorchRLView:
    """The TorchRL view of ``env`` (see :class:`TorchRLView`)."""
    return TorchRLView(env)
