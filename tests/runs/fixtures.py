"""Synthetic run folders for the registry and plot tests (no training).

``make_experiments(root)`` writes ``root/experiments`` with:

- ``ppo-CartPole-v1``: seeds 1-3 at learning rate 0.001 (2048 frames, finished), seeds 1-2 at
  0.0003 (seed 2 stops at 1536 frames), a failed run (seed 9, 0.001, 512 frames, no
  evaluation) and a running run (seed 8, started 30 days ago, poor returns);
- ``ppo-Pendulum-v1``: seeds 1-2, the second without ``metadata.json``.

Frames are logged every 256; ``eval/return_mean`` every 512 frames (``eval_every``) equals
``eval_return(frames, seed, learning_rate)``. Old runs started 30 days ago, the Pendulum
seed 2 run 1 hour ago.
"""

import csv
import json
import time
from pathlib import Path

import yaml

DAY = 86400.0
COLUMNS = ["step", "frames", "train/episode_return", "train/episode_length", "loss/policy", "time/fps",
           "eval/return_mean", "eval/return_std", "eval/return_min", "eval/return_max", "eval/length_mean"]


def eval_return(frames, seed, learning_rate):
    """The synthetic evaluation return of a run at ``frames``."""
    return frames / 10 * (learning_rate / 0.001) + 10 * seed


def config(experiment, env_id, seed, learning_rate, run_dir, total_frames=2048):
    """A resolved LightningCLI config like the ones ``fit`` saves."""
    return {
        "seed_everything": seed,
        "experiment": experiment,
        "experiments_dir": "experiments",
        "trainer": {"default_root_dir": str(run_dir), "gradient_clip_val": 0.5, "max_epochs": -1, "logger": None},
        "model": {"class_path": "rl_lightning.algorithms.PPO",
                  "init_args": {"learning_rate": learning_rate, "epochs": 20, "gamma": 0.98, "hidden_sizes": [64, 64]}},
        "data": {"class_path": "rl_lightning.data.OnPolicyDataModule",
                 "init_args": {"env_id": env_id, "num_envs": 8, "frames_per_batch": 256, "total_frames": total_frames}},
        "evaluation": {"every_frames": 512, "episodes": 2},
        "checkpoint": {"dirpath": str(Path(run_dir) / "checkpoints"), "every_frames": 1024},
        "progress_bar": {"refresh_rate": 0},
        "ckpt_path": None,
        "torch_threads": 1,
    }


def make_run(experiments, experiment, env_id, seed, learning_rate, *, frames=2048, status="finished",
             started_days_ago=30.0, metadata=True, evaluate=True, eval_every=512, heavy_bytes=1000, suffix="",
             changes=None):
    """Write one run folder (with 1000-byte checkpoints/last.ckpt, checkpoints/best.ckpt,
    videos/frames-1024.mp4 and tensorboard/events) and return its path; ``changes`` sets dotted
    keys of its config (``{"model.init_args.epochs": 10}``)."""
    started = time.time() - started_days_ago * DAY
    run_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(started)) + f"-s{seed}{suffix}"
    run = Path(experiments) / experiment / run_id
    run.mkdir(parents=True)
    resolved = config(experiment, env_id, seed, learning_rate, run)
    for key, value in (changes or {}).items():
        *parents, last = key.split(".")
        node = resolved
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    (run / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    evals = []
    with open(run / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        for f in range(256, frames + 1, 256):
            row = {"step": f, "frames": f, "train/episode_return": f / 20 + seed, "train/episode_length": 20,
                   "loss/policy": 0.1, "time/fps": 1000 + seed}
            if evaluate and f % eval_every == 0:
                value = eval_return(f, seed, learning_rate)
                evals.append(value)
                row.update({"eval/return_mean": value, "eval/return_std": 1.0, "eval/return_min": value - 1,
                            "eval/return_max": value + 1, "eval/length_mean": 100})
            writer.writerow(row)
    for part in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "videos/frames-1024.mp4", "tensorboard/events"):
        (run / part).parent.mkdir(exist_ok=True)
        (run / part).write_bytes(b"x" * heavy_bytes)
    if metadata:
        (run / "metadata.json").write_text(json.dumps({
            "run_id": run_id, "experiment": experiment, "algorithm": "PPO", "env_id": env_id, "seed": seed,
            "status": status, "started": started, "ended": None if status == "running" else started + 60,
            "frames": frames, "final_eval_return": evals[-1] if evals else None,
            "best_eval_return": max(evals) if evals else None, "git": {"commit": "abc", "dirty": False},
        }))
    return run


def make_experiments(root):
    """The runs described in the module docstring; returns ``{name: run folder}``."""
    exp = Path(root) / "experiments"
    cart, pend = "ppo-CartPole-v1", "ppo-Pendulum-v1"
    runs = {f"cart-lr1e-3-s{s}": make_run(exp, cart, "CartPole-v1", s, 0.001) for s in (1, 2, 3)}
    runs["cart-lr3e-4-s1"] = make_run(exp, cart, "CartPole-v1", 1, 0.0003, suffix="-2")
    runs["cart-lr3e-4-s2"] = make_run(exp, cart, "CartPole-v1", 2, 0.0003, frames=1536, suffix="-2")
    runs["cart-failed"] = make_run(exp, cart, "CartPole-v1", 9, 0.001, frames=512, status="failed", evaluate=False)
    runs["cart-running"] = make_run(exp, cart, "CartPole-v1", 8, 0.0001, status="running", frames=1024)
    runs["pend-s1"] = make_run(exp, pend, "Pendulum-v1", 1, 0.001)
    runs["pend-nometa"] = make_run(exp, pend, "Pendulum-v1", 2, 0.001, metadata=False, started_days_ago=1 / 24)
    return runs
