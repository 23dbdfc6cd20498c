"""Batched environments written in torch: ``num_envs`` copies of a task stepped as one set of
tensor operations on any device, with per-environment autoreset.

A gymnasium vector environment steps one NumPy environment at a time and each step crosses
Python, NumPy and torch; on classic control that framework cost, not the physics, bounds the
frames/s. Here the state of every environment is one tensor ``[num_envs, state_size]`` on
``device``, so a step costs a fixed number of tensor operations whatever ``num_envs`` is, and
the policy, the environment and the batch never leave the device.
``benchmarks/torch_envs_speed.py`` measures them against gymnasium's ``SyncVectorEnv``.

These are lean classes rather than TorchRL ``EnvBase`` subclasses: ``EnvBase.step`` builds and
checks TensorDicts on every call, which costs more than the physics here
(``benchmarks/torch_envs_speed.py`` times :func:`~rl_lightning.envs.batched.torchrl_env.as_torchrl`,
the TorchRL view of the same environment, beside them).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch


class TorchVectorEnv:
    """``num_envs`` copies of one task, stepped together on ``device``.

    The same equations, constants, termination and time limit as the gymnasium environment
    ``env_id`` names. :meth:`step` resets finished environments in the same call (gymnasium's
    same-step autoreset) and returns their final observations separately. Random numbers
    (reset states) come from one ``torch.Generator`` on ``device``, seeded by :meth:`reset`.

    Subclasses set the class attributes and implement :meth:`sample_state`, :meth:`observe`
    and :meth:`dynamics`.

    Args:
        num_envs: environments stepped together (the leading dimension of every tensor).
        device: where the state lives and the physics runs (``cpu``, ``cuda``, ``cuda:1``).
        dtype: floating dtype of the state and observations (``torch.float32`` or ``torch.float64``).
        max_episode_steps: time limit (truncation) in steps; ``None`` is gymnasium's for ``env_id``.
    """

    #: the gymnasium id whose task this is
    env_id: ClassVar[str]
    #: gymnasium's time limit for ``env_id``
    default_max_episode_steps: ClassVar[int]
    #: values in one environment's state
    state_size: ClassVar[int]
    #: spaces of one environment (float32, as gymnasium's)
    single_observation_space: gym.spaces.Box
    single_action_space: gym.Space

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_episode_steps = int(max_episode_steps or self.default_max_episode_steps)
        self.generator = torch.Generator(self.device)
        self.state = torch.zeros(self.num_envs, self.state_size, dtype=dtype, device=self.device)
        #: steps taken in each environment's current episode
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.final_state = self.state
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    # --- what a task defines ---------------------------------------------------------------
    def sample_state(self, n: int) -> torch.Tensor:
        """``n`` initial states ``[n, state_size]`` drawn with :attr:`generator`."""
        raise NotImplementedError

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """Observations ``[n, *observation_shape]`` of states ``[n, state_size]``."""
        raise NotImplementedError

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(next state, reward [n], terminated [n] bool)`` of one step from ``state`` with
        ``action`` (``[n]`` integers for discrete tasks, ``[n, *action_shape]`` otherwise)."""
        raise NotImplementedError

    # --- the environment -------------------------------------------------------------------
    def uniform(self, n: int, low: float | torch.Tensor, high: float | torch.Tensor, size: int = 1) -> torch.Tensor:
        """``[n, size]`` values uniform in ``[low, high)`` from :attr:`generator`."""
        u = torch.rand(n, size, generator=self.generator, dtype=self.dtype, device=self.device)
        return low + (high - low) * u

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start a new episode in every environment; ``seed`` (re)seeds the generator first.
        Returns the observations."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self.state = self.sample_state(self.num_envs)
        self.elapsed.zero_()
        return self.observe(self.state)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step every environment once; finished ones start a new episode at once.

        Returns ``(observation, reward, terminated, truncated, final_observation)``: the
        observation is the first of the new episode where one ended (``terminated | truncated``),
        ``final_observation`` the last observation of every environment's step (what a
        value bootstrap needs). Truncation is the time limit, as gymnasium's ``TimeLimit``."""
        state, reward, terminated = self.dynamics(self.state, action)
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        done = (terminated | truncated).unsqueeze(-1)
        final = self.observe(state)
        #: the states each environment's last step reached, before finished ones were reset
        self.final_state = state
        # fresh states are drawn for every environment, so the random stream does not depend on
        # which ones ended (and nothing waits on the device for the answer)
        self.state = torch.where(done, self.sample_state(self.num_envs), state)
        self.elapsed.masked_fill_(done.squeeze(-1), 0)
        return self.observe(self.state), reward, terminated, truncated, final

    # --- state -------------------------------------------------------------------------------
    def get_state(self) -> dict[str, torch.Tensor]:
        """A copy of the episodes' state: ``state`` and ``elapsed`` (one row per environment)."""
        return {"state": self.state.clone(), "elapsed": self.elapsed.clone()}

    def set_state(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """Continue from :meth:`get_state`'s rows (any row may repeat: ``{k: v[index] for k, v in
        state.items()}`` starts a group of environments from the same state); returns their
        observations."""
        rows = state["state"].to(self.device, self.dtype)
        if rows.shape != self.state.shape:
            raise ValueError(f"state of shape {tuple(rows.shape)} for {self.num_envs} environments "
                             f"({tuple(self.state.shape)} expected)")
        self.state = rows.clone()
        self.elapsed = state["elapsed"].to(self.device, torch.long).clone()
        return self.observe(self.state)

    def clone_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Environment ``i`` continues from environment ``index[i]``'s state (groups of identical
        starts for critic-free algorithms); returns the observations."""
        index = torch.as_tensor(index, device=self.device)
        return self.set_state({"state": self.state[index], "elapsed": self.elapsed[index]})

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly (tensors on the CPU): the episodes and the generator."""
        # copies: on the CPU ``.cpu()`` is the live tensor, and ``elapsed`` changes in place
        return {"state": self.state.to("cpu", copy=True), "elapsed": self.elapsed.to("cpu", copy=True),
                "generator": self.generator.get_state(), "exact": True}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.set_state(state_dict)
        self.generator.set_state(state_dict["generator"])

    def close(self) -> None:
        """Nothing to release (present for the vector-environment interface)."""

    # --- rendering ---------------------------------------------------------------------------
    def render_state(self, gym_env: gym.Env, row: int = 0) -> None:
        """Put environment ``row``'s state into ``gym_env`` (gymnasium's ``env_id``, unwrapped)
        so its renderer draws it."""
        gym_env.state = self.state[row].detach().cpu().numpy().astype(np.float64)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, device={self.device}, "
                f"dtype={self.dtype})")
