"""MuJoCo HalfCheetah-v5 training speed side by side with Stable-Baselines3, same settings, one run.

    python benchmarks/mujoco_speed.py [--tasks sac ppo] [--seed 1] [--threads 1] [--quick]

* ``sac``: ``configs/sac.yaml`` + ``configs/env/mujoco_sac.yaml`` (RL Zoo's settings: one update
  of 256 per frame, (256, 256) networks, automatic entropy), against SB3's ``SAC`` with the same
  settings. The random warm-up is cut to ``--sac-random`` frames on both sides (RL Zoo: 10k)
  and frames/s is measured over the ``--sac-frames`` frames after ``--sac-warmup`` more.
* ``ppo``: ``configs/ppo.yaml`` + ``configs/env/mujoco_ppo.yaml`` (CleanRL's settings: 1 env x
  2048 steps, 10 epochs of 64, normalized observations and rewards), against SB3's ``PPO``
  with ``VecNormalize`` and the same settings; frames/s over ``--ppo-frames`` frames after the
  first batch.

Each side is its own process with ``--threads`` torch threads, on the CPU; evaluations are off
(rl_lightning writes its final checkpoint and CSV rows as usual). Needs ``pip install -e
".[mujoco,bench]"``. Prints frames/s of both and the ratio rl_lightning / SB3.

Measured (seed 1, 2 CPU cores shared with other jobs, 1 thread each, defaults): SAC 92 vs 84
frames/s (x1.10), PPO 2296 vs 2023 (x1.13); in a busier moment SAC 34 vs 36 (x0.96), PPO 1130
vs 1069 (x1.06).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_rl_lightning(task: str, seed: int, threads: int, warmup: int, frames: int, random: int) -> float:
    """frames/s of ``python -m rl_lightning fit`` from frame ``warmup`` to ``warmup + frames``."""
    base, overlay = ("sac.yaml", "mujoco_sac.yaml") if task == "sac" else ("ppo.yaml", "mujoco_ppo.yaml")
    extra = (["--data.init_random_frames", str(random), "--log_every_frames", "100"] if task == "sac" else [])
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", f"configs/{base}", "--config",
               f"configs/env/{overlay}", "--seed_everything", str(seed), "--data.total_frames", str(warmup + frames),
               "--torch_threads", str(threads), "--evaluation.every_frames", "0", "--trainer.enable_progress_bar",
               "false", "--experiments_dir", tmp, "--experiment", "bench", *extra]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        with open(metrics, newline="") as file:
            rows = [r for r in csv.DictReader(file) if r.get("time/fps")]
    # time/fps is frames / seconds since the start: each row gives its elapsed seconds
    points = sorted({int(float(r["frames"])): int(float(r["frames"])) / float(r["time/fps"]) for r in rows}.items())
    (f0, t0) = next((f, t) for f, t in points if f >= warmup)
    (f1, t1) = points[-1]
    return (f1 - f0) / (t1 - t0)


def sb3_main(argv: list[str]) -> None:
    """The SB3 side (``--sb3 sac|ppo``), run in its own process; prints ``{"fps": ...}``."""
    p = argparse.ArgumentParser()
    p.add_argument("--sb3", choices=["sac", "ppo"], required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--random", type=int, default=1000)
    a = p.parse_args(argv)
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(a.threads)

    class Clock(BaseCallback):
        """Time at the first step at or past ``warmup`` frames and at the end."""

        def _on_training_start(self):
            self.t0 = self.f0 = None

        def _on_step(self):
            if self.t0 is None and self.num_timesteps >= a.warmup:
                self.t0, self.f0 = time.perf_counter(), self.num_timesteps
            return True

    if a.sb3 == "sac":
        model = SAC("MlpPolicy", gym.make("HalfCheetah-v5"), learning_rate=3e-4, buffer_size=1_000_000,
                    batch_size=256, learning_starts=a.random, tau=0.005, gamma=0.99, seed=a.seed, device="cpu")
    else:
        env = VecNormalize(make_vec_env("HalfCheetah-v5", n_envs=1, seed=a.seed), gamma=0.99)
        model = PPO("MlpPolicy", env, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=lambda f: 3e-4 * f,
                    gamma=0.99, gae_lambda=0.95, clip_range=0.2, clip_range_vf=0.2, ent_coef=0.0, vf_coef=0.5,
                    max_grad_norm=0.5, seed=a.seed, device="cpu")
    clock = Clock()
    model.learn(a.warmup + a.frames, callback=clock)
    print(json.dumps({"fps": (model.num_timesteps - clock.f0) / (time.perf_counter() - clock.t0)}), flush=True)


def run_sb3(task: str, seed: int, threads: int, warmup: int, frames: int, random: int) -> float:
    cmd = [sys.executable, __file__, "--sb3", task, "--seed", str(seed), "--threads", str(threads),
           "--warmup", str(warmup), "--frames", str(frames), "--random", str(random)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["fps"]


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    argv = sys.argv[1:] if argv is None else argv
    if "--sb3" in argv:
        sb3_main(argv)
        return {}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=["sac", "ppo"], default=["sac", "ppo"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    parser.add_argument("--sac-random", type=int, default=1000, help="random frames before SAC's updates")
    parser.add_argument("--sac-warmup", type=int, default=1000, help="frames of updates before the clock starts")
    parser.add_argument("--sac-frames", type=int, default=5000, help="frames timed")
    parser.add_argument("--ppo-frames", type=int, default=18432, help="frames timed after the first 2048")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (checks the script, not the speed)")
    args = parser.parse_args(argv)
    budgets = {"sac": (args.sac_random + args.sac_warmup, args.sac_frames), "ppo": (2048, args.ppo_frames)}
    if args.quick:
        args.sac_random, budgets = 100, {"sac": (200, 200), "ppo": (2048, 2048)}
    out = {}
    print(f"{'task':16s} {'rl_lightning':>13s} {'sb3':>9s} {'ratio':>7s}   (frames/s, {args.threads} thread(s))")
    for task in args.tasks:
        warmup, frames = budgets[task]
        ours = run_rl_lightning(task, args.seed, args.threads, warmup, frames, args.sac_random)
        theirs = run_sb3(task, args.seed, args.threads, warmup, frames, args.sac_random)
        out[task] = {"rl_lightning": ours, "sb3": theirs}
        print(f"{task + ' HalfCheetah':16s} {ours:13.0f} {theirs:9.0f} {ours / theirs:7.2f}   "
              f"({frames} frames after {warmup})", flush=True)
    return out


if __name__ == "__main__":
    main()
