"""Acrobot-v1 as a batched torch environment."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.envs.batched.base import TorchVectorEnv


class Acrobot(TorchVectorEnv):
    """gymnasium's ``Acrobot-v1``, batched: two links hanging from a fixed joint, torque -1 (0),
    0 (1) or +1 (2) on the joint between them; swing the free end above one link's length over
    the pivot. -1 per step, 0 on the step that reaches the goal (terminated), truncated at 500
    steps. The "book" equations of motion, one RK4 step of ``dt = 0.2``; angles wrapped to
    ``[-pi, pi]``, velocities bounded to ``4 pi`` and ``9 pi``.

    The state is ``[theta1, theta2, dtheta1, dtheta2]``, the observation
    ``[cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2]``. gymnasium rounds its
    reset state to float32 (later states are float64); in float64 this class keeps float64.

    Args:
        num_envs: environments stepped together.
        device: where they run.
        dtype: ``torch.float32`` or ``torch.float64``.
        max_episode_steps: time limit; ``None`` is 500.
    """

    env_id = "Acrobot-v1"
    default_max_episode_steps = 500
    state_size = 4
    dt = 0.2
    link_length_1 = 1.0
    link_mass_1 = link_mass_2 = 1.0
    link_com_pos_1 = link_com_pos_2 = 0.5
    link_moi = 1.0
    gravity = 9.8
    max_vel_1, max_vel_2 = 4 * math.pi, 9 * math.pi
    _high = np.array([1.0, 1.0, 1.0, 1.0, max_vel_1, max_vel_2], dtype=np.float32)
    single_observation_space = gym.spaces.Box(-_high, _high, dtype=np.float32)
    single_action_space = gym.spaces.Discrete(3)

    def sample_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, -0.1, 0.1, 4)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
        return torch.stack((theta1.cos(), theta1.sin(), theta2.cos(), theta2.sin(), dtheta1, dtheta2), -1)

    def derivatives(self, state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """``d state / dt`` ``[n, 4]`` of states ``[n, 4]`` under joint torques ``[n]`` (the
        book's equations, written in gymnasium's order of operations)."""
        m1, m2, l1 = self.link_mass_1, self.link_mass_2, self.link_length_1
        lc1, lc2, i1, i2, g = self.link_com_pos_1, self.link_com_pos_2, self.link_moi, self.link_moi, self.gravity
        theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
        cos2, sin2 = theta2.cos(), theta2.sin()
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
        phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (-m2 * l1 * lc2 * dtheta2.square() * sin2
                - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
                + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
                + phi2)
        ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1.square() * sin2 - phi2) / (
            m2 * lc2**2 + i2 - d2.square() / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), -1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        torque = action.to(state.dtype) - 1.0
        dt, dt2 = self.dt, self.dt / 2.0
        k1 = self.derivatives(state, torque)
        k2 = self.derivatives(state + dt2 * k1, torque)
        k3 = self.derivatives(state + dt2 * k2, torque)
        k4 = self.derivatives(state + dt * k3, torque)
        ns = state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        theta1, theta2, dtheta1, dtheta2 = ns.unbind(-1)
        ns = torch.stack((wrap(theta1, -math.pi, math.pi), wrap(theta2, -math.pi, math.pi),
                          dtheta1.clamp(-self.max_vel_1, self.max_vel_1),
                          dtheta2.clamp(-self.max_vel_2, self.max_vel_2)), -1)
        terminated = -ns[:, 0].cos() - torch.cos(ns[:, 1] + ns[:, 0]) > 1.0
        reward = terminated.to(state.dtype) - 1.0
        return ns, reward, terminated


def wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x`` shifted by whole periods ``high - low`` into ``[low, high]`` (gymnasium's ``wrap``:
    values already inside, the ends included, are left as they are)."""
    period = high - low
    over = torch.ceil((x - high) / period).clamp_min(0)
    under = torch.ceil((low - x) / period).clamp_min(0)
    return x - over * period + under * period
