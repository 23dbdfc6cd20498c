"""Off-policy learning over seeds: do the shipped configs reach RL Zoo's scores in RL Zoo's budgets?

    python benchmarks/offpolicy_learning.py [--tasks dqn-cartpole sac-pendulum td3-pendulum]
        [--seeds 1 2 3] [--jobs 2]

Each run is ``python -m rl_lightning fit --config <config> --seed_everything <seed>`` with the
config's own evaluation schedule (deterministic episodes every few thousand frames). A seed
reaches the target when an evaluation's mean return reaches it within the budget. Prints a
table: task, algorithm, seeds reaching the target, frames and wall time to the target
(medians over the seeds that reach it), final evaluation per seed, and wall time per run.
``sac-lunarlander`` (LunarLanderContinuous-v3, 500k frames, hours on two cores) runs only
when named. ``--jobs 2`` runs two seeds at once (one torch thread each).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = {
    "dqn-cartpole": {"args": ["--config", "configs/dqn.yaml"], "target": 475.0, "algorithm": "DQN",
                     "env": "CartPole-v1", "frames": 50_000},
    "sac-pendulum": {"args": ["--config", "configs/sac.yaml"], "target": -200.0, "algorithm": "SAC",
                     "env": "Pendulum-v1", "frames": 20_000},
    "td3-pendulum": {"args": ["--config", "configs/td3.yaml"], "target": -200.0, "algorithm": "TD3",
                     "env": "Pendulum-v1", "frames": 20_000},
    "sac-lunarlander": {"args": ["--config", "configs/sac.yaml", "--config", "configs/env/lunarlander_continuous.yaml"],
                        "target": 200.0, "algorithm": "SAC", "env": "LunarLanderContinuous-v3", "frames": 500_000},
}


def run(task: str, seed: int, frames: int | None) -> dict:
    spec = TASKS[task]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", *spec["args"], "--seed_everything", str(seed),
               "--trainer.enable_progress_bar", "false", "--experiments_dir", tmp, "--experiment", "bench",
               *(["--data.total_frames", str(frames)] if frames else [])]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        rows = list(csv.DictReader(open(metrics)))
    evals, elapsed = [], 0.0
    for row in rows:
        if row.get("time/fps"):
            elapsed = float(row["frames"]) / float(row["time/fps"])  # training seconds so far
        if row.get("eval/return_mean"):
            evals.append((int(float(row["frames"])), float(row["eval/return_mean"]), elapsed))
    hit = next((e for e in evals if e[1] >= spec["target"]), None)
    return {"seed": seed, "final": evals[-1][1], "best": max(e[1] for e in evals), "wall": wall,
            "frames_to_target": hit[0] if hit else None, "seconds_to_target": hit[2] if hit else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["dqn-cartpole", "sac-pendulum", "td3-pendulum"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--frames", type=int, default=None, help="override every task's budget (quick checks)")
    args = parser.parse_args()
    jobs = [(task, seed) for task in args.tasks for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run(job[0], job[1], args.frames), jobs))
    for (task, seed), r in zip(jobs, results):
        print(f"  {task} seed {seed}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
              file=sys.stderr)
    print(f"\n{'task':26s} {'algo':5s} {'target':>7s} {'reached':>8s} {'frames to target':>17s} {'s to target':>12s} "
          f"{'final eval per seed':>22s} {'wall s/run':>10s}")
    for task in args.tasks:
        spec, runs = TASKS[task], [r for (t, _), r in zip(jobs, results) if t == task]
        hits = [r for r in runs if r["frames_to_target"] is not None]
        med = lambda key: f"{statistics.median(r[key] for r in hits):.0f}" if hits else "-"  # noqa: E731
        finals = " / ".join(f"{r['final']:.0f}" for r in runs)
        print(f"{spec['env'] + ' (' + str(args.frames or spec['frames']) + ')':26s} {spec['algorithm']:5s} "
              f"{spec['target']:7.0f} {len(hits):>5d}/{len(runs)} {med('frames_to_target'):>17s} "
              f"{med('seconds_to_target'):>12s} {finals:>22s} {statistics.median(r['wall'] for r in runs):10.0f}")


if __name__ == "__main__":
    main()
