"""Tiny image environments any CNN solves in seconds, registered with Gymnasium on import.

``tests.helpers.image_envs:PixelChoice-v0`` works as a ``data.env_id``; ``data.env_kwargs``
chooses the frame layout (``layout: chw | hwc | hw``), ``size`` and ``channels``.
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np


class PixelChoice(gym.Env):
    """A uint8 frame with a bright block on its left or right half (drawn anew every step);
    reward 1 when the action names the side (0 left, 1 right), else 0; ``length`` steps per
    episode, so the best return is ``length`` and a random policy gets half of it.

    Args:
        size: height and width of the frame (NatureCNN needs at least 36).
        channels: channels of the frame (all alike).
        layout: ``chw`` (channel-first), ``hwc`` (channel-last) or ``hw`` (grayscale, no channel axis).
        length: steps per episode.
        continuous: a Box action in [-1, 1] instead: reward ``1 - |action - target|`` with
            target -0.5 (left) or +0.5 (right).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, size: int = 36, channels: int = 1, layout: Literal["chw", "hwc", "hw"] = "chw",
                 length: int = 8, continuous: bool = False, render_mode: str | None = None) -> None:
        self.size, self.channels, self.layout, self.length = size, channels, layout, length
        shape = {"chw": (channels, size, size), "hwc": (size, size, channels), "hw": (size, size)}[layout]
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.continuous = continuous
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        self.render_mode = render_mode
        self.t, self.side = 0, 0

    def _frame(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size), np.uint8)
        half, quarter = self.size // 2, self.size // 4
        left = self.side * half
        frame[quarter : self.size - quarter, left + 2 : left + half - 2] = 255
        if self.layout == "hw":
            return frame
        if self.layout == "chw":
            return np.repeat(frame[None], self.channels, 0)
        return np.repeat(frame[..., None], self.channels, -1)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.side = int(self.np_random.integers(2))
        return self._frame(), {}

    def step(self, action):
        if self.continuous:
            target = 0.5 if self.side else -0.5
            reward = 1.0 - abs(float(np.asarray(action).reshape(-1)[0]) - target)
        else:
            reward = float(int(action) == self.side)
        self.t += 1
        self.side = int(self.np_random.integers(2))
        return self._frame(), reward, self.t >= self.length, False, {}

    def render(self):
        return np.repeat(self._frame().reshape(self.size, self.size, -1)[..., :1], 3, -1)


gym.register("PixelChoice-v0", entry_point=PixelChoice)
gym.register("PixelTarget-v0", entry_point=PixelChoice, kwargs={"continuous": True})
