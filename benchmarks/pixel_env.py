"""A synthetic Atari-shaped environment that costs almost nothing to step, so a benchmark on it
measures the framework and the network, not a simulator.

``SyntheticPixels-v0``: observations ``uint8 (4, 84, 84)`` (a stack of four 84x84 grey frames,
channels first), 6 discrete actions, reward 1 when the action matches a hidden per-step
target, episodes of 100-300 steps (terminated). Frames come from a fixed pool of random
images, chosen by the step count, so stepping is one index and no copy of a rendered frame.

Use it as ``--data.env_id benchmarks.pixel_env:SyntheticPixels-v0`` from the repository root.

``CarRacingPixels-v0``: CarRacing-v3 (discrete actions; Box2D) through gymnasium's
GrayscaleObservation, ResizeObservation (84, 84) and FrameStackObservation (4): the same
``uint8 (4, 84, 84)`` observations from a real simulator, as one registered id so both sides of
a benchmark build the identical environment.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

POOL = 64


class SyntheticPixels(gym.Env):
    """See the module docstring.

    Args:
        frame_shape: shape of one observation.
        pool: number of distinct frames the environment cycles through.
        render_mode: accepted for gymnasium's interface; nothing is rendered.
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, frame_shape: tuple[int, ...] = (4, 84, 84), pool: int = POOL, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, frame_shape, np.uint8)
        self.action_space = gym.spaces.Discrete(6)
        self._frames = np.random.default_rng(0).integers(0, 256, (pool, *frame_shape), dtype=np.uint8)
        self._t = 0
        self._length = 200

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._length = int(self.np_random.integers(100, 301))
        return self._frames[int(self.np_random.integers(len(self._frames)))], {}

    def step(self, action):
        self._t += 1
        frame = self._frames[self._t % len(self._frames)]
        reward = float(int(action) == self._t % 6)
        return frame, reward, self._t >= self._length, False, {}


def car_racing_pixels(render_mode: str | None = None) -> gym.Env:
    """CarRacing-v3 with discrete actions in grey 84x84, 4 frames stacked."""
    env = gym.make("CarRacing-v3", continuous=False, render_mode=render_mode)
    env = gym.wrappers.GrayscaleObservation(env)
    env = gym.wrappers.ResizeObservation(env, (84, 84))
    return gym.wrappers.FrameStackObservation(env, 4)


gym.register("SyntheticPixels-v0", entry_point=SyntheticPixels)
gym.register("CarRacingPixels-v0", entry_point=car_racing_pixels)
