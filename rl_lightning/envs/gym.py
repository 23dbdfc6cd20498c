"""Gymnasium environment ids, their errors and their spaces (:class:`EnvSpec`).

Environments themselves are built by :mod:`rl_lightning.envs.pipeline`. The data path wraps
one gymnasium ``SyncVectorEnv`` (same-step autoreset) per process by default rather than one
subprocess per environment: on small simulators such as CartPole the per-step framework cost,
not the physics, bounds frames/s (see ``benchmarks/collector_speed.py``).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from rl_lightning.errors import ConfigError

if TYPE_CHECKING:
    import torch


class EnvError(ConfigError):
    """An environment id or option that cannot be used; the message names it."""


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm needs to know of an environment to build its networks.

    Attributes:
        env_id: the Gymnasium id.
        observation_shape: shape of one observation.
        observation_dtype: NumPy dtype name of observations as the networks receive them
            (``float32`` for every float space; integer spaces such as ``uint8`` frames keep theirs).
        discrete: whether actions are integers: in ``[0, n_actions)`` (``Discrete``), or one
            integer per dimension (``MultiDiscrete`` / ``MultiBinary``, see ``action_nvec``).
        n_actions: number of discrete actions; for MultiDiscrete the total over dimensions
            (the number of logits); 0 for continuous actions.
        action_shape: shape of one continuous or MultiDiscrete/MultiBinary action (``()`` for
            ``Discrete``).
        action_low: lower bounds of continuous actions, flattened.
        action_high: upper bounds of continuous actions, flattened.
        action_nvec: choices of each dimension of a MultiDiscrete (or MultiBinary: 2 each)
            action, flattened; ``()`` for other spaces.
    """

    env_id: str
    observation_shape: tuple[int, ...]
    discrete: bool
    n_actions: int = 0
    action_shape: tuple[int, ...] = ()
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    observation_dtype: str = "float32"
    action_nvec: tuple[int, ...] = ()

    @property
    def multi_discrete(self) -> bool:
        """Whether actions are MultiDiscrete or MultiBinary (one integer per dimension)."""
        return bool(self.action_nvec)

    @property
    def observation_dim(self) -> int:
        """Number of values in one observation."""
        return int(np.prod(self.observation_shape))

    @property
    def action_dim(self) -> int:
        """Number of discrete actions, or values in one continuous action."""
        return self.n_actions if self.discrete else int(np.prod(self.action_shape))

    @classmethod
    def from_env(cls, env_id: str, env: gym.Env | gym.vector.VectorEnv) -> EnvSpec:
        """Read the spec from an environment's single (not batched) spaces."""
        obs_space = getattr(env, "single_observation_space", env.observation_space)
        act_space = getattr(env, "single_action_space", env.action_space)
        if not isinstance(obs_space, gym.spaces.Box):
            raise EnvError(
                f"env_id {env_id!r}: observation space {obs_space} is not supported; "
                "rl_lightning needs a Box observation space (wrap the environment to produce one)."
            )
        dtype = "float32" if np.dtype(obs_space.dtype).kind == "f" else np.dtype(obs_space.dtype).name
        if isinstance(act_space, gym.spaces.Discrete):
            return cls(env_id, tuple(obs_space.shape), True, n_actions=int(act_space.n), observation_dtype=dtype)
        if isinstance(act_space, gym.spaces.Box):
            return cls(
                env_id,
                tuple(obs_space.shape),
                False,
                observation_dtype=dtype,
                action_shape=tuple(act_space.shape),
                action_low=tuple(float(x) for x in act_space.low.ravel()),
                action_high=tuple(float(x) for x in act_space.high.ravel()),
            )
        if isinstance(act_space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
            if isinstance(act_space, gym.spaces.MultiBinary):
                nvec = np.full(act_space.shape, 2, dtype=np.int64)
            else:
                nvec = np.asarray(act_space.nvec)
                if np.any(act_space.start != 0):
                    raise EnvError(
                        f"env_id {env_id!r}: MultiDiscrete actions with a nonzero start ({act_space.start}) "
                        "are not supported; wrap the environment to shift them to start at 0."
                    )
            return cls(
                env_id,
                tuple(obs_space.shape),
                True,
                n_actions=int(nvec.sum()),
                action_shape=tuple(act_space.shape),
                observation_dtype=dtype,
                action_nvec=tuple(int(n) for n in nvec.ravel()),
            )
        raise EnvError(
            f"env_id {env_id!r}: action space {act_space} is not supported "
            "(supported: Discrete, Box, MultiDiscrete, MultiBinary; wrap the environment to "
            "produce one of them)."
        )

    def describe(self) -> str:
        """One line for messages, e.g. ``CartPole-v1 (observations (4,), 2 discrete actions)``."""
        if self.multi_discrete:
            actions = f"MultiDiscrete actions {list(self.action_nvec)}"
        elif self.discrete:
            actions = f"{self.n_actions} discrete actions"
        else:
            actions = f"continuous actions {self.action_shape}"
        dtype = "" if self.observation_dtype == "float32" else f" {self.observation_dtype}"
        return f"{self.env_id} (observations {self.observation_shape}{dtype}, {actions})"

    def scale_action(self, action: torch.Tensor) -> torch.Tensor:
        """Continuous actions from [-1, 1] to the environment's bounds."""
        import torch

        low = torch.tensor(self.action_low, dtype=action.dtype, device=action.device).reshape(self.action_shape)
        high = torch.tensor(self.action_high, dtype=action.dtype, device=action.device).reshape(self.action_shape)
        return low + (action.clamp(-1.0, 1.0) + 1.0) * 0.5 * (high - low)

    def random_actions(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` uniformly random actions (``action`` as algorithms store it: integers, or
        values in [-1, 1]; ``env_action`` as the environment takes it)."""
        import torch

        if self.multi_discrete:
            nvec = torch.tensor(self.action_nvec)
            action = (torch.rand(n, len(self.action_nvec)) * nvec).long().minimum(nvec - 1)
            return {"action": action, "env_action": action.reshape(n, *self.action_shape)}
        if self.discrete:
            action = torch.randint(self.n_actions, (n,))
            return {"action": action, "env_action": action}
        action = torch.rand(n, *self.action_shape) * 2.0 - 1.0
        return {"action": action, "env_action": self.scale_action(action)}

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so the spec can live inside a checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvSpec:
        """Inverse of :meth:`to_dict`."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


#: Optional packages behind families of environments: (id prefix or entry-point part, module
#: that registers or runs them, extra of rl_lightning that installs it).
EXTRAS = (
    ("ALE/", "ale_py", "atari"),
    ("dm_control/", "shimmy", "dmc"),
    ("gymnasium.envs.mujoco", "mujoco", "mujoco"),
    ("gymnasium.envs.box2d", "Box2D", "box2d"),
)


def _extra_for(text: str) -> tuple[str, str] | None:
    """``(module, extra)`` of the optional package ``text`` (an id or entry point) needs."""
    return next(((module, extra) for part, module, extra in EXTRAS if part in text), None)


def install_hint(extra: str) -> str:
    """The command that installs an extra of rl_lightning."""
    return f"pip install 'rl_lightning[{extra}]'"


def check_env_id(env_id: str) -> None:
    """Fail early, naming the id and close matches, unless ``env_id`` can be made.

    ``"package.module:EnvName-v0"`` imports ``package.module`` first, which is how a user's
    own environments register themselves with Gymnasium. Atari (``ALE/...``) and DeepMind
    Control (``dm_control/...``) ids import the package that registers them; when it is
    missing, the error names the extra to install.
    """
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise EnvError(f"env_id {env_id!r}: cannot import module {module!r} ({err}).") from err
    else:
        name = env_id
    if name in gym.registry and _extra_for(f"{name} {gym.registry[name].entry_point}") is None:
        return
    from rl_lightning.envs.suites import headless_gl

    headless_gl()  # before MuJoCo or dm_control is imported: they read MUJOCO_GL once
    if name in gym.registry:
        return
    needs = _extra_for(name)
    if needs is not None:
        module, extra = needs
        try:
            gym.register_envs(importlib.import_module(module))
        except ImportError as err:
            raise EnvError(
                f"env_id {env_id!r} needs the {module} package, which is not installed: {install_hint(extra)}."
            ) from err
        if name in gym.registry:
            return
    matches = difflib.get_close_matches(name, list(gym.registry), n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(matches)}." if matches else ""
    raise EnvError(
        f"env_id {env_id!r} is not a registered Gymnasium environment.{hint} "
        "Ids of your own environments work as 'your.module:EnvName-v0' once that module "
        "calls gymnasium.register."
    )


def _valid_kwargs(env_id: str) -> list[str]:
    """Keyword arguments ``gymnasium.make`` accepts for ``env_id`` (the environment's own and
    the wrappers' that ``make`` applies)."""
    import inspect

    names = [n for n in inspect.signature(gym.make).parameters if n not in ("id", "kwargs")]
    try:
        spec = gym.spec(env_id.rpartition(":")[2] if ":" in env_id else env_id)
        creator = gym.envs.registration.load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) \
            else spec.entry_point
        own = [n for n, p in inspect.signature(creator).parameters.items()
               if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except Exception:  # noqa: BLE001 (an entry point without a readable signature: name make's options only)
        own = []
    return sorted(set(own + names) - {"render_mode"})


def _make_error(env_id: str, env_kwargs: dict[str, Any], err: Exception) -> EnvError:
    """A clear error for an environment that failed to be created."""
    if isinstance(err, EnvError):
        return err
    if isinstance(err, (gym.error.DependencyNotInstalled, ImportError)):
        spec = gym.registry.get(env_id.rpartition(":")[2] if ":" in env_id else env_id)
        needs = _extra_for(f"{env_id} {getattr(spec, 'entry_point', '')} {err}")
        hint = f": {install_hint(needs[1])}" if needs else f" ({str(err).strip()})"
        return EnvError(f"env_id {env_id!r} needs a package that is not installed{hint}.")
    from rl_lightning.envs.suites import render_hint

    hint = render_hint(err)  # MuJoCo's import loads the OpenGL backend MUJOCO_GL names
    if hint is not None:
        return EnvError(f"env_id {env_id!r} could not be created: {hint}")
    first = (str(err).strip().splitlines() or [""])[0][:300]
    if isinstance(err, TypeError) and env_kwargs and "keyword argument" in first:
        return EnvError(
            f"data.env_kwargs {env_kwargs}: {env_id!r} does not accept them ({first.split(' was raised')[0]}); "
            f"valid keys: {', '.join(_valid_kwargs(env_id))}."
        )
    given = f" with data.env_kwargs {env_kwargs}" if env_kwargs else ""
    return EnvError(f"env_id {env_id!r} could not be created{given}: {type(err).__name__}: {first}")
