"""A TorchRL collector over one in-process gymnasium vector environment.

Why not ``torchrl.collectors.Collector``: on CartPole with 8 environments and a 64x64 MLP
policy it collects fewer frames/s around ``GymWrapper`` than this collector
(``benchmarks/collector_speed.py`` times both); the difference is per-step TensorDict and
spec work. This collector keeps TorchRL's collector interface (``BaseCollector``: an
iterable of TensorDict batches with ``state_dict``/``set_seed``) and TorchRL's batch layout,
so TorchRL's value estimators, losses and replay buffers consume its batches unchanged, but
steps the environments with plain tensors and builds one TensorDict per batch.
``benchmarks/collector_speed.py`` measures both side by side.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from torchrl.collectors import BaseCollector

from rl_lightning.envs.state import capture_vector, restore_vector

#: A policy maps a batch of observations to a dict holding at least ``"action"`` (stored in
#: the batch) and ``"env_action"`` (what the environment receives); other entries, such as
#: ``"action_log_prob"``, are stored in the batch too. A recurrent policy (a collector given
#: ``initial_memory``) is called ``policy(obs, memory, is_init)`` and returns ``(outputs,
#: memory after the step)`` (see ``RLModule.collect_policy``).
Policy = Callable[..., Any]
#: ``initial_memory(num_envs)``: a recurrent policy's memory for new episodes, or ``None``.
MemoryFactory = Callable[[int], "dict[str, torch.Tensor] | None"]


class EndlessCollector(BaseCollector):
    """What both collectors share: an endless stream of batches (training stops on the trainer's
    frame budget), reseeding that drops the running episodes, random-number states from a
    checkpoint applied when iteration starts. Subclasses set ``env``, ``seed``, ``_obs`` and
    ``_pending_rng`` and define ``rollout``."""

    #: Endless: training stops on the trainer's frame budget, not here.
    total_frames = -1

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} is an endless stream and has no length.")

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed the next reset; the running episodes are dropped."""
        self.seed = seed
        self._obs = None
        return seed

    def iterator(self) -> Iterator[TensorDict]:
        """Endless stream of batches; the trainer stops on its frame budget.

        Random-number states loaded from a checkpoint are applied here, when iteration
        starts: creating the DataLoader iterator draws from torch's global generator."""
        if self._pending_rng is not None:
            self.set_rng(self._pending_rng)
            self._pending_rng = None
        while True:
            yield self.rollout()

    def set_rng(self, state: dict[str, Any]) -> None:
        """Restore the random-number states a checkpoint saved (torch, NumPy, Python)."""
        _set_rng(state)

    def shutdown(self, timeout: float | None = None, close_env: bool = True) -> None:
        """Close the environments."""
        if close_env:
            self.env.close()

    # --- a recurrent policy's memory, per environment ---------------------------------
    #: ``initial_memory`` of a recurrent policy (set by subclasses), else ``None``
    initial_memory: MemoryFactory | None = None
    _memory: dict[str, torch.Tensor] | None = None
    _is_init: torch.Tensor | None = None

    def _start_memory(self, device: torch.device | str) -> None:
        """New episodes everywhere (at a reset): fresh memory, every episode starting."""
        self._memory = self.initial_memory(self.num_envs) if self.initial_memory is not None else None
        self._is_init = torch.ones(self.num_envs, dtype=torch.bool, device=device) if self._memory else None

    def _act(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """The policy's outputs for ``obs``; a recurrent policy's memory moves one step."""
        if self._memory is None:
            return self.policy(obs)
        out, self._memory = self.policy(obs, self._memory, self._is_init)
        return out

    def _episodes_ended(self, done: torch.Tensor) -> None:
        """Episodes that ended start anew at the next observation (same-step autoreset)."""
        if self._memory is not None:
            self._is_init = done.to(self._is_init.device)

    def _memory_state(self) -> dict[str, Any]:
        """The running memory (CPU copies) for ``state_dict``; empty without one."""
        if self._memory is None:
            return {}
        return {"memory": {k: v.to("cpu", copy=True) for k, v in self._memory.items()},
                "is_init": self._is_init.to("cpu", copy=True)}

    def _load_memory(self, running: dict[str, Any], device: torch.device | str) -> None:
        """Restore :meth:`_memory_state`'s memory onto the policy's devices."""
        self._start_memory(device)
        if self._memory is not None and "memory" in running:
            for key, value in self._memory.items():
                value.copy_(running["memory"][key])
            self._is_init.copy_(running["is_init"])


class VectorCollector(EndlessCollector):
    """Collects ``frames_per_batch`` frames per batch from a gymnasium vector environment.

    Batches have TorchRL's layout with batch size ``[num_envs, steps]``: ``observation``,
    ``action`` and the policy's extra outputs at the root, and ``("next", "observation")``,
    ``("next", "reward")``, ``("next", "done")``, ``("next", "terminated")``,
    ``("next", "truncated")`` (trailing dim 1) under ``next``. When an episode ends,
    ``("next", "observation")`` is its final observation, not the reset one.

    Args:
        env: a vector environment with same-step autoreset.
        policy: the acting policy; called under ``torch.no_grad``.
        frames_per_batch: frames per batch, a multiple of ``env.num_envs``.
        seed: seed of the first reset (environment ``i`` gets ``seed + i``).
        initial_memory: a recurrent policy's ``initial_memory`` (``RLModule.initial_memory``): the
            collector keeps each environment's memory, resets it where an episode starts, and the
            batch holds ``is_init`` and the memory each step started from.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        policy: Policy,
        frames_per_batch: int,
        seed: int | None = None,
        initial_memory: MemoryFactory | None = None,
    ) -> None:
        super().__init__()
        self.env = env
        self.policy = policy
        self.initial_memory = initial_memory
        self.num_envs = env.num_envs
        if frames_per_batch % self.num_envs:
            raise ValueError(
                f"frames_per_batch ({frames_per_batch}) must be a multiple of num_envs "
                f"({self.num_envs})."
            )
        self.steps = frames_per_batch // self.num_envs
        self.frames_per_batch = frames_per_batch
        self.frames = 0
        self.episodes = 0
        self.collect_seconds = 0.0
        self.seed = seed
        #: dtype observations are kept in (batches, running episodes, replay rows, checkpoints):
        #: float spaces become float32, integer spaces (such as uint8 frames) keep theirs, so an
        #: image is not stored 4x larger; networks convert it (see ``EnvSpec.observation_dtype``)
        self.observation_dtype = observation_torch_dtype(env.single_observation_space)
        self._obs: torch.Tensor | None = None
        self._ep_return = np.zeros(self.num_envs)
        self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self._finished: list[tuple[float, int]] = []
        #: whole episodes a ``RecordEpisodeStatistics`` wrapper reported (``info["episode"]``)
        self._games: list[tuple[float, int]] = []
        self._pending_rng: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: counters, the running episodes (current
        observations, partial returns and lengths, environment state) and the random-number
        generators of torch, NumPy and Python. Tensors and plain types only."""
        state = {"frames": self.frames, "episodes": self.episodes, "seed": self.seed,
                 # finished episodes not yet logged (``--log_every_frames`` skips batches)
                 "finished": [[float(r), int(n)] for r, n in self._finished],
                 "games": [[float(r), int(n)] for r, n in self._games]}
        if self._obs is not None:
            state["running"] = {
                "obs": self._obs.clone(),
                "ep_return": torch.from_numpy(self._ep_return.copy()),
                "ep_length": torch.from_numpy(self._ep_length.copy()),
                "env": capture_vector(self.env),
                **self._memory_state(),
            }
        state["rng"] = _get_rng()
        return state

    def load_state_dict(self, state_dict: dict[str, Any], exact: bool = True) -> None:
        """Restore :meth:`state_dict`. With ``exact`` (and an environment whose state could
        be captured) the running episodes continue where they were and random numbers
        repeat; otherwise the environments restart from a reset seeded by the frame count."""
        self.frames = int(state_dict["frames"])
        self.episodes = int(state_dict["episodes"])
        # rank 0's unlogged episodes belong to one process only (``exact`` is False under DDP)
        self._finished = [(float(r), int(n)) for r, n in state_dict.get("finished", [])] if exact else []
        self._games = [(float(r), int(n)) for r, n in state_dict.get("games", [])] if exact else []
        running = state_dict.get("running")
        if exact and running is not None and running["env"]["exact"]:
            restore_vector(self.env, running["env"])
            self._obs = running["obs"].to(self.observation_dtype).clone()
            self._ep_return = running["ep_return"].numpy().copy()
            self._ep_length = running["ep_length"].numpy().copy()
            self._load_memory(running, "cpu")
            self._pending_rng = state_dict.get("rng")
        else:
            self.set_seed((self.seed or 0) + self.frames)

    # --- collection -------------------------------------------------------------------
    def _reset(self) -> None:
        obs, _ = self.env.reset(seed=self.seed)
        self._obs = torch.as_tensor(obs, dtype=self.observation_dtype)
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._start_memory("cpu")

    def pop_episodes(self) -> tuple[list[float], list[int]]:
        """Returns and lengths of the episodes finished since the last call."""
        finished, self._finished = self._finished, []
        return [r for r, _ in finished], [n for _, n in finished]

    def episode_totals(self) -> tuple[float, float, int, int]:
        """``(return sum, length sum, count)`` of the episodes finished since the last call,
        and the episodes finished so far."""
        returns, lengths = self.pop_episodes()
        return float(sum(returns)), float(sum(lengths)), len(returns), self.episodes

    def game_totals(self) -> tuple[float, float, int]:
        """``(return sum, length sum, count)`` of the whole episodes a
        ``gymnasium.wrappers.RecordEpisodeStatistics`` in the environments reported since the
        last call (placed before training-only wrappers, it sees whole games, real scores)."""
        games, self._games = self._games, []
        return float(sum(r for r, _ in games)), float(sum(n for _, n in games)), len(games)

    @torch.no_grad()
    def rollout(self) -> TensorDict:
        """Step every environment ``frames_per_batch / num_envs`` times with the policy."""
        start = time.perf_counter()
        if self._obs is None:
            self._reset()
        steps, n = self.steps, self.num_envs
        observations, next_observations, outputs = [], [], []
        rewards = np.empty((steps, n), dtype=np.float32)
        terminated = np.empty((steps, n), dtype=bool)
        truncated = np.empty((steps, n), dtype=bool)
        for t in range(steps):
            obs = self._obs
            out = self._act(obs)
            next_obs, reward, term, trunc, info = self.env.step(out.pop("env_action").numpy())
            done = term | trunc
            self._episodes_ended(torch.from_numpy(done))
            self._obs = torch.as_tensor(next_obs, dtype=self.observation_dtype)
            if done.any():
                next_obs = next_obs.copy()
                for i in np.flatnonzero(done):
                    next_obs[i] = info["final_obs"][i]
            observations.append(obs)
            next_observations.append(torch.as_tensor(next_obs, dtype=self.observation_dtype))
            outputs.append(out)
            rewards[t] = reward
            terminated[t] = term
            truncated[t] = trunc
            self._track_episodes(reward, done)
            if done.any():
                self._track_games(info)
        self.frames += steps * n
        term_t = torch.from_numpy(terminated).T.unsqueeze(-1)
        trunc_t = torch.from_numpy(truncated).T.unsqueeze(-1)
        batch = {key: torch.stack([o[key] for o in outputs], 1) for key in outputs[0]}
        batch["observation"] = torch.stack(observations, 1)
        batch["next"] = {
            "observation": torch.stack(next_observations, 1),
            "reward": torch.from_numpy(rewards).T.unsqueeze(-1),
            "terminated": term_t,
            "truncated": trunc_t,
            "done": term_t | trunc_t,
        }
        self.collect_seconds = time.perf_counter() - start
        return TensorDict(batch, batch_size=[n, steps])

    def _track_games(self, info: dict[str, Any]) -> None:
        final = info.get("final_info")  # the step info of the environments whose episode ended
        if not isinstance(final, dict) or "episode" not in final:
            return
        episode = final["episode"]
        for i in np.flatnonzero(final.get("_episode", np.zeros(0, dtype=bool))):
            self._games.append((float(episode["r"][i]), int(episode["l"][i])))

    def _track_episodes(self, reward: np.ndarray, done: np.ndarray) -> None:
        self._ep_return += reward
        self._ep_length += 1
        if done.any():
            for i in np.flatnonzero(done):
                self._finished.append((float(self._ep_return[i]), int(self._ep_length[i])))
            self.episodes += int(done.sum())
            self._ep_return[done] = 0.0
            self._ep_length[done] = 0


def observation_torch_dtype(space: gym.Space) -> torch.dtype:
    """The torch dtype observations of ``space`` are kept in: ``float32`` for float (and
    dtype-less) spaces, the space's own dtype otherwise (``uint8`` frames stay ``uint8``);
    the same rule as ``EnvSpec.observation_dtype``."""
    dtype = np.dtype(getattr(space, "dtype", None) or np.float32)
    if dtype.kind == "f":
        return torch.float32
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def _get_rng() -> dict[str, Any]:
    """torch, NumPy (global) and Python random states, as tensors and plain types."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {**np_state, "state": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                                        "pos": int(np_state["state"]["pos"])}},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def _set_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`_get_rng`."""
    torch.set_rng_state(state["torch"])
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": state["numpy"]["state"]["key"].numpy().astype(np.uint32),
                         "pos": state["numpy"]["state"]["pos"]}
    np.random.set_state(np_state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
