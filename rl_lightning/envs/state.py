"""Environment state as plain values, so a checkpoint can continue the very same episodes.

Works for environments whose state lives in plain attributes (numbers, strings, NumPy
arrays, NumPy random generators) of the environment and its wrappers, which covers
Gymnasium's classic-control environments and the TimeLimit/OrderEnforcing wrappers.
Environments holding state in foreign objects (Box2D worlds, MuJoCo data) are restored only
in those plain attributes: their runs resume from a fresh, seeded reset instead
(:func:`capture` reports ``exact=False`` for them).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

_PLAIN = (bool, int, float, str, type(None))
_SKIP = {"env", "_saved_kwargs", "_action_space", "_observation_space", "_metadata", "_cached_spec", "spec",
         "action_space", "observation_space", "render_mode", "metadata", "screen", "clock", "_previous_data"}


def _layers(env: gym.Env) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def _encode(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, _PLAIN):
        return ("plain", value)
    if isinstance(value, np.generic):
        return ("plain", value.item())
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return ("array", torch.from_numpy(value.copy()))
    if isinstance(value, np.random.Generator):
        return ("generator", value.bit_generator.state)
    return None


def capture(env: gym.Env) -> dict[str, Any]:
    """Plain-valued state of ``env`` and its wrappers (checkpoint-safe: tensors and plain types).

    ``exact`` is False when some attribute could not be represented (its value is not saved).
    """
    layers, exact = [], True
    for layer in _layers(env):
        saved = {}
        for name, value in vars(layer).items():
            if name in _SKIP:
                continue
            encoded = _encode(value)
            if encoded is None:
                exact = False
            else:
                saved[name] = encoded
        layers.append(saved)
    return {"layers": layers, "exact": exact}


def restore(env: gym.Env, state: dict[str, Any]) -> None:
    """Inverse of :func:`capture` for an environment built the same way."""
    layers = _layers(env)
    if len(layers) != len(state["layers"]):
        raise ValueError("environment wrappers differ from the checkpoint's; cannot restore its state")
    for layer, saved in zip(layers, state["layers"]):
        for name, (kind, value) in saved.items():
            if kind == "generator":
                generator = getattr(layer, name, None)
                if generator is None:  # not reset yet: make one of the saved kind
                    generator = np.random.Generator(getattr(np.random, value["bit_generator"])())
                    setattr(layer, name, generator)
                generator.bit_generator.state = value
            elif kind == "array":
                setattr(layer, name, value.numpy().copy())
            else:
                setattr(layer, name, value)


def capture_vector(env: gym.vector.SyncVectorEnv) -> dict[str, Any]:
    """State of every sub-environment of a sync vector env."""
    states = [capture(sub) for sub in env.envs]
    return {"envs": states, "exact": all(s["exact"] for s in states)}


def restore_vector(env: gym.vector.SyncVectorEnv, state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_vector`."""
    if len(env.envs) != len(state["envs"]):
        raise ValueError(f"checkpoint has {len(state['envs'])} environments, this run {len(env.envs)}")
    for sub, sub_state in zip(env.envs, state["envs"]):
        restore(sub, sub_state)
