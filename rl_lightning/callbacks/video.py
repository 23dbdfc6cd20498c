"""Videos of the agent: mp4 files in the run folder, sent to TensorBoard and W&B."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
from typing_extensions import override

from rl_lightning.algorithms.base import RLModule
from rl_lightning.callbacks.optional import OptionalCallback
from rl_lightning.envs.suites import render_hint
from rl_lightning.episodes import record_episode
from rl_lightning.errors import ConfigError


def write_mp4(frames: list[np.ndarray], path: str | os.PathLike, fps: int = 30) -> Path:
    """Encode RGB frames to an H.264 mp4 (ffmpeg bundled by imageio-ffmpeg)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=6) as writer:
        for frame in frames:
            writer.append_data(np.ascontiguousarray(frame))
    os.replace(tmp, path)
    return path


def gif_bytes(frames: list[np.ndarray], fps: int, max_frames: int = 150, scale: int = 2) -> bytes:
    """A small animated GIF (every n-th frame, downscaled) for TensorBoard's image tab."""
    import imageio.v3 as iio

    step = max(1, len(frames) // max_frames)
    small = [np.ascontiguousarray(f[::scale, ::scale]) for f in frames[::step]]
    buffer = io.BytesIO()
    iio.imwrite(buffer, small, extension=".gif", duration=1000 * step / fps, loop=0)
    return buffer.getvalue()


def send_to_loggers(trainer: L.Trainer, tag: str, path: Path, frames: list[np.ndarray], fps: int, step: int) -> None:
    """Give the video to the active loggers that show videos (TensorBoard, W&B)."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_video(tag, videos=[str(path)], step=None, fps=[fps], format=["mp4"])
        elif isinstance(logger, TensorBoardLogger):
            from tensorboard.compat.proto.summary_pb2 import Summary

            height, width = frames[0][::2, ::2].shape[:2]
            image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
            logger.experiment._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


class Video(OptionalCallback):
    """Records an episode of the deterministic policy at every ``every_evaluations``-th
    evaluation of the ``Evaluation`` callback (and at the last one) as ``<run>/videos/frames-<N>.mp4`` and sends it
    to the active loggers (TensorBoard: animated GIF in the images tab; W&B: ``wandb.Video``).
    The environment is the data module's pipeline (its ``wrappers`` too), made with
    ``render_mode=rgb_array``; the video shows ``render()``, not the observations.
    Runs on rank zero only; rendering is headless (``rgb_array``; MuJoCo follows ``MUJOCO_GL``,
    ``egl`` or ``osmesa``, chosen when unset: see :mod:`rl_lightning.envs.suites`). A video is a
    bonus: an environment that cannot render, or any other error while recording, logs a
    warning and turns videos off; it never fails the run.
    The video of the last evaluation is recorded after the final checkpoint is written.

    Args:
        every_evaluations: record at every M-th evaluation of the ``Evaluation`` callback.
        fps: frames per second of the video.
        seed: seed of the recorded episode; ``None`` is the first evaluation episode's seed.
        max_frames: longest episode recorded.
    """

    def __init__(self, every_evaluations: int = 5, fps: int = 30, seed: int | None = None, max_frames: int = 2_000) -> None:
        if every_evaluations < 1:
            raise ConfigError(f"video.every_evaluations must be >= 1, got {every_evaluations}.")
        self.every_evaluations = every_evaluations
        self.fps = fps
        self.seed = seed
        self.max_frames = max_frames
        self.evaluations_seen = 0
        self.paths: list[Path] = []
        self._env: gym.Env | None = None
        self._final_seed: int | None = None

    def _evaluation(self, trainer: L.Trainer):
        from rl_lightning.callbacks.evaluation import Evaluation

        return next((c for c in trainer.callbacks if isinstance(c, Evaluation)), None)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self._evaluation(trainer) is None:
            raise ConfigError("the Video callback records at evaluations: add the Evaluation callback too.")

    def on_evaluation_end(self, trainer: L.Trainer, pl_module: RLModule, evaluation: Any) -> None:
        """Called by the ``Evaluation`` callback after each evaluation."""
        self.evaluations_seen = evaluation.count
        if self.disabled:
            return
        seed = self.seed if self.seed is not None else evaluation.seed_for(trainer)
        if trainer.should_stop:  # the last evaluation: record after the final checkpoint (on_train_end)
            self._final_seed = seed
        elif self.evaluations_seen % self.every_evaluations == 0:
            self.optional("recording a video", self.record, trainer, pl_module, seed)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed, self._final_seed = self._final_seed, None
        if seed is not None:
            self.optional("recording the final video", self.record, trainer, pl_module, seed)

    def record(self, trainer: L.Trainer, pl_module: RLModule, seed: int) -> Path | None:
        """Record one episode now (rank zero) and return the mp4's path."""
        if not trainer.is_global_zero:
            return None
        datamodule = trainer.datamodule
        try:
            if self._env is None:
                self._env = datamodule.make_single_env("rgb_array")  # the run's pipeline: same wrappers
            frames, _, _ = record_episode(pl_module, self._env, seed, max_frames=self.max_frames)
        except Exception as err:
            hint = render_hint(err)
            if hint is None:
                raise
            raise RuntimeError(hint) from err
        if not frames:
            raise RuntimeError(f"{datamodule.env_id!r} rendered no rgb_array frames")
        path = write_mp4(frames, Path(trainer.default_root_dir) / "videos" / f"frames-{pl_module.frames}.mp4", self.fps)
        self.paths.append(path)
        send_to_loggers(trainer, "eval/video", path, frames, self.fps, pl_module.frames)
        return path

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"evaluations_seen": self.evaluations_seen}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.evaluations_seen = state_dict["evaluations_seen"]
