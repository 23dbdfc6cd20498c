"""What the MuJoCo and DeepMind Control Suite environments need beyond Gymnasium's defaults:
a headless OpenGL backend for MuJoCo's rendering (:func:`headless_gl`), clear messages when
MuJoCo cannot render (:func:`check_renderable`, :func:`render_hint`), action repeat
(:class:`ActionRepeat`) and channel-first frames (:class:`ChannelsFirst`) for control from pixels.

MuJoCo renders through OpenGL. Without a display, ``MUJOCO_GL`` picks the headless backend:
``egl`` (GPU or Mesa's software EGL; Debian/Ubuntu ``libegl1``) or ``osmesa`` (pure software,
slower; ``libosmesa6``). :func:`headless_gl` (run by the command line and by every environment
of the pipeline) sets ``MUJOCO_GL=egl`` when it is unset and no display exists (``osmesa``
when only libOSMesa is installed); a value the user set is kept.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rl_lightning.errors import ConfigError

#: The system package each headless backend loads (Debian/Ubuntu names).
GL_PACKAGES = {"egl": "libegl1", "osmesa": "libosmesa6"}


@functools.cache
def _loadable(library: str) -> bool:
    """Whether the shared library ``library`` (e.g. ``EGL``) can be found."""
    import ctypes.util

    return ctypes.util.find_library(library) is not None


def headless_gl() -> str | None:
    """Choose MuJoCo's headless OpenGL backend when ``MUJOCO_GL`` is unset and no display
    exists (Linux without ``DISPLAY``/``WAYLAND_DISPLAY``): ``egl`` when libEGL is installed,
    else ``osmesa`` when libOSMesa is, else none (MuJoCo then imports and simulates, and only
    rendering is refused, by :func:`check_renderable`). PyOpenGL's platform is set to match.
    A ``MUJOCO_GL`` the user set is kept. Returns the backend in effect (``None``: MuJoCo's
    default, a window system). Called before MuJoCo or dm_control is imported."""
    if os.environ.get("MUJOCO_GL"):
        backend = os.environ["MUJOCO_GL"]
    elif sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        backend = next((b for b, lib in (("egl", "EGL"), ("osmesa", "OSMesa")) if _loadable(lib)), None)
        if backend is None:
            return None
        os.environ["MUJOCO_GL"] = backend
    else:
        return None
    if backend in GL_PACKAGES:
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def render_hint(err: BaseException) -> str | None:
    """What to do when MuJoCo failed to render with ``err`` (an error raised in MuJoCo's or
    PyOpenGL's rendering code, or naming OpenGL); ``None`` for other errors."""
    import traceback

    where = " ".join(frame.filename for frame in traceback.extract_tb(err.__traceback__))
    text = f"{type(err).__name__} {err} {where}"
    if not any(word in text for word in ("OpenGL", "EGL", "OSMesa", "mujoco_rendering", "mujoco/egl",
                                         "mujoco/osmesa", "mujoco/glfw", "dm_control/_render", "mjr_makeContext")):
        return None
    backend = os.environ.get("MUJOCO_GL") or "glfw (MUJOCO_GL unset)"
    first = (str(err).strip().splitlines() or [""])[0][:200]
    return (f"MuJoCo's OpenGL backend failed (MUJOCO_GL={backend}; {type(err).__name__}: {first}). Headless "
            f"rendering needs MUJOCO_GL=egl with the system package {GL_PACKAGES['egl']}, or MUJOCO_GL=osmesa "
            f"with {GL_PACKAGES['osmesa']} (e.g. apt-get install {GL_PACKAGES['osmesa']}).")


def _uses_mujoco(env_id: str) -> bool:
    """Whether ``env_id`` is a MuJoCo or dm_control environment (renders through MuJoCo)."""
    from rl_lightning.envs.gym import _extra_for

    name = env_id.rpartition(":")[2]
    spec = gym.registry.get(name)
    needs = _extra_for(f"{name} {getattr(spec, 'entry_point', '')}")
    return needs is not None and needs[1] in ("mujoco", "dmc")


def check_renderable(env_id: str) -> None:
    """Refuse, with :func:`render_hint`'s advice, to render a MuJoCo or dm_control environment
    when no headless backend is set and no display exists: MuJoCo's window backend (glfw)
    would fail there, and can abort the process on a later try."""
    if not _uses_mujoco(env_id) or headless_gl() not in (None, "glfw"):
        return
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise ConfigError(
        f"env_id {env_id!r} cannot render here: no display, and neither libEGL nor libOSMesa was found for "
        f"MuJoCo's headless rendering (MUJOCO_GL={os.environ.get('MUJOCO_GL') or 'unset'}). Install "
        f"{GL_PACKAGES['egl']} (MUJOCO_GL=egl) or {GL_PACKAGES['osmesa']} (MUJOCO_GL=osmesa), "
        f"e.g. apt-get install {GL_PACKAGES['osmesa']}.")


class ActionRepeat(gym.Wrapper):
    """Repeats each action ``repeat`` times and sums the rewards (stops early when the episode
    ends): the control-from-pixels convention of the DeepMind Control Suite (e.g. 8 for
    cartpole, 2 for walker, 4 for cheetah). One step of the wrapped environment is one frame
    of ``data.total_frames``: the simulator runs ``repeat`` steps per frame.

    Args:
        env: the environment.
        repeat: number of simulator steps per action (1: no repeat).
    """

    def __init__(self, env: gym.Env, repeat: int = 1) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ConfigError(f"ActionRepeat: repeat must be an integer >= 1, got {repeat!r}.")
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """``repeat`` steps with ``action``; rewards summed, the last observation and info."""
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class ChannelsFirst(gym.ObservationWrapper):
    """Frames ``(H, W, C)`` as ``(C, H, W)``, so that ``FrameStackObservation`` followed by
    ``ReshapeObservation`` stacks RGB frames along the channels (``(3 * k, H, W)``).

    Args:
        env: an environment with ``(H, W, C)`` Box observations.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
            raise ConfigError(f"ChannelsFirst takes (H, W, C) Box observations, got {space}.")
        self.observation_space = gym.spaces.Box(
            np.moveaxis(space.low, -1, 0), np.moveaxis(space.high, -1, 0), dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The frame with its channels first."""
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0))
