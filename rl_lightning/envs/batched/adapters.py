"""Gymnasium views of a batched torch environment, for the parts of a run that step a few
environments with NumPy (evaluation, ``validate``/``test``, video, ``play``): the same task,
physics and time limit as training, drawn through gymnasium's own renderer."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rl_lightning.envs.batched.base import TorchVectorEnv


class TorchVectorAsGym(gym.vector.VectorEnv):
    """A :class:`TorchVectorEnv` behind gymnasium's vector interface (NumPy in and out,
    same-step autoreset, ``final_obs`` in ``info`` where an episode ended)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, env: TorchVectorEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """Reset every environment; a list of seeds seeds the generator with the first."""
        if isinstance(seed, (list, tuple)):
            seed = seed[0]
        return self._numpy(self.env.reset(seed=seed)), {}

    def step(self, actions: Any):
        """Step with NumPy actions; returns NumPy results."""
        action = torch.as_tensor(np.asarray(actions), device=self.env.device)
        if action.is_floating_point():
            action = action.to(self.env.dtype)
        obs, reward, terminated, truncated, final = self.env.step(action)
        done = (terminated | truncated).cpu().numpy()
        info = {"final_obs": self._numpy(final), "_final_obs": done} if done.any() else {}
        return (self._numpy(obs), reward.cpu().numpy().astype(np.float64), terminated.cpu().numpy(),
                truncated.cpu().numpy(), info)

    @staticmethod
    def _numpy(x: torch.Tensor) -> np.ndarray:
        return x.cpu().numpy().astype(np.float32)

    def close(self, **kwargs: Any) -> None:
        """Nothing to release."""


class TorchEnvAsGym(gym.Env):
    """One environment of a :class:`TorchVectorEnv` (``num_envs`` 1) as a gymnasium ``Env``
    that renders: its state is drawn by gymnasium's renderer of ``env.env_id``.

    An episode's last step returns its final observation; call :meth:`reset` after it.
    """

    def __init__(self, env: TorchVectorEnv, render_mode: str | None = None) -> None:
        if env.num_envs != 1:
            raise ValueError(f"TorchEnvAsGym takes one environment, got num_envs={env.num_envs}")
        self.env = env
        self.observation_space = env.single_observation_space
        self.action_space = env.single_action_space
        self.render_mode = render_mode
        self.metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}
        self._renderer: gym.Env | None = None
        self._final = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode (``seed`` seeds the environment's generator)."""
        super().reset(seed=seed)
        self._final = False
        return self.env.reset(seed=seed)[0].cpu().numpy().astype(np.float32), {}

    def step(self, action: Any):
        """One step; returns the episode's final observation when it ends."""
        action = torch.as_tensor(np.asarray(action), device=self.env.device).unsqueeze(0)
        if action.is_floating_point():
            action = action.to(self.env.dtype)
        obs, reward, terminated, truncated, final = self.env.step(action)
        self._final = bool(terminated[0] | truncated[0])
        shown = final if self._final else obs
        return (shown[0].cpu().numpy().astype(np.float32), float(reward[0]), bool(terminated[0]),
                bool(truncated[0]), {})

    def render(self) -> np.ndarray | None:
        """The current state drawn by gymnasium's renderer (``rgb_array``: an RGB array)."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            self._renderer = gym.make(self.env.env_id, render_mode=self.render_mode).unwrapped
            self._renderer.reset(seed=0)
        if not self._final:
            self.env.render_state(self._renderer, 0)
            return self._renderer.render()
        running = self.env.state  # an episode just ended: draw its final state, not the next start
        self.env.state = self.env.final_state
        try:
            self.env.render_state(self._renderer, 0)
            return self._renderer.render()
        finally:
            self.env.state = running

    def close(self) -> None:
        """Close the renderer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
