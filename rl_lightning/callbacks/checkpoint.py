"""Checkpoints every N frames: ``last.ckpt`` and the best by evaluation return."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from rl_lightning.callbacks.schedule import FrameSchedule, Scheduled
from rl_lightning.errors import ConfigError


class FrameCheckpoint(Scheduled, ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` on a frame schedule.

    Every ``every_frames`` frames and when training ends, after the update of a collected
    batch is complete, it writes ``last.ckpt`` and, when ``monitor`` improved, ``best.ckpt``.
    Files are written to a temporary name and renamed, so neither is ever a partial file.

    Args:
        every_frames: frames between checkpoints.
        dirpath: folder of the checkpoints; the CLI sets it to ``<run>/checkpoints``.
        monitor: metric that picks the best checkpoint.
        mode: ``max`` or ``min`` of ``monitor``.
        filename: name of the best checkpoint (without ``.ckpt``).
        save_last: also write ``last.ckpt``.
    """

    def __init__(
        self,
        every_frames: int = 10_000,
        dirpath: str | None = None,
        monitor: str | None = "eval/return_mean",
        mode: str = "max",
        filename: str = "best",
        save_last: bool = True,
    ) -> None:
        if every_frames < 1:
            raise ConfigError(f"checkpoint.every_frames must be >= 1, got {every_frames}.")
        if mode not in ("max", "min"):
            raise ConfigError(f"checkpoint.mode must be max or min, got {mode!r}.")
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_last=save_last,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        self.every_frames = every_frames
        self.schedule = FrameSchedule(every_frames)

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.schedule.due(trainer, pl_module):
            return
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is None or self.monitor in candidates:
            self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: the frame schedule above also saves at the end of training."""

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: evaluation is the ``Evaluation`` callback, on the frame schedule."""

    @override
    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """Write to ``<file>.tmp`` then rename, so a crash never leaves a partial file. If
        writing fails (e.g. the disk is full), the temporary files are removed and the previous
        checkpoint stays as it was."""
        tmp = f"{filepath}.tmp"
        try:
            trainer.save_checkpoint(tmp, self.save_weights_only)
            if trainer.is_global_zero:
                os.replace(tmp, filepath)
        except BaseException:
            if trainer.is_global_zero:
                _remove_temporary_files(tmp)
            raise
        trainer.strategy.barrier()
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "next_frame": self.next_frame}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the schedule and the best-so-far, also when the run folder was moved or copied
        (Lightning would drop the best score then, and the next evaluation would replace
        ``best.ckpt`` with a worse model)."""
        saved_dir = state_dict.get("dirpath")
        if self.dirpath is not None and saved_dir is not None and saved_dir != self.dirpath:
            state_dict = self._moved_here(state_dict, saved_dir)
        super().load_state_dict(state_dict)
        self.next_frame = state_dict.get("next_frame", self.every_frames)

    def _moved_here(self, state_dict: dict[str, Any], saved_dir: str) -> dict[str, Any]:
        """The state of a checkpoint folder saved as ``saved_dir``, with its paths pointing to
        the same files in this folder (never to the old folder, whose files stay untouched)."""

        def here(path: str | None) -> str | None:
            if not path:
                return path
            relative = os.path.relpath(path, saved_dir)
            return path if relative.startswith("..") else os.path.join(self.dirpath, relative)

        state = {**state_dict, "dirpath": self.dirpath}
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            state[key] = here(state.get(key))
        state["best_k_models"] = {here(path): score for path, score in (state.get("best_k_models") or {}).items()}
        best = state.get("best_model_path")
        if best and not os.path.isfile(best):
            rank_zero_warn(
                f"{best} is missing from the resumed run's folder: the best-so-far score is dropped and the "
                "next evaluation writes a new best checkpoint."
            )
            state.update(best_model_score=None, best_model_path="", best_k_models={},
                         kth_best_model_path="", kth_value=self.kth_value)
        return state


def _remove_temporary_files(tmp: str) -> None:
    """Remove a checkpoint's temporary file and the temporary replay snapshot folders beside it."""
    Path(tmp).unlink(missing_ok=True)
    for folder in (Path(tmp).parent / "replay").glob(".*.tmp"):
        shutil.rmtree(folder, ignore_errors=True)
