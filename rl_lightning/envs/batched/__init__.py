"""Batched torch versions of gymnasium's classic-control tasks (``data.backend: torch``)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from rl_lightning.envs.batched.acrobot import Acrobot
from rl_lightning.envs.batched.base import TorchVectorEnv
from rl_lightning.envs.batched.cartpole import CartPole
from rl_lightning.envs.batched.mountain_car import MountainCar, MountainCarContinuous
from rl_lightning.envs.batched.pendulum import Pendulum
from rl_lightning.envs.gym import EnvError

#: gymnasium id -> batched torch class of the same task
TORCH_ENVS: dict[str, type[TorchVectorEnv]] = {
    cls.env_id: cls for cls in (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum)
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_torch_env(env_id: str, num_envs: int, device: str | torch.device = "cpu",
                   env_kwargs: dict[str, Any] | None = None) -> TorchVectorEnv:
    """A batched torch environment of gymnasium's ``env_id`` task.

    ``env_kwargs`` take the task's own options (as ``gymnasium.make`` does, e.g.
    ``max_episode_steps``, ``sutton_barto_reward`` for CartPole, ``g`` for Pendulum) and
    ``dtype`` (``float32``, the default, or ``float64``). Unknown ids and keys raise an
    :class:`~rl_lightning.envs.EnvError` naming them."""
    check_torch_env(env_id, env_kwargs)
    kwargs = dict(env_kwargs or {})
    if "dtype" in kwargs:
        kwargs["dtype"] = _DTYPES[str(kwargs["dtype"]).removeprefix("torch.")]
    return TORCH_ENVS[env_id](num_envs=num_envs, device=device, **kwargs)


def torch_env_options(env_id: str) -> list[str]:
    """The ``env_kwargs`` keys the torch version of ``env_id`` takes."""
    names = inspect.signature(TORCH_ENVS[env_id]).parameters
    return sorted(set(names) - {"num_envs", "device"})


def check_torch_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
    """Raise an :class:`EnvError` naming ``data.env_id`` or the ``data.env_kwargs`` key at fault."""
    if env_id not in TORCH_ENVS:
        raise EnvError(
            f"data.env_id {env_id!r} has no torch version (data.backend torch); torch versions exist for "
            f"{', '.join(sorted(TORCH_ENVS))}. Use data.backend gymnasium for other environments."
        )
    valid = torch_env_options(env_id)
    unknown = sorted(set(env_kwargs or {}) - set(valid))
    if unknown:
        raise EnvError(f"data.env_kwargs {unknown}: the torch version of {env_id!r} does not take them; "
                       f"valid keys: {', '.join(valid)}.")
    dtype = (env_kwargs or {}).get("dtype")
    if dtype is not None and str(dtype).removeprefix("torch.") not in _DTYPES:
        raise EnvError(f"data.env_kwargs.dtype must be float32 or float64, got {dtype!r}.")


__all__ = ["TORCH_ENVS", "Acrobot", "CartPole", "MountainCar", "MountainCarContinuous", "Pendulum", "TorchVectorEnv",
           "check_torch_env", "make_torch_env", "torch_env_options"]
