"""Frames/s of PPO on CartPole-v1 with 1 and 2 CPU processes (DDP, gloo), same total budget.

    python benchmarks/ddp_scaling.py [--frames 100000] [--repeats 2]

Runs ``python -m rl_lightning fit --config configs/ppo.yaml`` with ``--trainer.devices 1``
and with ``--trainer.devices 2 --trainer.strategy ddp`` (each process collects its own
``frames_per_batch`` and the budget counts both), alternating, and prints the training
frames/s (``time/fps`` of the last row: start-up excluded) and the final evaluation.
Each process uses one torch thread, so 2 processes use both of 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(devices: int, frames: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", "configs/ppo.yaml",
               "--data.total_frames", str(frames), "--evaluation.every_frames", "0",
               "--trainer.enable_progress_bar", "false", "--experiments_dir", tmp, "--experiment", "bench",
               "--trainer.accelerator", "cpu", "--trainer.devices", str(devices)]
        if devices > 1:
            cmd += ["--trainer.strategy", "ddp"]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        rows = list(csv.DictReader(open(metrics)))
    fps = [float(r["time/fps"]) for r in rows if r.get("time/fps")][-1]
    final = [float(r["eval/return_mean"]) for r in rows if r.get("eval/return_mean")][-1]
    return fps, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for devices in (1, 2):
            results[devices].append(run(devices, args.frames))
            print(f"  devices {devices}: {results[devices][-1][0]:.0f} frames/s, final eval {results[devices][-1][1]:.0f}",
                  file=sys.stderr, flush=True)
    print(f"PPO CartPole-v1, {args.frames} frames, {args.repeats} runs each (median frames/s)")
    for devices, runs in results.items():
        print(f"{devices} process{'es' if devices > 1 else '  '}: {statistics.median(r[0] for r in runs):7.0f} frames/s, "
              f"final eval {' / '.join(f'{r[1]:.0f}' for r in runs)}")
    print(f"2 / 1: x{statistics.median(r[0] for r in results[2]) / statistics.median(r[0] for r in results[1]):.2f}")


if __name__ == "__main__":
    main()
