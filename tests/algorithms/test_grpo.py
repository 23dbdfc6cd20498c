"""GRPO: group advantages, group rollouts (identical starts, the mask), the k3 KL, a CLI fit."""

import csv
import math
from pathlib import Path

import pytest
import torch

from rl_lightning.algorithms import GRPO
from rl_lightning.algorithms.grpo import group_advantages, k3_kl
from rl_lightning.data.group_collector import GymGroupCollector, TorchGroupCollector
from rl_lightning.envs import EnvSpec, make_vector_env
from rl_lightning.envs.batched import make_torch_env
from rl_lightning.errors import ConfigError
from tests.test_cli import run_cli
from tests.test_errors import refused

GRPO_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "grpo.yaml")
QUIET = ["--progress_bar.refresh_rate", "0", "--evaluation.episodes", "2"]


def test_group_advantages_match_a_hand_computation():
    """Two groups of two; returns 3 vs 1 (gamma 0.5: 1 + 0.5 + 0.25 vs 1) and 2 vs 2 (a flat group)."""
    reward = torch.tensor([[1.0, 1.0, 1.0], [1.0, 9.0, 9.0], [2.0, 0.0, 0.0], [1.0, 2.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)  # 9s: after the end
    adv = group_advantages(reward, mask, 2, gamma=0.5)
    a, b = 1.75, 1.0  # discounted returns of group 0
    mean = (a + b) / 2
    std = math.sqrt(((a - mean) ** 2 + (b - mean) ** 2) / (2 - 1))  # the sample standard deviation
    high, low = (a - mean) / (std + 1e-8), (b - mean) / (std + 1e-8)
    # group 1: 2 and 1 + 0.5 * 2 = 2, alike: advantage 0
    torch.testing.assert_close(adv, torch.tensor([[high, high, high], [low, 0, 0], [0, 0, 0], [0, 0, 0]]))

    # reward-to-go, gamma 1, normalized per time step over the group (an ended member counts 0)
    adv = group_advantages(reward, mask, 2, gamma=1.0, kind="reward_to_go")
    to_go = [[3.0, 2.0, 1.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [3.0, 2.0, 0.0]]
    expected = [[0.0] * 3 for _ in range(4)]
    for g in (0, 2):
        for t in range(3):
            x, y = to_go[g][t], to_go[g + 1][t]
            m, s = (x + y) / 2, abs(x - y) / math.sqrt(2)
            expected[g][t] = (x - m) / (s + 1e-8) * mask[g, t].item()
            expected[g + 1][t] = (y - m) / (s + 1e-8) * mask[g + 1, t].item()
    torch.testing.assert_close(adv, torch.tensor(expected))
    assert adv[0, 1] > 0 and adv[3, 1] > 0 and adv[3, 0] > 0 > adv[2, 0]  # outliving the group scores


def test_k3_kl_matches_a_hand_computation():
    new, ref = torch.log(torch.tensor([0.5, 0.25, 0.3])), torch.log(torch.tensor([0.25, 0.5, 0.3]))
    expected = [0.5 - math.log(0.5) - 1, 2 - math.log(2) - 1, 0.0]  # r - log r - 1, r = p_ref / p
    assert k3_kl(new, ref).tolist() == pytest.approx(expected)
    # the module's loss logs the minibatch mean (train/kl_ref) and adds kl_coef times it
    model = GRPO(kl_coef=0.5)
    model.connect_spec(EnvSpec("x", (1,), True, n_actions=2))
    obs, action = torch.zeros(3, 1), torch.tensor([0, 1, 0])
    log_prob = model.actor.dist(obs).log_prob(action).detach()
    ref_log_prob = log_prob + torch.tensor([0.1, -0.2, 0.3])
    mb = {"obs": obs, "action": action, "log_prob": log_prob, "ref_log_prob": ref_log_prob,
          "advantage": torch.zeros(3)}
    loss, stats = model.compute_loss(mb)
    d = torch.tensor([0.1, -0.2, 0.3])
    kl = float((d.exp() - d - 1).mean())
    assert stats[1].item() == pytest.approx(kl)
    assert loss.item() == pytest.approx(0.5 * kl)  # zero advantages, no entropy bonus


def random_policy(n_actions):
    def policy(obs):
        action = torch.randint(n_actions, obs.shape[:1], device=obs.device)
        return {"action": action, "env_action": action, "action_log_prob": torch.zeros(obs.shape[:1], device=obs.device)}
    return policy


def collectors():
    yield GymGroupCollector(make_vector_env("CartPole-v1", 8), random_policy(2), 4, seed=3)
    yield TorchGroupCollector(make_torch_env("CartPole-v1", 8), random_policy(2), 4, seed=3)
    chunked = TorchGroupCollector(make_torch_env("CartPole-v1", 8), random_policy(2), 4, seed=3)
    chunked.check_every = 7  # as on a GPU: steps past the longest episode are cut off
    yield chunked


@pytest.mark.parametrize("collector", list(collectors()), ids=["gymnasium", "torch", "torch-chunked"])
def test_groups_start_from_identical_states_and_the_mask_ends_with_each_episode(collector):
    starts, frames = [], 0
    for _ in range(2):
        batch = collector.rollout()
        first = batch["observation"][:, 0]
        for g in range(2):  # every member of a group starts where its leader does, exactly
            assert torch.equal(first[4 * g : 4 * g + 4], first[4 * g].expand(4, -1))
        assert not torch.equal(first[0], first[4])  # the groups start apart
        starts.append(first[0])
        mask, done = batch["mask"], batch["next", "done"].squeeze(-1)
        steps = mask.shape[1]
        end = done.int().argmax(1)  # each environment's first episode end
        assert done[torch.arange(8), end].all()
        expected = torch.arange(steps).expand(8, -1) <= end.unsqueeze(1)
        assert torch.equal(mask, expected)  # exactly the steps up to and including the end
        assert (~mask).any() and mask[:, -1].any()  # some steps masked; cut after the longest episode
        ret_sum, len_sum, count, _ = collector.episode_totals()
        assert count == 8 and len_sum == mask.sum()
        frames += int(mask.sum())
        assert ret_sum == pytest.approx(float((batch["next", "reward"].squeeze(-1) * mask).sum()))
    assert collector.frames == frames  # frames are the valid steps
    assert not torch.equal(starts[0], starts[1])  # each batch a new start


def test_collector_state_is_counters_and_generators():
    a = TorchGroupCollector(make_torch_env("CartPole-v1", 4), random_policy(2), 2, seed=5)
    a.rollout()
    state = a.state_dict()
    b = TorchGroupCollector(make_torch_env("CartPole-v1", 4), random_policy(2), 2, seed=99)
    b.load_state_dict(state)
    y = next(iter(b))  # iteration starts with the saved random-number states
    torch.set_rng_state(state["rng"]["torch"])
    x = a.rollout()
    assert b.frames == a.frames and torch.equal(x["observation"], y["observation"]) and torch.equal(x["action"], y["action"])


def test_bad_group_sizes_are_refused(in_tmp, capsys):
    with pytest.raises(ConfigError, match="model.group_size must be >= 2"):
        GRPO(group_size=1)
    with pytest.raises(ConfigError, match="model.advantage"):
        GRPO(advantage="value")
    line = refused(capsys, "fit", "--config", GRPO_CONFIG, "--data.num_envs", "12", "--data.frames_per_batch", "12",
                   *QUIET)
    assert "data.num_envs (12) must be a multiple of model.group_size (8)" in line
    line = refused(capsys, "fit", "--config", GRPO_CONFIG, "--data.normalize_reward", "true", *QUIET)
    assert "data.normalize_reward has no effect on GRPO" in line


def test_cli_fit_logs_the_kl_to_the_reference_and_checkpoints_it(in_tmp):
    run_cli("fit", "--config", GRPO_CONFIG, "--data.num_envs", "16", "--model.group_size", "4",
            "--data.total_frames", "1500", "--evaluation.every_frames", "1000", "--checkpoint.every_frames", "1000",
            "--model.kl_coef", "0.1", "--model.ref_update_every", "2", "--model.advantage", "reward_to_go", "--data.normalize_observation", "true", *QUIET,
            "--experiment", "grpo")
    (run,) = (in_tmp / "experiments" / "grpo").iterdir()
    with open(run / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    frames = [float(r["frames"]) for r in rows]
    assert frames == sorted(frames) and frames[-1] >= 1500 and len(rows) >= 3
    assert all(r["train/episodes"] and float(r["train/episode_length"]) > 0 for r in rows)
    # the reference is the policy of two batches ago: a distance shows on the second of each pair
    assert float(rows[0]["train/kl_ref"]) < 1e-3 < max(float(r["train/kl_ref"]) for r in rows)
    assert any(r["eval/return_mean"] for r in rows)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    weights = ckpt["state_dict"]
    assert int(weights["batches"]) >= 3
    # observation statistics count the valid steps only, the frames
    assert float(weights["normalizer.obs_rms.count"]) == pytest.approx(ckpt["OnPolicyDataModule"]["frames"], abs=1e-3)
    ref = [k for k in weights if k.startswith("ref_actor.")]
    assert ref and all(k.replace("ref_actor.", "actor.") in weights for k in ref)
    assert any(not torch.equal(weights[k], weights[k.replace("ref_actor.", "actor.")]) for k in ref)
    # the reference is not trained: the optimizer holds the policy's parameters only
    (optimizer,) = ckpt["optimizer_states"]
    assert len(optimizer["param_groups"][0]["params"]) == len([k for k in weights if k.startswith("actor.")])


@pytest.mark.parametrize("distribution", ["normal", "beta"])
def test_continuous_actions_learn_a_target(tmp_path, distribution):
    """Slider rewards -(a - 1)^2 over 10-step episodes: the deterministic action moves toward 1."""
    import lightning as L

    from rl_lightning.data import OnPolicyDataModule

    L.seed_everything(0)
    data = OnPolicyDataModule("tests.helpers.envs:Slider-v0", num_envs=16, frames_per_batch=16, total_frames=6_000)
    model = GRPO(distribution=distribution, group_size=8, advantage="reward_to_go", learning_rate=3e-3, epochs=5,
                 minibatch_size=80)
    L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(model, datamodule=data)
    assert data.frames == 6_080  # 38 batches of 16 episodes of 10 steps
    action = model.act(torch.zeros(1, 2), deterministic=True)["env_action"]
    assert abs(action.item() - 1.0) < 0.35  # from about 0 (the normal's mean, the beta's mid-range)
