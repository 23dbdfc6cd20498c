"""``rl_lightning.train`` / ``make_trainer``: what ``fit`` adds, from Python."""

import json

import pytest
import torch
import yaml

import rl_lightning
from rl_lightning.algorithms import DQN, PPO
from rl_lightning.callbacks import (
    Evaluation,
    FrameCheckpoint,
    FrameProgressBar,
    GracefulStop,
    NanGuard,
)
from rl_lightning.data import OnPolicyDataModule, ReplayDataModule
from rl_lightning.errors import ConfigError
from rl_lightning.runs.registry import find_runs
from tests.test_cli import run_cli


def tiny(total_frames=512):
    data = OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=128, total_frames=total_frames)
    return PPO(learning_rate=1e-3, epochs=2, minibatch_size=128), data


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_makes_a_run_folder_the_registry_lists_and_uses_one_thread(in_tmp, threads, capsys):
    torch.set_num_threads(2)
    import lightning as L

    L.seed_everything(3)
    model, data = tiny()
    trainer = rl_lightning.train(model, data, gradient_clip_val=0.5, progress_bar=False,
                                 evaluation={"every_frames": 256, "episodes": 1})
    assert torch.get_num_threads() == 1
    run = in_tmp / "experiments" / "ppo-CartPole-v1"
    (folder,) = run.iterdir()
    assert folder.name.endswith("-s3") and trainer.default_root_dir == str(folder.relative_to(in_tmp))
    assert {"config.yaml", "metadata.json", "metrics.csv", "checkpoints"} <= {p.name for p in folder.iterdir()}
    assert {p.name for p in (folder / "checkpoints").iterdir()} == {"last.ckpt", "best.ckpt"}
    out = capsys.readouterr().out
    assert f"Run folder: {trainer.default_root_dir}" in out and "Final evaluation: return" in out
    (found,) = find_runs()
    assert (found.algorithm, found.env_id, found.seed, found.status, found.frames) == ("PPO", "CartPole-v1", 3,
                                                                                     "finished", 512)
    assert found.final_eval_return is not None and len(found.series("eval/return_mean")) == 2
    assert found.value("model.learning_rate") == 1e-3 and found.value("trainer.gradient_clip_val") == 0.5
    assert found.value("data.init_args.total_frames") == 512
    assert not (folder / ".lock").exists()
    run_cli("runs", "list")
    assert "ppo-CartPole-v1" in capsys.readouterr().out
    # the recorded config is the CLI's: `fit --config <run>/config.yaml` accepts it
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["model"]["class_path"] == "rl_lightning.algorithms.ppo.PPO" and config["torch_threads"] == 1
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", str(folder / "config.yaml"), "--print_config")
    assert exit_.value.code == 0
    assert "learning_rate: 0.001" in capsys.readouterr().out

    # resume: the newest run of the experiment continues in its own folder
    model, data = tiny(total_frames=768)
    rl_lightning.train(model, data, ckpt_path="last", progress_bar=False, evaluation=False)
    assert [p.name for p in run.iterdir()] == [folder.name]
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["frames"], meta["resumes"], meta["status"]) == (768, 1, "finished")
    assert any(p.name.startswith("config.resume-") for p in folder.iterdir())


def test_make_trainer_adds_the_cli_callbacks_once(in_tmp, threads):
    model, data = tiny()
    mine = Evaluation(every_frames=128, episodes=1)
    trainer = rl_lightning.make_trainer(model, data, in_tmp / "runs" / "a", torch_threads=2, callbacks=[mine],
                                        checkpoint={"every_frames": 256}, log_every_frames=256)
    assert torch.get_num_threads() == 2 and model.log_every_frames == 256
    kinds = [type(c) for c in trainer.callbacks]
    for cls in (Evaluation, FrameCheckpoint, FrameProgressBar, NanGuard, GracefulStop):
        assert kinds.count(cls) == 1, cls
    assert next(c for c in trainer.callbacks if isinstance(c, Evaluation)) is mine
    checkpoint = next(c for c in trainer.callbacks if isinstance(c, FrameCheckpoint))
    assert checkpoint.every_frames == 256 and checkpoint.dirpath == str(in_tmp / "runs" / "a" / "checkpoints")
    assert trainer.max_epochs == -1 and trainer.num_sanity_val_steps == 0
    trainer = rl_lightning.make_trainer(model, data, in_tmp / "runs" / "b", evaluation=False, checkpoint=False,
                                        progress_bar=False)
    assert not any(isinstance(c, (Evaluation, FrameCheckpoint)) for c in trainer.callbacks)
    assert trainer.checkpoint_callback is None and trainer.progress_bar_callback is None


def test_bad_arguments_are_refused_before_any_folder_exists(in_tmp, threads):
    model, data = tiny()
    with pytest.raises(ConfigError, match="torch_threads"):
        rl_lightning.make_trainer(model, data, torch_threads=0)
    with pytest.raises(ConfigError, match="default_root_dir"):
        rl_lightning.make_trainer(model, data, default_root_dir="elsewhere")
    with pytest.raises(ConfigError, match="experiment '../x'"):
        rl_lightning.make_trainer(model, data, experiment="../x")
    with pytest.raises(ConfigError, match="gradient_clip_val"):
        rl_lightning.train(DQN(), ReplayDataModule("CartPole-v1", total_frames=256), gradient_clip_val=0.5)
    with pytest.raises(ConfigError, match="evaluation"):
        rl_lightning.make_trainer(model, data, evaluation=5)
    assert not (in_tmp / "experiments").exists()
