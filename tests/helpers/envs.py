"""Tiny deterministic environments, registered with Gymnasium on import.

``tests.helpers.envs:Countdown-v0`` works as a ``data.env_id`` (the module part is imported
first, which registers the environments).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Countdown(gym.Env):
    """Observation is the step index ``[t]``; reward 1 per step; the episode terminates
    after ``length`` steps. Action 1 adds a reward bonus of 1, so a good policy always picks 1."""

    def __init__(self, length: int = 5, render_mode: str | None = None) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, float(length), (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = 1.0 + float(action)
        return np.array([float(self.t)], np.float32), reward, self.t >= self.length, False, {}


class Slider(gym.Env):
    """Continuous 1-D action in [-2, 2]; reward is ``-(action - 1)^2``; 10 steps per episode."""

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        reward = -float((np.asarray(action).reshape(-1)[0] - 1.0) ** 2)
        return np.zeros(2, np.float32), reward, False, self.t >= 10, {}


gym.register("Countdown-v0", entry_point=Countdown)
gym.register("Slider-v0", entry_point=Slider)


class Exploding(Countdown):
    """Raises on the 100th step: a run that fails mid-training."""

    def step(self, action):
        self.steps_taken = getattr(self, "steps_taken", 0) + 1
        if self.steps_taken >= 100:
            raise RuntimeError("the environment exploded")
        return super().step(action)


gym.register("Exploding-v0", entry_point=Exploding)


class NanAfter(Countdown):
    """Rewards become NaN after 170 steps of each instance: the value loss turns NaN."""

    def step(self, action):
        self.steps_taken = getattr(self, "steps_taken", 0) + 1
        obs, reward, term, trunc, info = super().step(action)
        return obs, (float("nan") if self.steps_taken > 170 else reward), term, trunc, info


gym.register("NanAfter-v0", entry_point=NanAfter)


class RenderFails(Countdown):
    """Renders 8 small RGB frames, then every ``render`` raises: a video fails mid-run."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, length: int = 5, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.render_mode = render_mode
        self.renders = 0

    def render(self):
        self.renders += 1
        if self.renders > 8:
            raise RuntimeError("the renderer crashed")
        return np.full((16, 16, 3), 40 * self.t, np.uint8)


gym.register("RenderFails-v0", entry_point=RenderFails)


class Vault(Countdown):
    """Needs ``api_token`` (like an environment behind a remote service) and refuses a masked
    one: a run on it proves the real secret reached the environment."""

    TOKEN = "tok-REAL-5f3a9c"

    def __init__(self, api_token: str = "", render_mode: str | None = None) -> None:
        if api_token != self.TOKEN:
            raise ValueError(f"Vault-v0 got the wrong api_token {api_token!r}")
        super().__init__(render_mode=render_mode)


gym.register("Vault-v0", entry_point=Vault)


class NanObservation(Countdown):
    """Observations become NaN from the 4th step of each episode: a broken simulator."""

    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        return (np.full(1, np.nan, np.float32) if self.t > 3 else obs), reward, term, trunc, info


gym.register("NanObservation-v0", entry_point=NanObservation)


class FarSign(gym.Env):
    """Observation ``[1000 + x]`` with ``x`` uniform in [-1, 1]; reward 1 when the action is
    ``x > 0``, else 0; 10 steps per episode. The signal is a thousandth of the offset: a
    network sees it only once observations are normalized."""

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(998.0, 1002.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t, self.x = 0, 0.0

    def _obs(self):
        self.x = float(self.np_random.uniform(-1.0, 1.0))
        return np.array([1000.0 + self.x], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        reward = float(int(action) == int(self.x > 0))
        return self._obs(), reward, False, self.t >= 10, {}


gym.register("FarSign-v0", entry_point=FarSign)


class NoRenderMode(gym.Env):
    """A custom environment whose constructor takes no ``render_mode`` (nor anything else):
    20 steps per episode, reward 1 for action 1."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / 20, np.float32), float(action), False, self.t >= 20, {}


gym.register("NoRenderMode-v0", entry_point=NoRenderMode)
