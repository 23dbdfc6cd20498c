"""Velocity-masked tasks: the hidden entries read zero, the rest are the task's own."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control import CartPoleEnv

from rl_lightning.envs.partial import MaskVelocity
from rl_lightning.errors import ConfigError


@pytest.mark.parametrize("env_id, hidden", [("CartPole-v1", [1, 3]), ("Pendulum-v1", [2]), ("Acrobot-v1", [4, 5])])
def test_velocities_read_zero_and_positions_are_unchanged(env_id, hidden):
    plain, masked = gym.make(env_id), MaskVelocity(gym.make(env_id))
    a, _ = plain.reset(seed=3)
    b, _ = masked.reset(seed=3)
    for _ in range(5):
        action = plain.action_space.sample()
        a = plain.step(action)[0]
        b = masked.step(action)[0]
    kept = [i for i in range(a.shape[0]) if i not in hidden]
    assert np.all(b[hidden] == 0) and np.any(a[hidden] != 0)
    np.testing.assert_array_equal(b[kept], a[kept])
    assert masked.observation_space.contains(b) and np.all(masked.observation_space.high[hidden] == 0)


def test_unknown_task_needs_entries():
    with pytest.raises(ConfigError, match="init_args.entries"):
        MaskVelocity(CartPoleEnv())  # made without an id
    with pytest.raises(ConfigError, match="flat Box"):
        MaskVelocity(gym.make("Blackjack-v1"))
    env = MaskVelocity(gym.make("MountainCar-v0"), entries=[0])
    assert env.reset(seed=0)[0][0] == 0
    with pytest.raises(ConfigError, match="do not index"):
        MaskVelocity(gym.make("CartPole-v1"), entries=[7])
