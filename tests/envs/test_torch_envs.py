"""The batched torch environments against gymnasium's: one step, trajectories, reset
distributions, time limit and autoreset, seeding and state, spaces."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from rl_lightning.envs.batched import TORCH_ENVS, make_torch_env

IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]
PI = math.pi

#: per task: ranges of random states for the one-step test, the reset distribution (low, high
#: per state dimension; low == high is a constant), an action that keeps an episode going for a
#: few steps, a state whose next step terminates (None: the task never terminates)
TASKS = {
    "CartPole-v1": {"states": [(-2.4, 2.4), (-3, 3), (-0.2, 0.2), (-3, 3)], "reset": [(-0.05, 0.05)] * 4,
                    "quiet": 1, "terminal": [2.39, 3.0, 0.0, 0.0]},
    "Acrobot-v1": {"states": [(-PI, PI), (-PI, PI), (-4 * PI, 4 * PI), (-9 * PI, 9 * PI)],
                   "reset": [(-0.1, 0.1)] * 4, "quiet": 1, "terminal": [PI, 0.0, 0.0, 0.0]},
    "MountainCar-v0": {"states": [(-1.2, 0.6), (-0.07, 0.07)], "reset": [(-0.6, -0.4), (0.0, 0.0)],
                       "quiet": 1, "terminal": [0.55, 0.05]},
    "MountainCarContinuous-v0": {"states": [(-1.2, 0.6), (-0.07, 0.07)], "reset": [(-0.6, -0.4), (0.0, 0.0)],
                                 "quiet": [0.0], "terminal": [0.5, 0.05]},
    "Pendulum-v1": {"states": [(-3 * PI, 3 * PI), (-8, 8)], "reset": [(-PI, PI), (-1.0, 1.0)],
                    "quiet": [0.0], "terminal": None},
}


def unwrapped(env_id: str) -> gym.Env:
    return gym.make(env_id).unwrapped


def discrete(env_id: str) -> bool:
    return isinstance(TORCH_ENVS[env_id].single_action_space, gym.spaces.Discrete)


def random_states(env_id: str, n: int, rng: np.random.Generator) -> np.ndarray:
    low, high = np.array(TASKS[env_id]["states"], dtype=np.float64).T
    return rng.uniform(low, high, size=(n, len(low)))


def random_actions(env_id: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Valid discrete actions; continuous ones up to 1.5 times the bounds (to test the clip)."""
    space = TORCH_ENVS[env_id].single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=n)
    return rng.uniform(1.5 * space.low, 1.5 * space.high, size=(n, *space.shape))


def as_action(env_id: str, actions: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(actions, dtype=torch.long if discrete(env_id) else dtype)


def gym_step(env: gym.Env, env_id: str, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """One step of gymnasium's environment; CartPole forgets an earlier termination (it would
    reward 0 and warn), as the state was set from outside."""
    if env_id == "CartPole-v1":
        env.steps_beyond_terminated = None
    obs, reward, terminated, _, _ = env.step(int(action) if discrete(env_id) else np.array(action))
    return obs, float(reward), bool(terminated)


def gym_observe64(env_id: str, state) -> np.ndarray:
    """gymnasium's observation of its state without the float32 rounding."""
    s = np.asarray(state, dtype=np.float64)
    if env_id == "Acrobot-v1":
        return np.array([np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]), s[2], s[3]])
    if env_id == "Pendulum-v1":
        return np.array([np.cos(s[0]), np.sin(s[0]), s[1]])
    return s


# --- dynamics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_one_step_equals_gymnasium(env_id):
    """From many random states and every action (discrete) or random actions (continuous), one
    float32 step gives gymnasium's observation, reward and termination."""
    rng = np.random.default_rng(0)
    cls = TORCH_ENVS[env_id]
    states = random_states(env_id, 600, rng)
    if discrete(env_id):
        n_actions = cls.single_action_space.n
        states = np.repeat(states, n_actions, axis=0)
        actions = np.tile(np.arange(n_actions), len(states) // n_actions)
    else:
        actions = random_actions(env_id, len(states), rng).astype(np.float32)
    states = states.astype(np.float32)
    zeros = torch.zeros(len(states), dtype=torch.long)
    env = cls(num_envs=len(states), dtype=torch.float32)
    env.set_state({"state": torch.as_tensor(states), "elapsed": zeros})
    _, reward, terminated, truncated, final = env.step(as_action(env_id, actions, torch.float32))
    env64 = cls(num_envs=len(states), dtype=torch.float64)
    env64.set_state({"state": torch.as_tensor(states), "elapsed": zeros})
    next64 = env64.dynamics(torch.as_tensor(states, dtype=torch.float64), as_action(env_id, actions, torch.float64))[0]
    final64 = env64.step(as_action(env_id, actions, torch.float64))[4]

    gym_env = unwrapped(env_id)
    gym_env.reset(seed=0)
    expected_obs, expected_obs64, expected_state, expected_reward, expected_terminated = [], [], [], [], []
    for state, action in zip(states, actions, strict=True):
        gym_env.state = state.astype(np.float64)
        obs, r, term = gym_step(gym_env, env_id, action)
        expected_obs.append(obs)
        expected_obs64.append(gym_observe64(env_id, gym_env.state))
        expected_state.append(np.asarray(gym_env.state, dtype=np.float64))
        expected_reward.append(r)
        expected_terminated.append(term)
    assert final.dtype == torch.float32 and reward.dtype == torch.float32
    # float64 from the same states: gymnasium's arithmetic (except where gymnasium works in
    # float32: MountainCarContinuous rounds its state, Pendulum multiplies a float32 torque)
    tol64 = 1e-7 if env_id in ("MountainCarContinuous-v0", "Pendulum-v1") else 1e-10
    torch.testing.assert_close(final64, torch.as_tensor(np.array(expected_obs64)), rtol=0, atol=tol64)
    torch.testing.assert_close(next64, torch.as_tensor(np.array(expected_state)), rtol=0, atol=tol64)  # wrapped
    # float32: one RK4 step of Acrobot at its top speeds amplifies float32 rounding to ~1e-4
    rtol, atol = (1e-3, 1e-4) if env_id == "Acrobot-v1" else (1e-5, 1e-5)
    expected_obs = torch.as_tensor(np.array(expected_obs))
    torch.testing.assert_close(final, expected_obs, rtol=rtol, atol=atol)
    assert (final - expected_obs).abs().median() < 1e-6
    torch.testing.assert_close(reward, torch.tensor(expected_reward, dtype=torch.float32), rtol=1e-6, atol=1e-5)
    assert terminated.tolist() == expected_terminated
    assert not truncated.any()
    if TASKS[env_id]["terminal"] is not None:  # the states reach both outcomes
        assert 0 < sum(expected_terminated) < len(states)


@pytest.mark.parametrize("env_id", IDS)
def test_trajectory_equals_gymnasium_float64(env_id):
    """200 float64 steps of 4 environments under random actions follow gymnasium within 1e-6
    (gymnasium's state set to ours at each new episode)."""
    n, steps = 4, 200
    rng = np.random.default_rng(1)
    env = TORCH_ENVS[env_id](num_envs=n, dtype=torch.float64)
    env.reset(seed=1)
    gym_envs = [unwrapped(env_id) for _ in range(n)]
    for i, gym_env in enumerate(gym_envs):
        gym_env.reset(seed=i)
        gym_env.state = env.state[i].numpy().copy()
    # gymnasium stores MountainCarContinuous's state as float32 after every step (float32
    # arithmetic from the second step on); ours stays float64
    atol = 1e-5 if env_id == "MountainCarContinuous-v0" else 1e-6
    episodes = 0
    for t in range(steps):
        actions = random_actions(env_id, n, rng)
        _, reward, terminated, truncated, final = env.step(as_action(env_id, actions, torch.float64))
        for i, gym_env in enumerate(gym_envs):
            _, r, term = gym_step(gym_env, env_id, actions[i])
            np.testing.assert_allclose(final[i].numpy(), gym_observe64(env_id, gym_env.state), rtol=0, atol=atol,
                                       err_msg=f"step {t}, env {i}")
            assert reward[i].item() == pytest.approx(r, abs=atol)
            assert terminated[i].item() == term
            if terminated[i] or truncated[i]:
                episodes += 1
                gym_env.state = env.state[i].numpy().copy()
            else:  # the state itself too (Acrobot's wrapped angles, Pendulum's unwrapped one)
                np.testing.assert_allclose(env.state[i].numpy(), np.asarray(gym_env.state, dtype=np.float64),
                                           rtol=0, atol=atol, err_msg=f"step {t}, env {i}")
    if env_id in ("CartPole-v1", "Pendulum-v1"):
        assert episodes > 0  # new episodes were followed too


@pytest.mark.parametrize("env_id", IDS)
def test_reset_distribution_equals_gymnasium(env_id):
    """4000 reset states against 4000 of gymnasium's: a KS test per dimension, and the bounds."""
    n = 4000
    env = TORCH_ENVS[env_id](num_envs=n, dtype=torch.float64)
    env.reset(seed=2)
    ours = env.state.numpy()
    gym_env = unwrapped(env_id)
    gym_env.reset(seed=3)
    theirs = []
    for _ in range(n):
        gym_env.reset()
        theirs.append(np.asarray(gym_env.state, dtype=np.float64))
    theirs = np.array(theirs)
    for d, (low, high) in enumerate(TASKS[env_id]["reset"]):
        if low == high:
            assert (ours[:, d] == low).all() and (theirs[:, d] == low).all()
            continue
        assert ks_2samp(ours[:, d], theirs[:, d]).pvalue > 1e-3, f"dimension {d}"
        assert low <= ours[:, d].min() < low + 0.01 * (high - low)
        assert high - 0.01 * (high - low) < ours[:, d].max() < high
    # float32 gives the same range
    env32 = TORCH_ENVS[env_id](num_envs=n, dtype=torch.float32)
    obs = env32.reset(seed=2)
    assert obs.dtype == torch.float32 and env32.single_observation_space.contains(obs[0].numpy())
    low, high = np.array(TASKS[env_id]["reset"], dtype=np.float32).T
    assert ((env32.state.numpy() >= low) & (env32.state.numpy() <= high)).all()


@pytest.mark.parametrize(("env_id", "kwargs"), [("MountainCar-v0", {"goal_velocity": 0.02}),
                                               ("MountainCarContinuous-v0", {"goal_velocity": 0.02}),
                                               ("Pendulum-v1", {"g": 9.81}), ("CartPole-v1", {"sutton_barto_reward": True})])
def test_task_options_as_gymnasium(env_id, kwargs):
    """The tasks' own options (``gymnasium.make`` keywords) change the same things."""
    rng = np.random.default_rng(12)
    states = random_states(env_id, 300, rng)
    if env_id.startswith("MountainCar"):  # near the flag, some slower than the goal velocity
        states[:, 0] = rng.uniform(0.4, 0.6, len(states))
    actions = random_actions(env_id, len(states), rng)
    env = make_torch_env(env_id, len(states), env_kwargs={**kwargs, "dtype": "float64"})
    env.set_state({"state": torch.as_tensor(states), "elapsed": torch.zeros(len(states), dtype=torch.long)})
    _, reward, terminated, _, final = env.step(as_action(env_id, actions, torch.float64))
    gym_env = gym.make(env_id, **kwargs).unwrapped
    gym_env.reset(seed=0)
    for i, (state, action) in enumerate(zip(states, actions, strict=True)):
        gym_env.state = state.copy()
        _, r, term = gym_step(gym_env, env_id, action)
        np.testing.assert_allclose(final[i].numpy(), gym_observe64(env_id, gym_env.state), rtol=0, atol=1e-7)
        assert (reward[i].item(), terminated[i].item()) == (pytest.approx(r), term)
    if env_id.startswith("MountainCar"):
        reached = final[:, 0] >= env.goal_position
        assert terminated.any() and (reached & ~terminated).any()  # the goal velocity mattered


# --- episodes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_time_limit_and_autoreset(env_id):
    """Truncated exactly at ``max_episode_steps`` (gymnasium's by default); the observation
    returned then is a new episode's, ``final_observation`` the last of the old one."""
    cls = TORCH_ENVS[env_id]
    assert cls.default_max_episode_steps == gym.spec(env_id).max_episode_steps
    assert cls(num_envs=2).max_episode_steps == gym.spec(env_id).max_episode_steps
    env = make_torch_env(env_id, 3, env_kwargs={"max_episode_steps": 7, "dtype": "float64"})
    assert env.max_episode_steps == 7 and env.dtype == torch.float64
    env.reset(seed=4)
    for episode in range(2):
        for t in range(1, 8):
            # CartPole pushes left and right in turn (one way for 7 steps can tip the pole)
            quiet = t % 2 if env_id == "CartPole-v1" else TASKS[env_id]["quiet"]
            action = as_action(env_id, np.array([quiet] * 3), torch.float64)
            before = env.state.clone()
            obs, _, terminated, truncated, final = env.step(action)
            assert not terminated.any()
            assert truncated.tolist() == [t == 7] * 3, (episode, t)
            expected_final = env.observe(env.dynamics(before, action)[0])
            torch.testing.assert_close(final, expected_final, rtol=0, atol=0)
            torch.testing.assert_close(obs, env.observe(env.state), rtol=0, atol=0)
            if t < 7:
                torch.testing.assert_close(obs, final, rtol=0, atol=0)
        # a fresh start: inside the reset distribution, elapsed back to 0
        low, high = np.array(TASKS[env_id]["reset"]).T
        state = env.state.numpy()
        assert ((state >= low) & (state <= high)).all()
        assert not torch.equal(obs, final)
        assert env.elapsed.tolist() == [0, 0, 0]


@pytest.mark.parametrize("env_id", IDS)
def test_termination_autoreset(env_id):
    """An environment that terminates starts over in the same step; the others go on."""
    terminal = TASKS[env_id]["terminal"]
    env = TORCH_ENVS[env_id](num_envs=2, dtype=torch.float64)
    env.reset(seed=5)
    action = as_action(env_id, np.array([TASKS[env_id]["quiet"]] * 2), torch.float64)
    if terminal is None:  # Pendulum: never terminates, whatever the state
        for _ in range(50):
            assert not env.step(random_like(env_id, 2))[2].any()
        return
    start = env.state.clone()
    start[0] = torch.tensor(terminal, dtype=torch.float64)
    env.set_state({"state": start, "elapsed": torch.tensor([3, 3])})
    obs, reward, terminated, truncated, final = env.step(action)
    assert terminated.tolist() == [True, False] and not truncated.any()
    next_state = env.dynamics(start, action)[0]
    torch.testing.assert_close(final, env.observe(next_state), rtol=0, atol=0)
    torch.testing.assert_close(obs[1], final[1], rtol=0, atol=0)  # going on
    low, high = np.array(TASKS[env_id]["reset"]).T
    assert ((env.state[0].numpy() >= low) & (env.state[0].numpy() <= high)).all()  # a fresh start
    torch.testing.assert_close(obs[0], env.observe(env.state)[0], rtol=0, atol=0)
    assert env.elapsed.tolist() == [0, 4]
    gym_env = unwrapped(env_id)
    gym_env.reset(seed=0)
    gym_env.state = start[0].numpy().copy()
    _, r, term = gym_step(gym_env, env_id, action[0].numpy())
    assert term and reward[0].item() == pytest.approx(r)


def random_like(env_id: str, n: int) -> torch.Tensor:
    return as_action(env_id, random_actions(env_id, n, np.random.default_rng(6)), torch.float32)


# --- seeding and state ---------------------------------------------------------------------------
def rollout(env, env_id: str, steps: int, seed: int = 7) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        obs, reward, terminated, truncated, final = env.step(as_action(env_id, random_actions(env_id, env.num_envs, rng),
                                                                       env.dtype))
        out += [obs, reward, terminated, truncated, final]
    return out


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_and_state_round_trips(env_id):
    """Same seed, same trajectories; get_state/set_state, clone_rows and state_dict continue exactly."""
    cls = TORCH_ENVS[env_id]

    def make():
        return cls(num_envs=8, max_episode_steps=10)  # short episodes: resets draw from the generator

    a, b = make(), make()
    assert torch.equal(a.reset(seed=11), b.reset(seed=11))
    assert_same(rollout(a, env_id, 25), rollout(b, env_id, 25))
    assert not torch.equal(make().reset(seed=11), make().reset(seed=12))

    # get_state / set_state: the episodes (not the generator) come back
    env = make()
    env.reset(seed=13)
    rollout(env, env_id, 3)
    saved = env.get_state()
    first = rollout(env, env_id, 5)
    assert not torch.equal(env.state, saved["state"])
    env.set_state(saved)
    assert_same(rollout(env, env_id, 5)[:5], first[:5])  # the first step (no reset yet) repeats

    # clone_rows: every environment continues from the row it names
    index = torch.tensor([2, 2, 2, 2, 5, 5, 5, 5])
    state, elapsed = env.state.clone(), env.elapsed.clone()
    obs = env.clone_rows(index)
    assert torch.equal(env.state, state[index]) and torch.equal(env.elapsed, elapsed[index])
    assert torch.equal(obs, env.observe(state[index]))

    # state_dict: the episodes and the generator
    sd = env.state_dict()
    assert all(v.device.type == "cpu" for v in sd.values() if isinstance(v, torch.Tensor))
    after = rollout(env, env_id, 25, seed=8)
    env.load_state_dict(sd)
    assert_same(rollout(env, env_id, 25, seed=8), after)
    fresh = make()
    fresh.load_state_dict(sd)
    assert_same(rollout(fresh, env_id, 25, seed=8), after)


def test_pendulum_keeps_last_torque_for_rendering():
    env = TORCH_ENVS["Pendulum-v1"](num_envs=3, max_episode_steps=2)
    gym_env = unwrapped("Pendulum-v1")
    gym_env.reset(seed=0)
    env.reset(seed=0)
    env.render_state(gym_env, 1)
    assert gym_env.last_u is None
    np.testing.assert_array_equal(gym_env.state, env.state[1].numpy().astype(np.float64))
    env.step(torch.tensor([[3.0], [-0.5], [1.0]]))
    env.render_state(gym_env, 0)
    assert gym_env.last_u == 2.0  # clipped, as gymnasium's
    assert env.get_state()["last_u"].tolist() == [2.0, -0.5, 1.0]
    env.clone_rows(torch.tensor([1, 1, 0]))
    assert env.last_u.tolist() == [-0.5, -0.5, 2.0]
    env.step(torch.zeros(3, 1))  # truncated: new episodes, no torque yet
    assert env.last_u.isnan().all()


@pytest.mark.parametrize("env_id", IDS)
def test_render_state(env_id):
    pytest.importorskip("pygame")
    env = TORCH_ENVS[env_id](num_envs=2)
    env.reset(seed=0)
    env.step(random_like(env_id, 2))
    gym_env = gym.make(env_id, render_mode="rgb_array").unwrapped
    gym_env.reset(seed=0)
    env.render_state(gym_env, 1)
    np.testing.assert_allclose(np.asarray(gym_env.state), env.state[1].numpy(), rtol=0, atol=0)
    frame = gym_env.render()
    assert frame.ndim == 3 and frame.shape[-1] == 3
    gym_env.close()


# --- spaces, dtypes, devices ---------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_spaces_equal_gymnasium(env_id):
    cls = TORCH_ENVS[env_id]
    gym_env = unwrapped(env_id)
    assert cls.env_id == env_id
    assert cls.single_observation_space == gym_env.observation_space
    assert cls.single_action_space == gym_env.action_space
    env = cls(num_envs=5)
    assert env.observation_space.shape == (5, *gym_env.observation_space.shape)
    obs = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_and_devices(env_id, dtype):
    """Every output on the environment's device, floats in its dtype; on CUDA (where there is
    one) the physics equals the CPU's."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        env = TORCH_ENVS[env_id](num_envs=64, device=device, dtype=dtype, max_episode_steps=20)
        env.reset(seed=9)
        out = rollout(env, env_id, 30)
        for x in out:
            assert x.device.type == torch.device(device).type
        for x in out[:2] + out[4:5]:  # observations, rewards, final observations
            assert x.dtype == dtype
        assert out[2].dtype == out[3].dtype == torch.bool
    if len(devices) == 2:
        rng = np.random.default_rng(10)
        states = torch.as_tensor(random_states(env_id, 256, rng), dtype=dtype)
        actions = as_action(env_id, random_actions(env_id, 256, rng), dtype)
        cpu = TORCH_ENVS[env_id](num_envs=256, dtype=dtype).dynamics(states, actions)
        cuda = TORCH_ENVS[env_id](num_envs=256, device="cuda", dtype=dtype).dynamics(states.cuda(), actions.cuda())
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        for x, y in zip(cpu, cuda, strict=True):
            torch.testing.assert_close(y.cpu(), x, rtol=tol, atol=tol)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_the_torchrl_view_passes_torchrls_spec_check_and_rolls_out_with_autoreset(env_id):
    from torchrl.envs.utils import check_env_specs

    from rl_lightning.envs.batched.torchrl_env import as_torchrl

    env = as_torchrl(make_torch_env(env_id, 4))
    check_env_specs(env)
    env.set_seed(0)
    rollout = env.rollout(520, break_when_any_done=False)
    assert rollout.batch_size == (4, 520)
    done = rollout["next", "done"].squeeze(-1)
    assert done.any()  # every CartPole or Pendulum episode ends within 520 steps
    # within an episode a step starts where the last one ended; after an end, a fresh start
    cont = ~done[:, :-1]
    assert torch.equal(rollout["observation"][:, 1:][cont], rollout["next", "observation"][:, :-1][cont])
    if env_id == "CartPole-v1":
        assert (rollout["observation"][:, 1:][done[:, :-1]].abs() <= 0.05).all()
