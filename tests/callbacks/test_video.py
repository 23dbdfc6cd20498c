import csv

import imageio.v3 as iio
import lightning as L
import pytest

from rl_lightning.algorithms import PPO
from rl_lightning.callbacks import Evaluation, Video
from rl_lightning.data import OnPolicyDataModule


def test_fit_with_video_writes_mp4s_that_decode(tmp_path):
    L.seed_everything(0)
    data = OnPolicyDataModule("CartPole-v1", num_envs=4, frames_per_batch=128, total_frames=1024)
    evaluation = Evaluation(every_frames=512, episodes=2)
    video = Video(every_evaluations=1, fps=30, max_frames=60)
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[evaluation, video], default_root_dir=tmp_path)
    trainer.fit(PPO(epochs=1, minibatch_size=128), datamodule=data)
    names = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert names == ["frames-1024.mp4", "frames-512.mp4"]  # one per evaluation, named by frames
    for path in video.paths:
        frames = iio.imread(path)
        assert frames.ndim == 4 and frames.shape[-1] == 3
        assert 2 <= len(frames) <= 61  # reset frame + at most max_frames steps
    assert video.state_dict() == {"evaluations_seen": 2}


def _fit_with_video(experiment, env_id, *video_args):
    from tests.test_cli import PPO, run_cli

    run_cli("fit", "--config", PPO, "--data.env_id", env_id, "--data.total_frames", "1536",
            "--evaluation.every_frames", "512", "--evaluation.episodes", "2", "--checkpoint.every_frames", "512",
            "--progress_bar.refresh_rate", "0", "--experiment", experiment,
            "--trainer.callbacks+=rl_lightning.callbacks.Video", *video_args)


def _finished_with_final_checkpoint(run):
    import json

    import torch

    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["rl_lightning"]["frames"] == 1536


def test_an_env_that_cannot_render_never_fails_the_run(in_tmp):
    with pytest.warns(UserWarning, match="Video turned off for the rest of the run"):
        _fit_with_video("norender", "tests.helpers.envs:Countdown-v0")  # records only at the last evaluation
    (run,) = (in_tmp / "experiments" / "norender").iterdir()
    _finished_with_final_checkpoint(run)
    assert not list(run.glob("videos/*.mp4"))


def test_a_render_that_raises_mid_run_turns_videos_off_and_training_goes_on(in_tmp):
    with pytest.warns(UserWarning, match="recording a video failed .*the renderer crashed"):
        _fit_with_video("renderfails", "tests.helpers.envs:RenderFails-v0", "--trainer.callbacks.every_evaluations", "1")
    (run,) = (in_tmp / "experiments" / "renderfails").iterdir()
    _finished_with_final_checkpoint(run)
    assert [p.name for p in run.glob("videos/*.mp4")] == ["frames-512.mp4"]  # the one before the crash
    evaluations = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["eval/return_mean"]]
    assert [float(r["frames"]) for r in evaluations] == [512.0, 1024.0, 1536.0]  # evaluations went on
