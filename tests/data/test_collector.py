import pytest
import torch

from rl_lightning.data import VectorCollector
from rl_lightning.envs import make_vector_env


def constant_policy(action: int):
    def policy(obs):
        a = torch.full((obs.shape[0],), action, dtype=torch.int64)
        return {"action": a, "env_action": a, "action_log_prob": torch.zeros(obs.shape[0])}

    return policy


def test_batch_layout_and_final_observations():
    env = make_vector_env("tests.helpers.envs:Countdown-v0", 2, {"length": 5})
    collector = VectorCollector(env, constant_policy(1), frames_per_batch=14, seed=0)
    batch = collector.rollout()
    assert batch.batch_size == torch.Size([2, 7])
    assert batch["observation"].shape == (2, 7, 1)
    assert batch["next", "reward"].shape == (2, 7, 1)
    # observations count 0..4 then restart; the step that ends an episode sees the final obs 5
    assert batch["observation"][0, :, 0].tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert batch["next", "observation"][0, :, 0].tolist() == [1, 2, 3, 4, 5, 1, 2]
    assert batch["next", "terminated"][0, :, 0].tolist() == [False] * 4 + [True, False, False]
    assert torch.equal(batch["next", "done"], batch["next", "terminated"] | batch["next", "truncated"])
    assert batch["next", "reward"].sum() == 2 * 7 * 2.0
    assert collector.frames == 14 and collector.episodes == 2
    returns, lengths = collector.pop_episodes()
    assert returns == [10.0, 10.0] and lengths == [5, 5]
    assert collector.pop_episodes() == ([], [])


def test_rollouts_continue_episodes_across_batches():
    env = make_vector_env("tests.helpers.envs:Countdown-v0", 1, {"length": 5})
    collector = VectorCollector(env, constant_policy(0), frames_per_batch=3, seed=0)
    first, second = collector.rollout(), collector.rollout()
    assert first["observation"][0, :, 0].tolist() == [0, 1, 2]
    assert second["observation"][0, :, 0].tolist() == [3, 4, 0]
    state = collector.state_dict()
    assert (state["frames"], state["episodes"]) == (6, 1)


def test_state_dict_continues_the_same_episodes_in_a_new_collector():
    def sampling_policy(obs):
        a = torch.randint(0, 2, (obs.shape[0],))
        return {"action": a, "env_action": a, "action_log_prob": torch.zeros(obs.shape[0])}

    make = lambda: make_vector_env("tests.helpers.envs:Countdown-v0", 2, {"length": 7})  # noqa: E731
    original = VectorCollector(make(), sampling_policy, frames_per_batch=6, seed=0)
    original.rollout()
    state = original.state_dict()
    expected = original.rollout()
    clone = VectorCollector(make(), sampling_policy, frames_per_batch=6, seed=123)
    clone.load_state_dict(state)
    again = next(iter(clone))  # random states are applied when iteration starts
    assert torch.equal(again["observation"], expected["observation"])  # mid-episode, not reset
    assert torch.equal(again["action"], expected["action"])  # same random numbers
    assert clone.frames == original.frames == 12


def test_frames_per_batch_must_divide_by_envs():
    env = make_vector_env("CartPole-v1", 3)
    try:
        VectorCollector(env, constant_policy(0), frames_per_batch=10)
    except ValueError as err:
        assert "frames_per_batch" in str(err)
    else:
        raise AssertionError("expected an error")


class Float64Obs(__import__("gymnasium").Env):
    """float64 observations (as some gymnasium envs give): kept as float32."""

    def __init__(self, render_mode=None):
        import gymnasium as gym
        import numpy as np

        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float64)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        import numpy as np

        super().reset(seed=seed)
        self.t = 0
        return np.full(3, 0.1, np.float64), {}

    def step(self, action):
        import numpy as np

        self.t += 1
        return np.full(3, 0.1 * self.t, np.float64), 1.0, self.t >= 3, False, {}


def test_observations_keep_their_dtype_uint8_frames_stay_uint8():
    """Integer observations (frames) stay uint8 in the batch, the running episodes and the
    checkpointed state; float64 observations become float32 as before."""
    import tests.helpers.image_envs  # noqa: F401  (registers PixelChoice-v0)

    env = make_vector_env("tests.helpers.image_envs:PixelChoice-v0", 2, {"size": 36, "channels": 4})
    collector = VectorCollector(env, constant_policy(1), frames_per_batch=20, seed=0)
    batch = collector.rollout()
    assert batch["observation"].dtype == torch.uint8 and batch["next", "observation"].dtype == torch.uint8
    assert batch["observation"].shape == (2, 10, 4, 36, 36) and batch["observation"].max() == 255
    state = collector.state_dict()
    assert state["running"]["obs"].dtype == torch.uint8
    clone = VectorCollector(make_vector_env("tests.helpers.image_envs:PixelChoice-v0", 2, {"size": 36, "channels": 4}),
                            constant_policy(1), frames_per_batch=20, seed=5)
    clone.load_state_dict(state)
    assert clone._obs.dtype == torch.uint8 and torch.equal(clone._obs, collector._obs)

    import gymnasium as gym

    if "StorageFloat64-v0" not in gym.registry:
        gym.register("StorageFloat64-v0", entry_point=Float64Obs)
    collector = VectorCollector(make_vector_env("StorageFloat64-v0", 2, {}), constant_policy(0), frames_per_batch=8, seed=0)
    batch = collector.rollout()
    assert batch["observation"].dtype == torch.float32 and batch["next", "observation"].dtype == torch.float32
    assert batch["next", "observation"][0, 0].tolist() == pytest.approx([0.1] * 3)
