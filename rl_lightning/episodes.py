"""Playing a policy for whole episodes: evaluation returns and recorded frames. Plain functions
over any module with ``act`` (recurrent ones through ``step_policy``), shared by the
``Evaluation`` and ``Video`` callbacks, the ``validate``/``test`` commands and ``play``; this
module imports neither the algorithms nor the callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rl_lightning.envs import observation_tensor
from rl_lightning.errors import ConfigError

if TYPE_CHECKING:
    import gymnasium as gym

    from rl_lightning.algorithms.base import RLModule


@dataclass(frozen=True)
class EpisodeSettings:
    """How evaluation episodes are played: ``episodes`` environments, one episode each,
    environment ``i`` reset with ``seed + i`` (``None``: the run's seed + 1,000,000), acting
    deterministically or by sampling. The ``Evaluation`` callback hands its settings to the
    module (``RLModule.evaluation_settings``) so that ``validate``/``test`` use them too."""

    episodes: int = 10
    deterministic: bool = True
    seed: int | None = None

    def seed_for(self, datamodule: Any) -> int:
        """Seed of the first episode for a run whose data module is ``datamodule``."""
        return self.seed if self.seed is not None else datamodule.base_seed + 1_000_000


def play_policy(module: Any, batch_size: int) -> tuple[Any, dict[str, torch.Tensor] | None]:
    """``(step, memory)`` to play ``module`` one step at a time on ``batch_size`` episodes:
    ``step(obs, memory, is_init, deterministic)`` returns ``(act's outputs, memory after)``.
    An ``RLModule`` steps through ``step_policy`` (recurrent policies carry their memory); any
    other object with ``act(obs, deterministic)`` is played as a policy without memory."""
    if hasattr(module, "step_policy") and hasattr(module, "initial_memory"):
        return module.step_policy, module.initial_memory(batch_size)
    return (lambda obs, memory, is_init, deterministic: (module.act(obs, deterministic), None)), None


@torch.no_grad()
def evaluate(module: RLModule, env, episodes: int, seed: int, deterministic: bool = True) -> dict[str, Any]:
    """Run exactly one episode in each of ``episodes`` environments of a vector env.

    Environment ``i`` is reset with ``seed + i``, so the same module and seed give the same
    result. Returns the per-episode ``returns`` and ``lengths`` (NumPy arrays).
    """
    if env.num_envs != episodes:
        raise ConfigError(f"evaluate needs one environment per episode ({episodes}), got {env.num_envs}.")
    was_training = module.training
    module.eval()
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    step, memory = play_policy(module, episodes)  # a recurrent policy carries its memory
    is_init = torch.ones(episodes, dtype=torch.bool, device=module.device)
    try:
        while running.any():
            out, memory = step(observation_tensor(obs, module.device), memory, is_init, deterministic)
            is_init = torch.zeros_like(is_init)
            obs, reward, term, trunc, _ = env.step(out["env_action"].cpu().numpy())
            returns += reward * running
            lengths += running
            running &= ~(term | trunc)
    finally:
        module.train(was_training)
    return {"returns": returns, "lengths": lengths}


def summarize(result: dict[str, Any]) -> dict[str, float]:
    """The ``eval/*`` metrics of an :func:`evaluate` result."""
    returns, lengths = result["returns"], result["lengths"]
    return {
        "eval/return_mean": float(returns.mean()),
        "eval/return_std": float(returns.std()),
        "eval/return_min": float(returns.min()),
        "eval/return_max": float(returns.max()),
        "eval/length_mean": float(lengths.mean()),
    }


@torch.no_grad()
def record_episode(
    module: RLModule, env: gym.Env, seed: int, deterministic: bool = True, max_frames: int = 10_000
) -> tuple[list[np.ndarray], float, int]:
    """Play one episode of a single (not vectorized) environment, e.g. one of
    ``EnvDataModule.make_single_env``; returns its rendered frames (``rgb_array`` mode), return
    and length."""
    was_training = module.training
    module.eval()
    obs, _ = env.reset(seed=seed)
    first = env.render()
    frames, total, length = [first] if first is not None else [], 0.0, 0
    step, memory = play_policy(module, 1)  # a recurrent policy carries its memory
    is_init = torch.ones(1, dtype=torch.bool, device=module.device)
    try:
        for length in range(1, max_frames + 1):
            batch = observation_tensor(np.asarray(obs)[None], module.device)
            out, memory = step(batch, memory, is_init, deterministic)
            is_init = torch.zeros_like(is_init)
            action = out["env_action"][0].cpu().numpy()
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            frame = env.render()
            if frame is not None:  # "human" mode draws a window and returns nothing
                frames.append(frame)
            if term or trunc:
                break
    finally:
        module.train(was_training)
    return frames, total, length


