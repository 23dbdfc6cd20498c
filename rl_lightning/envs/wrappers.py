"""Gymnasium wrappers chosen in the config: ``data.wrappers`` (per environment) and
``data.vector_wrappers`` (around the vector environment), each item
``{class_path: <import path>, init_args: {...}}``, optionally with ``training_only: true``: the
wrapper then wraps the training environments only, at its place in the list, and evaluation,
``validate``/``test``, video and ``play`` environments leave it out (e.g. reward clipping or
episodic life on Atari, so evaluations play whole games with the real score).

The config keeps them as plain mappings (so ``config.yaml``, ``--print_config`` and the
checkpoint's hyperparameters hold class paths and values, never objects); this module checks
them when the data module starts, naming ``data.wrappers[i]`` in every error, and applies them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rl_lightning.errors import ConfigError

#: Wrappers that observe the environment through ``render()``: the environment is then made
#: with ``render_mode="rgb_array"``.
RENDERING_WRAPPERS: tuple[type, ...] = (gym.wrappers.AddRenderObservation, gym.wrappers.RenderCollection)


@dataclass(frozen=True)
class Wrapper:
    """One resolved wrapper: its class and keyword arguments (picklable, so asynchronous
    environments in subprocesses build the same stack).

    Attributes:
        cls: the wrapper class, called as ``cls(env, **init_args)``.
        init_args: keyword arguments after the environment.
        option: where the config gives it, e.g. ``data.wrappers[1]``.
        training_only: whether it wraps the training environments only (``training_only: true``
            in the item); the other environments of the run leave it out.
    """

    cls: type
    init_args: dict[str, Any] = field(default_factory=dict)
    option: str = "data.wrappers[0]"
    training_only: bool = False

    def apply(self, env: Any) -> Any:
        """``env`` wrapped; a failure is a :class:`ConfigError` naming the option."""
        try:
            return self.cls(env, **self.init_args)
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:300]
            if isinstance(err, (gym.error.DependencyNotInstalled, ImportError)) and "cv2" in str(err):
                first += " (or: pip install 'rl_lightning[pixels]')"
            from rl_lightning.envs.suites import render_hint

            first = render_hint(err) or first  # a wrapper that renders MuJoCo without OpenGL
            raise ConfigError(
                f"{self.option} ({self.cls.__module__}.{self.cls.__qualname__}) cannot wrap "
                f"{_space_text(env)}: {type(err).__name__}: {first}"
            ) from err

    @property
    def needs_rendering(self) -> bool:
        """Whether the wrapper reads ``render()`` (the environment needs ``rgb_array``)."""
        return issubclass(self.cls, RENDERING_WRAPPERS) or bool(getattr(self.cls, "needs_rgb_array", False))


def _space_text(env: Any) -> str:
    space = getattr(env, "single_observation_space", None) or getattr(env, "observation_space", None)
    return f"observations {space}"


def _import(path: str, option: str, base: type) -> type:
    """The class at ``path`` (``package.module.Class``), a subclass of ``base``."""
    module_name, _, name = path.rpartition(".")
    where = gym.wrappers.vector if base is gym.vector.VectorWrapper else gym.wrappers
    known = [n for n in dir(where) if isinstance(getattr(where, n), type)]
    if not module_name:
        hint = f" Did you mean {where.__name__}.{path}?" if path in known else ""
        raise ConfigError(f"{option}: class_path {path!r} must be a full import path such as "
                          f"'{where.__name__}.ResizeObservation'.{hint}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"{option}: class_path {path!r}: cannot import module {module_name!r} ({err}).") from err
    cls = getattr(module, name, None)
    if cls is None:
        names = [n for n in dir(module) if isinstance(getattr(module, n), type)]
        matches = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f" Close matches: {', '.join(f'{module_name}.{m}' for m in matches)}." if matches else ""
        raise ConfigError(f"{option}: class_path {path!r}: module {module_name!r} has no {name!r}.{hint}")
    if not isinstance(cls, type) or not issubclass(cls, base):
        other = "data.vector_wrappers" if base is gym.Wrapper else "data.wrappers"
        moved = (f" It wraps {'vector environments' if base is gym.Wrapper else 'single environments'}: "
                 f"give it under {other}.") if isinstance(cls, type) and issubclass(
                     cls, gym.vector.VectorWrapper if base is gym.Wrapper else gym.Wrapper) else ""
        raise ConfigError(f"{option}: class_path {path!r} is not a subclass of "
                          f"{base.__module__}.{base.__qualname__}.{moved}")
    return cls


def _convert(value: Any, annotation: Any) -> Any:
    """YAML values as the wrapper's annotation asks: lists as tuples (``shape: [84, 84]``) or
    arrays, import paths of callables (``func: mypkg.scale``) as the callables."""
    text = str(annotation)
    if isinstance(value, list) and "tuple" in text:
        return tuple(_convert(v, "") for v in value)
    if isinstance(value, list) and "ndarray" in text:
        return np.asarray(value, dtype=np.float32)
    if isinstance(value, str) and "Callable" in text and "." in value:
        module_name, _, name = value.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            return value
    return value


def resolve_wrappers(items: Sequence[Any] | None, option: str = "data.wrappers") -> list[Wrapper]:
    """Check the configured wrappers and resolve their classes; errors name ``option[i]``.

    Args:
        items: mappings ``{class_path: str, init_args: {...}}`` in the order they wrap.
        option: the config option that gives them (``data.wrappers`` or ``data.vector_wrappers``).
    """
    if items is None:
        return []
    if isinstance(items, (str, Mapping)) or not isinstance(items, Sequence):
        raise ConfigError(f"{option} must be a list of {{class_path, init_args}} items, got {items!r}.")
    base = gym.vector.VectorWrapper if option.endswith("vector_wrappers") else gym.Wrapper
    resolved = []
    for i, item in enumerate(items):
        where = f"{option}[{i}]"
        if isinstance(item, Wrapper):
            resolved.append(Wrapper(item.cls, dict(item.init_args), where, item.training_only))
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("class_path"), str):
            raise ConfigError(f"{where} must be a mapping with a class_path (and optional init_args, "
                              f"training_only), got {item!r}.")
        extra = set(item) - {"class_path", "init_args", "training_only"}
        if extra:
            raise ConfigError(f"{where}: unknown keys {sorted(extra)}; an item has class_path, init_args and "
                              "training_only only.")
        training_only = item.get("training_only", False)
        if not isinstance(training_only, bool):
            raise ConfigError(f"{where}.training_only must be true or false, got {training_only!r}.")
        cls = _import(item["class_path"], where, base)
        init_args = item.get("init_args") or {}
        if not isinstance(init_args, Mapping):
            raise ConfigError(f"{where}.init_args must be a mapping, got {init_args!r}.")
        params = list(inspect.signature(cls).parameters.values())[1:]  # the first takes the environment
        named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
        unknown = [k for k in init_args if k not in named and not takes_any]
        if unknown:
            raise ConfigError(f"{where}: {item['class_path']} has no init_args {unknown}; "
                              f"valid: {', '.join(named) or 'none'}.")
        missing = [n for n, p in named.items() if p.default is p.empty and n not in init_args]
        if missing:
            raise ConfigError(f"{where}: {item['class_path']} needs init_args {missing}.")
        args = {k: _convert(v, named[k].annotation if k in named else "") for k, v in init_args.items()}
        resolved.append(Wrapper(cls, args, where, training_only))
    return resolved


def for_environments(wrappers: Sequence[Wrapper], training: bool) -> list[Wrapper]:
    """The wrappers of training environments (all of them) or of the other environments
    (evaluation, video, ``play``: those not ``training_only``), in order."""
    return [w for w in wrappers if training or not w.training_only]


def plain_items(items: Sequence[Any] | None) -> list[Any]:
    """Configured items as a checkpoint compares them: ``training_only: false`` is the default,
    the same as leaving it out."""
    return [{k: v for k, v in item.items() if not (k == "training_only" and v is False)}
            if isinstance(item, Mapping) else item for item in items or []]
