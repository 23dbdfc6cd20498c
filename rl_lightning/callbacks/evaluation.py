"""Periodic deterministic evaluation on environments separate from training."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from rl_lightning.algorithms.base import RLModule
from rl_lightning.callbacks.schedule import FrameSchedule, Scheduled
from rl_lightning.episodes import EpisodeSettings, evaluate, summarize
from rl_lightning.errors import MAX_SEED, ConfigError, check_range


class Evaluation(Scheduled, Callback):
    """Every ``every_frames`` frames, and when training ends, play ``episodes`` episodes with
    the deterministic policy on separate environments (the data module's pipeline: same
    wrappers and vectorization as training) and log ``eval/return_mean``,
    ``eval/return_std``, ``eval/return_min``, ``eval/return_max``, ``eval/length_mean`` and
    ``time/eval_s`` (the seconds it took: training time is the run's time less these).

    Evaluation runs on rank zero; the result is broadcast so every rank sees the same metric.
    Afterwards, callbacks that define ``on_evaluation_end(trainer, pl_module, evaluation)``
    (such as ``Video``) are called.

    Args:
        every_frames: frames between evaluations; 0 evaluates only at the end.
        episodes: episodes per evaluation (one environment each).
        deterministic: act with the most likely action instead of sampling.
        seed: seed of the evaluation environments (episode ``i`` uses ``seed + i``), >= 0; ``None``
            is the run's seed + 1,000,000, the same at every evaluation so results compare.
    """

    def __init__(
        self, every_frames: int = 10_000, episodes: int = 10, deterministic: bool = True, seed: int | None = None
    ) -> None:
        if every_frames < 0 or episodes < 1:
            raise ConfigError(
                f"evaluation.every_frames must be >= 0 and evaluation.episodes >= 1, got {every_frames}, {episodes}."
            )
        check_range("evaluation.seed", seed, 0, MAX_SEED - 1_000_000, optional=True)
        self.every_frames = every_frames
        self.episodes = episodes
        self.deterministic = deterministic
        self.seed = seed
        self.schedule = FrameSchedule(every_frames)
        self.best = -math.inf
        self.last: dict[str, float] = {}
        #: evaluations run so far (other callbacks, e.g. Video, follow it)
        self.count = 0
        self._env = None

    @property
    def settings(self) -> EpisodeSettings:
        """How its episodes are played (episodes, seed, deterministic)."""
        return EpisodeSettings(self.episodes, self.deterministic, self.seed)

    def seed_for(self, trainer: L.Trainer) -> int:
        """Seed of the first evaluation episode."""
        return self.settings.seed_for(trainer.datamodule)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Hand the module these settings, which ``validate`` and ``test`` play with."""
        if hasattr(pl_module, "evaluation_settings"):
            pl_module.evaluation_settings = self.settings

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: RLModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.schedule.due(trainer, pl_module):
            self.run(trainer, pl_module)

    def run(self, trainer: L.Trainer, pl_module: RLModule) -> dict[str, float]:
        """Evaluate now, log and return the metrics."""
        metrics = None
        if trainer.is_global_zero:
            start = time.perf_counter()
            if self._env is None:
                self._env = trainer.datamodule.make_env(self.episodes)
            metrics = summarize(evaluate(pl_module, self._env, self.episodes, self.seed_for(trainer), self.deterministic))
            metrics["time/eval_s"] = time.perf_counter() - start
        metrics = trainer.strategy.broadcast(metrics, src=0)
        self.best = max(self.best, metrics["eval/return_mean"])
        self.last = metrics
        self.count += 1
        pl_module.log_metrics(metrics)
        for callback in trainer.callbacks:  # e.g. Video records at evaluations
            if callback is not self and hasattr(callback, "on_evaluation_end"):
                callback.on_evaluation_end(trainer, pl_module, self)
        return metrics

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"next_frame": self.next_frame, "best": self.best, "last": dict(self.last), "count": self.count}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.next_frame = state_dict["next_frame"]
        self.best = state_dict["best"]
        self.last = dict(state_dict["last"])
        self.count = state_dict.get("count", 0)
