"""The replay buffer's saved state as tensors and plain types only: loading it runs no code.

TorchRL's ``ReplayBuffer.state_dict``/``dumps`` also carry its prefetch queue and transforms,
and ``ReplayBuffer.loads`` unpickles ``prefetch.pkl`` from the snapshot folder, so a crafted
checkpoint or an edited snapshot could run code on resume. What is saved here is the stored
rows (one tensor per key), the writer's position and the sampler's state, and nothing else:

- in-memory buffers: that state inside the checkpoint (read by ``torch.load`` with
  ``weights_only=True``, as Lightning and the CLI load checkpoints);
- memory-mapped buffers: a snapshot folder holding one NumPy ``<key>.npy`` file per key
  (read with ``allow_pickle=False``, memory-mapped) and ``state.pt`` (``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.data import ReplayBuffer

from rl_lightning.errors import ConfigError

#: The keys of a stored transition.
KEYS = ("observation", "action", "reward", "next_observation", "terminated", "discount")
#: The keys of a stored row when each observation is stored once (``data.compact_observations``):
#: the next observation is found through the pointers of the state's ``compact`` entry.
COMPACT_KEYS = tuple(key for key in KEYS if key != "next_observation")
#: Rows copied at a time between a snapshot's files and the buffer (bounded memory).
CHUNK = 65_536
#: Name of the plain-state file of a snapshot folder.
STATE_FILE = "state.pt"


def buffer_state(buffer: ReplayBuffer, rows: bool = True, keys: tuple[str, ...] = KEYS) -> dict[str, Any]:
    """The buffer as plain types: ``capacity``, ``length``, writer ``cursor`` and
    ``write_count``, the sampler's ``state_dict`` (``None`` for uniform sampling) and, with
    ``rows``, the stored rows ``{key: tensor[length, ...]}`` of ``keys``."""
    writer = buffer.writer.state_dict()
    sampler = buffer.sampler.state_dict() if hasattr(buffer.sampler, "tree") else None
    state = {
        "capacity": int(buffer.storage.max_size),
        "length": len(buffer.storage),
        "cursor": int(writer["_cursor"]),
        "write_count": int(writer.get("_write_count", len(buffer.storage))),
        "sampler": sampler,
    }
    if rows:
        data = buffer.storage.get(slice(0, state["length"]))
        state["rows"] = {key: data[key].as_subclass(torch.Tensor).clone() for key in keys}
    return state


def write_snapshot(buffer: ReplayBuffer, folder: Path, keys: tuple[str, ...] = KEYS,
                   extra: dict[str, Any] | None = None) -> None:
    """Write the buffer to ``folder``: ``<key>.npy`` per key of ``keys``, copied in chunks, and
    ``state.pt`` with the rest of :func:`buffer_state` and the tensors-only ``extra`` entries."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {**buffer_state(buffer, rows=False), **(extra or {})}
    n = state["length"]
    first = buffer.storage.get(slice(0, 1))
    for key in keys:
        sample = first[key].as_subclass(torch.Tensor)
        out = np.lib.format.open_memmap(folder / f"{key}.npy", mode="w+", dtype=sample.numpy().dtype,
                                        shape=(n, *sample.shape[1:]))
        for start in range(0, n, CHUNK):
            out[start:start + CHUNK] = buffer.storage.get(slice(start, min(start + CHUNK, n)))[key].numpy()
        out.flush()
        del out
    torch.save(state, folder / STATE_FILE)


def read_snapshot(folder: Path, keys: tuple[str, ...] = KEYS) -> dict[str, Any]:
    """Inverse of :func:`write_snapshot`: the state with ``rows`` memory-mapped from the
    ``.npy`` files. Nothing is unpickled; a folder without ``state.pt`` (a snapshot written by
    TorchRL's ``ReplayBuffer.dumps``, whose loading unpickles a file) is refused."""
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise ConfigError(
            f"the replay buffer snapshot {folder} has no {STATE_FILE}: it was written by an earlier "
            "rl_lightning in TorchRL's dumps format, which loads by unpickling a file and is not read "
            "(resume it with that version, or start a new run)."
        )
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and ("compact" in state) != ("next_observation" not in keys):
            keys = KEYS if "compact" not in state else COMPACT_KEYS  # refused by load_buffer_state
        rows = {key: np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False) for key in keys}
    except (OSError, ValueError, RuntimeError, EOFError) as err:
        raise ConfigError(f"the replay buffer snapshot {folder} is unreadable ({type(err).__name__}: {err}).") from err
    if not isinstance(state, dict):
        raise ConfigError(f"the replay buffer snapshot {folder}: {STATE_FILE} is not a dict.")
    return {**state, "rows": rows}


def from_torchrl_state(state: dict[str, Any]) -> dict[str, Any]:
    """The plain fields of a checkpoint written by an earlier rl_lightning with TorchRL's
    ``ReplayBuffer.state_dict`` (rows, length, writer, sampler); the prefetch queue,
    transforms and generator it may also hold are ignored."""
    try:
        storage = state["_storage"]["_storage"]
        rows = {key: storage[key] for key in KEYS}
        writer = state["_writer"]
        sampler = state.get("_sampler") or None
        return {
            "capacity": int(rows["reward"].shape[0]),
            "length": int(state["_storage"]["_len"]),
            "cursor": int(writer["_cursor"]),
            "write_count": int(writer.get("_write_count", state["_storage"]["_len"])),
            "sampler": sampler if sampler and "sums" in sampler else None,
            "rows": {key: value[: int(state["_storage"]["_len"])] for key, value in rows.items()},
        }
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise ConfigError(f"the checkpoint's replay buffer state is malformed (missing {err}).") from err


def load_buffer_state(buffer: ReplayBuffer, state: dict[str, Any], source: str, keys: tuple[str, ...] = KEYS) -> None:
    """Fill an empty ``buffer`` from :func:`buffer_state` (or :func:`read_snapshot`) after
    checking every field's type and range (rows of exactly ``keys``); ``source`` names the
    checkpoint or folder in errors."""
    capacity = int(buffer.storage.max_size)

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{source}: the replay buffer state {what}.")

    for name in ("capacity", "length", "cursor", "write_count"):
        if not isinstance(state.get(name), int) or isinstance(state.get(name), bool):
            raise bad(f"has no integer {name!r}")
    if state["capacity"] != capacity:
        raise ConfigError(
            f"{source}: data.buffer_size is fixed by the checkpoint (checkpoint {state['capacity']}, "
            f"config {capacity}); resume with --data.buffer_size {state['capacity']} or start a new run."
        )
    length, cursor = state["length"], state["cursor"]
    if not 0 < length <= capacity or not 0 <= cursor < capacity:
        raise bad(f"has length {length} and cursor {cursor}, outside a buffer of {capacity}")
    rows = state.get("rows")
    if isinstance(rows, dict) and {frozenset(rows), frozenset(keys)} == {frozenset(KEYS), frozenset(COMPACT_KEYS)}:
        saved = set(rows) == set(COMPACT_KEYS)
        raise ConfigError(
            f"{source}: data.compact_observations is fixed by the checkpoint (checkpoint {saved}, config {not saved}); "
            f"resume with --data.compact_observations {str(saved).lower()}."
        )
    if not isinstance(rows, dict) or set(rows) != set(keys):
        raise bad(f"must hold exactly the keys {', '.join(keys)}")
    for key, value in rows.items():
        if not isinstance(value, (torch.Tensor, np.ndarray)) or value.ndim < 1 or value.shape[0] != length:
            raise bad(f"key {key!r} is not an array of {length} rows")
    sampler = state.get("sampler")
    prioritized = hasattr(buffer.sampler, "tree")
    if (sampler is not None) != prioritized:
        raise ConfigError(
            f"{source}: data.prioritized is fixed by the checkpoint (checkpoint {sampler is not None}, "
            f"config {prioritized}); resume with --data.prioritized {str(sampler is not None).lower()}."
        )
    if prioritized:
        buffer.sampler.check_state_dict(sampler, source)
    if len(buffer.storage):
        buffer.empty()
    for start in range(0, length, CHUNK):
        stop = min(start + CHUNK, length)
        chunk = {key: torch.as_tensor(np.array(value[start:stop])) if isinstance(value, np.ndarray)
                 else value[start:stop] for key, value in rows.items()}
        buffer.extend(TensorDict(chunk, batch_size=[stop - start]))
    buffer.writer.load_state_dict({"_cursor": cursor, "_write_count": state["write_count"]})
    if prioritized:
        buffer.sampler.load_state_dict(sampler)
