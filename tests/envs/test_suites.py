"""MuJoCo, DeepMind Control Suite (through Shimmy) and Box2D: the overlays in configs/env train
a few hundred frames, videos record where MuJoCo renders, a missing package names its extra."""

import functools
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import pytest
import torch

from rl_lightning.envs.suites import ActionRepeat, ChannelsFirst
from tests.test_cli import CONFIGS, run_cli

QUIET = ["--progress_bar.refresh_rate", "0", "--evaluation.episodes", "1"]
SHORT = "--data.env_kwargs={max_episode_steps: 100}"  # short episodes: quick evaluations
SAC_SMALL = ["--data.total_frames", "300", "--data.init_random_frames", "250", "--data.batch_size", "32",
             "--data.buffer_size", "1000", "--evaluation.every_frames", "300", "--checkpoint.every_frames", "300",
             "--log_every_frames", "100", *QUIET]


def overlay(algorithm, name):
    return ["--config", str(CONFIGS / f"{algorithm}.yaml"), "--config", str(CONFIGS / "env" / f"{name}.yaml")]


@functools.cache
def mujoco_renders() -> bool:
    """Whether MuJoCo renders offscreen here (MUJOCO_GL chosen as the CLI chooses it); asked in
    a subprocess: a failed OpenGL context can abort the process that tried."""
    probe = ("from rl_lightning.envs.suites import headless_gl; headless_gl(); import gymnasium as gym; "
             "env = gym.make('HalfCheetah-v5', render_mode='rgb_array', width=32, height=32); env.reset(seed=0); "
             "assert env.render().shape == (32, 32, 3)")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=300, check=False).returncode == 0


def finished(root: Path, experiment: str, frames: int):
    (run,) = (root / "experiments" / experiment).iterdir()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["rl_lightning"]["frames"] == frames
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    return run, ckpt


def test_sac_fits_halfcheetah_and_records_a_video_where_mujoco_renders(in_tmp):
    args = [*overlay("sac", "mujoco_sac"), *SAC_SMALL, SHORT, "--experiment", "hc-sac",
            "--trainer.callbacks+=rl_lightning.callbacks.Video", "--trainer.callbacks.max_frames", "30"]
    if mujoco_renders():
        run_cli("fit", *args)
        run, _ = finished(in_tmp, "hc-sac", 300)
        (video,) = run.glob("videos/*.mp4")
        frames = iio.imread(video)
        assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.std() > 0  # not a blank frame
    else:  # the run goes on; the warning says what to install
        with pytest.warns(UserWarning, match="cannot render here.*MUJOCO_GL=egl"):
            run_cli("fit", *args)
        finished(in_tmp, "hc-sac", 300)


def test_ppo_fits_halfcheetah_with_normalization(in_tmp):
    run_cli("fit", *overlay("ppo", "mujoco_ppo"), "--data.frames_per_batch", "256", "--data.total_frames", "512",
            "--model.epochs", "2", "--evaluation.every_frames", "512", "--checkpoint.every_frames", "512", SHORT,
            *QUIET, "--experiment", "hc-ppo")
    _, ckpt = finished(in_tmp, "hc-ppo", 512)
    assert float(ckpt["state_dict"]["normalizer.obs_rms.count"]) == pytest.approx(512, abs=1e-3)
    assert ckpt["state_dict"]["normalizer.obs_rms.mean"].shape == (17,)  # HalfCheetah's observations


def test_dm_control_cartpole_swingup_from_states(in_tmp):
    run_cli("fit", *overlay("sac", "dmc_cartpole_swingup"), *SAC_SMALL, SHORT, "--experiment", "dmc-states")
    _, ckpt = finished(in_tmp, "dmc-states", 300)
    # position (3) and velocity (2) flattened into one vector: the critic takes 5 + 1 action inputs
    first = next(v for k, v in ckpt["state_dict"].items() if k.startswith("critic.") and v.ndim == 2)
    assert first.shape[1] == 6


def test_dm_control_cartpole_swingup_from_pixels(in_tmp, capsys):
    args = [*overlay("sac", "dmc_cartpole_swingup_pixels"), "--data.total_frames", "48",
            "--data.init_random_frames", "40", "--data.batch_size", "16", "--data.buffer_size", "200",
            "--evaluation.every_frames", "48", "--checkpoint.every_frames", "48", *QUIET,
            "--data.env_kwargs={max_episode_steps: 100, render_kwargs: {width: 84, height: 84, camera_id: 0}}",
            "--experiment", "dmc-pixels"]
    if not mujoco_renders():  # pixels need rendering: the run stops before training, saying why
        with pytest.raises(SystemExit):
            run_cli("fit", *args)
        assert "MUJOCO_GL" in capsys.readouterr().err
        return
    run_cli("fit", *args)
    finished(in_tmp, "dmc-pixels", 48)
    from rl_lightning.envs.pipeline import make_env

    env = make_env("dm_control/cartpole-swingup-v0", {"render_kwargs": {"width": 84, "height": 84, "camera_id": 0}},
                   [{"class_path": "rl_lightning.envs.suites.ActionRepeat", "init_args": {"repeat": 8}},
                    {"class_path": "gymnasium.wrappers.AddRenderObservation", "init_args": {"render_only": True}},
                    {"class_path": "rl_lightning.envs.suites.ChannelsFirst"},
                    {"class_path": "gymnasium.wrappers.FrameStackObservation", "init_args": {"stack_size": 3}},
                    {"class_path": "gymnasium.wrappers.ReshapeObservation", "init_args": {"shape": [9, 84, 84]}}])
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, 84, 84) and obs.dtype.name == "uint8" and obs[-3:].std() > 0
    env.close()


@pytest.mark.parametrize("name", ["bipedalwalker_ppo", "bipedalwalker_sac"])
def test_bipedalwalker_overlays_fit(in_tmp, name):
    if name.endswith("ppo"):
        small = ["--data.num_envs", "2", "--data.frames_per_batch", "256", "--data.total_frames", "512",
                 "--model.epochs", "1", "--evaluation.every_frames", "512", "--checkpoint.every_frames", "512", *QUIET]
        frames = 512
    else:
        small = [*SAC_SMALL, "--data.frames_per_batch", "50", "--data.updates_per_batch", "50"]
        frames = 300
    run_cli("fit", *overlay(name.rpartition("_")[2], name), *small, SHORT, "--experiment", name)
    finished(in_tmp, name, frames)


def test_action_repeat_steps_the_simulator_that_many_times_and_sums_rewards():
    env = ActionRepeat(gym.make("CartPole-v1"), repeat=3)
    env.reset(seed=0)
    _, reward, terminated, truncated, _ = env.step(0)
    assert reward == 3.0 and not (terminated or truncated)
    assert env.get_wrapper_attr("_elapsed_steps") == 3
    with pytest.raises(Exception, match="repeat must be an integer >= 1"):
        ActionRepeat(gym.make("CartPole-v1"), repeat=0)
    with pytest.raises(Exception, match=r"ChannelsFirst takes \(H, W, C\)"):
        ChannelsFirst(gym.make("CartPole-v1"))


def _error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_a_missing_mujoco_names_the_extra(in_tmp, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "mujoco" or m.startswith(("mujoco.", "gymnasium.envs.mujoco"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco raises ImportError
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", *overlay("sac", "mujoco_sac"), *SAC_SMALL)
    assert exit_.value.code == 2
    (line,) = _error_lines(capsys)
    assert "'HalfCheetah-v5'" in line and "pip install 'rl_lightning[mujoco]'" in line
    assert not (in_tmp / "experiments").exists()


def test_a_missing_shimmy_names_the_extra(in_tmp, capsys, monkeypatch):
    for env_id in [i for i in gym.registry if i.startswith("dm_control/")]:
        monkeypatch.delitem(gym.registry, env_id)
    monkeypatch.setitem(sys.modules, "shimmy", None)
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", *overlay("sac", "dmc_cartpole_swingup"), *SAC_SMALL)
    assert exit_.value.code == 2
    (line,) = _error_lines(capsys)
    assert "'dm_control/cartpole-swingup-v0'" in line and "pip install 'rl_lightning[dmc]'" in line
