"""The on-device collector: a batched torch environment and the policy step together on one
device (``data.backend: torch``), with no NumPy and no host transfer inside a rollout.

Episode statistics are kept as device tensors and read once per batch (by
:meth:`TorchCollector.episode_totals`); the batch is built on the device, so the algorithm's
update starts from it without a copy. The interface is :class:`~rl_lightning.data.collector.VectorCollector`'s
(TorchRL's ``BaseCollector``, the same batch layout), so every data module and algorithm takes
either.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from tensordict import TensorDict

from rl_lightning.data.collector import (
    EndlessCollector,
    MemoryFactory,
    Policy,
    _get_rng,
    _set_rng,
)
from rl_lightning.envs.batched import TorchVectorEnv


class TorchCollector(EndlessCollector):
    """Collects ``frames_per_batch`` frames per batch from a :class:`~rl_lightning.envs.batched.TorchVectorEnv`.

    Batches have TorchRL's layout with batch size ``[num_envs, steps]`` on the environment's
    device (see :class:`~rl_lightning.data.collector.VectorCollector`); observations and
    rewards are float32 whatever the environment's dtype.

    Args:
        env: the batched environment.
        policy: the acting policy (observations on ``env.device`` in, actions on it out);
            called under ``torch.no_grad``.
        frames_per_batch: frames per batch, a multiple of ``env.num_envs``.
        seed: seed of the first reset (of the environment's generator).
        initial_memory: a recurrent policy's ``initial_memory``: memory per environment, as
            :class:`~rl_lightning.data.collector.VectorCollector` keeps it.
    """

    observation_dtype = torch.float32

    def __init__(self, env: TorchVectorEnv, policy: Policy, frames_per_batch: int, seed: int | None = None,
                 initial_memory: MemoryFactory | None = None) -> None:
        super().__init__()
        self.env = env
        self.policy = policy
        self.initial_memory = initial_memory
        self.num_envs = env.num_envs
        self.device = env.device
        if frames_per_batch % self.num_envs:
            raise ValueError(f"frames_per_batch ({frames_per_batch}) must be a multiple of num_envs ({self.num_envs}).")
        self.steps = frames_per_batch // self.num_envs
        self.frames_per_batch = frames_per_batch
        self.frames = 0
        self.collect_seconds = 0.0
        self.seed = seed
        self._obs: torch.Tensor | None = None
        n, device = self.num_envs, self.device
        self._ep_return = torch.zeros(n, dtype=torch.float64, device=device)
        self._ep_length = torch.zeros(n, dtype=torch.long, device=device)
        #: finished episodes not yet read: [return sum, length sum, count], and all episodes so far
        self._totals = torch.zeros(3, dtype=torch.float64, device=device)
        self._episodes = torch.zeros((), dtype=torch.long, device=device)
        self._pending_rng: dict[str, Any] | None = None

    @property
    def episodes(self) -> int:
        """Episodes finished so far (reads the device)."""
        return int(self._episodes)

    # --- TorchRL collector interface -------------------------------------------------
    def set_rng(self, state: dict[str, Any]) -> None:
        """Restore the saved random-number states, the device's CUDA generator included."""
        _set_rng(state)
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def state_dict(self) -> dict[str, Any]:
        """Counters, the running episodes (observations, partial returns and lengths, the
        environment's state and generator) and the random-number generators (torch, CUDA on a
        GPU, NumPy, Python); tensors on the CPU and plain types only."""
        ret_sum, len_sum, count = self._totals.tolist()
        state = {"frames": self.frames, "episodes": self.episodes, "seed": self.seed,
                 "finished_totals": [ret_sum, len_sum, count]}
        if self._obs is not None:
            state["running"] = {
                # copies: on the CPU ``.cpu()`` is the live tensor, and these change in place
                "obs": self._obs.to("cpu", copy=True),
                "ep_return": self._ep_return.to("cpu", copy=True),
                "ep_length": self._ep_length.to("cpu", copy=True),
                "env": self.env.state_dict(),
                **self._memory_state(),
            }
        state["rng"] = _get_rng()
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state_dict: dict[str, Any], exact: bool = True) -> None:
        """Restore :meth:`state_dict`; without ``exact`` (another process's state, under DDP)
        the environments restart from a reset seeded by the frame count."""
        self.frames = int(state_dict["frames"])
        self._episodes.fill_(int(state_dict["episodes"]))
        self._totals.zero_()
        if exact and "finished_totals" in state_dict:
            self._totals.copy_(torch.tensor(state_dict["finished_totals"], dtype=torch.float64))
        running = state_dict.get("running")
        if exact and running is not None and running["env"].get("exact", False) and "generator" in running["env"]:
            self.env.load_state_dict(running["env"])
            self._obs = running["obs"].to(self.device, self.observation_dtype).clone()
            self._ep_return.copy_(running["ep_return"])
            self._ep_length.copy_(running["ep_length"])
            self._load_memory(running, self.device)
            self._pending_rng = state_dict.get("rng")
        else:
            self.set_seed((self.seed or 0) + self.frames)

    # --- collection -------------------------------------------------------------------
    def _reset(self) -> None:
        self._obs = self.env.reset(seed=self.seed).to(self.observation_dtype)
        self._ep_return.zero_()
        self._ep_length.zero_()
        self._start_memory(self.device)

    def episode_totals(self) -> tuple[float, float, int, int]:
        """``(return sum, length sum, count)`` of the episodes finished since the last call, and
        the episodes finished so far: one read of the device per call."""
        values = torch.cat([self._totals, self._episodes.to(torch.float64).reshape(1)]).tolist()
        self._totals.zero_()
        return values[0], values[1], int(values[2]), int(values[3])

    @torch.no_grad()
    def rollout(self) -> TensorDict:
        """Step every environment ``frames_per_batch / num_envs`` times with the policy."""
        start = time.perf_counter()
        if self._obs is None:
            self._reset()
        observations, next_observations, outputs = [], [], []
        rewards, terminated, truncated = [], [], []
        dtype = self.observation_dtype
        for _ in range(self.steps):
            obs = self._obs
            out = self._act(obs)
            next_obs, reward, term, trunc, final = self.env.step(out.pop("env_action"))
            self._episodes_ended(term | trunc)
            self._obs = next_obs.to(dtype)
            observations.append(obs)
            next_observations.append(final.to(dtype))
            outputs.append(out)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
            self._track_episodes(reward, term | trunc)
        self.frames += self.frames_per_batch
        term_t = torch.stack(terminated, 1).unsqueeze(-1)
        trunc_t = torch.stack(truncated, 1).unsqueeze(-1)
        batch = {key: torch.stack([o[key] for o in outputs], 1) for key in outputs[0]}
        batch["observation"] = torch.stack(observations, 1)
        batch["next"] = {
            "observation": torch.stack(next_observations, 1),
            "reward": torch.stack(rewards, 1).to(torch.float32).unsqueeze(-1),
            "terminated": term_t,
            "truncated": trunc_t,
            "done": term_t | trunc_t,
        }
        if self.device.type == "cuda":  # the time of the work, not of queuing it
            torch.cuda.synchronize(self.device)
        self.collect_seconds = time.perf_counter() - start
        return TensorDict(batch, batch_size=[self.num_envs, self.steps], device=self.device)

    def _track_episodes(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        self._ep_return += reward
        self._ep_length += 1
        finished = done.to(torch.float64)
        self._totals += torch.stack([(self._ep_return * finished).sum(), (self._ep_length * finished).sum(),
                                     finished.sum()])
        self._episodes += done.sum()
        self._ep_return.masked_fill_(done, 0.0)
        self._ep_length.masked_fill_(done, 0)
