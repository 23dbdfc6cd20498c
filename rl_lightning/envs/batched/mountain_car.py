"""MountainCar-v0 and MountainCarContinuous-v0 as batched torch environments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.envs.batched.base import TorchVectorEnv


class MountainCar(TorchVectorEnv):
    """gymnasium's ``MountainCar-v0``, batched: a car in a valley, accelerate left (0), not at
    all (1) or right (2) to reach the flag at position 0.5 (with velocity at least
    ``goal_velocity``). -1 per step, terminated at the flag, truncated at 200 steps.

    The state (and observation) is ``[position, velocity]``; position in ``[-1.2, 0.6]``, velocity
    in ``[-0.07, 0.07]``, stopped at the left wall. Reset: position uniform in ``[-0.6, -0.4)``,
    velocity 0.

    Args:
        num_envs: environments stepped together.
        device: where they run.
        dtype: ``torch.float32`` or ``torch.float64``.
        max_episode_steps: time limit; ``None`` is 200.
        goal_velocity: the least velocity at the flag that ends the episode.
    """

    env_id = "MountainCar-v0"
    default_max_episode_steps = 200
    state_size = 2
    min_position, max_position, max_speed = -1.2, 0.6, 0.07
    goal_position = 0.5
    force, gravity = 0.001, 0.0025
    single_observation_space = gym.spaces.Box(np.array([min_position, -max_speed], dtype=np.float32),
                                              np.array([max_position, max_speed], dtype=np.float32),
                                              dtype=np.float32)
    single_action_space: gym.Space = gym.spaces.Discrete(3)

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_episode_steps: int | None = None, goal_velocity: float = 0.0) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps)
        self.goal_velocity = float(goal_velocity)

    def sample_state(self, n: int) -> torch.Tensor:
        position = self.uniform(n, -0.6, -0.4)
        return torch.cat((position, torch.zeros_like(position)), -1)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def acceleration(self, position: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The change of velocity in one step (engine and gravity)."""
        return (action.to(position.dtype) - 1) * self.force + torch.cos(3 * position) * (-self.gravity)

    def reward(self, action: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        """The reward of the step ``action`` took."""
        return torch.full(terminated.shape, -1.0, dtype=self.dtype, device=terminated.device)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state.unbind(-1)
        velocity = (velocity + self.acceleration(position, action)).clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        # at the left wall (clamped to it exactly) the car stops
        velocity = torch.where((position <= self.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return torch.stack((position, velocity), -1), self.reward(action, terminated), terminated


class MountainCarContinuous(MountainCar):
    """gymnasium's ``MountainCarContinuous-v0``, batched: :class:`MountainCar` with a continuous
    engine force ``[n, 1]`` clipped to ``[-1, 1]`` (power 0.0015) and the flag at 0.45. Reward
    100 on reaching it, minus ``0.1 * action**2`` every step (of the action as given, before the
    clip, as gymnasium); truncated at 999 steps.

    gymnasium stores this task's state rounded to float32 after every step (so its steps after
    the first are float32 arithmetic); in float64 this class keeps float64.

    Args:
        num_envs: environments stepped together.
        device: where they run.
        dtype: ``torch.float32`` or ``torch.float64``.
        max_episode_steps: time limit; ``None`` is 999.
        goal_velocity: the least velocity at the flag that ends the episode.
    """

    env_id = "MountainCarContinuous-v0"
    default_max_episode_steps = 999
    goal_position = 0.45
    power = 0.0015
    single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def acceleration(self, position: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        force = action[:, 0].to(position.dtype).clamp(-1.0, 1.0)
        return force * self.power - self.gravity * torch.cos(3 * position)

    def reward(self, action: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        return terminated.to(self.dtype) * 100.0 - action[:, 0].to(self.dtype).square() * 0.1
