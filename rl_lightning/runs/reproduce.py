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

#: Columns that legitimately differ between identical runs (wall-clock timings).
IGNORED_PREFIXES = ("time/",)


def read_metrics(path: Path) -> dict[float, dict[str, str]]:
    """``metrics.csv`` as ``{frames: row}``."""
    with open(path, newline="") as file:
        return {float(row["frames"]): row for row in csv.DictReader(file) if row.get("frames")}


def compare(original: Path, reproduced: Path, frames: int) -> tuple[int, list[str]]:
    """Compare two ``metrics.csv`` up to ``frames``: ``(cells compared, mismatches)``.

    Rows are matched by frame count; a cell is compared when both files hold a value for it
    (timing columns excluded); values must be equal exactly (as written, float repr).
    """
    a, b = read_metrics(original), read_metrics(reproduced)
    compared, mismatches = 0, []
    for step in sorted(set(a) & set(b)):
        if step > frames:
            continue
        for key, value in a[step].items():
            other = b[step].get(key)
            if key.startswith(IGNORED_PREFIXES) or value in (None, "") or other in (None, ""):
                continue
            compared += 1
            if not (value == other or (_float(value) == _float(other))):
                mismatches.append(f"frames {step:.0f}, {key}: original {value}, reproduced {other}")
    return compared, mismatches


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
    frames = args.frames or int(config["data"]["init_args"]["total_frames"])
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
    folder = next(line.split("Run folder: ", 1)[1] for line in result.stdout.splitlines() if line.startswith("Run folder: "))
    compared, mismatches = compare(metrics_path, Path(folder) / "metrics.csv", frames)
    print(f"Reproduction: {folder}")
    if compared == 0:
        raise SystemExit("error: no metric rows in common to compare (is --frames smaller than one batch?)")
    if mismatches:
        print(f"DIFFERENT: {len(mismatches)} of {compared} values differ; first ones:")
        for line in mismatches[:10]:
            print(f"  {line}")
        raise SystemExit(1)
    print(f"MATCH: all {compared} compared values are identical (timings excluded).")
