"""Partially observed versions of the classic tasks: velocities hidden from the agent.

A policy that sees only positions has to infer velocities from the history of observations,
which memoryless (MLP) policies cannot: these are the standard test tasks of recurrent and
history-based policies (RL Zoo calls them ``CartPoleNoVel-v1``, ``PendulumNoVel-v1``, ...).
Use the wrapper in the environment pipeline, e.g. ``configs/env/cartpole_novel.yaml``::

    data:
      init_args:
        env_id: CartPole-v1
        wrappers: [{class_path: rl_lightning.envs.partial.MaskVelocity}]
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from rl_lightning.errors import ConfigError

#: The observation entries that are velocities, per task (gymnasium's observation layouts).
VELOCITY_ENTRIES: dict[str, tuple[int, ...]] = {
    "CartPole": (1, 3),  # cart velocity, pole angular velocity
    "Pendulum": (2,),  # angular velocity
    "MountainCar": (1,),  # velocity
    "MountainCarContinuous": (1,),
    "Acrobot": (4, 5),  # the two joints' angular velocities
    "LunarLander": (2, 3, 5),  # horizontal and vertical velocity, angular velocity
}


class MaskVelocity(gym.ObservationWrapper):
    """Sets the velocity entries of every observation to zero (the observation keeps its shape).

    Args:
        env: a classic-control or Box2D environment with a flat observation vector.
        entries: indices of the entries to hide; ``None`` looks the task up in
            :data:`VELOCITY_ENTRIES` by its id (CartPole, Pendulum, MountainCar(Continuous),
            Acrobot, LunarLander).
    """

    def __init__(self, env: gym.Env, entries: Sequence[int] | None = None) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ConfigError(f"MaskVelocity needs a flat Box observation space, got {space}.")
        if entries is None:
            env_id = env.spec.id if env.spec is not None else ""
            name = env_id.split("/")[-1].split("-v")[0]
            if name not in VELOCITY_ENTRIES:
                raise ConfigError(
                    f"MaskVelocity does not know the velocity entries of {env_id!r}: give init_args.entries "
                    f"(known tasks: {', '.join(sorted(VELOCITY_ENTRIES))})."
                )
            entries = VELOCITY_ENTRIES[name]
        entries = [int(i) for i in entries]
        bad = [i for i in entries if not -space.shape[0] <= i < space.shape[0]]
        if bad or not entries:
            raise ConfigError(f"MaskVelocity entries {entries} do not index observations of size {space.shape[0]}.")
        self.mask = np.ones(space.shape, dtype=space.dtype)
        self.mask[entries] = 0
        low, high = space.low.copy(), space.high.copy()
        low[entries] = 0
        high[entries] = 0
        self.observation_space = gym.spaces.Box(low, high, dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The observation with the velocity entries zeroed."""
        return observation * self.mask
