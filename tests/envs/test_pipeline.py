"""The one environment pipeline: data.wrappers in every environment of a run, sync/async
vectorization, observation spaces, pixel observations, resume with wrappers."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from rl_lightning.data import OnPolicyDataModule
from rl_lightning.envs import EnvError, EnvSpec, make_env, make_vector_env
from rl_lightning.envs.state import capture_vector, restore_vector
from rl_lightning.errors import ConfigError
from tests.helpers.pipeline_envs import AppendConstant
from tests.test_cli import PPO, run_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
APPEND = "tests.helpers.pipeline_envs.AppendConstant"
TINY = ["--data.num_envs", "4", "--data.frames_per_batch", "128", "--data.total_frames", "512",
        "--model.init_args.epochs", "1", "--model.init_args.minibatch_size", "128", "--evaluation.every_frames", "512",
        "--evaluation.episodes", "3", "--checkpoint.every_frames", "512", "--progress_bar.refresh_rate", "0"]
PIXELS = [
    {"class_path": "gymnasium.wrappers.AddRenderObservation"},
    {"class_path": "gymnasium.wrappers.GrayscaleObservation"},
    {"class_path": "gymnasium.wrappers.ResizeObservation", "init_args": {"shape": [84, 84]}},
    {"class_path": "gymnasium.wrappers.FrameStackObservation", "init_args": {"stack_size": 4}},
]


def flow(items) -> str:
    return yaml.safe_dump(items, default_flow_style=True).strip()


def test_wrappers_reach_training_evaluation_video_validate_and_play(in_tmp, capsys):
    """A user's wrapper (it grows observations by one, so any environment that missed it would
    not fit the networks) is in every environment a run makes, recorded as class_path/init_args."""
    AppendConstant.made.clear()
    wrappers = [{"class_path": APPEND, "init_args": {"value": 2.5}}]
    run_cli("fit", "--config", PPO, *TINY, "--experiment", "wrapped", "--data.wrappers", flow(wrappers),
            "--trainer.callbacks+=rl_lightning.callbacks.Video", "--trainer.callbacks.max_frames", "20")
    (run,) = (in_tmp / "experiments" / "wrapped").iterdir()
    made = list(AppendConstant.made)
    assert made.count((2.5, None)) >= 1 + 4 + 3  # the data module's check, 4 training, 3 evaluation envs
    assert (2.5, "rgb_array") in made  # the video's env
    assert [p.name for p in run.glob("videos/*.mp4")] == ["frames-512.mp4"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["init_args"]["wrappers"] == wrappers
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # plain types only
    assert checkpoint["datamodule_hyper_parameters"]["wrappers"] == wrappers
    assert checkpoint["rl_lightning"]["env_spec"]["observation_shape"] in [[5], (5,)]

    AppendConstant.made.clear()
    run_cli("validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"))
    assert "eval/return_mean" in capsys.readouterr().out
    assert AppendConstant.made.count((2.5, None)) >= 1 + 3

    AppendConstant.made.clear()
    run_cli("play", str(run), "--output", str(in_tmp / "play.mp4"))
    assert "episode 0: return" in capsys.readouterr().out
    assert (2.5, "rgb_array") in AppendConstant.made and (in_tmp / "play.mp4").is_file()

    run_cli("reproduce", str(run), "--frames", "256")  # re-runs config.yaml: the same wrappers
    assert "MATCH" in capsys.readouterr().out


def test_secrets_in_wrapper_init_args_reach_the_wrapper_but_no_file(in_tmp):
    from tests.helpers.pipeline_envs import NeedsToken

    NeedsToken.tokens.clear()
    wrappers = flow([{"class_path": "tests.helpers.pipeline_envs.NeedsToken", "init_args": {"api_token": "s3cr3t-x"}}])
    run_cli("fit", "--config", PPO, *TINY, "--experiment", "token", "--data.wrappers", wrappers)
    assert set(NeedsToken.tokens) == {"s3cr3t-x"}
    (run,) = (in_tmp / "experiments" / "token").iterdir()
    leaked = [p for p in run.rglob("*") if p.is_file() and b"s3cr3t-x" in p.read_bytes()]
    assert leaked == []
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["datamodule_hyper_parameters"]["wrappers"][0]["init_args"] == {"api_token": "***"}


@pytest.mark.parametrize(("item", "message"), [
    ({"class_path": "gymnasium.wrappers.ResizeObservatio"},
     r"data\.wrappers\[1\]: .*has no 'ResizeObservatio'.*Close matches: gymnasium\.wrappers\.ResizeObservation"),
    ({"class_path": "no_such_package.Wrapper"}, r"data\.wrappers\[1\]: .*cannot import module 'no_such_package'"),
    ({"class_path": "gymnasium.wrappers.FrameStackObservation", "init_args": {"stack": 4}},
     r"data\.wrappers\[1\]: .*FrameStackObservation has no init_args \['stack'\]; valid: stack_size, padding_type"),
    ({"class_path": "gymnasium.wrappers.ResizeObservation"}, r"data\.wrappers\[1\]: .*needs init_args \['shape'\]"),
    ({"class_path": "gymnasium.wrappers.vector.ClipReward"}, r"data\.wrappers\[1\]: .*give it under data\.vector_wrappers"),
    ({"class_path": "collections.OrderedDict"}, r"data\.wrappers\[1\]: .*not a subclass of gymnasium"),
    ({"class_path": "gymnasium.wrappers.ResizeObservation", "init_args": {"shape": [8, 8]}},
     r"data\.wrappers\[1\] \(.*ResizeObservation\) cannot wrap observations Box\(.*\(4,\).*ValueError"),
])
def test_a_wrong_wrapper_is_an_error_naming_its_index(item, message):
    wrappers = [{"class_path": "gymnasium.wrappers.ClipReward", "init_args": {"min_reward": -1, "max_reward": 1}}, item]
    with pytest.raises(ConfigError, match=message):
        OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=16, wrappers=wrappers)


@pytest.mark.parametrize(("item", "message"), [
    ({"class_path": "gymnasium.wrappers.ClipReward", "training_only": "yes"},
     r"data\.wrappers\[1\]\.training_only must be true or false, got 'yes'"),
    ({"class_path": "gymnasium.wrappers.ClipReward", "train_only": True},
     r"data\.wrappers\[1\]: unknown keys \['train_only'\]; an item has class_path, init_args and training_only"),
    ({"class_path": "gymnasium.wrappers.FrameStackObservation", "init_args": {"stack_size": 2}, "training_only": True},
     (r"data\.wrappers: the training_only items data\.wrappers\[1\] \(FrameStackObservation\) change the "
      r"observation space")),
])
def test_a_wrong_training_only_item_is_an_error_naming_it(item, message):
    wrappers = [{"class_path": "gymnasium.wrappers.TimeLimit", "init_args": {"max_episode_steps": 50}}, item]
    with pytest.raises(ConfigError, match=message):
        OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=16, wrappers=wrappers)


def test_training_only_wrappers_wrap_the_training_environments_only(in_tmp):
    """A training-only reward scale: training episodes return 10x, evaluation, validate and play
    see the environment's own rewards; resuming with the flag changed is refused."""
    scale = [{"class_path": "gymnasium.wrappers.TransformReward", "init_args": {"func": "tests.helpers.pipeline_envs.times_ten"},
              "training_only": True}]
    run_cli("fit", "--config", PPO, *TINY, "--data.wrappers", flow(scale), "--model.init_args.epochs", "1",
            "--experiment", "scaled")
    (run,) = (in_tmp / "experiments" / "scaled").iterdir()
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    train = [float(r["train/episode_return"]) / float(r["train/episode_length"]) for r in rows if r.get("train/episode_return")]
    evaluated = [float(r["eval/return_mean"]) / float(r["eval/length_mean"]) for r in rows if r.get("eval/return_mean")]
    assert train and evaluated
    assert all(x == pytest.approx(10.0) for x in train) and all(x == pytest.approx(1.0) for x in evaluated)
    data = OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=16, wrappers=scale)
    assert data.options_fixed_by({"wrappers": scale}, {}, {"wrappers": [{**scale[0], "training_only": False}]})
    assert not data.options_fixed_by({"wrappers": [{"class_path": "x", "training_only": False}]}, {},
                                     {"wrappers": [{"class_path": "x"}]})  # false is the default
    env = data.make_single_env(None)
    env.reset(seed=0)
    assert env.step(0)[1] == 1.0  # video and play: the real reward
    env.close()


def test_a_wrong_wrapper_fails_the_command_line_before_a_run_folder_exists(in_tmp, capsys):
    bad = flow([{"class_path": "gymnasium.wrappers.TimeLimit", "init_args": {"max_steps": 5}}])
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO, *TINY, "--data.wrappers", bad)
    assert exit_.value.code == 2
    assert "data.wrappers[0]: gymnasium.wrappers.TimeLimit has no init_args ['max_steps']; valid: max_episode_steps" \
        in capsys.readouterr().err
    assert not (in_tmp / "experiments").exists()


def test_help_documents_wrappers_and_vectorization(capsys):
    with pytest.raises(SystemExit):
        run_cli("fit", "--data.help", "OnPolicyDataModule")
    out = capsys.readouterr().out
    assert "--data.wrappers" in out and "class_path" in out and "AddRenderObservation" in out
    assert "training_only: true" in out and "train/game_return" in out
    assert "--data.vectorization" in out and "AsyncVectorEnv" in out


def test_async_fit_steps_the_environments_in_subprocesses(in_tmp):
    import lightning as L

    from rl_lightning.algorithms import PPO as PPOAlgorithm

    seen: list[np.ndarray] = []

    class Pids(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            env = trainer.datamodule.env
            assert isinstance(env.unwrapped, gym.vector.AsyncVectorEnv)
            seen.append(trainer.datamodule.collector._obs[:, -1].numpy().copy())

    L.seed_everything(0)
    data = OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=64, total_frames=256,
                              wrappers=[{"class_path": "tests.helpers.pipeline_envs.AppendPid"}], vectorization="async")
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Pids()], default_root_dir=in_tmp)
    trainer.fit(PPOAlgorithm(epochs=1, minibatch_size=64), datamodule=data)
    assert data.collector.frames == 256
    pids = {int(p) for batch in seen for p in batch}
    assert len(pids) == 2 and os.getpid() not in pids  # one subprocess per environment


def test_nan_observations_are_refused_under_async_too():
    for vectorization in ("sync", "async"):
        env = make_vector_env("tests.helpers.envs:NanObservation-v0", 2, vectorization=vectorization)
        env.reset(seed=0)
        with pytest.raises(EnvError, match=r"step\(\) returned a NaN/Inf observation \(environment 0\)"):
            for _ in range(5):
                env.step(np.ones(2, dtype=np.int64))
        env.close()


def test_dict_observations_are_flattened_with_their_keys_named(caplog):
    with caplog.at_level("INFO"):
        env = make_vector_env("tests.helpers.pipeline_envs:DictObs-v0", 2)
    spec = EnvSpec.from_env("DictObs-v0", env)
    assert spec.observation_shape == (7,) and spec.observation_dtype == "float32"  # 4 one-hot + 3 position
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 7) and obs.dtype == np.float32
    assert np.allclose(obs[:, :4].sum(1), 1.0)  # "mode" one-hot comes first
    env.close()
    assert "Dict observations flattened into one vector, keys in order: mode, position" in caplog.text


def test_ppo_fits_on_dict_observations(tmp_path):
    import lightning as L

    from rl_lightning.algorithms import PPO as PPOAlgorithm

    L.seed_everything(0)
    data = OnPolicyDataModule("tests.helpers.pipeline_envs:DictObs-v0", num_envs=2, frames_per_batch=32,
                              total_frames=64)
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    model = PPOAlgorithm(epochs=1, minibatch_size=32)
    trainer.fit(model, datamodule=data)
    assert data.collector.frames == 64 and model.spec.observation_shape == (7,)


@pytest.mark.parametrize(("env_id", "message"), [
    ("DictImage-v0", r"'tests.helpers.pipeline_envs:DictImage-v0': Dict observation space .*images: camera.*not supported yet"),
    ("TupleObs-v0", r"'tests.helpers.pipeline_envs:TupleObs-v0': observation space Tuple\(.*\(Tuple\) is not supported"),
])
def test_unsupported_observation_spaces_name_the_env_and_space(env_id, message):
    with pytest.raises(EnvError, match=message):
        OnPolicyDataModule(f"tests.helpers.pipeline_envs:{env_id}", num_envs=2, frames_per_batch=16)


def test_discrete_observations_become_one_hot():
    env = make_env("tests.helpers.pipeline_envs:DiscreteObs-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (5,) and obs.sum() == 1.0
    assert env.observation_space.dtype == np.float32 and obs.dtype == np.float32


def test_pixel_cartpole_overlay_gives_stacked_uint8_frames():
    config = yaml.safe_load((CONFIGS / "env" / "cartpole_pixels.yaml").read_text())
    options = config["data"]["init_args"]
    data = OnPolicyDataModule(options["env_id"], num_envs=1, frames_per_batch=8, wrappers=options["wrappers"])
    spec = data.env_spec
    assert spec.observation_shape == (4, 84, 84) and spec.observation_dtype == "uint8"
    env = data.make_env(1)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (1, 4, 84, 84) and obs.max() > obs.min()  # a drawn frame
    env.close()


def test_carracing_overlay_data_part():
    """The overlay's wrapper chain turns CarRacing's 96x96 RGB frames into uint8 (4, 84, 84).
    A stand-in with CarRacing's observation and action spaces takes its place (Box2D is an
    optional extra that the test install does not build)."""
    import tests.helpers.image_envs  # noqa: F401  (registers the stand-in)

    config = yaml.safe_load((CONFIGS / "env" / "carracing.yaml").read_text())
    options = config["data"]["init_args"]
    assert options["env_id"] == "CarRacing-v3" and options["env_kwargs"] == {"continuous": True}
    data = OnPolicyDataModule("tests.helpers.image_envs:PixelTarget-v0", num_envs=1, frames_per_batch=8,
                              env_kwargs={"size": 96, "channels": 3, "layout": "hwc"}, wrappers=options["wrappers"])
    spec = data.env_spec
    assert spec.observation_shape == (4, 84, 84) and spec.observation_dtype == "uint8"
    assert not spec.discrete


def _rollout(env, steps, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        obs, reward, term, trunc, _ = env.step(rng.integers(0, 2, env.num_envs))
        out.append((obs.copy(), reward.copy(), term.copy(), trunc.copy()))
    return out


def test_env_state_of_frame_stacked_pixels_is_captured_exactly():
    wrappers = [PIXELS[0], PIXELS[1], {"class_path": "gymnasium.wrappers.ResizeObservation",
                                       "init_args": {"shape": [16, 16]}}, PIXELS[3]]
    env = make_vector_env("CartPole-v1", 2, wrappers=wrappers)
    env.reset(seed=3)
    _rollout(env, 7, 0)
    state = capture_vector(env)
    assert state["exact"]
    torch.save(state, buf := __import__("io").BytesIO())  # checkpoint-safe: loads with weights_only
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    expected = _rollout(env, 30, 1)
    other = make_vector_env("CartPole-v1", 2, wrappers=wrappers)
    other.reset(seed=99)
    restore_vector(other, state)
    for (a, *ra), (b, *rb) in zip(expected, _rollout(other, 30, 1)):
        assert np.array_equal(a, b) and all(np.array_equal(x, y) for x, y in zip(ra, rb))


def test_vector_wrappers_apply_around_the_vector_env_and_their_state_is_captured():
    clip = [{"class_path": "gymnasium.wrappers.vector.ClipReward", "init_args": {"min_reward": -0.5, "max_reward": 0.5}}]
    data = OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=16, vector_wrappers=clip)
    env = data.make_env(2)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2, dtype=np.int64))
    assert np.all(reward == 0.5)  # CartPole's reward of 1, clipped
    state = capture_vector(env)
    assert state["exact"] and len(state["wrappers"]) == 2  # the NaN check and ClipReward
    env.close()
    with pytest.raises(ConfigError, match=r"data\.vector_wrappers\[0\]: .*is not a subclass of gymnasium\.vector"):
        OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=16,
                           vector_wrappers=[{"class_path": "gymnasium.wrappers.ClipReward"}])


def test_async_state_is_reported_inexact():
    env = make_vector_env("CartPole-v1", 2, vectorization="async")
    env.reset(seed=0)
    state = capture_vector(env)
    env.close()
    assert not state["exact"] and "subprocesses" in state["reason"]


RESUME = ["--config", PPO, "--data.num_envs", "2", "--data.frames_per_batch", "64", "--data.total_frames", "256",
          "--model.init_args.epochs", "1", "--model.init_args.minibatch_size", "64", "--evaluation.every_frames", "128",
          "--evaluation.episodes", "2", "--checkpoint.every_frames", "128", "--progress_bar.refresh_rate", "0"]


def _stop_and_resume(in_tmp, experiment, *extra):
    """256 frames in one go, and 128 frames, stop, resume to 256: the two run folders."""
    run_cli("fit", *RESUME, *extra, "--experiment", f"{experiment}-straight")
    run_cli("fit", *RESUME, *extra, "--experiment", experiment, "--trainer.callbacks+=rl_lightning.callbacks.FrameLimit",
            "--trainer.callbacks.frames", "128")
    run_cli("fit", *RESUME, *extra, "--experiment", experiment, "--ckpt_path", "last")
    (straight,) = (in_tmp / "experiments" / f"{experiment}-straight").iterdir()
    (resumed,) = (in_tmp / "experiments" / experiment).iterdir()
    return straight, resumed


def _metrics(run):
    from tests.test_cli import rows

    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows(run / "metrics.csv")]


def test_resume_with_wrappers_continues_exactly(in_tmp, recwarn):
    """FrameStackObservation's deque of frames and a user's wrapper are part of the
    checkpointed environment state: the resumed run equals the uninterrupted one."""
    wrappers = flow([{"class_path": APPEND, "init_args": {"value": 0.5}},
                     {"class_path": "gymnasium.wrappers.FrameStackObservation", "init_args": {"stack_size": 3}}])
    straight, resumed = _stop_and_resume(in_tmp, "stacked", "--data.wrappers", wrappers)
    assert not [w for w in recwarn if "inexactly" in str(w.message)]
    rows = _metrics(resumed)
    assert [r["frames"] for r in rows] == [r["frames"] for r in _metrics(straight)] and float(rows[-1]["frames"]) == 256
    assert rows == _metrics(straight)


def test_async_resume_falls_back_to_a_seeded_reset_with_one_warning(in_tmp):
    run_cli("fit", *RESUME, "--data.vectorization", "async", "--experiment", "async",
            "--trainer.callbacks+=rl_lightning.callbacks.FrameLimit", "--trainer.callbacks.frames", "128")
    with pytest.warns(UserWarning, match="resuming CartPole-v1 inexactly: .*subprocesses") as record:
        run_cli("fit", *RESUME, "--data.vectorization", "async", "--experiment", "async", "--ckpt_path", "last")
    assert sum("inexactly" in str(w.message) for w in record) == 1
    (run,) = (in_tmp / "experiments" / "async").iterdir()
    assert float(_metrics(run)[-1]["frames"]) == 256
