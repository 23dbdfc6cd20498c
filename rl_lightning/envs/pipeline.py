"""The one environment pipeline: every environment of a run (training, evaluation,
``validate``/``test``, video, ``play``, ``reproduce``) is built here from the data module's
options, so what is evaluated and watched is what was trained.

One environment: ``gymnasium.make(env_id, **env_kwargs)`` (with ``render_mode="rgb_array"``
when a wrapper renders, e.g. ``AddRenderObservation``) -> ``data.wrappers`` in order (those
marked ``training_only: true`` in training environments only) ->
automatic observation handling (``Dict`` of vector parts and ``Discrete`` observations are
flattened by ``gymnasium.wrappers.FlattenObservation``; other spaces are refused).
A vector of them: gymnasium's ``SyncVectorEnv`` (in-process) or ``AsyncVectorEnv``
(one subprocess per environment), both autoresetting on the same step, wrapped in
``data.vector_wrappers`` (``gymnasium.wrappers.vector.*``), inside :class:`CheckedVectorEnv`,
which refuses NaN/Inf observations.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from rl_lightning.envs.gym import EnvError, _make_error, check_env_id
from rl_lightning.envs.suites import check_renderable
from rl_lightning.envs.wrappers import Wrapper, for_environments, resolve_wrappers
from rl_lightning.errors import ConfigError

Vectorization = Literal["sync", "async"]
VECTORIZATIONS = ("sync", "async")
#: Parts of a ``Dict`` observation that flatten into one vector.
_FLAT_PARTS = (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
_flatten_told: set[tuple[str, tuple[str, ...]]] = set()


def _dict_keys(space: gym.spaces.Dict, prefix: str = "") -> list[tuple[str, gym.Space]]:
    """``(key, leaf space)`` of a (nested) Dict space, in the order flattening concatenates them."""
    leaves = []
    for key, sub in space.spaces.items():
        if isinstance(sub, gym.spaces.Dict):
            leaves += _dict_keys(sub, f"{prefix}{key}.")
        else:
            leaves.append((f"{prefix}{key}", sub))
    return leaves


def adapt_observations(env: gym.Env, env_id: str) -> gym.Env:
    """``env`` with an observation space the networks take (a ``Box``).

    A ``Dict`` of vector ``Box``, ``Discrete``, ``MultiDiscrete`` and ``MultiBinary`` parts and a
    ``Discrete`` observation (one-hot) are flattened with ``gymnasium.wrappers.FlattenObservation``
    (an info line names the keys in order, once per process); a ``Dict`` holding images and other
    spaces (``Tuple``, ``Text``, ``Graph``, ``Sequence``) raise an :class:`EnvError`.
    """
    space = env.observation_space
    if isinstance(space, gym.spaces.Box):
        return env
    if isinstance(space, gym.spaces.Dict):
        leaves = _dict_keys(space)
        images = [k for k, s in leaves if isinstance(s, gym.spaces.Box) and len(s.shape) >= 2]
        other = [f"{k} ({type(s).__name__})" for k, s in leaves
                 if not isinstance(s, (gym.spaces.Box, *_FLAT_PARTS))]
        if images or other:
            what = (f"parts with more than one dimension (images: {', '.join(images)})" if images
                    else f"parts that do not flatten to a vector: {', '.join(other)}")
            raise EnvError(
                f"env_id {env_id!r}: Dict observation space {space} has {what}; Dict observations holding "
                "images are not supported yet (multi-input encoders). Keep one part (data.wrappers: "
                "gymnasium.wrappers.FilterObservation) or flatten everything explicitly "
                "(gymnasium.wrappers.FlattenObservation)."
            )
        keys = tuple(k for k, _ in leaves)
        if (env_id, keys) not in _flatten_told:
            _flatten_told.add((env_id, keys))
            rank_zero_info(f"{env_id}: Dict observations flattened into one vector, keys in order: {', '.join(keys)}")
        return _float32(gym.wrappers.FlattenObservation(env))
    if isinstance(space, gym.spaces.Discrete):
        return _float32(gym.wrappers.FlattenObservation(env))  # one-hot vector of length n
    raise EnvError(
        f"env_id {env_id!r}: observation space {space} ({type(space).__name__}) is not supported; rl_lightning "
        "takes Box observations, Dict observations of vector parts and Discrete observations (one-hot). "
        "Add a wrapper under data.wrappers that turns it into a Box."
    )


def _float32(env: gym.Env) -> gym.Env:
    """Flattened observations as float32 (one-hot parts flatten to integers, mixed parts to float64)."""
    if env.observation_space.dtype == np.float32:
        return env
    return gym.wrappers.DtypeObservation(env, np.float32)


def needs_rendering(wrappers: Sequence[Wrapper]) -> bool:
    """Whether a wrapper reads ``render()``, so the environment is made with ``rgb_array``."""
    return any(w.needs_rendering for w in wrappers)


def make_env(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Any] | None = None,
    render_mode: str | None = None,
    training: bool = False,
) -> gym.Env:
    """One environment of the pipeline: made, wrapped in order, observations adapted.

    Args:
        env_id: a Gymnasium id, or ``"module:Name-v0"`` to import a registering module first.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        wrappers: ``data.wrappers`` items (``{class_path, init_args}``) or resolved :class:`Wrapper`\\ s.
        render_mode: ``"rgb_array"`` for video, ``"human"`` for a window, ``None`` otherwise;
            ``rgb_array`` whatever is asked when a wrapper renders (a window then shows the
            frames through ``gymnasium.wrappers.HumanRendering``).
        training: a training environment (every wrapper), or another one (evaluation, video,
            ``play``: wrappers marked ``training_only`` are left out).
    """
    # registers ALE/..., dm_control/... and module:Name ids in this process too (spawned workers, video, play)
    check_env_id(env_id)
    resolved = for_environments(resolve_wrappers(wrappers), training)
    rendering = needs_rendering(resolved)
    mode = "rgb_array" if rendering else render_mode
    # render_mode only when one is wanted: an environment whose constructor takes none still works
    render = {} if mode is None else {"render_mode": mode}
    if mode is not None:
        check_renderable(env_id)  # MuJoCo without a display nor a headless backend: a clear error
    try:
        env = gym.make(env_id, **render, **(env_kwargs or {}))
    except Exception as err:
        raise _make_error(env_id, dict(env_kwargs or {}), err) from err
    for wrapper in resolved:
        env = wrapper.apply(env)
    env = adapt_observations(env, env_id)
    if rendering and render_mode == "human":
        env = gym.wrappers.HumanRendering(env)
    return env


def check_env(env_id: str, env_kwargs: dict[str, Any] | None = None, wrappers: Sequence[Any] | None = None) -> None:
    """Fail early with a clear :class:`EnvError` (or a :class:`ConfigError` naming
    ``data.wrappers[i]``) unless ``env_id`` can be made with ``env_kwargs`` and wrapped with
    ``wrappers``: an unknown id, a missing optional package (the message names the extra to
    install), keyword arguments the environment does not take, a wrapper that does not fit, an
    observation space that is not supported, ``training_only`` wrappers that change the spaces
    (the networks trained on one see the other in evaluation). Makes one environment, two with
    ``training_only`` wrappers."""
    check_env_id(env_id)
    resolved = resolve_wrappers(wrappers)
    env = make_env(env_id, env_kwargs, resolved, training=True)
    try:
        if any(w.training_only for w in resolved):
            other = make_env(env_id, env_kwargs, resolved, training=False)
            other.close()
            check_same_spaces(env, other, resolved, "data.wrappers")
    finally:
        env.close()


def check_same_spaces(training: Any, other: Any, wrappers: Sequence[Wrapper], option: str) -> None:
    """A :class:`ConfigError` naming the ``training_only`` items unless training and evaluation
    environments (or vector environments) have the same observation and action spaces."""
    for name in ("observation_space", "action_space"):
        single = f"single_{name}"
        a, b = getattr(training, single, getattr(training, name)), getattr(other, single, getattr(other, name))
        if a != b:
            items = ", ".join(f"{w.option} ({w.cls.__qualname__})" for w in wrappers if w.training_only)
            raise ConfigError(
                f"{option}: the training_only items {items} change the {name.replace('_', ' ')} (training {a}, "
                f"evaluation {b}); a training-only wrapper must keep the spaces (it may change rewards and "
                "episode ends): make it apply to every environment, or move the change to one that does."
            )


class CheckedVectorEnv(gym.vector.VectorWrapper):
    """Refuses observations holding NaN or Inf (the networks would turn them into NaN actions
    and fail far from the cause): :class:`EnvError` names the environment, the call and the
    environment index. A vector wrapper, so it guards sync and async vectorization alike."""

    def __init__(self, env: gym.vector.VectorEnv, env_id: str) -> None:
        super().__init__(env)
        self.env_id = env_id

    def _check(self, obs: np.ndarray, call: str) -> None:
        if isinstance(obs, np.ndarray) and obs.dtype.kind == "f" and not np.isfinite(obs).all():
            bad = np.flatnonzero(~np.isfinite(obs.reshape(obs.shape[0], -1)).all(-1))
            raise EnvError(
                f"env_id {self.env_id!r}: {call}() returned a NaN/Inf observation (environment {int(bad[0])}); "
                "the environment is broken for these settings (check it, its data.env_kwargs, or wrap it to clip "
                "or replace such values)."
            )

    def reset(self, *args: Any, **kwargs: Any):
        """Reset; observations are checked."""
        obs, info = self.env.reset(*args, **kwargs)
        self._check(obs, "reset")
        return obs, info

    def step(self, actions: Any):
        """Step; observations are checked."""
        out = self.env.step(actions)
        self._check(out[0], "step")
        return out


def make_vector_env(
    env_id: str,
    num_envs: int,
    env_kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
    wrappers: Sequence[Any] | None = None,
    vectorization: Vectorization = "sync",
    vector_wrappers: Sequence[Any] | None = None,
    training: bool = False,
) -> CheckedVectorEnv:
    """``num_envs`` pipeline environments (:func:`make_env`) autoresetting on the same step,
    inside a :class:`CheckedVectorEnv` (observations holding NaN/Inf raise an :class:`EnvError`).

    Args:
        env_id: a Gymnasium id, or ``"module:Name-v0"`` to import a registering module first.
        num_envs: number of environment copies.
        env_kwargs: keyword arguments for ``gymnasium.make`` (e.g. ``max_episode_steps``).
        render_mode: ``"rgb_array"`` for video, ``None`` otherwise.
        wrappers: ``data.wrappers`` items, applied to each copy in order.
        vectorization: ``sync`` steps the copies in this process; ``async`` in one subprocess
            each (gymnasium ``AsyncVectorEnv``: worth it when a step is slow, e.g. Box2D or MuJoCo).
        vector_wrappers: ``data.vector_wrappers`` items (``gymnasium.wrappers.vector.*``), applied
            in order around the vector environment, inside the NaN/Inf check.
        training: training environments (every wrapper), or others (evaluation, validate/test:
            items marked ``training_only`` are left out).
    """
    check_env_id(env_id)
    if num_envs < 1:
        raise EnvError(f"num_envs must be >= 1, got {num_envs}.")
    if vectorization not in VECTORIZATIONS:
        raise ConfigError(f"data.vectorization must be one of {', '.join(VECTORIZATIONS)}, got {vectorization!r}.")
    # classes, checked once; picklable for subprocesses
    resolved = for_environments(resolve_wrappers(wrappers), training)
    around = for_environments(resolve_wrappers(vector_wrappers, "data.vector_wrappers"), training)
    make = partial(make_env, env_id, dict(env_kwargs or {}), resolved, render_mode, True)
    same_step = gym.vector.AutoresetMode.SAME_STEP
    try:
        if vectorization == "async":
            # torchrl sets the global start method to "spawn" when imported, which would re-import the
            # whole stack in every worker (seconds each); the workers run only gymnasium code, so on
            # Linux they fork as gymnasium does by default (elsewhere: the platform's default).
            context = "fork" if sys.platform.startswith("linux") else None
            vector = gym.vector.AsyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=same_step,
                                               context=context)
        else:
            vector = gym.vector.SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=same_step)
    except ConfigError:
        raise
    except Exception as err:
        raise _make_error(env_id, dict(env_kwargs or {}), err) from err
    for wrapper in around:
        try:
            vector = wrapper.apply(vector)
        except ConfigError:
            vector.close()
            raise
    return CheckedVectorEnv(vector, env_id)


def observation_tensor(obs: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    """Observations as a tensor: float ones as ``float32``, integer ones (``uint8`` frames) kept,
    as :attr:`EnvSpec.observation_dtype` describes them."""
    array = np.asarray(obs)
    tensor = torch.as_tensor(array, device=device)
    return tensor.float() if tensor.is_floating_point() else tensor
