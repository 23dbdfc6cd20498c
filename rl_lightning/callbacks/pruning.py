"""Optuna pruning of a run from its evaluations (added by ``python -m rl_lightning sweep``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from rl_lightning.runs.sweep_space import STEP_STRIDE, open_storage

__all__ = ["OptunaPruning", "STEP_STRIDE", "report_step"]


def report_step(step_offset: int, frames: int, every_frames: int) -> int:
    """The step an evaluation is reported at: ``step_offset`` plus the scheduled evaluation
    frame (``frames`` rounded down to a multiple of ``every_frames``), so trials with other
    batch sizes still report at the same steps."""
    return step_offset + (frames // every_frames * every_frames if every_frames > 0 else frames)


class OptunaPruning(Callback):
    """After each evaluation, report the metric to the running Optuna trial and stop training
    when the median pruner says the trial falls behind.

    The trial lives in a study that another process (the sweep) asked it from; this callback
    opens the same storage. On pruning it sets ``trainer.should_stop`` (the run ends normally
    after this batch) and writes a JSON ``marker`` file ``{"step", "frames", "value"}`` that the
    sweep reads to tell the trial it was pruned.

    Args:
        storage: SQLAlchemy URL of the study's storage.
        study_name: name of the study.
        trial_number: the trial's number in the study (``trial.number``).
        step_offset: added to every reported step (``seed index * STEP_STRIDE``), so a trial's
            seeds report at distinct steps and trials compare seed by seed.
        metric: the evaluation metric reported.
        n_startup_trials: no pruning until this many trials completed.
        n_warmup_frames: no pruning in the first frames of a run.
        marker: file written when the run is pruned.
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_number: int,
        step_offset: int = 0,
        metric: str = "eval/return_mean",
        n_startup_trials: int = 5,
        n_warmup_frames: int = 0,
        marker: str | None = None,
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.trial_number = trial_number
        self.step_offset = step_offset
        self.metric = metric
        self.n_startup_trials = n_startup_trials
        self.n_warmup_frames = n_warmup_frames
        self.marker = marker
        self.pruned_at: int | None = None
        self._trial = None
        self._last_step = -1

    def trial(self):
        """The Optuna trial (opened on first use)."""
        if self._trial is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = open_storage(self.storage)
            study = optuna.load_study(
                study_name=self.study_name,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=0),
            )
            # the storage id of the trial, through the storage's public interface
            study_id = storage.get_study_id_from_name(self.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.trial_number)
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def on_evaluation_end(self, trainer: L.Trainer, pl_module: Any, evaluation: Any) -> None:
        """Report the evaluation; prune (stop training) if the trial is behind the median."""
        value = evaluation.last.get(self.metric)
        frames = int(pl_module.frames)
        step = report_step(self.step_offset, frames, evaluation.every_frames)
        prune = False
        # the final evaluation can fall on an already reported step: report each step once
        if trainer.is_global_zero and value is not None and math.isfinite(value) and step > self._last_step:
            self._last_step = step
            trial = self.trial()
            trial.report(float(value), step)
            prune = frames >= self.n_warmup_frames and trial.should_prune()
        if not trainer.strategy.broadcast(prune, src=0):
            return
        self.pruned_at = step
        trainer.should_stop = True
        if self.marker and trainer.is_global_zero:
            path = Path(self.marker)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"step": step, "frames": frames, "value": float(value)}))
            os.replace(tmp, path)
            print(f"Pruned by Optuna at {frames} frames ({self.metric} {value:.1f} below the median).", flush=True)
