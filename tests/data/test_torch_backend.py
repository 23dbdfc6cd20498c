"""``data.backend: torch``: the on-device collector, the algorithms and every part of a run on
batched torch environments."""

import csv

import gymnasium as gym
import lightning as L
import numpy as np
import pytest
import torch

from rl_lightning.algorithms import DQN, PPO
from rl_lightning.callbacks import Evaluation, Video
from rl_lightning.callbacks.evaluation import evaluate
from rl_lightning.data import OnPolicyDataModule, ReplayDataModule
from rl_lightning.data.torch_collector import TorchCollector
from rl_lightning.envs.batched import make_torch_env
from tests.test_errors import refused

from tests.test_cli import CONFIGS, run_cli

TORCH_PPO = ["--config", str(CONFIGS / "ppo_torch_cartpole.yaml"), "--progress_bar.refresh_rate", "0"]


def random_policy(obs):
    action = torch.randint(2, (obs.shape[0],), device=obs.device)
    return {"action": action, "env_action": action, "action_log_prob": torch.zeros(obs.shape[0], device=obs.device)}


def test_collector_batches_have_the_torchrl_layout_and_the_episode_statistics_add_up():
    env = make_torch_env("CartPole-v1", 16)
    collector = TorchCollector(env, random_policy, 16 * 40, seed=3)
    batch = collector.rollout()
    assert batch.batch_size == torch.Size([16, 40])
    assert batch["observation"].dtype == batch["next", "observation"].dtype == torch.float32
    assert batch["next", "reward"].shape == batch["next", "done"].shape == (16, 40, 1)
    done = batch["next", "done"].squeeze(-1)
    assert done.any()  # random CartPole episodes last ~20 steps
    # within an episode the next observation is the following step's observation; at its end it
    # is the final one, and the following step starts a fresh episode near the origin
    cont = ~done[:, :-1]
    assert torch.equal(batch["next", "observation"][:, :-1][cont], batch["observation"][:, 1:][cont])
    ended = done[:, :-1]
    assert (batch["observation"][:, 1:][ended].abs() <= 0.05).all()
    assert (batch["next", "observation"][:, :-1][ended].abs().amax(-1) > 0.05).all()
    returns, lengths, count, episodes = collector.episode_totals()
    assert count == episodes == int(done.sum())
    assert lengths == returns  # +1 per step: returns are lengths; every counted step ended an episode
    # lengths of the finished episodes: each ends at a done, starting after the previous one
    expected = 0
    for row in done:
        ends = torch.nonzero(row).flatten().tolist()
        expected += ends[-1] + 1 if ends else 0
    assert lengths == expected
    assert collector.episode_totals()[:3] == (0.0, 0.0, 0)  # read once


def test_the_same_seed_collects_the_same_batches_and_state_dict_continues_exactly():
    def first_batch():
        torch.manual_seed(0)  # the policy's random numbers
        return TorchCollector(make_torch_env("CartPole-v1", 8), random_policy, 64, seed=5).rollout()

    assert torch.equal(first_batch()["observation"], first_batch()["observation"])
    torch.manual_seed(0)
    a = TorchCollector(make_torch_env("CartPole-v1", 8), random_policy, 64, seed=5)
    a.rollout()
    saved = a.state_dict()
    ahead = a.rollout()
    torch.manual_seed(123)  # another process's random state: the checkpoint's comes back
    resumed = TorchCollector(make_torch_env("CartPole-v1", 8), random_policy, 64, seed=99)
    resumed.load_state_dict(saved)
    replay = next(iter(resumed))  # iteration applies the saved random-number state, as training does
    assert resumed.frames == 128
    for key in ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "done")):
        assert torch.equal(replay[key], ahead[key]), key


def test_ppo_learns_cartpole_on_the_torch_backend(in_tmp):
    run_cli("fit", *TORCH_PPO, "--evaluation.every_frames", "32768", "--experiment", "torch-ppo")  # 131072 frames
    (run,) = (in_tmp / "experiments" / "torch-ppo").iterdir()
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    evals = [float(r["eval/return_mean"]) for r in rows if r.get("eval/return_mean")]
    assert len(evals) == 4
    assert max(evals) >= 400, evals  # random play scores about 20


def test_dqn_trains_on_the_torch_backend_with_the_buffer_beside_the_environments(tmp_path):
    L.seed_everything(0)
    data = ReplayDataModule("CartPole-v1", backend="torch", num_envs=32, frames_per_batch=256, total_frames=2048,
                            init_random_frames=512, buffer_size=4096, batch_size=64, updates_per_batch=8)
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Evaluation(every_frames=0, episodes=3)],
                        default_root_dir=tmp_path)
    trainer.fit(DQN(), datamodule=data)
    assert data.frames == 2048
    assert len(data.buffer) == 2048 and data.buffer.storage.device == torch.device("cpu")
    assert isinstance(data.collector, TorchCollector)
    stored = data.buffer.storage.get(torch.arange(2048))
    assert set(stored["action"].unique().tolist()) == {0, 1}


def test_evaluation_and_video_step_the_torch_task_and_draw_it_with_gymnasiums_renderer(tmp_path):
    import imageio.v3 as iio

    L.seed_everything(0)
    data = OnPolicyDataModule("CartPole-v1", backend="torch", num_envs=8, frames_per_batch=256, total_frames=512)
    video = Video(every_evaluations=1, max_frames=40)
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Evaluation(every_frames=0, episodes=2), video],
                        default_root_dir=tmp_path)
    model = PPO(epochs=1, minibatch_size=256)
    trainer.fit(model, datamodule=data)
    (path,) = video.paths
    frames = iio.imread(path)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) >= 2
    assert frames.std(0).max() > 0  # the pole moves
    # one evaluation episode per environment, with CartPole's time limit
    env = data.make_env(3)
    result = evaluate(model, env, 3, seed=0)
    assert ((result["lengths"] >= 8) & (result["lengths"] <= 500)).all()
    np.testing.assert_array_equal(result["returns"], result["lengths"])


def test_the_single_environment_shows_an_episodes_final_state_before_its_reset():
    data = OnPolicyDataModule("CartPole-v1", backend="torch", num_envs=2, frames_per_batch=2)
    env = data.make_single_env("rgb_array")
    obs, _ = env.reset(seed=0)
    reference = gym.make("CartPole-v1", render_mode="rgb_array")
    for _ in range(200):
        obs, reward, term, trunc, _ = env.step(np.int64(1))
        if term or trunc:
            break
    assert term and (abs(obs[2]) > 0.2094 or abs(obs[0]) > 2.4)  # the final observation, not a fresh start
    frame = env.render()
    reference.reset(seed=0)
    reference.unwrapped.state = obs.astype(np.float64)
    np.testing.assert_array_equal(frame, reference.render())
    env.close()


@pytest.mark.parametrize(("options", "named"), [
    (["--data.env_id", "LunarLander-v3"], "data.env_id 'LunarLander-v3' has no torch version"),
    (["--data.env_kwargs", "{gravity: 3}"], "data.env_kwargs ['gravity']"),
    (["--data.env_kwargs", "{dtype: float16}"], "data.env_kwargs.dtype"),
    (["--data.wrappers", "[{class_path: gymnasium.wrappers.ClipReward, init_args: {min_reward: 0, max_reward: 1}}]"],
     "data.wrappers are gymnasium wrappers"),
    (["--data.vectorization", "async"], "data.vectorization async"),
    (["--data.device", "gpu7"], "data.device 'gpu7'"),
])
def test_bad_torch_backend_options_are_refused_before_training(in_tmp, capsys, options, named):
    line = refused(capsys, "fit", *TORCH_PPO, *options)
    assert named in line, line
    assert not (in_tmp / "experiments").exists()
