"""Off-policy speed side by side with Stable-Baselines3, same hyperparameters, one run.

    python benchmarks/offpolicy_speed.py [--tasks dqn-cartpole sac-pendulum] [--seeds 1 2 3] [--frames N]

Tasks (RL Zoo settings on both sides; ``configs/dqn.yaml``, ``configs/sac.yaml``,
``configs/td3.yaml``):

* ``dqn-cartpole``: CartPole-v1, 256-frame collections each followed by 128 updates of 64;
* ``sac-pendulum``: Pendulum-v1, one update of 256 per frame;
* ``td3-pendulum``: Pendulum-v1, one update of 256 per frame after 10k random frames.

Each run is its own process; the methods alternate per seed so machine noise hits both.
rl_lightning runs ``python -m rl_lightning fit`` (checkpoints and CSV logging on, evaluation
only at the end); Stable-Baselines3 runs ``peers/sb3_offpolicy.py`` (``pip install -e .[bench]``)
with torch's default thread count unless ``--sb3-threads``. Reported: training frames/s
(without start-up and the final evaluation) and the final evaluation (10 deterministic
episodes), medians over seeds, and the ratio rl_lightning / SB3.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = {
    "dqn-cartpole": {"config": "configs/dqn.yaml", "frames": 50_000},
    "sac-pendulum": {"config": "configs/sac.yaml", "frames": 20_000},
    "td3-pendulum": {"config": "configs/td3.yaml", "frames": 20_000},
}


def run_rl_lightning(task: str, seed: int, frames: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", TASKS[task]["config"],
               "--seed_everything", str(seed), "--data.total_frames", str(frames), "--torch_threads", str(threads),
               "--evaluation.every_frames", "0", "--trainer.enable_progress_bar", "false",
               "--experiments_dir", tmp, "--experiment", "bench"]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        rows = list(csv.DictReader(open(metrics)))
    fps = [float(r["time/fps"]) for r in rows if r.get("time/fps")]
    evals = [float(r["eval/return_mean"]) for r in rows if r.get("eval/return_mean")]
    return {"fps": fps[-1], "final_eval": evals[-1], "threads": threads}


def run_sb3(task: str, seed: int, frames: int, threads: int | None) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers" / "sb3_offpolicy.py"), "--task", task,
           "--seed", str(seed), "--frames", str(frames), *(["--threads", str(threads)] if threads else [])]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {"fps": lines[-1]["fps"], "final_eval": lines[-2]["eval"], "threads": lines[-1]["threads"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["dqn-cartpole", "sac-pendulum"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--frames", type=int, default=None, help="default: each task's RL Zoo budget")
    parser.add_argument("--threads", type=int, default=1, help="rl_lightning's --torch_threads")
    parser.add_argument("--sb3-threads", type=int, default=None, help="default: torch's own choice")
    args = parser.parse_args()
    print(f"{'task':13s} {'method':12s} {'frames/s':>9s} {'final eval':>11s} {'runs':>5s} {'threads':>8s}")
    for task in args.tasks:
        frames = args.frames or TASKS[task]["frames"]
        results: dict[str, list[dict]] = {"rl_lightning": [], "sb3": []}
        for seed in args.seeds:
            results["rl_lightning"].append(run_rl_lightning(task, seed, frames, args.threads))
            results["sb3"].append(run_sb3(task, seed, frames, args.sb3_threads))
            for method, runs in results.items():
                print(f"  seed {seed} {task} {method}: " + json.dumps({k: round(v, 1) for k, v in runs[-1].items()}),
                      file=sys.stderr, flush=True)
        medians = {}
        for method, runs in results.items():
            medians[method] = statistics.median(r["fps"] for r in runs)
            evals = "/".join(f"{r['final_eval']:.0f}" for r in runs)
            print(f"{task:13s} {method:12s} {medians[method]:9.0f} {evals:>11s} {len(runs):5d} {runs[0]['threads']:8d}")
        print(f"{task:13s} rl_lightning / sb3 frames/s: x{medians['rl_lightning'] / medians['sb3']:.2f} "
              f"({frames} frames, seeds {args.seeds})", flush=True)


if __name__ == "__main__":
    main()
