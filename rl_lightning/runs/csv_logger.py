"""``metrics.csv`` of a run, continued (never deleted) when the run resumes."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override


class RunCSVLogger(CSVLogger):
    """Writes ``<save_dir>/metrics.csv``, one row per logging step (``step`` = frames).

    Lightning's ``CSVLogger`` deletes an existing ``metrics.csv``; a resumed run must keep
    its history instead. This logger keeps the file, and at the first step the resumed run
    logs it drops the rows at or after that step (they were written after the checkpoint
    the run resumed from), so the file has no duplicated and no missing steps.

    Args:
        save_dir: the run folder.
    """

    def __init__(self, save_dir: str | os.PathLike) -> None:
        super().__init__(save_dir, name="", version="", flush_logs_every_n_steps=1)
        self._resumed_file = False
        path = Path(save_dir) / "metrics.csv"
        if rank_zero_only.rank == 0 and path.is_file():
            kept = path.with_suffix(".csv.resuming")
            os.replace(path, kept)
            _ = self.experiment  # creating the writer deletes metrics.csv: it is out of the way
            os.replace(kept, path)
            with open(path, newline="") as file:
                self.experiment.metrics_keys = list(csv.DictReader(file).fieldnames or [])
            self._resumed_file = True

    @override
    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._resumed_file and step is not None:
            self._drop_rows_from(step)
            self._resumed_file = False
        super().log_metrics(metrics, step)

    def _drop_rows_from(self, step: int) -> None:
        path = Path(self.experiment.metrics_file_path)
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            fields = reader.fieldnames or []
            rows = [row for row in reader if row.get("step") in (None, "") or float(row["step"]) < step]
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
