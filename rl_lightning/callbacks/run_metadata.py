"""The callback that keeps ``<run>/metadata.json`` up to date during training."""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from rl_lightning.runs.metadata import (
    RUN_KIND,
    git_state,
    read_metadata,
    versions,
    write_metadata,
)


class RunMetadata(Callback):
    """Keeps ``<run>/metadata.json`` up to date: ``status`` (running, finished, failed,
    interrupted), start and end times, git commit and dirty flag of the working directory,
    package versions, host and pid of the training process, a ``heartbeat`` time (updated
    at every checkpoint), frames, and the final and best evaluation return.

    A resumed run keeps its first ``started`` time and counts ``resumes``. When the run fails
    and even ``metadata.json`` cannot be written (a full disk), it stays ``running`` with the
    pid of a process that is gone, which ``runs list`` shows as ``dead``.
    """

    def __init__(self, run_dir: str | os.PathLike, experiment: str, seed: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        self.seed = seed
        self._started = False  # set once training starts; a refused resume never does

    @property
    def started(self) -> bool:
        """Whether training started (``on_fit_start`` ran); a command refused before then
        leaves the run as it was."""
        return self._started

    def _update(self, trainer: L.Trainer, **fields: Any) -> None:
        if not trainer.is_global_zero:
            return
        data = read_metadata(self.run_dir)
        data.update(fields)
        write_metadata(self.run_dir, data)

    def _results(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any]:
        from rl_lightning.callbacks.evaluation import Evaluation

        evaluation = next((c for c in trainer.callbacks if isinstance(c, Evaluation)), None)
        out: dict[str, Any] = {"frames": int(getattr(pl_module, "frames", 0)), "ended": time.time()}
        if evaluation is not None and evaluation.last:
            out["final_eval_return"] = evaluation.last["eval/return_mean"]
            out["best_eval_return"] = evaluation.best
        return out

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = True
        previous = read_metadata(self.run_dir)
        datamodule = trainer.datamodule
        self._update(
            trainer,
            kind=RUN_KIND,
            run_id=self.run_dir.name,
            experiment=self.experiment,
            algorithm=type(pl_module).__name__,
            env_id=getattr(datamodule, "env_id", None),
            seed=self.seed,
            status="running",
            started=previous.get("started", time.time()),
            resumes=previous.get("resumes", -1) + 1,
            ended=None,
            host=socket.gethostname(),
            pid=os.getpid(),
            heartbeat=time.time(),
            platform=platform.platform(),
            python=platform.python_version(),
            world_size=trainer.world_size,
            git=git_state(),
            versions=versions(),
        )

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._started:
            self._update(trainer, heartbeat=time.time(), frames=int(getattr(pl_module, "frames", 0)))

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer, status="finished", **self._results(trainer, pl_module))

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not self._started:
            return  # refused before training (e.g. a checkpoint that does not fit): the run is as it was
        status = "interrupted" if isinstance(exception, (KeyboardInterrupt, SystemExit)) else "failed"
        try:
            self._update(trainer, status=status, error=f"{type(exception).__name__}: {exception}",
                         **self._results(trainer, pl_module))
        except OSError:
            pass  # best effort (e.g. the disk is full): the error the run failed with is the one reported
