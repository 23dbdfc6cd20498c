"""PPO on CartPole-v1, same hyperparameters, three ways side by side in one run.

    python benchmarks/ppo_cartpole_speed.py [--settings rlzoo|cleanrl] [--seeds 1 2 3] [--frames N]

Settings: ``rlzoo`` is RL Zoo's tuned CartPole PPO and ``configs/ppo.yaml`` (8 envs x 32
steps, 20 epochs of one 256-frame minibatch: about 20 gradient steps per 256 frames, so the
update dominates); ``cleanrl`` is CleanRL's ``ppo.py`` shape with 8 envs (8 x 128 steps,
4 epochs of 4 minibatches, 16 gradient steps per 1024 frames: collection dominates).

Runs, alternating per seed so machine noise hits all alike, each in its own process with
one torch thread:

* ``rl_lightning``: ``python -m rl_lightning fit --config configs/ppo.yaml`` (evaluation only
  at the end, so the timed part is training; checkpoints and CSV logging stay on);
* ``sb3``: Stable-Baselines3 PPO with RL Zoo's settings (``pip install -e .[bench]``);
* ``handwritten``: a minimal PPO loop on a gymnasium sync vector env (``peers/``).

For each: frames/s over the whole training, and wall time (and frames) until the mean return
of the episodes finished in one collected batch first reaches 475. Prints medians and the
ratios rl_lightning / peer. Needs the repository root as working directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 475.0
SETTINGS = {
    "rlzoo": {"envs": 8, "steps": 32, "epochs": 20, "minibatch": 256, "gamma": 0.98, "lam": 0.8, "lr": 1e-3,
              "clip": 0.2, "ent": 0.0, "anneal_lr": True, "anneal_clip": True, "frames": 100_000},
    "cleanrl": {"envs": 8, "steps": 128, "epochs": 4, "minibatch": 256, "gamma": 0.99, "lam": 0.95, "lr": 2.5e-4,
                "clip": 0.2, "ent": 0.01, "anneal_lr": True, "anneal_clip": False, "frames": 500_000},
}


def rl_lightning_overrides(h: dict) -> list[str]:
    """The same hyperparameters as flags over configs/ppo.yaml."""
    schedule = lambda on: "linear" if on else "constant"  # noqa: E731
    return ["--data.num_envs", str(h["envs"]), "--data.frames_per_batch", str(h["envs"] * h["steps"]),
            "--model.epochs", str(h["epochs"]), "--model.minibatch_size", str(h["minibatch"]),
            "--model.gamma", str(h["gamma"]), "--model.gae_lambda", str(h["lam"]), "--model.learning_rate", str(h["lr"]),
            "--model.clip_range", str(h["clip"]), "--model.entropy_coef", str(h["ent"]),
            "--model.lr_schedule", schedule(h["anneal_lr"]), "--model.clip_schedule", schedule(h["anneal_clip"])]


def run_rl_lightning(seed: int, frames: int, config: str, hp: dict | None) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", config, *(rl_lightning_overrides(hp) if hp else []),
               "--seed_everything", str(seed),
               "--data.total_frames", str(frames), "--evaluation.every_frames", "0",
               "--progress_bar.refresh_rate", "0", "--experiments_dir", tmp, "--experiment", "bench"]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        rows = list(csv.DictReader(open(metrics)))
    out = [
        {"frames": float(r["frames"]), "elapsed": float(r["frames"]) / float(r["time/fps"]),
         "return": float(r["train/episode_return"]) if r.get("train/episode_return") else None}
        for r in rows if r.get("time/fps")
    ]
    out[-1]["final_eval"] = float(rows[-1]["eval/return_mean"])  # 10 deterministic episodes at the end
    return out


def run_peer(script: str, seed: int, frames: int, hp: dict) -> list[dict]:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers" / script), "--seed", str(seed),
                          "--frames", str(frames), "--hp", json.dumps(hp)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def summarize(rows: list[dict]) -> dict:
    hit = next((r for r in rows if r["return"] is not None and r["return"] >= TARGET), None)
    last = rows[-1]
    summary = {"fps": last["frames"] / last["elapsed"], "time_to_target": hit["elapsed"] if hit else None,
               "frames_to_target": hit["frames"] if hit else None}
    if "final_eval" in last:
        summary["final_eval"] = last["final_eval"]
    return summary


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="rlzoo")
    parser.add_argument("--frames", type=int, default=None, help="default: the settings' budget")
    parser.add_argument("--config", default="configs/ppo.yaml", help="rl_lightning base config")
    parser.add_argument("--methods", nargs="+", default=["rl_lightning", "sb3", "handwritten"])
    args = parser.parse_args()
    hp = SETTINGS[args.settings]
    args.frames = args.frames or hp["frames"]
    runners = {
        "rl_lightning": lambda s: run_rl_lightning(s, args.frames, args.config, hp if args.settings != "rlzoo" else None),
        "sb3": lambda s: run_peer("sb3_ppo.py", s, args.frames, hp),
        "handwritten": lambda s: run_peer("handwritten_ppo.py", s, args.frames, hp),
    }
    results: dict[str, list[dict]] = {m: [] for m in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            start = time.perf_counter()
            summary = summarize(runners[method](seed))
            summary["process_s"] = time.perf_counter() - start
            results[method].append(summary)
            print(f"seed {seed} {method:12s} " + json.dumps({k: round(v, 2) if v else v for k, v in summary.items()}), flush=True)
    print(f"\nPPO CartPole-v1, {args.settings} settings, {args.frames} frames, seeds {args.seeds} (medians; time to a batch mean return >= {TARGET:.0f})")
    print(f"{'method':12s} {'frames/s':>9s} {'to 475 (s)':>11s} {'frames to 475':>14s} {'reached':>8s} {'process s':>10s}")
    table = {}
    for method, runs in results.items():
        table[method] = {k: median([r[k] for r in runs]) for k in ("fps", "time_to_target", "frames_to_target", "process_s")}
        reached = sum(r["time_to_target"] is not None for r in runs)
        t = table[method]
        fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
        print(f"{method:12s} {fmt(t['fps'], '9.0f')} {fmt(t['time_to_target'], '11.1f')} "
              f"{fmt(t['frames_to_target'], '14.0f')} {reached:>5d}/{len(runs)} {fmt(t['process_s'], '10.1f')}")
    if "rl_lightning" in table:
        evals = [r.get("final_eval") for r in results["rl_lightning"]]
        print(f"rl_lightning final evaluation (10 deterministic episodes) per seed: {evals}")
        ours = table["rl_lightning"]
        for peer in [m for m in table if m != "rl_lightning"]:
            theirs = table[peer]
            speed = ours["fps"] / theirs["fps"]
            line = f"rl_lightning / {peer}: frames/s x{speed:.2f}"
            if ours["time_to_target"] and theirs["time_to_target"]:
                line += f", time to 475 x{ours['time_to_target'] / theirs['time_to_target']:.2f} (lower is faster)"
            print(line)


if __name__ == "__main__":
    main()
