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

    While the writer is created, the history is out of its way as ``metrics.csv.resuming``;
    if a process dies then, the next one takes that file as the history (rows a process
    wrote meanwhile into a new ``metrics.csv`` are added after it), so no row is lost.

    Args:
        save_dir: the run folder.
    """

    def __init__(self, save_dir: str | os.PathLike) -> None:
        super().__init__(save_dir, name="", version="", flush_logs_every_n_steps=1)
        self._resumed_file = False
        path = Path(save_dir) / "metrics.csv"
        kept = path.with_suffix(".csv.resuming")
        if rank_zero_only.rank == 0 and (path.is_file() or kept.is_file()):
            _move_history(path, kept)
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
        _write_rows(path, fields, rows)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_rows(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically (a temporary file, removed on failure, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _move_history(path: Path, kept: Path) -> None:
    """Leave the run's whole history in ``kept`` and nothing at ``path``; safe to repeat
    after a crash at any point.

    ``kept`` alone is the history (a process died before renaming it back). With both files,
    ``path`` holds rows of a process that started without that history: ``kept``'s rows
    before ``path``'s first step come first, then ``path``'s rows."""
    if not kept.is_file():
        os.replace(path, kept)
        return
    if not path.is_file():
        return
    old_fields, old_rows = _read_rows(kept)
    new_fields, new_rows = _read_rows(path)
    steps = [float(r["step"]) for r in new_rows if r.get("step") not in (None, "")]
    if steps:
        old_rows = [r for r in old_rows if r.get("step") in (None, "") or float(r["step"]) < min(steps)]
    fields = old_fields + [f for f in new_fields if f not in old_fields]
    _write_rows(kept, fields, old_rows + new_rows)
    path.unlink()
