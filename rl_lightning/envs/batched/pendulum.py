"""Pendulum-v1 as a batched torch environment."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.envs.batched.base import TorchVectorEnv


class Pendulum(TorchVectorEnv):
    """gymnasium's ``Pendulum-v1``, batched: swing a pendulum up and hold it with a torque
    ``[n, 1]`` clipped to ``[-2, 2]``. Reward ``-(angle**2 + 0.1 * speed**2 + 0.001 * torque**2)``
    with the angle normalized to ``[-pi, pi)``; never terminates, truncated at 200 steps.
    Semi-implicit Euler with ``dt = 0.05``, speed clipped to ``[-8, 8]``.

    The state is ``[theta, thetadot]`` (theta not wrapped, as gymnasium), the observation
    ``[cos theta, sin theta, thetadot]``. Reset: theta uniform in ``[-pi, pi)``, thetadot in
    ``[-1, 1)``. :attr:`last_u` keeps each environment's last clipped torque for the renderer
    (NaN before an episode's first step).

    Args:
        num_envs: environments stepped together.
        device: where they run.
        dtype: ``torch.float32`` or ``torch.float64``.
        max_episode_steps: time limit; ``None`` is 200.
        g: gravity.
    """

    env_id = "Pendulum-v1"
    default_max_episode_steps = 200
    state_size = 2
    max_speed, max_torque, dt, m, length = 8.0, 2.0, 0.05, 1.0, 1.0
    single_observation_space = gym.spaces.Box(-np.array([1.0, 1.0, max_speed], dtype=np.float32),
                                              np.array([1.0, 1.0, max_speed], dtype=np.float32), dtype=np.float32)
    single_action_space = gym.spaces.Box(-max_torque, max_torque, shape=(1,), dtype=np.float32)

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_episode_steps: int | None = None, g: float = 10.0) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps)
        self.g = float(g)
        #: the last clipped torque of every environment ``[num_envs]`` (NaN: none yet this episode)
        self.last_u = torch.full((self.num_envs,), math.nan, dtype=dtype, device=self.device)

    def sample_state(self, n: int) -> torch.Tensor:
        return torch.cat((self.uniform(n, -math.pi, math.pi), self.uniform(n, -1.0, 1.0)), -1)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        theta, thetadot = state.unbind(-1)
        return torch.stack((theta.cos(), theta.sin(), thetadot), -1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        th, thdot = state.unbind(-1)
        g, m, length, dt = self.g, self.m, self.length, self.dt
        u = action[:, 0].to(state.dtype).clamp(-self.max_torque, self.max_torque)
        self.last_u = u
        costs = angle_normalize(th).square() + 0.1 * thdot.square() + 0.001 * u.square()
        newthdot = thdot + (3 * g / (2 * length) * th.sin() + 3.0 / (m * length**2) * u) * dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * dt
        return torch.stack((newth, newthdot), -1), -costs, torch.zeros_like(th, dtype=torch.bool)

    # --- the last torque follows the episodes ----------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.last_u = torch.full_like(self.last_u, math.nan)
        return super().reset(seed)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = super().step(action)
        self.last_u = self.last_u.masked_fill(out[2] | out[3], math.nan)
        return out

    def get_state(self) -> dict[str, torch.Tensor]:
        return {**super().get_state(), "last_u": self.last_u.clone()}

    def set_state(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = super().set_state(state)
        last_u = state.get("last_u")
        self.last_u = (torch.full_like(self.last_u, math.nan) if last_u is None
                       else last_u.to(self.device, self.dtype).clone())
        return obs

    def clone_rows(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, device=self.device)
        return self.set_state({k: v[index] for k, v in self.get_state().items()})

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_u": self.last_u.to("cpu", copy=True)}

    def render_state(self, gym_env: gym.Env, row: int = 0) -> None:
        super().render_state(gym_env, row)
        u = float(self.last_u[row])
        gym_env.last_u = None if math.isnan(u) else u


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x`` shifted by whole turns into ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi
