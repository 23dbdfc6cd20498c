"""Observation and reward normalization: the statistics' math, each algorithm with it on, and
the saved statistics reused by evaluation, validate and play."""

import copy
import dataclasses

import lightning as L
import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import RunningMeanStd as GymRunningMeanStd

from rl_lightning.algorithms import DQN, PPO, SAC, TD3
from rl_lightning.algorithms.normalize import Normalizer, RunningMeanStd
from rl_lightning.data import OnPolicyDataModule, ReplayDataModule
from rl_lightning.errors import ConfigError
from tests.test_cli import PPO as PPO_CONFIG
from tests.test_cli import rows, run_cli

NORMALIZE = {"normalize_observation": True, "normalize_reward": True}


def trainer(tmp_path, **kwargs):
    return L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


def test_running_statistics_match_numpy_over_the_concatenated_batches():
    generator = np.random.default_rng(0)
    batches = [generator.normal(5.0, 3.0, (n, 3, 2)) * [[1.0, 1000.0]] for n in (1, 7, 64, 5)]
    rms, reference = RunningMeanStd((3, 2)), GymRunningMeanStd(shape=(3, 2))
    for batch in batches:
        rms.update(torch.as_tensor(batch))
        reference.update(batch)
    assert rms.mean.dtype == torch.float64
    np.testing.assert_allclose(rms.mean.numpy(), reference.mean, rtol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), reference.var, rtol=1e-12)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(0), rtol=1e-5)
    assert float(rms.count) == pytest.approx(77, abs=1e-3)


def test_normalizer_normalizes_clips_and_scales_rewards_by_the_return_std():
    norm = Normalizer((2,), gamma=0.5, observation=True, reward=True, clip_observation=2.0, clip_reward=3.0, num_envs=2)
    norm.obs_rms.mean.copy_(torch.tensor([1.0, -1.0], dtype=torch.float64))
    norm.obs_rms.var.copy_(torch.tensor([4.0, 0.25], dtype=torch.float64))
    out = norm.observations(torch.tensor([[3.0, -1.0], [1.0, 9.0]]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0], [0.0, 2.0]]), atol=1e-6, rtol=0)  # 40 clipped to 2
    # per environment: return = return * gamma + reward, reset after an episode ends
    reward = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 4.0]])
    done = torch.tensor([[False, True, False], [False, False, False]])
    norm.update_returns(reward.unsqueeze(-1), done.unsqueeze(-1))
    expected = np.array([1.0, 1.5, 1.0, 2.0, 1.0, 4.5])
    reference = GymRunningMeanStd(shape=())
    reference.update(expected)
    assert float(norm.return_rms.var) == pytest.approx(reference.var, rel=1e-12)
    assert norm.returns.tolist() == [1.0, 4.5]  # carried into the next batch
    std = float(np.sqrt(reference.var + 1e-8))
    torch.testing.assert_close(norm.rewards(torch.tensor([1.0, -100.0])), torch.tensor([1.0 / std, -3.0]))


def test_integer_observations_refuse_observation_normalization():
    model = DQN()
    model.connect_spec(dataclasses.replace(OnPolicyDataModule("CartPole-v1").env_spec, observation_dtype="uint8"))
    with pytest.raises(ConfigError, match="data.normalize_observation needs float observations.*uint8"):
        model.connect_normalization({"observation": True, "reward": False, "clip_observation": 10.0,
                                     "clip_reward": 10.0, "num_envs": 1}, "the data module")


def test_clip_options_must_be_positive():
    with pytest.raises(ConfigError, match="data.clip_observation"):
        OnPolicyDataModule("CartPole-v1", clip_observation=0.0)
    with pytest.raises(ConfigError, match="data.clip_reward"):
        ReplayDataModule("Pendulum-v1", clip_reward=-1.0)


@pytest.mark.parametrize("algorithm, data", [
    (lambda: PPO(epochs=2, minibatch_size=64), lambda: OnPolicyDataModule("CartPole-v1", 4, 128, 512, **NORMALIZE)),
    (lambda: DQN(), lambda: ReplayDataModule("CartPole-v1", 2, 32, 320, batch_size=32, init_random_frames=64,
                                             updates_per_batch=4, n_step=3, **NORMALIZE)),
    (lambda: SAC(), lambda: ReplayDataModule("Pendulum-v1", 1, 8, 200, batch_size=32, init_random_frames=64,
                                             updates_per_batch=2, **NORMALIZE)),
    (lambda: TD3(), lambda: ReplayDataModule("Pendulum-v1", 1, 8, 200, batch_size=32, init_random_frames=64,
                                             updates_per_batch=2, **NORMALIZE)),
], ids=["ppo", "dqn", "sac", "td3"])
def test_every_algorithm_trains_with_normalization_and_saves_the_statistics(tmp_path, algorithm, data):
    L.seed_everything(0)
    model, datamodule = algorithm(), data()
    fit = trainer(tmp_path)
    fit.fit(model, datamodule=datamodule)
    frames = datamodule.total_frames
    norm = model.normalizer
    # every collected frame went into the statistics once (raw observations: CartPole's and
    # Pendulum's first coordinates are not standardized already)
    assert float(norm.obs_rms.count) == pytest.approx(frames, abs=1e-3)
    assert float(norm.return_rms.count) == pytest.approx(frames, abs=1e-3)
    assert not torch.allclose(norm.obs_rms.mean, torch.zeros_like(norm.obs_rms.mean))
    fit.save_checkpoint(tmp_path / "a.ckpt")
    ckpt = torch.load(tmp_path / "a.ckpt", weights_only=True)
    assert ckpt["rl_lightning"]["normalization"] == {**datamodule.normalization, "epsilon": 1e-8}
    assert torch.equal(ckpt["state_dict"]["normalizer.obs_rms.var"], norm.obs_rms.var)
    assert torch.equal(ckpt["state_dict"]["normalizer._extra_state"], norm.returns)
    # a model restored from the checkpoint alone (as play does) has the statistics
    restored = type(model).load_from_checkpoint(tmp_path / "a.ckpt", weights_only=True)
    assert torch.equal(restored.normalizer.obs_rms.mean, norm.obs_rms.mean)
    # acting (evaluation, play) leaves them as they are
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("normalizer.") and "extra" not in k}
    model.act(torch.randn(16, *model.spec.observation_shape) * 100, deterministic=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_ppo_first_epoch_ratios_are_one_with_normalization(tmp_path):
    """The batch is normalized with the statistics it was collected with, then added to them."""
    L.seed_everything(0)
    model = PPO(epochs=1, minibatch_size=128)
    ratios = []
    compute_loss = model.compute_loss

    def spy(mb):
        loss, stats = compute_loss(mb)
        if not ratios:  # the first minibatch of the first epoch: no update yet
            ratios.append(float(stats[3]))  # approx KL of exp(log ratio)
        return loss, stats

    model.compute_loss = spy
    datamodule = OnPolicyDataModule("CartPole-v1", 4, 128, 256, **NORMALIZE)
    trainer(tmp_path).fit(model, datamodule=datamodule)
    assert ratios == [0.0]  # ratio exactly 1 everywhere: the collected batch was normalized with its own stats


def test_a_checkpoint_without_normalization_is_refused_by_a_config_with_it_and_the_reverse(tmp_path):
    L.seed_everything(0)
    fit = trainer(tmp_path)
    model = PPO(epochs=1, minibatch_size=64)
    fit.fit(model, datamodule=OnPolicyDataModule("CartPole-v1", 4, 128, 128, **NORMALIZE))
    fit.save_checkpoint(tmp_path / "n.ckpt")
    ckpt = torch.load(tmp_path / "n.ckpt", weights_only=True)
    plain = PPO(epochs=1, minibatch_size=64)
    plain.connect_spec(model.spec)
    plain.connect_normalization(None, "the data module")
    with pytest.raises(ConfigError, match="no normalization.*but the checkpoint has normalization "
                                          "data.normalize_observation True"):
        plain.on_load_checkpoint(ckpt)
    other = PPO(epochs=1, minibatch_size=64)
    other.connect_spec(model.spec)
    other.connect_normalization({**model.normalization, "clip_observation": 5.0}, "the data module")
    with pytest.raises(ConfigError, match="data.clip_observation 10.0"):
        other.on_load_checkpoint(ckpt)


TINY_NORMALIZED = ["--data.total_frames", "2048", "--evaluation.every_frames", "1024", "--evaluation.episodes", "2",
                   "--checkpoint.every_frames", "1024", "--progress_bar.refresh_rate", "0",
                   "--data.normalize_observation", "true", "--data.normalize_reward", "true"]


def test_validate_and_play_act_with_the_saved_statistics(in_tmp, capsys):
    from rl_lightning.runs.play import load_agent

    run_cli("fit", "--config", PPO_CONFIG, *TINY_NORMALIZED, "--experiment", "norm")
    (run,) = (in_tmp / "experiments" / "norm").iterdir()
    last = run / "checkpoints" / "last.ckpt"
    metrics = rows(run / "metrics.csv")
    last_eval = float(metrics[-1]["eval/return_mean"])
    # episode returns stay in the environment's units (CartPole pays 1 per step), not scaled ones
    assert all(r["train/episode_return"] == r["train/episode_length"] for r in metrics if r["train/episode_return"])
    capsys.readouterr()
    run_cli("validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(last))
    line = next(line for line in capsys.readouterr().out.splitlines() if "eval/return_mean" in line)
    assert float(line.replace("│", " ").split()[-1]) == pytest.approx(last_eval, rel=1e-5)
    model, _ = load_agent(run, last)
    saved = torch.load(last, weights_only=True)["state_dict"]
    assert torch.equal(model.normalizer.obs_rms.mean, saved["normalizer.obs_rms.mean"])
    # the statistics matter: the same weights with fresh statistics give another policy
    obs = torch.randn(256, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0, 0.2, 2.0])
    fresh = copy.deepcopy(model)
    fresh.normalizer.obs_rms.mean.zero_()
    fresh.normalizer.obs_rms.var.fill_(1.0)
    with torch.no_grad():
        probs, fresh_probs = (m.actor.dist(m.preprocess(obs)).probs for m in (model, fresh))
    assert (probs - fresh_probs).abs().max() > 0.01


@pytest.mark.parametrize("normalize", [False, True])
def test_normalization_lets_ppo_see_a_signal_a_thousandth_of_the_offset(tmp_path, normalize):
    """FarSign's observation is 1000 + x and pays for picking x > 0: only with normalized
    observations does PPO learn it in 4096 frames (without, it stays at chance)."""
    L.seed_everything(0)
    model = PPO(epochs=4, minibatch_size=64, learning_rate=3e-3, gamma=0.5)
    data = OnPolicyDataModule("tests.helpers.envs:FarSign-v0", 8, 256, 4096, normalize_observation=normalize)
    trainer(tmp_path).fit(model, datamodule=data)
    x = torch.linspace(-1, 1, 201)[:, None]
    accuracy = (model.act(1000 + x, deterministic=True)["action"] == (x[:, 0] > 0)).float().mean().item()
    assert accuracy > 0.95 if normalize else accuracy < 0.6


def test_off_policy_updates_see_stored_raw_rewards_scaled_by_the_current_return_std(tmp_path):
    L.seed_everything(0)
    model = DQN()
    data = ReplayDataModule("CartPole-v1", 2, 32, 160, batch_size=16, init_random_frames=64, updates_per_batch=2,
                            normalize_reward=True, clip_reward=0.12)
    seen = []
    update = model.update

    def spy(batch, optimizers):
        std = float((model.normalizer.return_rms.var + 1e-8).sqrt())
        raw = data.buffer.storage.get(batch["index"])["reward"]  # the buffer keeps raw rewards
        seen.append((batch["reward"].clone(), raw, std))
        return update(batch, optimizers)

    model.update = spy
    trainer(tmp_path).fit(model, datamodule=data)
    assert len(seen) == 8  # 4 rounds of 2 updates
    for scaled, raw, std in seen:
        assert (raw == 1.0).all()  # CartPole pays 1 per step
        torch.testing.assert_close(scaled, (raw / std).clamp(max=0.12))
    # the return std here lies between 7 and 10: some rounds' 1 / std is clipped to 0.12, some not
    assert {1 / std > 0.12 for _, _, std in seen} == {True, False}
