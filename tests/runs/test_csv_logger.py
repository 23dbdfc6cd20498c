"""``metrics.csv`` history kept across resumes, also when a process dies while it is moved aside."""

import csv

import pytest

from rl_lightning.runs import csv_logger
from rl_lightning.runs.csv_logger import RunCSVLogger


class Crash(BaseException):
    """Stands for the process dying at this point (kill -9 in the middle of a rename)."""


def write_history(path, steps):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["frames", "step", "train/loss"])
        writer.writeheader()
        writer.writerows({"frames": s, "step": s, "train/loss": s / 10} for s in steps)


def steps(path):
    with open(path, newline="") as file:
        return [int(float(row["step"])) for row in csv.DictReader(file)]


def resume_and_log(run, step):
    """What a resumed fit does: create the logger, log the first row after its checkpoint."""
    logger = RunCSVLogger(run)
    logger.log_metrics({"frames": step, "train/loss": 0.5}, step=step)
    logger.save()


def crash_at_replace(monkeypatch, call):
    """Make the ``call``-th ``os.replace`` of the logger kill the process instead of renaming."""
    real, count = csv_logger.os.replace, []

    def replace(src, dst):
        count.append(src)
        if len(count) == call:
            raise Crash
        return real(src, dst)

    monkeypatch.setattr(csv_logger.os, "replace", replace)


@pytest.mark.parametrize("call", [1, 2], ids=["before-moving-aside", "before-moving-back"])
def test_a_crash_while_the_history_is_moved_aside_loses_no_row(tmp_path, monkeypatch, call):
    write_history(tmp_path / "metrics.csv", [256, 512, 768, 1024])
    crash_at_replace(monkeypatch, call)
    with pytest.raises(Crash):
        RunCSVLogger(tmp_path)
    monkeypatch.undo()
    if call == 2:  # died with the history out of the way: only metrics.csv.resuming is left
        assert not (tmp_path / "metrics.csv").exists() and (tmp_path / "metrics.csv.resuming").is_file()
    resume_and_log(tmp_path, 768)  # resumed from the checkpoint at 512 frames
    assert steps(tmp_path / "metrics.csv") == [256, 512, 768]
    assert not (tmp_path / "metrics.csv.resuming").exists()
    resume_and_log(tmp_path, 1024)  # and again: the recovery does not repeat anything
    assert steps(tmp_path / "metrics.csv") == [256, 512, 768, 1024]


def test_an_orphaned_history_beside_a_new_metrics_file_is_merged(tmp_path):
    """A process that started fresh beside an orphaned ``metrics.csv.resuming`` (as before this
    recovery existed) wrote rows from its checkpoint on: the older rows come first."""
    write_history(tmp_path / "metrics.csv.resuming", [256, 512, 768, 1024])
    write_history(tmp_path / "metrics.csv", [768, 1024, 1280])
    resume_and_log(tmp_path, 1536)
    assert steps(tmp_path / "metrics.csv") == [256, 512, 768, 1024, 1280, 1536]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_a_crash_while_merging_or_dropping_rows_repeats_safely(tmp_path, monkeypatch):
    write_history(tmp_path / "metrics.csv.resuming", [256, 512, 768])
    write_history(tmp_path / "metrics.csv", [768, 1024])
    crash_at_replace(monkeypatch, 1)  # dies before the merged history replaces the old one
    with pytest.raises(Crash):
        RunCSVLogger(tmp_path)
    monkeypatch.undo()
    assert not (tmp_path / "metrics.csv.resuming.tmp").exists()
    logger = RunCSVLogger(tmp_path)
    crash_at_replace(monkeypatch, 1)  # dies before the rows after the checkpoint are dropped
    with pytest.raises(Crash):
        logger.log_metrics({"frames": 1024, "train/loss": 0.5}, step=1024)
    monkeypatch.undo()
    assert steps(tmp_path / "metrics.csv") == [256, 512, 768, 1024] and not (tmp_path / "metrics.csv.tmp").exists()
    resume_and_log(tmp_path, 1024)
    assert steps(tmp_path / "metrics.csv") == [256, 512, 768, 1024]
