"""Group rollouts for critic-free policy gradients (GRPO): every batch starts each group of
``group_size`` environments from one shared initial state and runs every environment to the
end of its first episode.

A batch is one episode per environment, so its length is the longest episode's (at most the
task's time limit) and the steps an environment takes after its episode ended are masked out:
``mask`` (``[num_envs, steps]``, True on the steps that count) sits at the root beside TorchRL's
layout (see :class:`~rl_lightning.data.collector.VectorCollector`). Frames counted are the
unmasked steps. Every batch starts from a reset, so the state between batches is counters and
random-number generators only, which makes a resume exact.

* :class:`GymGroupCollector` resets the gymnasium vector environment with the same seed for
  the members of a group (``reset(seed=[s0, s0, ..., s1, s1, ...])``).
* :class:`TorchGroupCollector` resets a :class:`~rl_lightning.envs.batched.TorchVectorEnv` and
  copies each group leader's state to its members (``clone_rows``), on the environment's device
  with no NumPy in the loop.

The task's episodes must end (a time limit, as every gymnasium classic-control task has): a
batch lasts until the last one does. The seeds come from a ``torch.Generator`` seeded with the collector's ``seed`` (the data module
gives ``seed + rank * num_envs``), part of the checkpointed state.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from rl_lightning.data.collector import (
    EndlessCollector,
    Policy,
    _get_rng,
    _set_rng,
    observation_torch_dtype,
)
from rl_lightning.envs.batched import TorchVectorEnv

#: seeds handed to environment resets are drawn in [0, SEED_HIGH)
SEED_HIGH = 2**31 - 1


class GroupCollector(EndlessCollector):
    """What both group collectors share: the rollout to every environment's first episode end,
    the mask, frame and episode counting, and the checkpointed state. Subclasses define
    :meth:`start` (groups of identical initial states) and :meth:`step`.

    Args:
        env: the vector environment (``num_envs`` a multiple of ``group_size``).
        policy: the acting policy; called under ``torch.no_grad``.
        group_size: environments per group (consecutive environments form a group).
        seed: seed of the generator the reset seeds are drawn from.
    """

    observation_dtype = torch.float32
    #: steps between checks that every episode ended (each check waits for the device)
    check_every = 1
    #: no environment runs longer than this many steps (the time limit), ``None`` if unknown
    max_steps: int | None = None

    def __init__(self, env: Any, policy: Policy, group_size: int, seed: int | None = None) -> None:
        super().__init__()
        self.env = env
        self.policy = policy
        self.num_envs = int(env.num_envs)
        if group_size < 1 or self.num_envs % group_size:
            raise ValueError(f"num_envs ({self.num_envs}) must be a multiple of group_size ({group_size}).")
        self.group_size = int(group_size)
        self.num_groups = self.num_envs // self.group_size
        self.device = torch.device("cpu")
        self.frames = 0
        self.episodes = 0
        self.collect_seconds = 0.0
        self.seed = seed
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed or 0))
        #: finished episodes not yet read: return sum, length sum, count
        self._totals = [0.0, 0.0, 0]
        self._obs = None  # nothing runs between batches
        self._pending_rng: dict[str, Any] | None = None

    # --- what a backend defines --------------------------------------------------------
    def start(self) -> torch.Tensor:
        """Reset every environment, the members of each group to one state; the observations."""
        raise NotImplementedError

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(observation, final observation, reward, terminated, truncated)`` tensors of one
        step (same-step autoreset: ``observation`` starts a new episode where one ended)."""
        raise NotImplementedError

    def draw_seeds(self, n: int) -> list[int]:
        """``n`` reset seeds from the collector's generator."""
        return torch.randint(SEED_HIGH, (n,), generator=self.generator).tolist()

    # --- TorchRL collector interface -----------------------------------------------------
    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Reseed the generator of the reset seeds."""
        self.seed = seed
        self.generator.manual_seed(int(seed))
        return seed

    def set_rng(self, state: dict[str, Any]) -> None:
        """Restore the saved random-number states, the device's CUDA generator included."""
        _set_rng(state)
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def state_dict(self) -> dict[str, Any]:
        """Counters, the reset seeds' generator and the random-number generators (torch, CUDA
        on a GPU, NumPy, Python); tensors on the CPU and plain types only."""
        state = {"frames": self.frames, "episodes": self.episodes, "seed": self.seed,
                 "finished_totals": list(self._totals), "generator": self.generator.get_state(),
                 "rng": _get_rng()}
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state_dict: dict[str, Any], exact: bool = True) -> None:
        """Restore :meth:`state_dict`; without ``exact`` (another process's state) the
        generator is reseeded by the frame count."""
        self.frames = int(state_dict["frames"])
        self.episodes = int(state_dict["episodes"])
        if exact and "generator" in state_dict:
            ret_sum, len_sum, count = state_dict.get("finished_totals", [0.0, 0.0, 0])
            self._totals = [float(ret_sum), float(len_sum), int(count)]
            self.generator.set_state(state_dict["generator"])
            self._pending_rng = state_dict.get("rng")
        else:
            self._totals = [0.0, 0.0, 0]
            self.set_seed((self.seed or 0) + self.frames)

    def episode_totals(self) -> tuple[float, float, int, int]:
        """``(return sum, length sum, count)`` of the episodes finished since the last call, and
        the episodes finished so far."""
        ret_sum, len_sum, count = self._totals
        self._totals = [0.0, 0.0, 0]
        return ret_sum, len_sum, count, self.episodes

    # --- collection ----------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self) -> TensorDict:
        """Step every environment until each has finished its first episode since the reset."""
        begin = time.perf_counter()
        obs = self.start()
        running = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        observations, next_observations, outputs, rewards, terminated, truncated, masks = [], [], [], [], [], [], []
        t = 0
        while True:
            out = self.policy(obs)
            next_obs, final, reward, term, trunc = self.step(out.pop("env_action"))
            observations.append(obs)
            next_observations.append(final)
            outputs.append(out)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
            masks.append(running)  # the step counts where the episode had not ended before it
            running = running & ~(term | trunc)
            obs = next_obs
            t += 1
            if t == self.max_steps or (t % self.check_every == 0 and not bool(running.any())):
                break
        mask = torch.stack(masks, 1)
        reward = torch.stack(rewards, 1).to(torch.float32)
        lengths = mask.sum(1)
        returns = (reward.to(torch.float64) * mask).sum(1)
        frames, steps, ret_sum = torch.stack([lengths.sum().double(), lengths.max().double(), returns.sum()]).tolist()
        frames, steps = int(frames), int(steps)  # past the longest episode nothing counts: cut there
        self.frames += frames
        self.episodes += self.num_envs
        self._totals = [self._totals[0] + ret_sum, self._totals[1] + frames, self._totals[2] + self.num_envs]
        term_t = torch.stack(terminated, 1)[:, :steps].unsqueeze(-1)
        trunc_t = torch.stack(truncated, 1)[:, :steps].unsqueeze(-1)
        batch = {key: torch.stack([o[key] for o in outputs], 1)[:, :steps] for key in outputs[0]}
        batch["observation"] = torch.stack(observations, 1)[:, :steps]
        batch["mask"] = mask[:, :steps]
        batch["next"] = {
            "observation": torch.stack(next_observations, 1)[:, :steps],
            "reward": reward[:, :steps].unsqueeze(-1),
            "terminated": term_t,
            "truncated": trunc_t,
            "done": term_t | trunc_t,
        }
        if self.device.type == "cuda":  # the time of the work, not of queuing it
            torch.cuda.synchronize(self.device)
        self.collect_seconds = time.perf_counter() - begin
        return TensorDict(batch, batch_size=[self.num_envs, steps], device=self.device)


class GymGroupCollector(GroupCollector):
    """Group rollouts from a gymnasium vector environment with same-step autoreset: the members
    of a group are reset with the same seed (see :class:`GroupCollector` for the arguments)."""

    def __init__(self, env: gym.vector.VectorEnv, policy: Policy, group_size: int, seed: int | None = None) -> None:
        super().__init__(env, policy, group_size, seed)
        self.observation_dtype = observation_torch_dtype(env.single_observation_space)

    def start(self) -> torch.Tensor:
        """Reset with one seed per group, repeated for its members."""
        seeds = [s for s in self.draw_seeds(self.num_groups) for _ in range(self.group_size)]
        obs, _ = self.env.reset(seed=seeds)
        return torch.as_tensor(obs, dtype=self.observation_dtype)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step of the vector environment, as tensors; the final observation where one ended."""
        next_obs, reward, term, trunc, info = self.env.step(action.numpy())
        done = term | trunc
        final = next_obs
        if done.any():
            final = next_obs.copy()
            for i in np.flatnonzero(done):
                final[i] = info["final_obs"][i]
        dtype = self.observation_dtype
        return (torch.as_tensor(next_obs, dtype=dtype), torch.as_tensor(final, dtype=dtype),
                torch.as_tensor(reward, dtype=torch.float32), torch.from_numpy(term), torch.from_numpy(trunc))


class TorchGroupCollector(GroupCollector):
    """Group rollouts from a batched torch environment on its device: a seeded reset, then every
    group leader's state copied to its members (see :class:`GroupCollector` for the arguments).
    On a GPU, whether every episode ended is read every 16 steps (each read waits for the device)
    and the batch is cut after the longest episode."""

    def __init__(self, env: TorchVectorEnv, policy: Policy, group_size: int, seed: int | None = None) -> None:
        super().__init__(env, policy, group_size, seed)
        self.device = env.device
        self.max_steps = env.max_episode_steps
        self.check_every = 1 if self.device.type == "cpu" else 16
        #: environment i starts from its group leader's state
        self.leaders = torch.arange(self.num_envs, device=self.device) // self.group_size * self.group_size

    def start(self) -> torch.Tensor:
        """A seeded reset, then the leaders' rows copied to the members of their groups."""
        self.env.reset(seed=self.draw_seeds(1)[0])
        return self.env.clone_rows(self.leaders).to(self.observation_dtype)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step of the batched environment."""
        next_obs, reward, term, trunc, final = self.env.step(action)
        dtype = self.observation_dtype
        return next_obs.to(dtype), final.to(dtype), reward, term, trunc
