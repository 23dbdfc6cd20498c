"""Off-policy data: a TorchRL replay buffer filled by the collector, sampled for updates."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tensordict import TensorDict
from torch.utils.data import DataLoader, IterableDataset
from torchrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    RandomSampler,
    ReplayBuffer,
)

from rl_lightning.data.base import EnvDataModule, identity_collate
from rl_lightning.data.prioritized import PrioritizedSampler
from rl_lightning.errors import ConfigError, check_range

if TYPE_CHECKING:
    from rl_lightning.algorithms.base import RLModule

logging.getLogger("torchrl").setLevel(logging.WARNING)

KEYS = ("observation", "action", "reward", "next_observation", "terminated", "discount")


def n_step_transitions(batch: TensorDict, n: int, gamma: float) -> dict[str, torch.Tensor]:
    """n-step transitions from a collector batch ``[envs, steps]``, flattened.

    For step ``t``: ``reward = sum_{k<m} gamma^k r_{t+k}``, ``next_observation`` the
    observation after step ``t+m-1``, ``terminated`` whether that step terminated, and
    ``discount = gamma^m``, where ``m <= n`` stops at the end of the episode and at the end
    of the batch (the transition then bootstraps earlier, as TorchRL's ``MultiStep`` does).
    """
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    if n == 1:  # one-step transitions are the collected steps themselves
        return {
            "observation": flat(batch["observation"]),
            "action": flat(batch["action"]),
            "reward": flat(batch["next", "reward"].squeeze(-1)),
            "next_observation": flat(batch["next", "observation"]),
            "terminated": flat(batch["next", "terminated"].squeeze(-1)).float(),
            "discount": torch.full((batch.numel(),), gamma),
        }
    reward = batch["next", "reward"].squeeze(-1)
    done = batch["next", "done"].squeeze(-1)
    terminated = batch["next", "terminated"].squeeze(-1)
    next_obs = batch["next", "observation"]
    envs, steps = reward.shape
    out_reward = torch.zeros_like(reward)
    out_next = next_obs.clone()
    out_term = torch.zeros_like(terminated)
    out_discount = torch.ones_like(reward)
    alive = torch.ones_like(done)  # still accumulating (no episode end yet within the window)
    for k in range(n):
        idx = torch.arange(steps) + k
        valid = idx < steps
        idx = idx.clamp(max=steps - 1)
        take = alive & valid
        out_reward += torch.where(take, out_discount * reward[:, idx], torch.zeros_like(reward))
        out_next = torch.where(take.view(envs, steps, *([1] * (next_obs.dim() - 2))), next_obs[:, idx], out_next)
        out_term = torch.where(take, terminated[:, idx], out_term)
        out_discount = torch.where(take, out_discount * gamma, out_discount)
        alive = take & ~done[:, idx]
    return {
        "observation": flat(batch["observation"]),
        "action": flat(batch["action"]),
        "reward": flat(out_reward),
        "next_observation": flat(out_next),
        "terminated": flat(out_term).float(),
        "discount": flat(out_discount),
    }


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
            if dm.frames >= dm.init_random_frames:
                yield UpdateRound(dm, dm.updates_per_batch)


class ReplayDataModule(EnvDataModule):
    """Collects ``frames_per_batch`` frames at a time into a TorchRL replay buffer and feeds
    ``updates_per_batch`` sampled minibatches to the algorithm after each collection.

    The first ``init_random_frames`` frames use uniformly random actions and no updates.
    n-step returns (``n_step > 1``) use the algorithm's discount ``gamma``.

    Args:
        env_id: Gymnasium environment id.
        num_envs: environments stepped together in this process.
        frames_per_batch: frames collected between rounds of updates (a multiple of ``num_envs``).
        total_frames: training budget in environment frames, over all processes.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        seed: seed of the environments; ``None`` takes the run's ``seed_everything``.
        buffer_size: transitions kept (oldest dropped first).
        batch_size: transitions per sampled minibatch, at most ``buffer_size``.
        init_random_frames: frames of uniformly random actions before learning starts (below
            ``total_frames``).
        updates_per_batch: gradient updates after each collection (update-to-data ratio =
            ``updates_per_batch / frames_per_batch``).
        prioritized: prioritized replay (priorities from the algorithm's TD errors).
        alpha: prioritization exponent (>= 0).
        beta: initial importance-sampling exponent in [0, 1], annealed linearly to 1 over ``total_frames``.
        n_step: steps of the multi-step return (1 = one-step TD).
        memmap: keep the buffer in memory-mapped files (large buffers) instead of RAM;
            checkpoints then refer to a copy in ``<run>/checkpoints/replay/``.
        scratch_dir: folder of the live memory-mapped files (``<scratch_dir>/live-rank<N>``,
            replaced when a process starts); ``None`` is ``<run>/replay``.
    """

    def __init__(
        self,
        env_id: str = "Pendulum-v1",
        num_envs: int = 1,
        frames_per_batch: int = 1,
        total_frames: int = 20_000,
        env_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
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
    ) -> None:
        super().__init__(env_id, num_envs, frames_per_batch, total_frames, env_kwargs, seed)
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
        self.buffer: ReplayBuffer | None = None
        self.gamma = 0.99

    def connect(self, agent: "RLModule") -> None:
        """Collect with the agent's policy (random during warm-up); build the buffer."""
        self.gamma = float(getattr(agent.hparams, "gamma", 0.99))
        self._agent_policy = agent.collect_policy
        self.spec = agent.spec
        if self.buffer is None:
            if self.memmap:
                # the live files: scratch, rewritten from a checkpoint's snapshot on resume
                root = Path(self.scratch_dir or Path(self.trainer.default_root_dir if self.trainer else ".") / "replay")
                live = root / (f"live-rank{self.trainer.global_rank}" if self.trainer is not None else "live")
                if live.is_dir():
                    shutil.rmtree(live)  # left by an interrupted process of this run
                storage = LazyMemmapStorage(self.buffer_size, scratch_dir=str(live))
            else:
                storage = LazyTensorStorage(self.buffer_size)
            sampler = PrioritizedSampler(self.buffer_size, self.alpha, self.beta) if self.prioritized else RandomSampler()
            self.buffer = ReplayBuffer(storage=storage, sampler=sampler, batch_size=self.batch_size)
        super().connect(agent)
        self.collector.policy = self._policy

    def _policy(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.collector.frames < self.init_random_frames:
            return self.spec.random_actions(obs.shape[0])
        return self._agent_policy(obs)

    def add(self, batch: TensorDict) -> None:
        """Turn a collected batch into (n-step) transitions and store them."""
        data = n_step_transitions(batch, self.n_step, self.gamma)
        self.buffer.extend(TensorDict(data, batch_size=[data["reward"].shape[0]]))
        if self.prioritized:
            progress = min(self.frames / self.total_frames, 1.0)
            self.buffer.sampler.beta = self.beta + (1.0 - self.beta) * progress

    def sample(self) -> dict[str, torch.Tensor]:
        """A minibatch: the stored keys, ``weight`` (importance weights, 1 without
        prioritization) and ``index`` (for :meth:`update_priorities`)."""
        batch, info = self.buffer.sample(return_info=True)
        out = {key: batch[key] for key in KEYS}
        out["index"] = torch.as_tensor(info["index"])
        weight = info.get("_weight")
        out["weight"] = torch.as_tensor(weight, dtype=torch.float32) if weight is not None else torch.ones(len(out["reward"]))
        return out

    def sample_round(self, updates: int) -> dict[str, torch.Tensor]:
        """``updates`` uniform minibatches at once, stacked: ``[updates, batch_size, ...]``."""
        index = torch.randint(len(self.buffer), (updates, self.batch_size))
        data = self.buffer.storage.get(index.reshape(-1))
        out = {key: data[key].reshape(updates, self.batch_size, *data[key].shape[1:]) for key in KEYS}
        out["index"] = index
        out["weight"] = torch.ones(updates, self.batch_size)
        return out

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
        """Collector state plus the replay buffer: its contents (in-memory buffers) or, for
        memory-mapped ones, the folder of a snapshot taken now (see :meth:`snapshot`)."""
        state = super().state_dict()
        rank = self.trainer.global_rank if self.trainer is not None else 0
        if self.buffer is not None and len(self.buffer.storage) > 0 and rank == 0:  # rank 0's is the one saved
            if self.memmap:
                state["buffer_dir"] = str(self.snapshot().relative_to(self._run_dir()))  # the run folder can move
            else:
                state["buffer"] = self.buffer.state_dict()
        return state

    def snapshot(self) -> Path:
        """Copy the memory-mapped buffer to ``<run>/checkpoints/replay/frames-<N>`` (written to a
        temporary folder, then renamed) and return that folder.

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
            self.buffer.dumps(tmp)
            os.replace(tmp, target)
            snapshots = sorted(root.glob("frames-*"), key=lambda d: int(d.name.split("-")[1]))
            for old in snapshots[:-2]:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def _run_dir(self) -> Path:
        return Path(self.trainer.default_root_dir if self.trainer is not None else ".").resolve()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the collector and the buffer."""
        state_dict = dict(state_dict)
        buffer_state = state_dict.pop("buffer", None)
        buffer_dir = state_dict.pop("buffer_dir", None)
        super().load_state_dict(state_dict)
        if self.buffer is None:
            return
        if buffer_state is not None:
            self.buffer.load_state_dict(buffer_state)
        elif buffer_dir is not None:
            buffer_dir = self._run_dir() / buffer_dir
            if not buffer_dir.is_dir():
                raise ConfigError(
                    f"the checkpoint's replay buffer snapshot {buffer_dir} is missing (only the two newest are "
                    "kept): resume from the run's last.ckpt."
                )
            self.buffer.loads(buffer_dir)
