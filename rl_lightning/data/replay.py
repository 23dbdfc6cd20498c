"""Off-policy data: a TorchRL replay buffer filled by the collector, sampled for updates."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from tensordict import TensorDict
from torch.utils.data import DataLoader, IterableDataset
from torchrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    RandomSampler,
    ReplayBuffer,
)

from rl_lightning.data.base import (
    NORMALIZATION_OPTIONS,
    PIPELINE_OPTIONS,
    EnvDataModule,
    identity_collate,
)
from rl_lightning.data.compact import CompactObservations, bytes_per_row
from rl_lightning.data.link import AgentLink
from rl_lightning.data.prioritized import PrioritizedSampler
from rl_lightning.data.replay_state import (
    COMPACT_KEYS,
    KEYS,
    buffer_state,
    from_torchrl_state,
    load_buffer_state,
    read_snapshot,
    write_snapshot,
)
from rl_lightning.errors import ConfigError, check_range

if TYPE_CHECKING:
    pass

logging.getLogger("torchrl").setLevel(logging.WARNING)


def n_step_transitions(batch: TensorDict, n: int, gamma: float) -> dict[str, torch.Tensor]:
    """n-step transitions from one collector batch ``[envs, steps]`` alone, flattened.

    For step ``t``: ``reward = sum_{k<m} gamma^k r_{t+k}``, ``next_observation`` the
    observation after step ``t+m-1``, ``terminated`` whether that step terminated, and
    ``discount = gamma^m``, where ``m <= n`` stops at the end of the episode and at the end
    of the batch (the transition then bootstraps earlier, as TorchRL's ``MultiStep`` does).
    Training uses :class:`NStepWindow`, which does not cut windows at batch ends.
    """
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    if n == 1:  # one-step transitions are the collected steps themselves
        return {
            "observation": flat(batch["observation"]),
            "action": flat(batch["action"]),
            "reward": flat(batch["next", "reward"].squeeze(-1)),
            "next_observation": flat(batch["next", "observation"]),
            "terminated": flat(batch["next", "terminated"].squeeze(-1)).float(),
            "discount": torch.full((batch.numel(),), gamma, device=batch.device),
        }
    return {key: flat(value) for key, value in _windows(_steps(batch), n, gamma).items() if key in KEYS}


#: The per-step entries n-step windows are computed from (``[envs, steps, ...]``).
STEP_KEYS = ("observation", "action", "reward", "next_observation", "terminated", "done")


def _steps(batch: TensorDict) -> dict[str, torch.Tensor]:
    """A collector batch's entries that n-step windows use."""
    return {
        "observation": batch["observation"],
        "action": batch["action"],
        "reward": batch["next", "reward"].squeeze(-1),
        "next_observation": batch["next", "observation"],
        "terminated": batch["next", "terminated"].squeeze(-1),
        "done": batch["next", "done"].squeeze(-1),
    }


def _windows(steps: dict[str, torch.Tensor], n: int, gamma: float) -> dict[str, torch.Tensor]:
    """n-step transitions ``[envs, steps]`` of every step, windows cut at episode ends and at
    the end of the steps given."""
    reward, done, terminated, next_obs = steps["reward"], steps["done"], steps["terminated"], steps["next_observation"]
    envs, length = reward.shape
    out_reward = torch.zeros_like(reward)
    out_next = next_obs.clone()
    out_term = torch.zeros_like(terminated)
    out_discount = torch.ones_like(reward)
    alive = torch.ones_like(done)  # still accumulating (no episode end yet within the window)
    out_steps = torch.zeros(reward.shape, dtype=torch.int64, device=reward.device)
    out_ends = torch.zeros_like(done)
    for k in range(n):
        idx = torch.arange(length, device=reward.device) + k
        valid = idx < length
        idx = idx.clamp(max=length - 1)
        take = alive & valid
        out_reward += torch.where(take, out_discount * reward[:, idx], torch.zeros_like(reward))
        out_next = torch.where(take.view(envs, length, *([1] * (next_obs.dim() - 2))), next_obs[:, idx], out_next)
        out_term = torch.where(take, terminated[:, idx], out_term)
        out_discount = torch.where(take, out_discount * gamma, out_discount)
        out_steps += take
        out_ends |= take & done[:, idx]
        alive = take & ~done[:, idx]
    return {
        "observation": steps["observation"],
        "action": steps["action"],
        "reward": out_reward,
        "next_observation": out_next,
        "terminated": out_term.float(),
        "discount": out_discount,
        # where the next observation is (compact storage): steps taken, window ended an episode
        "steps": out_steps,
        "ends": out_ends,
    }


class NStepWindow:
    """n-step transitions across collected batches: each environment's last ``n - 1`` steps
    wait (in :attr:`pending`) for the steps of the next batches that complete their windows,
    so a window is cut only at an episode end, never at a batch end (with one-frame batches,
    as SAC and TD3 collect, cutting there would leave one-step returns). The pending steps
    are part of the checkpointed state (:meth:`state_dict`), so a resumed run stores the
    same transitions.

    Args:
        n: steps of the return (1 stores the collected steps as they are).
        gamma: discount factor.
    """

    def __init__(self, n: int, gamma: float) -> None:
        self.n = n
        self.gamma = gamma
        #: the steps ``[envs, <= n-1]`` whose windows are not complete yet, or ``None``
        self.pending: dict[str, torch.Tensor] | None = None

    def __call__(self, batch: TensorDict) -> dict[str, torch.Tensor]:
        """The transitions (flattened) whose windows this batch completes."""
        if self.n == 1:
            out = n_step_transitions(batch, 1, self.gamma)
            out["steps"] = torch.ones(batch.numel(), dtype=torch.int64, device=batch.device)
            out["ends"] = batch["next", "done"].reshape(-1)
            return out
        steps = _steps(batch)
        if self.pending is not None:
            steps = {key: torch.cat([self.pending[key], value], 1) for key, value in steps.items()}
        length = steps["reward"].shape[1]
        ready = max(length - (self.n - 1), 0)
        self.pending = {key: value[:, ready:].clone() for key, value in steps.items()}
        out = _windows(steps, self.n, self.gamma)
        return {key: value[:, :ready].reshape(-1, *value.shape[2:]) for key, value in out.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The pending steps (tensors; empty when none)."""
        return {key: value.clone() for key, value in (self.pending or {}).items()}

    def load_state_dict(self, state: dict[str, Any], num_envs: int) -> None:
        """Restore :meth:`state_dict` after checking it holds at most ``n - 1`` steps of
        ``num_envs`` environments."""
        if not state:
            self.pending = None
            return
        ok = isinstance(state, dict) and set(state) == set(STEP_KEYS) and all(
            isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[0] == num_envs
            and v.shape[1] == state["reward"].shape[1] <= self.n - 1 for v in state.values()
        )
        if not ok:
            raise ConfigError(
                f"the checkpoint's pending n-step steps must be tensors [{num_envs} envs, <= {self.n - 1} steps] "
                f"with the keys {', '.join(STEP_KEYS)}."
            )
        self.pending = {key: value.clone() for key, value in state.items()}


class UpdateRound:
    """The minibatches of one round of updates, the one that follows a collection.

    Uniform replay draws the indices of the whole round at once and gathers them from the
    storage in one indexing call (:attr:`stacked`, tensors ``[updates, batch_size, ...]``):
    the buffer does not change during a round, so this is the same distribution as sampling
    before every update, and ``benchmarks/replay_sample_speed.py`` measures it several times
    faster than calling ``ReplayBuffer.sample`` per update. Prioritized replay samples before
    each update, since every update changes the priorities.
    """

    def __init__(self, datamodule: "ReplayDataModule", updates: int) -> None:
        self.datamodule = datamodule
        self.updates = updates
        #: the round's minibatches stacked (uniform replay), else ``None``
        self.stacked = None if datamodule.prioritized else datamodule.sample_round(updates)

    def __len__(self) -> int:
        return self.updates

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for update in range(self.updates):
            if self.stacked is None:
                yield self.datamodule.sample()
            else:
                yield {key: value[update] for key, value in self.stacked.items()}


class ReplayStream(IterableDataset):
    """Endless stream of update rounds, one per collection once warm-up is over."""

    def __init__(self, datamodule: "ReplayDataModule") -> None:
        self.datamodule = datamodule

    def __iter__(self) -> Iterator[UpdateRound]:
        dm = self.datamodule
        batches = iter(dm.collector)  # applies random states restored from a checkpoint first
        while True:
            dm.add(next(batches))
            if dm.frames >= dm.init_random_frames and len(dm.buffer) > 0:  # n-step: the first windows wait
                yield UpdateRound(dm, dm.updates_per_batch)


class ReplayDataModule(EnvDataModule):
    """Collects ``frames_per_batch`` frames at a time into a TorchRL replay buffer and feeds
    ``updates_per_batch`` sampled minibatches to the algorithm after each collection.

    The first ``init_random_frames`` frames use uniformly random actions and no updates.
    n-step returns (``n_step > 1``) use the algorithm's discount ``gamma``; their windows span
    batch boundaries (:class:`NStepWindow`). On resume, ``num_envs``, ``buffer_size``,
    ``prioritized``, ``n_step`` (and ``alpha`` of a prioritized buffer, and
    ``compact_observations``) must keep the checkpoint's values; the other options apply (see
    :meth:`options_fixed_by`). The replay memory per transition is logged when the buffer is
    built (:meth:`memory_line`, :attr:`replay_bytes_per_frame`).

    Args:
        env_id: Gymnasium environment id.
        num_envs: environments stepped together in this process.
        frames_per_batch: frames collected between rounds of updates (a multiple of ``num_envs``).
        total_frames: training budget in environment frames, over all processes.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        seed: seed of the environments; ``None`` takes the run's ``seed_everything``.
        wrappers: Gymnasium wrappers around each environment, in order, each ``{class_path: ...,
            init_args: {...}}``, e.g. ``{class_path: gymnasium.wrappers.ResizeObservation, init_args:
            {shape: [84, 84]}}``; every environment of the run (training, evaluation, video, play)
            gets them; one that renders (``AddRenderObservation``) makes it with ``render_mode=rgb_array``.
        vectorization: ``sync`` (in this process) or ``async`` (one subprocess per environment,
            gymnasium ``AsyncVectorEnv``; a resume then restarts the running episodes).
        vector_wrappers: Gymnasium vector wrappers around the vector environment, same form.
        normalize_observation: normalize observations with their running mean and standard
            deviation (as Stable-Baselines3's ``VecNormalize``), for float observations; the
            statistics are part of the model's checkpoint and frozen outside training.
        normalize_reward: divide rewards by the running standard deviation of the discounted
            return (the algorithm's ``gamma``); episode returns are still logged unscaled.
        clip_observation: normalized observations are clipped to ``[-clip, clip]`` (> 0).
        clip_reward: scaled rewards are clipped to ``[-clip, clip]`` (> 0).
        buffer_size: transitions kept (oldest dropped first).
        batch_size: transitions per sampled minibatch, at most ``buffer_size``.
        init_random_frames: frames of uniformly random actions before learning starts (below
            ``total_frames``).
        updates_per_batch: gradient updates after each collection (update-to-data ratio =
            ``updates_per_batch / frames_per_batch``).
        prioritized: prioritized replay (priorities from the algorithm's TD errors).
        alpha: prioritization exponent (>= 0).
        beta: initial importance-sampling exponent in [0, 1], annealed linearly to 1 over ``total_frames``.
        n_step: steps of the multi-step return (1 = one-step TD); a transition's last ``n_step - 1``
            steps may come from later batches.
        memmap: keep the buffer in memory-mapped files (large buffers) instead of RAM;
            checkpoints then refer to a copy in ``<run>/checkpoints/replay/`` (NumPy files and
            a tensors-only state; a checkpoint of an in-memory buffer may resume with it on).
        scratch_dir: folder of the live memory-mapped files (``<scratch_dir>/live-rank<N>``,
            replaced when a process starts); ``None`` is ``<run>/replay``.
        compact_observations: store each observation once (a transition's next observation is
            the row of the step that follows it, found through a pointer, or a small side store
            at episode ends; see :mod:`rl_lightning.data.compact`): about half the memory for
            images, the same sampled minibatches. ``None`` turns it on for integer (e.g. uint8)
            or image-shaped observations. A checkpoint fixes it.
        backend: ``gymnasium`` or ``torch`` (batched torch classic-control environments on
            ``device``, see :class:`~rl_lightning.data.base.EnvDataModule`); with ``torch`` the
            replay buffer lives on ``device`` too.
        device: where ``backend: torch`` environments and the buffer live; ``auto`` is the
            algorithm's device.
    """

    #: the stored transitions fix the capacity, sampler, and n-step horizon of the buffer
    fixed_by_checkpoint = ("num_envs", *PIPELINE_OPTIONS, *NORMALIZATION_OPTIONS, "buffer_size", "prioritized", "n_step")

    def __init__(
        self,
        env_id: str = "Pendulum-v1",
        num_envs: int = 1,
        frames_per_batch: int = 1,
        total_frames: int = 20_000,
        env_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        wrappers: list[dict[str, Any]] | None = None,
        vectorization: Literal["sync", "async"] = "sync",
        vector_wrappers: list[dict[str, Any]] | None = None,
        normalize_observation: bool = False,
        normalize_reward: bool = False,
        clip_observation: float = 10.0,
        clip_reward: float = 10.0,
        buffer_size: int = 1_000_000,
        batch_size: int = 256,
        init_random_frames: int = 100,
        updates_per_batch: int = 1,
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        n_step: int = 1,
        memmap: bool = False,
        scratch_dir: str | None = None,
        compact_observations: bool | None = None,
        backend: Literal["gymnasium", "torch"] = "gymnasium",
        device: str = "auto",
    ) -> None:
        super().__init__(env_id, num_envs, frames_per_batch, total_frames, env_kwargs, seed,
                         wrappers=wrappers, vectorization=vectorization, vector_wrappers=vector_wrappers,
                         normalize_observation=normalize_observation, normalize_reward=normalize_reward,
                         clip_observation=clip_observation, clip_reward=clip_reward, backend=backend, device=device)
        if backend == "torch" and (memmap or compact_observations):
            raise ConfigError(
                f"data.{'memmap' if memmap else 'compact_observations'} is for large observations on the host; "
                "with data.backend torch the replay buffer lives on data.device in memory: switch it off."
            )
        self.save_hyperparameters()
        for name, value in (("buffer_size", buffer_size), ("batch_size", batch_size),
                            ("updates_per_batch", updates_per_batch), ("n_step", n_step)):
            if value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}.")
        if init_random_frames < 0:
            raise ConfigError(f"data.init_random_frames must be >= 0, got {init_random_frames}.")
        if batch_size > buffer_size:
            raise ConfigError(
                f"data.batch_size ({batch_size}) is larger than data.buffer_size ({buffer_size}): a minibatch "
                "cannot hold more transitions than the buffer keeps; lower batch_size or raise buffer_size."
            )
        if init_random_frames >= total_frames:
            raise ConfigError(
                f"data.init_random_frames ({init_random_frames}) must be below data.total_frames ({total_frames}): "
                "otherwise the whole budget is spent on random actions and nothing is learned."
            )
        check_range("data.alpha", alpha, 0.0)
        check_range("data.beta", beta, 0.0, 1.0)
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.init_random_frames = init_random_frames
        self.updates_per_batch = updates_per_batch
        self.prioritized = prioritized
        self.alpha, self.beta = alpha, beta
        self.n_step = n_step
        self.memmap = memmap
        self.scratch_dir = scratch_dir
        self.compact_observations = compact_observations
        self.spec = None  # the agent's EnvSpec, from connect()
        #: next-observation pointers when observations are stored once, else ``None``
        self.compact: CompactObservations | None = None
        self.buffer: ReplayBuffer | None = None
        self.gamma = 0.99
        self.window: NStepWindow | None = None
        #: the agent's hook that adds each collected batch to its normalization statistics
        self._observe = None

    @classmethod
    def options_fixed_by(
        cls, saved_options: dict[str, Any], saved_state: dict[str, Any], options: dict[str, Any]
    ) -> list[str]:
        """As for every data module, plus ``alpha`` of a prioritized buffer (its priorities are
        stored raised to ``alpha``) and ``memmap`` of a buffer saved as a memory-mapped snapshot
        (read only by a memory-mapped buffer), and an explicit ``compact_observations`` that
        differs from the checkpoint's layout (``None`` takes the checkpoint's); ``memmap`` may be
        switched on, and the other
        options (``batch_size``, ``frames_per_batch``, ``updates_per_batch``, ``beta``, ...)
        apply on resume."""
        fixed = super().options_fixed_by(saved_options, saved_state, options)
        if saved_options.get("prioritized") and options.get("prioritized") and "alpha" in saved_options:
            if saved_options["alpha"] != options.get("alpha"):
                fixed.append(f"data.alpha (checkpoint {saved_options['alpha']!r}, config {options.get('alpha')!r})")
        if isinstance(saved_state, dict) and "buffer_dir" in saved_state and not options.get("memmap"):
            fixed.append(f"data.memmap (checkpoint True, config {options.get('memmap')!r})")
        saved_compact = _saved_compact(saved_state) if isinstance(saved_state, dict) else None
        if options.get("compact_observations") is not None and saved_compact is not None \
                and bool(saved_compact) != bool(options["compact_observations"]):
            fixed.append(f"data.compact_observations (checkpoint {saved_compact!r}, "
                         f"config {options['compact_observations']!r})")
        return fixed

    def connect(self, agent: AgentLink) -> None:
        """Collect with the agent's policy (random during warm-up); build the buffer."""
        if agent.initial_memory is not None:
            raise ConfigError("the algorithm has a recurrent policy, which replay data does not keep: "
                              "use data.class_path rl_lightning.data.OnPolicyDataModule.")
        self.gamma = float(agent.gamma)
        self._agent_policy = agent.policy
        self._observe = agent.observe_batch
        self.spec = agent.spec
        if self.buffer is None:
            self._build_buffer(self._resolve_compact(_saved_compact(self._pending_state or {}), "the checkpoint"))
            rank_zero_info(self.memory_line())
        self.window = NStepWindow(self.n_step, self.gamma)
        super().connect(agent)
        self.collector.policy = self._policy

    def _resolve_compact(self, saved: bool | None, source: str) -> bool:
        """``compact_observations``, auto-resolved from the spec, or the checkpoint's value."""
        option = self.compact_observations
        if saved is not None:
            if option is not None and bool(option) != bool(saved):
                raise ConfigError(
                    f"{source}: data.compact_observations is fixed by the checkpoint (checkpoint {bool(saved)}, "
                    f"config {bool(option)}); resume with --data.compact_observations {str(bool(saved)).lower()}."
                )
            return bool(saved)
        if option is not None:
            return bool(option)
        spec = self.spec or self.env_spec
        return spec.observation_dtype != "float32" or len(spec.observation_shape) >= 3

    def _build_buffer(self, compact: bool) -> None:
        """An empty replay buffer (memory-mapped or in RAM; uniform or prioritized)."""
        if compact and self.buffer_size < self.frames_per_batch:
            raise ConfigError(
                f"data.buffer_size ({self.buffer_size}) must hold at least one collected batch (data.frames_per_batch "
                f"{self.frames_per_batch}) with data.compact_observations: a batch's rows point to each other."
            )
        if self.memmap:
            # the live files: scratch, rewritten from a checkpoint's snapshot on resume
            root = Path(self.scratch_dir or Path(self.trainer.default_root_dir if self.trainer else ".") / "replay")
            live = root / (f"live-rank{self.trainer.global_rank}" if self.trainer is not None else "live")
            if live.is_dir():
                shutil.rmtree(live)  # left by an interrupted process of this run
            storage = LazyMemmapStorage(self.buffer_size, scratch_dir=str(live))
        else:
            storage = LazyTensorStorage(self.buffer_size, device=self.storage_device)
        sampler = PrioritizedSampler(self.buffer_size, self.alpha, self.beta) if self.prioritized else RandomSampler()
        self.buffer = ReplayBuffer(storage=storage, sampler=sampler, batch_size=self.batch_size)
        self.compact = CompactObservations(self.buffer_size, self.num_envs) if compact else None

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of a stored row (``next_observation`` is not one with compact observations)."""
        return COMPACT_KEYS if self.compact is not None else KEYS

    @property
    def replay_bytes_per_frame(self) -> float:
        """Bytes the replay memory takes per stored transition: the stored row (measured once
        rows exist, else from the spec), plus pointers and the side store's share with
        compact observations."""
        if self.buffer is not None and len(self.buffer.storage):
            first = self.buffer.storage.get(slice(0, 1))
            row = bytes_per_row({key: first[key] for key in self.keys})
        else:
            spec = self.spec or self.env_spec
            obs = int(torch.Size(spec.observation_shape).numel()) * torch.empty(
                0, dtype=getattr(torch, spec.observation_dtype)).element_size()
            action = 8 if spec.discrete else 4 * spec.action_dim
            row = obs * (1 if self.compact is not None else 2) + action + 3 * 4  # reward, terminated, discount
        if self.compact is None:
            return float(row)
        return row + self.compact.extra_bytes_per_row(len(self.buffer.storage) if self.buffer is not None else 0)

    def memory_line(self) -> str:
        """One line for the log, e.g. ``replay: 100000 transitions x 28.3 KB = 2.8 GB``."""
        per = self.replay_bytes_per_frame
        layout = "each observation stored once" if self.compact is not None else "observation and next observation"
        return (f"replay: {self.buffer_size} transitions x {_size(per)} = {_size(per * self.buffer_size)} "
                f"({layout}; data.compact_observations)")

    @property
    def storage_device(self) -> torch.device:
        """Where the replay buffer lives: with the environments (the device, for ``backend: torch``)."""
        return self.env_device

    def _policy(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.collector.frames < self.init_random_frames:
            return {key: value.to(obs.device) for key, value in self.spec.random_actions(obs.shape[0]).items()}
        return self._agent_policy(obs)

    def add(self, batch: TensorDict) -> None:
        """Turn a collected batch into (n-step) transitions and store them."""
        if self._observe is not None:  # raw observations and rewards are stored; the agent normalizes samples
            self._observe(batch)
        data = self.window(batch)
        steps, ends = data.pop("steps"), data.pop("ends")
        if data["reward"].shape[0]:
            if self.compact is None:
                self.buffer.extend(TensorDict(data, batch_size=[data["reward"].shape[0]]))
            else:
                next_obs = data.pop("next_observation")
                index = self.buffer.extend(TensorDict(data, batch_size=[data["reward"].shape[0]]))
                self.compact.write(torch.as_tensor(index).reshape(-1), next_obs, steps, ends)
        if self.prioritized:
            progress = min(self.frames / self.total_frames, 1.0)
            self.buffer.sampler.beta = self.beta + (1.0 - self.beta) * progress

    def sample(self) -> dict[str, torch.Tensor]:
        """A minibatch: the stored keys, ``weight`` (importance weights, 1 without
        prioritization) and ``index`` (for :meth:`update_priorities`)."""
        batch, info = self.buffer.sample(return_info=True)
        out = {key: batch[key] for key in self.keys}
        out["index"] = torch.as_tensor(info["index"])
        if self.compact is not None:
            out["next_observation"] = self.compact.next_observation(out["index"], self._observations)
        weight = info.get("_weight")
        out["weight"] = torch.as_tensor(weight, dtype=torch.float32) if weight is not None else torch.ones(len(out["reward"]))
        return out

    def sample_round(self, updates: int) -> dict[str, torch.Tensor]:
        """``updates`` uniform minibatches at once, stacked: ``[updates, batch_size, ...]``."""
        index = torch.randint(len(self.buffer), (updates, self.batch_size), device=self.storage_device)
        data = self.buffer.storage.get(index.reshape(-1))
        out = {key: data[key].reshape(updates, self.batch_size, *data[key].shape[1:]) for key in self.keys}
        out["index"] = index
        if self.compact is not None:
            out["next_observation"] = self.compact.next_observation(index, self._observations)
        out["weight"] = torch.ones(updates, self.batch_size, device=self.storage_device)
        return out

    def _observations(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored observations of ``rows`` (a plain tensor, also from memory-mapped storage)."""
        return self.buffer.storage.get(rows)["observation"].as_subclass(torch.Tensor)

    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        """New priorities from absolute TD errors (no-op without prioritization)."""
        if self.prioritized:
            self.buffer.update_priority(index, td_error.detach().abs().cpu())

    def train_dataloader(self) -> DataLoader:
        """The replay stream."""
        if self.collector is None:
            raise RuntimeError("connect(agent) must run before training (the algorithm's setup does it).")
        return DataLoader(ReplayStream(self), batch_size=None, collate_fn=identity_collate, num_workers=0)

    def state_dict(self) -> dict[str, Any]:
        """Collector state plus the replay buffer: its contents as tensors and plain types
        (in-memory buffers, see :func:`~rl_lightning.data.replay_state.buffer_state`) or, for
        memory-mapped ones, the folder of a snapshot taken now (see :meth:`snapshot`)."""
        state = super().state_dict()
        if self.window is not None and self.window.pending is not None:
            state["n_step_pending"] = self.window.state_dict()
        if self.buffer is not None:
            state["compact_observations"] = self.compact is not None
        rank = self.trainer.global_rank if self.trainer is not None else 0
        if self.buffer is not None and len(self.buffer.storage) > 0 and rank == 0:  # rank 0's is the one saved
            if self.memmap:
                state["buffer_dir"] = str(self.snapshot().relative_to(self._run_dir()))  # the run folder can move
            else:
                state["buffer"] = buffer_state(self.buffer, keys=self.keys)
                if self.compact is not None:
                    state["buffer"]["compact"] = self.compact.state_dict(len(self.buffer.storage))
        return state

    def snapshot(self) -> Path:
        """Copy the memory-mapped buffer to ``<run>/checkpoints/replay/frames-<N>`` (written to a
        temporary folder, then renamed; the format of
        :func:`~rl_lightning.data.replay_state.write_snapshot`) and return that folder.

        The live files keep changing after a checkpoint, so a checkpoint refers to a copy of
        the buffer as it was when the checkpoint was taken. The two newest copies are kept:
        the one of this checkpoint and the one of the previous, which ``last.ckpt`` still
        names if writing this checkpoint is interrupted.
        """
        root = self._run_dir() / "checkpoints" / "replay"
        target = root / f"frames-{self.frames}"
        if not target.is_dir():  # best.ckpt and last.ckpt of the same moment share one copy
            tmp = root / f".frames-{self.frames}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            extra = {"compact": self.compact.state_dict(len(self.buffer.storage))} if self.compact is not None else None
            write_snapshot(self.buffer, tmp, self.keys, extra)
            os.replace(tmp, target)
            snapshots = sorted(root.glob("frames-*"), key=lambda d: int(d.name.split("-")[1]))
            for old in snapshots[:-2]:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def _run_dir(self) -> Path:
        return Path(self.trainer.default_root_dir if self.trainer is not None else ".").resolve()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the collector and the buffer. Only tensors and plain types are read: a
        snapshot folder must be a relative path inside ``<run>/checkpoints/replay/`` and is
        accepted only with ``memmap`` on; nothing is unpickled."""
        if self.buffer is None:  # before connect(): kept whole until the buffer exists
            super().load_state_dict(state_dict)
            return
        state_dict = dict(state_dict)
        saved_compact = _saved_compact(state_dict)
        state_dict.pop("compact_observations", None)
        if saved_compact is not None and bool(saved_compact) != (self.compact is not None):
            # the buffer (empty until now) was built before the checkpoint's choice was known
            self._build_buffer(self._resolve_compact(bool(saved_compact), "the checkpoint"))
        saved_buffer = state_dict.pop("buffer", None)
        buffer_dir = state_dict.pop("buffer_dir", None)
        pending = state_dict.pop("n_step_pending", None)
        super().load_state_dict(state_dict)
        # the pending steps continue only the running episodes, when those were restored exactly
        exact = self.collector is not None and self.collector._obs is not None
        self.window.load_state_dict(pending if exact else None, self.num_envs)
        if saved_buffer is not None:
            if isinstance(saved_buffer, dict) and "_storage" in saved_buffer:  # earlier rl_lightning
                saved_buffer = from_torchrl_state(saved_buffer)
            if not isinstance(saved_buffer, dict):
                raise ConfigError("the checkpoint's replay buffer state is not a dict.")
            self._load_buffer(saved_buffer, "the checkpoint")
        elif buffer_dir is not None:
            folder = self._snapshot_folder(buffer_dir)
            self._load_buffer(read_snapshot(folder, self.keys), f"the replay buffer snapshot {folder}")
        if self.compact is not None and not exact:
            self.compact.cut()  # the environments restart: no later step continues the frontier

    def _load_buffer(self, state: dict[str, Any], source: str) -> None:
        """Rows (and, with compact observations, their pointers) from a checkpoint."""
        load_buffer_state(self.buffer, state, source, self.keys)
        if self.compact is not None:
            self.compact.load_state_dict(state.get("compact"), int(state["length"]), source)

    def _snapshot_folder(self, buffer_dir: Any) -> Path:
        """The snapshot folder a checkpoint names, checked to be one of this run's."""
        if not self.memmap:
            raise ConfigError(
                "data.memmap is fixed by the checkpoint: its replay buffer is a memory-mapped snapshot "
                "(checkpoint true, config false); resume with --data.memmap true."
            )
        root = (self._run_dir() / "checkpoints" / "replay").resolve()
        folder = (self._run_dir() / str(buffer_dir)).resolve()
        if not isinstance(buffer_dir, str) or Path(buffer_dir).is_absolute() or folder.parent != root:
            raise ConfigError(
                f"the checkpoint names the replay buffer folder {buffer_dir!r}, which is not a folder inside "
                f"{root} (a snapshot is read only from the run's own checkpoints/replay/)."
            )
        if not folder.is_dir():
            raise ConfigError(
                f"the checkpoint's replay buffer snapshot {folder} is missing (only the two newest are "
                "kept): resume from the run's last.ckpt."
            )
        return folder


def _saved_compact(state: dict[str, Any]) -> bool | None:
    """Whether a checkpoint's buffer stores each observation once; buffers of checkpoints
    written before the option existed are plain; ``None`` when it holds no buffer."""
    if "compact_observations" in state:
        return bool(state["compact_observations"])
    return False if "buffer" in state or "buffer_dir" in state else None


def _size(n: float) -> str:
    """Bytes as ``28.3 KB``, ``2.8 GB`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} TB"
