"""Environment state as plain values, so a checkpoint can continue the very same episodes.

Works for environments whose state lives in plain attributes (numbers, strings, tuples, NumPy
arrays, NumPy random generators, deques of arrays) of the environment and its wrappers, which
covers Gymnasium's classic-control environments, the TimeLimit/OrderEnforcing wrappers and
observation wrappers such as FrameStackObservation (its deque of frames), ResizeObservation and
GrayscaleObservation. Functions and classes held by wrappers (``TransformObservation``'s
``func``) are code rebuilt from the config, not state: they are skipped.
Atari environments (``ale_py``) are captured whole: the emulator's state with its random
numbers (sticky actions) as serialized by ``ALEInterface.cloneState``, and the frame buffers of
``AtariPreprocessing``.
MuJoCo environments (gymnasium's ``MujocoEnv``) are captured through ``mj_getState`` (the
integration state: time, positions, velocities, actuators, controls, warm start).
dm_control environments (through shimmy) are captured the same way, with their step counters and
the task's random state. Environments holding state in other foreign objects (Box2D worlds) are restored only
in those plain attributes: their runs resume from a fresh, seeded reset instead
(:func:`capture` reports ``exact=False`` for them). So do environments stepped in subprocesses
(``data.vectorization: async``): their state is out of reach (:func:`capture_vector`).
"""

from __future__ import annotations

import inspect
from collections import deque
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch

_PLAIN = (bool, int, float, str, type(None))
_SKIP = {"env", "_saved_kwargs", "_action_space", "_observation_space", "_metadata", "_cached_spec", "spec",
         "action_space", "observation_space", "render_mode", "metadata", "screen", "clock", "surf", "_previous_data",
         "_single_observation_space", "_single_action_space",
         # ale_py's AtariEnv: constructor arguments and the game's action set, rebuilt from the config
         "_ezpickle_args", "_ezpickle_kwargs", "_action_set",
         # gymnasium's MujocoEnv: the compiled model, its renderer and observation layout, rebuilt from the config
         "model", "mujoco_renderer", "observation_structure",
         # shimmy's dm_control adapter: the environment kind and render options, from the config
         "env_type", "render_kwargs"}


def _layers(env: gym.Env) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


#: Marks code (functions, classes) held by a layer: rebuilt from the config, not state.
_CODE = object()


def _encode(value: Any) -> tuple[str, Any] | None | object:
    if isinstance(value, _PLAIN):
        return ("plain", value)
    if isinstance(value, np.generic):
        return ("plain", value.item())
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return ("array", torch.from_numpy(value.copy()))
    if isinstance(value, np.random.Generator):
        return ("generator", value.bit_generator.state)
    if isinstance(value, tuple) and all(isinstance(v, (*_PLAIN, np.generic)) for v in value):
        return ("tuple", [v.item() if isinstance(v, np.generic) else v for v in value])
    if type(value).__name__ == "ALEInterface":  # an Atari emulator: its serialized state, random numbers included
        state = value.cloneState(include_rng=True).serialize()
        return ("ale", torch.frombuffer(bytearray(state), dtype=torch.uint8).clone())
    if type(value).__name__ == "MjData":  # MuJoCo physics: everything integration needs (warm start included)
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(value.model, spec))
        mujoco.mj_getState(value.model, value, state, spec)
        return ("mujoco", torch.from_numpy(state))
    if type(value).__name__ == "Environment" and hasattr(value, "physics") and hasattr(value, "task"):
        # a dm_control environment: its physics (as MuJoCo's integration state), step counters and
        # the task's random state
        physics = _encode(value.physics.data.ptr)
        task_random = getattr(value.task, "_random", None)
        if physics is None or not isinstance(task_random, np.random.RandomState):
            return None
        name, key, pos, has_gauss, cached = task_random.get_state()
        return ("dm_control", {"physics": physics[1], "step_count": int(value._step_count),
                               "reset_next_step": bool(value._reset_next_step),
                               "random": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                                          "has_gauss": int(has_gauss), "cached": float(cached)}})
    if isinstance(value, list) and all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in value):
        return ("list", [torch.from_numpy(v.copy()) for v in value])
    if isinstance(value, deque):
        items = [_encode(v) for v in value]
        if all(isinstance(i, tuple) and i[0] in ("plain", "array") for i in items):
            return ("deque", {"items": items, "maxlen": value.maxlen})
        return None
    if inspect.isroutine(value) or inspect.isclass(value) or isinstance(value, partial):
        return _CODE
    return None


def _decode(kind: str, value: Any) -> Any:
    if kind == "array":
        return value.numpy().copy()
    if kind == "tuple":
        return tuple(value)
    if kind == "list":
        return [v.numpy().copy() for v in value]
    if kind == "deque":
        return deque((_decode(*item) for item in value["items"]), maxlen=value["maxlen"])
    return value


def _is_template(layer: Any, name: str, value: Any) -> bool:
    """The single-environment wrapper that gymnasium's ``Vectorize*`` vector wrappers keep to map
    values (built from the config over a placeholder environment, it holds no episode state)."""
    return isinstance(layer, gym.vector.VectorWrapper) and name == "wrapper" and isinstance(value, gym.Wrapper)


def _capture_layers(layers: list[Any]) -> tuple[list[dict[str, Any]], bool]:
    saved_layers, exact = [], True
    for layer in layers:
        saved = {}
        for name, value in vars(layer).items():
            if name in _SKIP or _is_template(layer, name, value):
                continue
            encoded = _encode(value)
            if encoded is None:
                exact = False
            elif encoded is not _CODE:
                saved[name] = encoded
        saved_layers.append(saved)
    return saved_layers, exact


def _restore_layers(layers: list[Any], saved_layers: list[dict[str, Any]]) -> None:
    if len(layers) != len(saved_layers):
        raise ValueError("environment wrappers differ from the checkpoint's; cannot restore its state")
    for layer, saved in zip(layers, saved_layers):
        for name, (kind, value) in saved.items():
            if kind == "ale":
                import ale_py

                getattr(layer, name).restoreState(ale_py.ALEState(value.numpy().tobytes()))
            elif kind == "mujoco":
                _set_mujoco(getattr(layer, name), value)
            elif kind == "dm_control":
                env = getattr(layer, name)
                _set_mujoco(env.physics.data.ptr, value["physics"])
                env.physics.forward()  # its step starts with mj_step2: the derived quantities must be current
                env._step_count, env._reset_next_step = value["step_count"], value["reset_next_step"]
                r = value["random"]
                env.task._random.set_state((r["name"], r["key"].numpy().astype(np.uint32), r["pos"], r["has_gauss"],
                                            r["cached"]))
            elif kind == "generator":
                generator = getattr(layer, name, None)
                if generator is None:  # not reset yet: make one of the saved kind
                    generator = np.random.Generator(getattr(np.random, value["bit_generator"])())
                    setattr(layer, name, generator)
                generator.bit_generator.state = value
            else:
                setattr(layer, name, _decode(kind, value))


def _set_mujoco(data: Any, state: torch.Tensor) -> None:
    import mujoco

    mujoco.mj_setState(data.model, data, state.numpy().copy(), mujoco.mjtState.mjSTATE_INTEGRATION)


def capture(env: gym.Env) -> dict[str, Any]:
    """Plain-valued state of ``env`` and its wrappers (checkpoint-safe: tensors and plain types).

    ``exact`` is False when some attribute could not be represented (its value is not saved).
    """
    layers, exact = _capture_layers(_layers(env))
    return {"layers": layers, "exact": exact}


def restore(env: gym.Env, state: dict[str, Any]) -> None:
    """Inverse of :func:`capture` for an environment built the same way."""
    _restore_layers(_layers(env), state["layers"])


def capture_vector(env: gym.vector.VectorEnv) -> dict[str, Any]:
    """State of every sub-environment of a vector env (inside any vector wrappers). The
    sub-environments of an ``AsyncVectorEnv`` live in other processes: ``exact`` is False and
    ``reason`` says why."""
    base = env.unwrapped
    if not isinstance(base, gym.vector.SyncVectorEnv):
        return {"envs": [], "exact": False,
                "reason": f"the environments run in subprocesses ({type(base).__name__}), out of reach of a checkpoint"}
    states = [capture(sub) for sub in base.envs]
    wrappers, wrappers_exact = _capture_layers(_layers(env)[:-1])  # vector wrappers, outermost first
    exact = wrappers_exact and all(s["exact"] for s in states)
    state = {"envs": states, "wrappers": wrappers, "exact": exact}
    if not exact:
        state["reason"] = "some environment state is not plain values (e.g. a physics engine's objects)"
    return state


def restore_vector(env: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_vector`."""
    if "wrappers" in state:
        _restore_layers(_layers(env)[:-1], state["wrappers"])
    env = env.unwrapped
    if not isinstance(env, gym.vector.SyncVectorEnv):
        raise TypeError(f"cannot restore the state of environments in subprocesses ({type(env).__name__})")
    if len(env.envs) != len(state["envs"]):
        raise ValueError(f"checkpoint has {len(state['envs'])} environments, this run {len(env.envs)}")
    for sub, sub_state in zip(env.envs, state["envs"]):
        restore(sub, sub_state)
