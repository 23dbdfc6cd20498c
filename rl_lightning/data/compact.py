"""Replay rows that store each observation once: a transition's next observation is found
through a pointer to the row that holds it, not stored a second time.

Why not TorchRL's: torchrl 0.14 compacts observations only when a buffer is saved
(``TED2Flat``/``FlatStorageCheckpointer``, which assume one-step transitions, not n-step
windows); its live storages keep ``("next", "observation")`` beside ``observation``. This
keeps TorchRL's storage, writer and samplers for the rows and adds what they lack: one
``int64`` pointer per row to the row of the next observation, and a small side store for the
next observations no row holds.

Rows keep the data module's plain order (a collected block ``[envs, steps]`` flattened
env-major, one row per transition, the ring positions TorchRL's writer gives), so the same
sampled indices give the same transitions as the plain layout. The next observation of the
transition of environment ``e`` at step ``s`` that took ``m`` steps is the observation of the
row of ``(e, s + m)``, unless its window ended an episode (then it is the final observation,
which no row holds) or that row is not written yet (the newest transitions, "the frontier").
Both kinds keep their next observation in the side store; a frontier one is pointed at its
row, and its side slot freed, once that row is written. A row is overwritten only after every
row pointing to it (pointers go forward in write order), so pointers never go stale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rl_lightning.errors import ConfigError


class CompactObservations:
    """Next-observation pointers of a replay buffer's rows plus the side store.

    Args:
        capacity: rows of the replay buffer.
        num_envs: environments whose steps each written block holds (env-major).
    """

    def __init__(self, capacity: int, num_envs: int) -> None:
        self.capacity = capacity
        self.num_envs = num_envs
        #: row holding each row's next observation (valid where ``next_slot < 0``)
        self.next_index = torch.zeros(capacity, dtype=torch.int64)
        #: side-store slot of each row's next observation, ``-1`` when ``next_index`` holds it
        self.next_slot = torch.full((capacity,), -1, dtype=torch.int64)
        self.side: torch.Tensor | None = None  # [slots, *observation shape]
        self._free: list[int] = []
        #: steps per environment written so far (the step index of the next block's first step)
        self.steps_written = 0
        #: transitions whose next row is not written yet: rows, envs, step of the next row
        self.frontier = {key: torch.zeros(0, dtype=torch.int64) for key in ("row", "env", "step")}

    # --- writing -------------------------------------------------------------------------
    def _slots(self, obs: torch.Tensor) -> torch.Tensor:
        """Side-store slots holding ``obs`` (grown by a quarter when full)."""
        count = obs.shape[0]
        if self.side is None:
            self.side = torch.empty((count, *obs.shape[1:]), dtype=obs.dtype)
            self._free = list(range(self.side.shape[0]))
        if len(self._free) < count:
            old = self.side.shape[0]
            grown = max(old + old // 4, old + count)  # a quarter more: little allocated and unused
            self.side = torch.cat([self.side, torch.empty((grown - old, *obs.shape[1:]), dtype=obs.dtype)])
            self._free.extend(range(old, grown))
        slots = torch.tensor(self._free[-count:] if count else [], dtype=torch.int64)
        del self._free[len(self._free) - count:]
        self.side[slots] = obs
        return slots

    def _release(self, rows: torch.Tensor) -> None:
        slots = self.next_slot[rows]
        self._free.extend(slots[slots >= 0].tolist())
        self.next_slot[rows] = -1

    def write(self, index: torch.Tensor, next_obs: torch.Tensor, steps: torch.Tensor, ends: torch.Tensor) -> None:
        """Record the block just written at ring positions ``index``.

        Args:
            index: the rows the writer used, the block ``[envs, length]`` flattened env-major.
            next_obs: each transition's next observation.
            steps: steps each transition's window took (``m``).
            ends: whether the window ended an episode (its next observation is a final one).
        """
        envs = self.num_envs
        length = index.shape[0] // envs
        self._release(index)  # rows overwritten: their side slots are free
        keep = ~torch.isin(self.frontier["row"], index)
        self.frontier = {key: value[keep] for key, value in self.frontier.items()}
        s0 = self.steps_written
        self.steps_written += length
        # frontier of earlier blocks whose next row is in this block
        ready = self.frontier["step"] < self.steps_written
        if ready.any():
            rows, env, step = (self.frontier[key][ready] for key in ("row", "env", "step"))
            self._release(rows)
            self.next_index[rows] = index[env * length + (step - s0)]
            self.frontier = {key: value[~ready] for key, value in self.frontier.items()}
        env = torch.arange(envs).repeat_interleave(length)
        t = torch.arange(length).repeat(envs)
        inside = ~ends & (t + steps < length)
        self.next_index[index[inside]] = index[inside.nonzero().squeeze(-1) + steps[inside]]
        side = ~inside
        if side.any():
            self.next_slot[index[side]] = self._slots(next_obs[side])
            later = ~ends & side
            self.frontier = {
                "row": torch.cat([self.frontier["row"], index[later]]),
                "env": torch.cat([self.frontier["env"], env[later]]),
                "step": torch.cat([self.frontier["step"], s0 + t[later] + steps[later]]),
            }

    def cut(self) -> None:
        """The stream restarts (a resume that resets the environments): the frontier's next
        observations stay in the side store for good."""
        self.frontier = {key: value[:0] for key, value in self.frontier.items()}

    # --- reading -------------------------------------------------------------------------
    def next_observation(self, index: torch.Tensor, observation: Any) -> torch.Tensor:
        """Next observations of rows ``index`` (any shape); ``observation(rows)`` reads the
        stored observations of flat ``rows``."""
        flat = index.reshape(-1)
        slot = self.next_slot[flat]
        out = observation(self.next_index[flat])
        in_side = slot >= 0
        if in_side.any():
            out = out.clone() if not out.is_contiguous() else out
            out[in_side] = self.side[slot[in_side]]
        return out.reshape(*index.shape, *out.shape[1:])

    def extra_bytes_per_row(self, length: int) -> float:
        """Pointers plus the side store (as allocated), averaged over ``length`` rows."""
        side = 0.0
        if self.side is not None and length:
            side = self.side.numel() * self.side.element_size() / length
        return 16.0 + side

    # --- state ---------------------------------------------------------------------------
    def state_dict(self, length: int) -> dict[str, Any]:
        """Tensors only: pointers of the ``length`` stored rows, the side store's live slots
        (renumbered), the frontier and the step counter."""
        slot = self.next_slot[:length].clone()
        live = slot[slot >= 0]
        renumber = torch.full((int(live.max()) + 1 if live.numel() else 0,), -1, dtype=torch.int64)
        renumber[live] = torch.arange(live.numel())
        slot[slot >= 0] = renumber[live]
        side = self.side[live].clone() if self.side is not None and live.numel() else torch.zeros(0)
        return {"next_index": self.next_index[:length].clone(), "next_slot": slot, "side": side,
                "frontier": {key: value.clone() for key, value in self.frontier.items()},
                "steps_written": self.steps_written}

    def load_state_dict(self, state: Any, length: int, source: str) -> None:
        """Restore :meth:`state_dict` after checking types and ranges."""
        def bad(what: str) -> ConfigError:
            return ConfigError(f"{source}: the compact replay state {what}.")

        if not isinstance(state, dict):
            raise bad("is not a dict")
        for key in ("next_index", "next_slot"):
            value = state.get(key)
            if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or tuple(value.shape) != (length,):
                raise bad(f"has no int64 {key!r} of {length} rows")
        side = state.get("side")
        if not isinstance(side, torch.Tensor):
            raise bad("has no tensor 'side'")
        index, slot = state["next_index"], state["next_slot"]
        if ((index < 0) | (index >= length)).any() or ((slot < -1) | (slot >= side.shape[0])).any():
            raise bad("has pointers outside the stored rows or the side store")
        frontier = state.get("frontier")
        if not isinstance(frontier, dict) or set(frontier) != {"row", "env", "step"} or not all(
            isinstance(v, torch.Tensor) and v.dtype == torch.int64 and v.dim() == 1 for v in frontier.values()
        ) or len({v.shape[0] for v in frontier.values()}) != 1:
            raise bad("has a malformed 'frontier'")
        steps = state.get("steps_written")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise bad("has no integer 'steps_written'")
        if frontier["row"].numel() and (
            ((frontier["row"] < 0) | (frontier["row"] >= length)).any()
            or ((frontier["env"] < 0) | (frontier["env"] >= self.num_envs)).any()
        ):
            raise bad("has frontier rows or environments out of range")
        self.next_index[:length] = index
        self.next_slot[:length] = slot
        self.next_slot[length:] = -1
        count = int(side.shape[0])
        self.side = side.clone() if count else None
        self._free = []
        self.frontier = {key: value.clone() for key, value in frontier.items()}
        self.steps_written = steps


def bytes_per_row(sample: dict[str, torch.Tensor]) -> int:
    """Bytes one stored row of ``sample`` (tensors with a leading row dimension) takes."""
    return int(sum(np.prod(v.shape[1:], dtype=np.int64) * v.element_size() for v in sample.values()))
