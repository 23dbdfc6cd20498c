"""``python -m rl_lightning reproduce <run>``: re-run a run's config and seed, compare metrics."""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

import yaml

from rl_lightning.errors import ConfigError
from rl_lightning.runs.folders import run_folder_in

#: Columns that legitimately differ between identical runs (wall-clock timings).
IGNORED_PREFIXES = ("time/",)


def read_metrics(path: Path) -> dict[float, dict[str, str]]:
    """``metrics.csv`` as ``{frames: row}``."""
    with open(path, newline="") as file:
        return {float(row["frames"]): row for row in csv.DictReader(file) if row.get("frames")}


def compare(original: Path, reproduced: Path, frames: int) -> tuple[int, list[str]]:
    """Compare two ``metrics.csv`` up to ``frames``: ``(cells compared, mismatches)``.

    Rows are matched by frame count; values must be equal exactly (as written, float repr);
    timing columns are excluded. Missing data is a mismatch: a row (frame count) that only one
    file holds, and a value that one file holds and the other leaves empty, are reported as
    such, so a re-run that stopped early or lost a column never counts as a match. The one
    exception: the evaluation that ends a re-run stopped before the original's budget
    (``eval/`` values in its last row) has no counterpart in the original.
    """
    a, b = read_metrics(original), read_metrics(reproduced)
    final_eval = max(b, default=None) if b and max(b) < max(a, default=0) else None
    compared, mismatches = 0, []
    for name, rows, other_name in (("original", a, "reproduction"), ("reproduction", b, "original")):
        other = b if rows is a else a
        missing = [step for step in sorted(rows) if step <= frames and step not in other]
        if missing:
            shown = ", ".join(f"{step:.0f}" for step in missing[:5]) + (" ..." if len(missing) > 5 else "")
            mismatches.append(f"{len(missing)} row(s) of the {name} missing from the {other_name}: frames {shown}")
    for step in sorted(set(a) & set(b)):
        if step > frames:
            continue
        for key in sorted(set(a[step]) | set(b[step])):
            if key.startswith(IGNORED_PREFIXES):
                continue
            value, other = _cell(a[step], key), _cell(b[step], key)
            if value is None and (other is None or (step == final_eval and key.startswith("eval/"))):
                continue
            if value is None or other is None:
                side = "reproduction" if other is None else "original"
                mismatches.append(f"frames {step:.0f}, {key}: missing from the {side} "
                                  f"(original {value or '-'}, reproduced {other or '-'})")
                continue
            compared += 1
            if not (value == other or (_float(value) == _float(other))):
                mismatches.append(f"frames {step:.0f}, {key}: original {value}, reproduced {other}")
    return compared, mismatches


def _cell(row: dict[str, str], key: str) -> str | None:
    """A row's value for ``key``; ``None`` when the column is absent or the cell empty."""
    value = row.get(key)
    return None if value in (None, "") else value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def main(argv: list[str]) -> None:
    """Re-run a run's config and seed for some frames (schedules unchanged: training stops
    early through the FrameLimit callback), then report whether the metrics match the
    original's; they match exactly on CPU. The re-run lives in ``<run>/reproductions/``.
    Exit code 1 when they differ."""
    parser = argparse.ArgumentParser(prog="python -m rl_lightning reproduce", description=main.__doc__)
    parser.add_argument("run", help="the run folder to reproduce")
    parser.add_argument("--frames", type=int, default=None, help="frames to re-run (default: the run's total_frames)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    config_path, metrics_path = run / "config.yaml", run / "metrics.csv"
    for path in (config_path, metrics_path):
        if not path.is_file():
            raise ConfigError(f"{args.run}: no {path.name}; reproduce needs a run folder.")
    config = yaml.safe_load(config_path.read_text())
    budget = int(config["data"]["init_args"]["total_frames"])
    frames = budget if args.frames is None else args.frames
    if frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}.")
    if frames > budget:
        raise ConfigError(
            f"--frames {frames} is beyond the run's budget of {budget} frames (data.total_frames in "
            f"{config_path}): the original has no metrics past it; pass --frames {budget} or less."
        )
    command = [
        sys.executable, "-m", "rl_lightning", "fit", "--config", str(config_path),
        "--trainer.callbacks+=rl_lightning.callbacks.FrameLimit", "--trainer.callbacks.frames", str(frames),
        "--experiments_dir", str(run), "--experiment", "reproductions", "--progress_bar.refresh_rate", "0",
    ]
    print(f"Re-running {run} for {frames} frames (seed {config.get('seed_everything')}) ...", flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stderr[-3000:])
        raise SystemExit(f"error: the re-run failed with exit code {result.returncode}")
    folder = run_folder_in(result.stdout)
    if folder is None:
        raise SystemExit("error: the re-run printed no run folder")
    compared, mismatches = compare(metrics_path, Path(folder) / "metrics.csv", frames)
    print(f"Reproduction: {folder}")
    if compared == 0:
        raise SystemExit("error: no metric rows in common to compare (is --frames smaller than one batch?)")
    if mismatches:
        print(f"DIFFERENT: {len(mismatches)} of {compared} values differ; first ones:")
        for line in mismatches[:10]:
            print(f"  {line}")
        raise SystemExit(1)
    last = max(step for step in read_metrics(metrics_path) if step <= frames)
    print(f"MATCH: all {compared} compared values are identical up to frame {last:.0f} (timings excluded).")
