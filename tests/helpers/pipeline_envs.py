"""A user's own wrappers and environments with unusual observation spaces, for the
environment pipeline's tests (``tests.helpers.pipeline_envs:DictObs-v0`` works as a
``data.env_id``; ``tests.helpers.pipeline_envs.AppendConstant`` as a ``data.wrappers`` class_path).
"""

from __future__ import annotations

import os
from typing import ClassVar

import gymnasium as gym
import numpy as np


class AppendConstant(gym.ObservationWrapper):
    """Appends ``value`` to every (vector) observation, so the observation grows by one: a
    network built for the wrapped space fails on an environment that missed the wrapper.
    Every instance is recorded in :attr:`made` as ``(value, render_mode)``."""

    made: ClassVar[list[tuple[float, str | None]]] = []

    def __init__(self, env: gym.Env, value: float = 1.0) -> None:
        super().__init__(env)
        self.value = float(value)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.append(space.low, self.value).astype(np.float32), np.append(space.high, self.value).astype(np.float32),
            dtype=np.float32,
        )
        AppendConstant.made.append((self.value, env.render_mode))

    def observation(self, observation):
        return np.append(observation, self.value).astype(np.float32)


class NeedsToken(gym.Wrapper):
    """A wrapper taking a secret (say, of a remote simulator); :attr:`tokens` records what it got."""

    tokens: ClassVar[list[str]] = []

    def __init__(self, env: gym.Env, api_token: str = "") -> None:
        super().__init__(env)
        NeedsToken.tokens.append(api_token)


class AppendPid(gym.ObservationWrapper):
    """Appends the id of the process that steps the environment to every observation."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.append(space.low, 0.0).astype(np.float32), np.append(space.high, 2.0**24).astype(np.float32),
            dtype=np.float32,
        )

    def observation(self, observation):
        return np.append(observation, float(os.getpid())).astype(np.float32)


class _Spaces(gym.Env):
    """Ten-step episodes with random observations of ``observation_space``; two actions."""

    observation_space: gym.Space

    def __init__(self, render_mode: str | None = None) -> None:
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), float(action), False, self.t >= 10, {}


class DictObs(_Spaces):
    """Dict observations of a 3-vector ``position`` and a ``mode`` in 0..3 (one-hot when flattened)."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Dict(
            {"position": gym.spaces.Box(-1.0, 1.0, (3,), np.float32), "mode": gym.spaces.Discrete(4)}
        )


class DictImage(_Spaces):
    """Dict observations holding an image: not supported yet."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Dict(
            {"camera": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), "speed": gym.spaces.Box(0.0, 1.0, (1,), np.float32)}
        )


class TupleObs(_Spaces):
    """Tuple observations: not supported."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(2)))


class DiscreteObs(_Spaces):
    """Discrete observations in 0..4 (one-hot when flattened)."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Discrete(5)


for _cls in (DictObs, DictImage, TupleObs, DiscreteObs):
    gym.register(f"{_cls.__name__}-v0", entry_point=_cls)


def times_ten(reward: float) -> float:
    """A reward transform for ``gymnasium.wrappers.TransformReward`` (``init_args: {func: ...}``)."""
    return 10.0 * float(reward)
