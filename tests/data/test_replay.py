import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ReplayBuffer

from rl_lightning.data.prioritized import PrioritizedSampler
from rl_lightning.data.replay import ReplayDataModule, UpdateRound, n_step_transitions


def test_prioritized_sampling_follows_priorities_with_correct_weights():
    torch.manual_seed(0)
    sampler = PrioritizedSampler(64, alpha=0.5, beta=0.7)
    buffer = ReplayBuffer(storage=LazyTensorStorage(64), sampler=sampler, batch_size=4000)
    buffer.extend(TensorDict({"x": torch.arange(8)}, batch_size=[8]))
    priorities = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 49.0])
    buffer.update_priority(torch.arange(8), priorities)
    batch, info = buffer.sample(return_info=True)
    p = (priorities + 1e-6) ** 0.5
    probs = p / p.sum()  # 7 at 1/14, one at 7/14
    frequency = torch.bincount(batch["x"], minlength=8).float() / 4000
    assert frequency[7] == pytest.approx(probs[7].item(), abs=0.03)
    assert frequency[:7].mean() == pytest.approx(probs[0].item(), abs=0.01)
    weights = (8 * probs) ** -0.7
    expected = weights / weights.max()
    got = {int(i): float(w) for i, w in zip(info["index"], info["_weight"])}
    assert got[7] == pytest.approx(expected[7].item(), rel=1e-4)
    assert got[0] == pytest.approx(1.0, rel=1e-4)


def test_new_entries_get_the_highest_priority_so_far():
    sampler = PrioritizedSampler(16, alpha=1.0)
    buffer = ReplayBuffer(storage=LazyTensorStorage(16), sampler=sampler, batch_size=8)
    buffer.extend(TensorDict({"x": torch.arange(2)}, batch_size=[2]))
    buffer.update_priority(torch.tensor([0, 1]), torch.tensor([5.0, 0.5]))
    buffer.extend(TensorDict({"x": torch.arange(2, 3)}, batch_size=[1]))
    leaves = sampler.tree.sums[sampler.tree.size: sampler.tree.size + 3]
    assert leaves[2] == pytest.approx(leaves[0])


def test_n_step_returns_match_a_hand_computation():
    # one env, 5 steps, episode ends (terminated) after step 2 (0-based 1)
    reward = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    terminated = torch.tensor([[False, True, False, False, False]])
    obs = torch.arange(5.0).view(1, 5, 1)
    next_obs = obs + 10
    batch = TensorDict({
        "observation": obs, "action": torch.zeros(1, 5, dtype=torch.int64),
        "next": {"observation": next_obs, "reward": reward.unsqueeze(-1), "terminated": terminated.unsqueeze(-1),
                 "truncated": torch.zeros(1, 5, 1, dtype=torch.bool), "done": terminated.unsqueeze(-1)},
    }, batch_size=[1, 5])
    g = 0.5
    out = n_step_transitions(batch, n=3, gamma=g)
    # t=0: r0 + g r1, stops at the terminal step 1; t=1: r1 (terminal); t=2: r2 + g r3 + g^2 r4
    # t=3: r3 + g r4 (batch ends); t=4: r4
    assert out["reward"].tolist() == pytest.approx([1 + g * 2, 2, 3 + g * 4 + g * g * 5, 4 + g * 5, 5])
    assert out["discount"].tolist() == pytest.approx([g**2, g, g**3, g**2, g])
    assert out["terminated"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert out["next_observation"][:, 0].tolist() == [11.0, 11.0, 14.0, 14.0, 14.0]
    one = n_step_transitions(batch, n=1, gamma=g)
    assert one["reward"].tolist() == reward[0].tolist() and one["discount"].tolist() == [g] * 5
    assert np.allclose(one["next_observation"][:, 0].numpy(), next_obs[0, :, 0].numpy())


def test_a_round_of_uniform_minibatches_keeps_transitions_whole():
    """The round's minibatches are stacked [updates, batch] and each row is one stored transition."""
    data = ReplayDataModule("CartPole-v1", batch_size=32, buffer_size=50)
    data.buffer = ReplayBuffer(storage=LazyTensorStorage(50), batch_size=32)
    n = 40
    ids = torch.arange(n, dtype=torch.float32)
    data.buffer.extend(TensorDict({
        "observation": ids.unsqueeze(-1).expand(n, 4).clone(), "action": torch.arange(n),
        "reward": ids * 10, "next_observation": (ids + 1).unsqueeze(-1).expand(n, 4).clone(),
        "terminated": torch.zeros(n), "discount": torch.full((n,), 0.99)}, [n]))
    torch.manual_seed(0)
    rounds = UpdateRound(data, updates=200)
    assert rounds.stacked["observation"].shape == (200, 32, 4) and rounds.stacked["reward"].shape == (200, 32)
    minibatches = list(rounds)
    assert len(minibatches) == 200
    for batch in minibatches[:5]:
        assert torch.equal(batch["observation"][:, 0], batch["action"].float())
        assert torch.equal(batch["reward"], batch["action"].float() * 10)
        assert torch.equal(batch["next_observation"][:, 0], batch["action"].float() + 1)
        assert torch.equal(batch["index"], batch["action"]) and torch.equal(batch["weight"], torch.ones(32))
    counts = torch.bincount(rounds.stacked["action"].flatten(), minlength=n).float()
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()  # uniform over the 40 stored


def trajectory(envs=2, steps=23, seed=0):
    """Random rewards; episodes end (terminated or truncated) at random steps; observation
    ``env * 1000 + t`` names each step."""
    g = torch.Generator().manual_seed(seed)
    reward = torch.randn(envs, steps, generator=g)
    terminated = torch.rand(envs, steps, generator=g) < 0.12
    truncated = (torch.rand(envs, steps, generator=g) < 0.08) & ~terminated
    obs = (torch.arange(envs).view(envs, 1) * 1000 + torch.arange(steps)).float().unsqueeze(-1)
    next_obs = obs + 0.5  # the observation after each step (the final one when an episode ends)
    return obs, reward, terminated, truncated, next_obs


def batch_of(obs, reward, terminated, truncated, next_obs, t0, t1):
    envs = obs.shape[0]
    cut = lambda x: x[:, t0:t1]  # noqa: E731
    return TensorDict({
        "observation": cut(obs), "action": cut(obs).squeeze(-1).long(),
        "next": {"observation": cut(next_obs), "reward": cut(reward).unsqueeze(-1),
                 "terminated": cut(terminated).unsqueeze(-1), "truncated": cut(truncated).unsqueeze(-1),
                 "done": (cut(terminated) | cut(truncated)).unsqueeze(-1)},
    }, batch_size=[envs, t1 - t0])


def brute_force(obs, reward, terminated, truncated, next_obs, n, gamma):
    """{observation: (reward, discount, terminated, next_observation)} from whole trajectories,
    for every step whose n-step window is complete (n steps or an episode end) within them."""
    done = terminated | truncated
    out = {}
    envs, steps = reward.shape
    for e in range(envs):
        for t in range(steps):
            total, m = 0.0, 0
            while m < n and t + m < steps:
                total += gamma**m * float(reward[e, t + m])
                m += 1
                if done[e, t + m - 1]:
                    break
            if m < n and not done[e, t + m - 1]:
                continue  # the trajectory ends before the window does
            out[float(obs[e, t, 0])] = (total, gamma**m, float(terminated[e, t + m - 1]), float(next_obs[e, t + m - 1, 0]))
    return out


@pytest.mark.parametrize("frames_per_step", [1, 5])
def test_n_step_windows_span_batch_boundaries_like_the_whole_trajectory(frames_per_step):
    """1-frame batches (SAC/TD3 configs) and 5-step batches give the same n-step transitions as
    windows computed over the whole trajectory, episode ends included; the pending steps
    survive a state_dict round trip in the middle."""
    from rl_lightning.data.replay import NStepWindow

    n, gamma = 3, 0.9
    traj = trajectory()
    steps = traj[1].shape[1]
    window = NStepWindow(n, gamma)
    got = {}
    for t0 in range(0, steps, frames_per_step):
        if t0 == 10:  # a checkpoint and resume: a fresh window from the saved state
            saved = window.state_dict()
            window = NStepWindow(n, gamma)
            window.load_state_dict(saved, num_envs=2)
        out = window(batch_of(*traj, t0, min(t0 + frames_per_step, steps)))
        for i in range(len(out["reward"])):
            got[float(out["observation"][i, 0])] = (float(out["reward"][i]), float(out["discount"][i]),
                                                    float(out["terminated"][i]), float(out["next_observation"][i, 0]))
    expected = brute_force(*traj, n, gamma)
    done = traj[2] | traj[3]
    assert done[:, : steps - n + 1].any() and (window.pending["reward"].shape == (2, n - 1))
    # every step with a complete window is stored once, except the last n-1 (still pending)
    assert set(got) == {k for k in expected if k % 1000 < steps - (n - 1)}
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key  # float32 sums
    assert any(v[1] == pytest.approx(gamma**n) for v in got.values())  # real 3-step returns exist


def test_the_data_module_stores_n_step_returns_from_one_frame_batches():
    """``--data.n_step 3`` with the SAC/TD3 configs' one-frame batches stores 3-step returns."""
    from rl_lightning.data.link import AgentLink

    data = ReplayDataModule("Pendulum-v1", num_envs=1, frames_per_batch=1, buffer_size=64, batch_size=16, n_step=3)
    data.connect(AgentLink(policy=None, gamma=0.9))
    traj = trajectory(envs=1, steps=12, seed=1)
    for t in range(12):
        data.add(batch_of(*traj, t, t + 1))
    stored = data.buffer.storage.get(slice(0, len(data.buffer)))
    expected = brute_force(*traj, 3, 0.9)
    assert len(data.buffer) == 12 - 2
    for obs, reward, discount in zip(stored["observation"][:, 0], stored["reward"], stored["discount"]):
        assert (float(reward), float(discount)) == pytest.approx(expected[float(obs)][:2], rel=1e-5, abs=1e-6)
    assert torch.isclose(stored["discount"], torch.tensor(0.9**3)).any()


def test_a_buffer_saved_by_torchrl_state_dict_in_earlier_checkpoints_still_loads():
    """Checkpoints of earlier versions hold TorchRL's ``ReplayBuffer.state_dict()``; its rows,
    writer position and priorities are read (nothing else), so those runs still resume."""
    from rl_lightning.data.replay_state import (
        buffer_state,
        from_torchrl_state,
        load_buffer_state,
    )

    def make():
        return ReplayBuffer(storage=LazyTensorStorage(8), sampler=PrioritizedSampler(8), batch_size=4)

    n = 11  # wraps around: the cursor is not at the end
    rows = {"observation": torch.randn(n, 3), "action": torch.arange(n), "reward": torch.randn(n),
            "next_observation": torch.randn(n, 3), "terminated": torch.zeros(n), "discount": torch.full((n,), 0.9)}
    old = make()
    old.extend(TensorDict(rows, [n]))
    old.update_priority(torch.arange(8), torch.rand(8) * 5)
    new = make()
    load_buffer_state(new, from_torchrl_state(old.state_dict()), "old.ckpt")
    a, b = buffer_state(old), buffer_state(new)
    assert (a["length"], a["cursor"], a["write_count"]) == (b["length"], b["cursor"], b["write_count"]) == (8, 3, 11)
    for key in rows:
        assert torch.equal(a["rows"][key], b["rows"][key]), key
    assert torch.equal(a["sampler"]["sums"], b["sampler"]["sums"])
    with pytest.raises(Exception, match="data.buffer_size is fixed by the checkpoint"):
        small = ReplayBuffer(storage=LazyTensorStorage(4), sampler=PrioritizedSampler(4), batch_size=4)
        load_buffer_state(small, b, "old.ckpt")
