"""CartPole-v1 as a batched torch environment."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.envs.batched.base import TorchVectorEnv


class CartPole(TorchVectorEnv):
    """gymnasium's ``CartPole-v1``, batched: push a cart left (0) or right (1) to keep its pole
    upright; +1 per step, terminated when the pole passes 12 degrees or the cart leaves
    ``[-2.4, 2.4]``, truncated at 500 steps. Euler integration with ``tau = 0.02``.

    Args:
        num_envs: environments stepped together.
        device: where they run.
        dtype: ``torch.float32`` or ``torch.float64``.
        max_episode_steps: time limit; ``None`` is 500.
        sutton_barto_reward: reward 0 per step and -1 on termination instead of +1 per step.
    """

    env_id = "CartPole-v1"
    default_max_episode_steps = 500
    state_size = 4
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass = masspole + masscart
    polemass_length = masspole * length
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    _high = np.array([x_threshold * 2, np.inf, theta_threshold_radians * 2, np.inf], dtype=np.float32)
    single_observation_space = gym.spaces.Box(-_high, _high, dtype=np.float32)
    single_action_space = gym.spaces.Discrete(2)

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_episode_steps: int | None = None, sutton_barto_reward: bool = False) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps)
        self.sutton_barto_reward = bool(sutton_barto_reward)

    def sample_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, -0.05, 0.05, 4)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = (action.to(state.dtype) * 2.0 - 1.0) * self.force_mag
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        state = torch.stack((x + self.tau * x_dot, x_dot + self.tau * xacc,
                             theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc), -1)
        terminated = (state[:, 0].abs() > self.x_threshold) | (state[:, 2].abs() > self.theta_threshold_radians)
        if self.sutton_barto_reward:
            reward = -terminated.to(state.dtype)
        else:
            reward = torch.ones_like(x)
        return state, reward, terminated
