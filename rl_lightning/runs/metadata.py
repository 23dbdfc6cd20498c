"""``<run>/metadata.json``: what ran, where, from which code, how it ended."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

PACKAGES = ("rl_lightning", "torch", "lightning", "torchrl", "tensordict", "gymnasium", "numpy")
FILENAME = "metadata.json"


def git_state(cwd: str | os.PathLike = ".") -> dict[str, Any]:
    """Commit and dirty flag of the git checkout at ``cwd`` (``None`` outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_metadata(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's metadata (an empty dict if the file is missing or unreadable)."""
    try:
        return json.loads((Path(run_dir) / FILENAME).read_text())
    except (OSError, ValueError):
        return {}


def write_metadata(run_dir: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write atomically (temporary file + rename)."""
    path = Path(run_dir) / FILENAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


class RunMetadata(Callback):
    """Keeps ``<run>/metadata.json`` up to date: ``status`` (running, finished, failed,
    interrupted), start and end times, git commit and dirty flag of the working directory,
    package versions, host, frames, and the final and best evaluation return.

    A resumed run keeps its first ``started`` time and counts ``resumes``.
    """

    def __init__(self, run_dir: str | os.PathLike, experiment: str, seed: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        self.seed = seed

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
        previous = read_metadata(self.run_dir)
        datamodule = trainer.datamodule
        self._update(
            trainer,
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
            platform=platform.platform(),
            python=platform.python_version(),
            world_size=trainer.world_size,
            git=git_state(),
            versions=versions(),
        )

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer, status="finished", **self._results(trainer, pl_module))

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        status = "interrupted" if isinstance(exception, (KeyboardInterrupt, SystemExit)) else "failed"
        self._update(trainer, status=status, error=f"{type(exception).__name__}: {exception}",
                     **self._results(trainer, pl_module))
