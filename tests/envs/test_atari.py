"""Atari through ale-py with configs/env/atari.yaml: preprocessing, training-only wrappers
(episodic life, reward clipping) left out of evaluation and video, PPO and DQN fits, a missing
ale-py named by its extra."""

from __future__ import annotations

import csv
import importlib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

pytest.importorskip("ale_py", reason="Atari tests need ale-py: pip install -e '.[atari]'")

from rl_lightning.envs import EnvError, EnvSpec, check_env_id, make_env, make_vector_env
from rl_lightning.envs.atari import EpisodicLife, FireReset
from rl_lightning.envs.state import _layers
from tests.test_cli import run_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OVERLAY = yaml.safe_load((CONFIGS / "env" / "atari.yaml").read_text())["data"]["init_args"]
ENV_ID, KWARGS, WRAPPERS = OVERLAY["env_id"], OVERLAY["env_kwargs"], OVERLAY["wrappers"]
QUIET = ["--progress_bar.refresh_rate", "0", "--evaluation.episodes", "2"]


def lives(env: gym.Env) -> int:
    return env.unwrapped.ale.lives()


def play_until_done(env: gym.Env, seed: int, max_steps: int = 5000) -> tuple[float, int, set[float]]:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    total, rewards = 0.0, set()
    for step in range(1, max_steps + 1):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        total += reward
        rewards.add(float(reward))
        if terminated or truncated:
            return total, step, rewards
    raise AssertionError(f"no episode end in {max_steps} steps")


def test_overlay_gives_stacked_uint8_frames():
    env = make_vector_env(ENV_ID, 2, KWARGS, wrappers=WRAPPERS, training=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    spec = EnvSpec.from_env(ENV_ID, env)
    assert spec.observation_shape == (4, 84, 84) and spec.observation_dtype == "uint8" and spec.n_actions == 4
    env.close()


def test_training_only_wrappers_end_episodes_at_a_lost_life_and_evaluation_plays_whole_games():
    training = make_env(ENV_ID, KWARGS, WRAPPERS, training=True)
    evaluation = make_env(ENV_ID, KWARGS, WRAPPERS)

    def kinds(env):
        return {type(layer) for layer in _layers(env)}

    assert {EpisodicLife, gym.wrappers.ClipReward, FireReset} <= kinds(training)
    assert EpisodicLife not in kinds(evaluation) and gym.wrappers.ClipReward not in kinds(evaluation)
    assert FireReset in kinds(evaluation)
    play_until_done(training, seed=1)
    assert lives(training) == 4  # one life lost: the training episode ended, the game goes on
    _, length, _ = play_until_done(training, seed=None)
    assert lives(training) == 3 and length > 0  # the same game continued after the "reset"
    _, length, _ = play_until_done(evaluation, seed=1)
    assert lives(evaluation) == 0  # a whole game: every life lost
    training.close(), evaluation.close()


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_ppo_fit_evaluates_whole_games_and_writes_a_video(in_tmp):
    run_cli("fit", "--config", str(CONFIGS / "ppo_atari.yaml"), "--config", str(CONFIGS / "env" / "atari.yaml"),
            "--data.num_envs", "4", "--data.frames_per_batch", "256", "--data.total_frames", "512",
            "--model.epochs", "1", "--model.minibatch_size", "128", "--evaluation.every_frames", "512",
            "--checkpoint.every_frames", "512", "--trainer.callbacks+=rl_lightning.callbacks.Video", *QUIET,
            "--experiment", "ppo")
    (run,) = (in_tmp / "experiments" / "ppo").iterdir()
    (video,) = (run / "videos").glob("*.mp4")
    assert video.stat().st_size > 1000
    metrics = rows(run)
    evaluated = [r for r in metrics if r.get("eval/length_mean")]
    trained = [float(r["train/episode_length"]) for r in metrics if r.get("train/episode_length")]
    assert evaluated and trained
    # evaluation episodes are whole games of 5 lives; training episodes one life each
    assert float(evaluated[-1]["eval/length_mean"]) > 2 * max(trained)
    games = [r for r in metrics if r.get("train/game_length")]
    assert games and float(games[-1]["train/game_length"]) > 2 * max(trained)


def test_dqn_fit_with_a_small_compact_buffer(in_tmp):
    run_cli("fit", "--config", str(CONFIGS / "dqn_atari.yaml"), "--config", str(CONFIGS / "env" / "atari.yaml"),
            "--data.buffer_size", "300", "--data.init_random_frames", "64", "--data.frames_per_batch", "32",
            "--data.updates_per_batch", "2", "--data.total_frames", "256", "--evaluation.every_frames", "256",
            "--checkpoint.every_frames", "256", *QUIET, "--experiment", "dqn")
    (run,) = (in_tmp / "experiments" / "dqn").iterdir()
    metrics = rows(run)
    assert float(metrics[-1]["frames"]) == 256 and float(metrics[-1]["eval/length_mean"]) > 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["init_args"]["compact_observations"] is True


@pytest.fixture
def without_ale_py(monkeypatch):
    """ale-py as if it were not installed: its ids unregistered, its import failing."""
    for name in [n for n in gym.registry if n.startswith("ALE/")]:
        monkeypatch.delitem(gym.registry, name)
    real = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name.split(".")[0] == "ale_py":
            raise ModuleNotFoundError("No module named 'ale_py'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_missing_ale_py_names_the_extra(without_ale_py, in_tmp, capsys):
    with pytest.raises(EnvError, match=r"pip install 'rl_lightning\[atari\]'"):
        check_env_id("ALE/Pong-v5")
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", str(CONFIGS / "ppo_atari.yaml"), "--config", str(CONFIGS / "env" / "atari.yaml"))
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error:") and "ale_py" in last and "rl_lightning[atari]" in last
    assert not (in_tmp / "experiments").exists()
