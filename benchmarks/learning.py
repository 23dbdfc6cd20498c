"""Learning over seeds: does a shipped config reach its target score within its budget?

    python benchmarks/learning.py --tasks ppo-lunarlander-normalized ppo-cartpole-pixels \
        [--seeds 1 2 3] [--jobs 2] [--frames N] [--options <fit options for every run>]

Each run is ``python -m rl_lightning fit <config files> --seed_everything <seed>`` with the
configs' own evaluation schedule (deterministic episodes every few thousand frames). A seed
reaches the target when an evaluation's mean return reaches it within the budget. Prints a
table (seeds reaching the target, frames and training seconds to it as medians over those
seeds, final evaluation per seed, wall seconds per run) and, per task, the return curve: the
mean, min and max over seeds of the evaluation return at each evaluation.
``benchmarks/offpolicy_learning.py`` is this script with the off-policy tasks.
``--jobs 2`` runs two seeds at once (one torch thread each).
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


def task(configs: list[str], target: float, algorithm: str, env: str, frames: int, *extra: str) -> dict:
    """A task: config files layered in order, extra command-line options, target and budget."""
    args = [a for config in configs for a in ("--config", f"configs/{config}")] + list(extra)
    return {"args": args, "target": target, "algorithm": algorithm, "env": env, "frames": frames}


TASKS = {
    "ppo-cartpole": task(["ppo.yaml"], 475.0, "PPO", "CartPole-v1", 100_000),
    "dqn-cartpole": task(["dqn.yaml"], 475.0, "DQN", "CartPole-v1", 50_000),
    "sac-pendulum": task(["sac.yaml"], -200.0, "SAC", "Pendulum-v1", 20_000),
    "td3-pendulum": task(["td3.yaml"], -200.0, "TD3", "Pendulum-v1", 20_000),
    "sac-lunarlander": task(["sac.yaml", "env/lunarlander_continuous.yaml"], 200.0, "SAC",
                            "LunarLanderContinuous-v3", 500_000),
    # observation normalization (RL Zoo's LunarLander PPO reaches 242 at 1M frames)
    "ppo-lunarlander-normalized": task(["ppo.yaml", "env/lunarlander.yaml"], 200.0, "PPO", "LunarLander-v3",
                                       1_000_000, "--data.normalize_observation", "true"),
    # pixels: rendered CartPole frames, 84x84 grayscale, 4 stacked, Nature CNN
    # (PPO: one shared CNN and Atari-style update settings instead of the vector config's 20 epochs)
    "ppo-cartpole-pixels": task(["ppo.yaml", "env/cartpole_pixels.yaml"], 475.0, "PPO", "CartPole-v1 pixels",
                                200_000, "--model.share_encoder", "true", "--model.epochs", "4",
                                "--model.learning_rate", "0.00025", "--model.entropy_coef", "0.01",
                                "--evaluation.every_frames", "10240"),
    "dqn-cartpole-pixels": task(["dqn.yaml", "env/cartpole_pixels.yaml"], 475.0, "DQN", "CartPole-v1 pixels",
                                100_000),
    # CarRacing from pixels, Beta policy (the overlay's) beside the Gaussian one
    "ppo-carracing-beta": task(["ppo.yaml", "env/carracing.yaml"], 900.0, "PPO", "CarRacing-v3 beta", 1_000_000),
    "ppo-carracing-normal": task(["ppo.yaml", "env/carracing.yaml"], 900.0, "PPO", "CarRacing-v3 normal",
                                 1_000_000, "--model.distribution", "normal"),
}


def run(spec: dict, seed: int, frames: int | None, extra: tuple[str, ...] = ()) -> dict:
    """One seeded fit of a task; its evaluations as ``(frames, return, training seconds)``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", *spec["args"], "--seed_everything", str(seed),
               "--trainer.enable_progress_bar", "false", "--experiments_dir", tmp, "--experiment", "bench",
               *(["--data.total_frames", str(frames)] if frames else []), *extra]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        wall = time.perf_counter() - start
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        with open(metrics) as f:
            rows = list(csv.DictReader(f))
    evals, elapsed, frames_now, eval_before = [], 0.0, 0.0, 0.0
    for row in rows:
        if row.get("time/fps"):
            # time/fps counts from the start of training, the evaluations of earlier rows included
            # (a row's own evaluation runs after it is computed): take those out, as the peers do
            frames_now = float(row["frames"])
            elapsed = frames_now / float(row["time/fps"]) - eval_before  # training seconds so far
        if row.get("eval/return_mean"):
            evals.append((int(float(row["frames"])), float(row["eval/return_mean"]), elapsed))
            eval_before += float(row.get("time/eval_s") or 0.0)
    hit = next((e for e in evals if e[1] >= spec["target"]), None)
    return {"seed": seed, "final": evals[-1][1], "best": max(e[1] for e in evals), "wall": wall,
            "frames_to_target": hit[0] if hit else None, "seconds_to_target": hit[2] if hit else None,
            "fps": frames_now / elapsed if elapsed > 0 else None, "curve": [(f, r) for f, r, _ in evals]}


def _median(runs: list[dict], key: str) -> str:
    return f"{statistics.median(r[key] for r in runs):.0f}" if runs else "-"


def report(tasks: dict, names: list[str], jobs: list[tuple[str, int]], results: list[dict], frames: int | None) -> None:
    """Print the per-run lines (stderr), the summary table and the return curves."""
    for (name, seed), r in zip(jobs, results):
        shown = {k: v for k, v in r.items() if k != "curve"}
        print(f"  {name} seed {seed}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in shown.items()), file=sys.stderr)
    print(f"\n{'task':32s} {'algo':5s} {'target':>7s} {'reached':>8s} {'frames to target':>17s} {'s to target':>12s} "
          f"{'final eval per seed':>22s} {'wall s/run':>10s}")
    for name in names:
        spec, runs = tasks[name], [r for (t, _), r in zip(jobs, results) if t == name]
        hits = [r for r in runs if r["frames_to_target"] is not None]
        finals = " / ".join(f"{r['final']:.0f}" for r in runs)
        print(f"{spec['env'] + ' (' + str(frames or spec['frames']) + ')':32s} {spec['algorithm']:5s} "
              f"{spec['target']:7.0f} {len(hits):>5d}/{len(runs)} {_median(hits, 'frames_to_target'):>17s} "
              f"{_median(hits, 'seconds_to_target'):>12s} {finals:>22s} {statistics.median(r['wall'] for r in runs):10.0f}")
    for name in names:
        runs = [r for (t, _), r in zip(jobs, results) if t == name]
        points = sorted({f for r in runs for f, _ in r["curve"]})
        print(f"\n{name}: evaluation return over {len(runs)} seeds (mean [min, max]) by frames")
        for f in points:
            values = [ret for r in runs for g, ret in r["curve"] if g == f]
            print(f"  {f:>9d}  {statistics.mean(values):8.1f}  [{min(values):.1f}, {max(values):.1f}]"
                  + (f"  ({len(values)} seeds)" if len(values) != len(runs) else ""))


def main(tasks: dict = TASKS, default: list[str] | None = None, doc: str = __doc__) -> None:
    """Run the chosen tasks over seeds and print the report."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(tasks), default=default or ["ppo-cartpole"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--frames", type=int, default=None, help="override every task's budget (shorter checks)")
    parser.add_argument("--options", nargs=argparse.REMAINDER, default=[],
                        help="further fit options for every run, e.g. --options --evaluation.every_frames 8192")
    args = parser.parse_args()
    jobs = [(name, seed) for name in args.tasks for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run(tasks[job[0]], job[1], args.frames, tuple(args.options)), jobs))
    report(tasks, args.tasks, jobs, results, args.frames)


if __name__ == "__main__":
    main()
