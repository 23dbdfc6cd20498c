"""Prioritized experience replay (Schaul et al., 2016, arXiv:1511.05952) as a TorchRL sampler.

TorchRL's own ``PrioritizedSampler`` needs its compiled extension (segment trees in C++),
which fails to load with some torch builds ("SumSegmentTreeFp32 is not available"); this
sampler keeps TorchRL's ``Sampler`` interface, so it plugs into ``torchrl.data.ReplayBuffer``,
with sum and min trees in NumPy updated and searched level by level for a whole batch at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchrl.data.replay_buffers.samplers import Sampler

from rl_lightning.errors import ConfigError


class SumMinTree:
    """Binary trees over ``capacity`` leaves holding sums and minima of leaf values."""

    def __init__(self, capacity: int) -> None:
        self.size = 1
        while self.size < capacity:
            self.size *= 2
        self.sums = np.zeros(2 * self.size)
        self.mins = np.full(2 * self.size, np.inf)

    def update(self, index: np.ndarray, value: np.ndarray) -> None:
        """Set leaves ``index`` to ``value`` and refresh their ancestors."""
        node = np.asarray(index, dtype=np.int64) + self.size
        self.sums[node] = value
        self.mins[node] = value
        node = np.unique(node // 2)
        while node.size and node[0] >= 1:
            self.sums[node] = self.sums[2 * node] + self.sums[2 * node + 1]
            self.mins[node] = np.minimum(self.mins[2 * node], self.mins[2 * node + 1])
            node = np.unique(node // 2)
            node = node[node >= 1]

    @property
    def total(self) -> float:
        """Sum of all leaves."""
        return float(self.sums[1])

    @property
    def minimum(self) -> float:
        """Smallest leaf set so far."""
        return float(self.mins[1])

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaves where the running sum passes each value of ``mass`` (all at once)."""
        node = np.ones(len(mass), dtype=np.int64)
        mass = mass.astype(np.float64).copy()
        while node[0] < self.size:
            left = 2 * node
            go_right = mass > self.sums[left]
            mass -= np.where(go_right, self.sums[left], 0.0)
            node = np.where(go_right, left + 1, left)
        return node - self.size


class PrioritizedSampler(Sampler):
    """Samples index ``i`` with probability ``p_i^alpha / sum_k p_k^alpha`` (stratified over
    the batch) and returns importance weights ``(N * P(i))^-beta`` normalized by their
    maximum under ``"_weight"``. New entries get the highest priority seen so far.

    Args:
        capacity: size of the replay buffer's storage.
        alpha: how strongly priorities shape sampling (0 = uniform).
        beta: importance-sampling correction (1 = full); the data module anneals it.
        eps: added to absolute TD errors so no priority is zero.
    """

    def __init__(self, capacity: int, alpha: float = 0.6, beta: float = 0.4, eps: float = 1e-6) -> None:
        super().__init__()
        self.capacity = capacity
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.tree = SumMinTree(capacity)
        self.max_priority = 1.0

    def _set(self, index: Any, priority: np.ndarray) -> None:
        index = np.asarray(torch.as_tensor(index).reshape(-1).cpu().numpy(), dtype=np.int64)
        self.tree.update(index, np.broadcast_to(priority, index.shape) ** self.alpha)

    def extend(self, index: torch.Tensor) -> None:
        """New entries: highest priority so far."""
        self._set(index, np.array(self.max_priority))

    def add(self, index: int) -> None:
        """A new entry: highest priority so far."""
        self._set(index, np.array(self.max_priority))

    def update_priority(self, index: Any, priority: Any, **kwargs: Any) -> None:
        """Priorities from absolute TD errors (``eps`` added)."""
        priority = np.abs(torch.as_tensor(priority).detach().reshape(-1).cpu().double().numpy()) + self.eps
        self.max_priority = max(self.max_priority, float(priority.max()))
        self._set(index, priority)

    def sample(self, storage: Any, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """A stratified prioritized batch of indices and their importance weights."""
        n = len(storage)
        if n == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        total = self.tree.total
        segment = total / batch_size
        mass = (np.arange(batch_size) + torch.rand(batch_size, dtype=torch.float64).numpy()) * segment
        index = np.minimum(self.tree.find(np.minimum(mass, total * (1 - 1e-12))), n - 1)
        probs = self.tree.sums[index + self.tree.size] / total
        max_weight = (n * self.tree.minimum / total) ** (-self.beta)
        weights = (n * probs) ** (-self.beta) / max_weight
        return torch.from_numpy(index), {"_weight": torch.from_numpy(weights.astype(np.float32))}

    def _empty(self) -> None:
        self.tree = SumMinTree(self.capacity)
        self.max_priority = 1.0

    def state_dict(self) -> dict[str, Any]:
        """Tree contents as tensors (checkpoint-safe)."""
        return {"sums": torch.from_numpy(self.tree.sums.copy()), "mins": torch.from_numpy(self.tree.mins.copy()),
                "max_priority": self.max_priority, "beta": self.beta}

    def check_state_dict(self, state_dict: Any, source: str) -> None:
        """Raise a ``ConfigError`` naming ``source`` unless ``state_dict`` is a
        :meth:`state_dict` of a sampler of this capacity."""
        size = 2 * self.tree.size
        ok = isinstance(state_dict, dict) and all(
            isinstance(state_dict.get(k), torch.Tensor) and state_dict[k].dtype == torch.float64
            and tuple(state_dict[k].shape) == (size,) for k in ("sums", "mins")
        ) and all(isinstance(state_dict.get(k), (int, float)) for k in ("max_priority", "beta"))
        if not ok:
            raise ConfigError(
                f"{source}: the prioritized sampler state must hold float64 'sums' and 'mins' of {size} "
                "values (the tree of data.buffer_size leaves) and numbers 'max_priority' and 'beta'."
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.tree.sums = state_dict["sums"].numpy().copy()
        self.tree.mins = state_dict["mins"].numpy().copy()
        self.max_priority = state_dict["max_priority"]
        self.beta = state_dict["beta"]

    def dumps(self, path: str | Path) -> None:
        """Save to a folder (TorchRL's buffer-checkpoint hook)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "sums.npy", self.tree.sums)
        np.save(path / "mins.npy", self.tree.mins)
        (path / "meta.json").write_text(json.dumps({"max_priority": self.max_priority, "beta": self.beta}))

    def loads(self, path: str | Path) -> None:
        """Inverse of :meth:`dumps`."""
        path = Path(path)
        self.tree.sums = np.load(path / "sums.npy", allow_pickle=False)
        self.tree.mins = np.load(path / "mins.npy", allow_pickle=False)
        meta = json.loads((path / "meta.json").read_text())
        self.max_priority, self.beta = meta["max_priority"], meta["beta"]
