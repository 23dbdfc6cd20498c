import imageio.v3 as iio
import lightning as L

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
