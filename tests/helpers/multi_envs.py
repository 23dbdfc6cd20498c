"""Tiny environments with MultiDiscrete and MultiBinary actions, registered on import
(``tests.helpers.multi_envs:MultiChoice-v0``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class MultiChoice(gym.Env):
    """The observation shows one target per action dimension (one-hot, drawn anew every step);
    reward 1 per dimension whose action equals its target; 5 steps per episode. Best return:
    ``5 * len(nvec)``; a random policy gets ``5 * sum(1 / n for n in nvec)``.

    Args:
        nvec: choices of each action dimension.
        binary: MultiBinary actions (``nvec`` must then be all 2).
    """

    def __init__(self, nvec: tuple[int, ...] = (3, 2), binary: bool = False, render_mode: str | None = None) -> None:
        self.nvec = np.asarray(nvec, dtype=np.int64)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (int(self.nvec.sum()),), np.float32)
        self.action_space = gym.spaces.MultiBinary(len(nvec)) if binary else gym.spaces.MultiDiscrete(self.nvec)
        self.t = 0
        self.target = np.zeros(len(nvec), np.int64)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(int(self.nvec.sum()), np.float32)
        obs[np.concatenate([[0], np.cumsum(self.nvec)[:-1]]) + self.target] = 1.0
        return obs

    def _draw(self) -> None:
        self.target = np.array([self.np_random.integers(n) for n in self.nvec], np.int64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self._draw()
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action).reshape(-1)
        assert action.shape == self.target.shape and np.issubdtype(action.dtype, np.integer), action
        reward = float((action == self.target).sum())
        self.t += 1
        self._draw()
        return self._obs(), reward, self.t >= 5, False, {}


gym.register("MultiChoice-v0", entry_point=MultiChoice)
gym.register("BitsChoice-v0", entry_point=MultiChoice, kwargs={"nvec": (2, 2, 2), "binary": True})
