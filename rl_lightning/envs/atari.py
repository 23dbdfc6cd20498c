"""Wrappers of the standard Atari preprocessing that Gymnasium does not have (``configs/env/atari.yaml``
uses them with ``gymnasium.wrappers.AtariPreprocessing``, ``ClipReward`` and ``FrameStackObservation``).

:class:`FireReset` presses FIRE where a game waits for it (a new game, a lost life), and
:class:`EpisodicLife` ends the (training) episode at each lost life while the game goes on.
Both read the lives from the emulator (``env.unwrapped.ale``), so they wrap ``ALE/...``
environments only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rl_lightning.errors import ConfigError


def _ale(env: gym.Env, wrapper: str) -> Any:
    ale = getattr(env.unwrapped, "ale", None)
    if ale is None:
        raise ConfigError(f"{wrapper} wraps Atari environments (ALE/... ids) only, not {env.unwrapped!r}.")
    return ale


class FireReset(gym.Wrapper):
    """Press FIRE after a reset and after a lost life, in games whose action set has FIRE
    (Breakout serves the ball only then: a policy that has not learnt it yet would wait until
    the time limit). Games without FIRE pass through unchanged.

    Args:
        env: an ``ALE/...`` environment (its own frameskip or ``AtariPreprocessing``'s).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._ale = _ale(env, "FireReset")
        meanings = env.unwrapped.get_action_meanings()
        self.fire = meanings.index("FIRE") if "FIRE" in meanings else None
        self.lives = 0

    def reset(self, **kwargs: Any):
        """Reset, then FIRE (a new reset if FIRE ended the game)."""
        obs, info = self.env.reset(**kwargs)
        if self.fire is not None:
            obs, _, terminated, truncated, info = self.env.step(self.fire)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self._ale.lives()
        return obs, info

    def step(self, action: Any):
        """Step; after a lost life (game not over), FIRE once more (its reward counts)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self._ale.lives()
        if self.fire is not None and lives < self.lives and not (terminated or truncated):
            obs, more, terminated, truncated, info = self.env.step(self.fire)
            reward += more
        self.lives = lives
        return obs, reward, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode (``terminated``), and the next ``reset`` continues the same
    game (one NOOP step) rather than starting a new one; only a real game over resets the
    emulator. For training: the value of losing a life is then zero, which speeds up learning;
    evaluations play whole games (give it with ``training_only: true``).

    Args:
        env: an ``ALE/...`` environment.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._ale = _ale(env, "EpisodicLife")
        self.lives = 0
        self.game_over = True

    def step(self, action: Any):
        """Step; a lost life (game not over) terminates the episode."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self._ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any):
        """A new game after a game over or with a seed; after a lost life, the same game one NOOP later."""
        if self.game_over or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self._ale.lives()
        return obs, info
