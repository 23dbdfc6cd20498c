"""Batched torch environments (``data.backend: torch``) against gymnasium and the peers, side by
side in one run.

    python benchmarks/torch_envs_speed.py env       [--envs 256 4096 16384] [--tasks CartPole-v1 ...]
    python benchmarks/torch_envs_speed.py ppo       [--seeds 1 2 3]
    python benchmarks/torch_envs_speed.py scaling   [--envs 16 64 256 1024 4096] [--plot benchmarks/torch_envs_scaling.png]

* ``env``: environment steps/s with uniformly random actions: our batched torch task on the
  CPU vs gymnasium's ``SyncVectorEnv`` of the same task (at 256 environments, where its
  per-environment cost has flattened out), and the same task through its TorchRL ``EnvBase``
  view (``rl_lightning.envs.batched.torchrl_env.as_torchrl``) at 4096.
* ``ppo``: PPO on CartPole-v1. ``rl_lightning (torch)`` is ``configs/ppo_torch_cartpole.yaml``
  (evaluation every 4096 frames: every batch); ``rl_lightning (gymnasium)`` is the same config on
  gymnasium's ``SyncVectorEnv``; ``sb3 (rlzoo)`` and ``handwritten (rlzoo)`` are
  Stable-Baselines3 and a minimal loop with RL Zoo's tuned CartPole settings (8 envs, 100k
  frames; ``benchmarks/peers``); ``sb3 (same)`` is Stable-Baselines3 with our config's settings.
  Reported per method: frames/s of training; for ours, training seconds until the first
  evaluation (10 deterministic episodes) of >= 475 (evaluation time excluded, start-up
  separate); for the peers, seconds until a batch's mean episode return first reaches 475.
* ``scaling``: PPO frames/s as ``data.num_envs`` grows (32 steps per environment per batch, 4
  minibatches of 8 epochs, no evaluation) for ours on both backends and Stable-Baselines3;
  writes a plot.

Every process uses ``--threads`` torch threads (default 1, ours and the peers alike: small
networks run fastest on one; Stable-Baselines3 at RL Zoo's settings runs at half speed on two).
Needs the repository root as working directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "ppo_torch_cartpole.yaml"
TARGET = 475.0
THREADS = 1  # --threads
RLZOO = {"envs": 8, "steps": 32, "epochs": 20, "minibatch": 256, "gamma": 0.98, "lam": 0.8, "lr": 1e-3,
         "clip": 0.2, "ent": 0.0, "anneal_lr": True, "anneal_clip": True}
#: configs/ppo_torch_cartpole.yaml's settings, for the peers
OURS = {"envs": 128, "steps": 32, "epochs": 4, "minibatch": 1024, "gamma": 0.99, "lam": 0.95, "lr": 1e-3,
        "clip": 0.2, "ent": 0.0, "anneal_lr": True, "anneal_clip": False, "activation": "relu"}


# --- environment steps ------------------------------------------------------------------------
def torch_steps_per_s(task: str, n: int, seconds: float = 1.0, torchrl: bool = False) -> float:
    """Steps/s of our batched task; ``torchrl``: through its TorchRL ``EnvBase`` view."""
    import torch

    from rl_lightning.envs.batched import make_torch_env
    from rl_lightning.envs.batched.torchrl_env import as_torchrl

    env = make_torch_env(task, n)
    env.reset(seed=0)
    space = env.single_action_space
    if torchrl:
        view = as_torchrl(env)
        td = view.reset()
        step = lambda action: view.step(td.set("action", action))  # noqa: E731
    else:
        step = env.step
    discrete = hasattr(space, "n")

    def actions():
        if discrete:
            return torch.randint(int(space.n), (n,))
        low, high = float(space.low[0]), float(space.high[0])
        return low + (high - low) * torch.rand(n, *space.shape)

    for _ in range(10):
        step(actions())
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(actions())
        steps += 1
    return steps * n / (time.perf_counter() - start)


def gym_steps_per_s(task: str, n: int, seconds: float = 1.0) -> float:
    import gymnasium as gym

    env = gym.vector.SyncVectorEnv([lambda: gym.make(task) for _ in range(n)],
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        env.step(env.action_space.sample())
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(env.action_space.sample())
        steps += 1
    env.close()
    return steps * n / (time.perf_counter() - start)


def bench_env(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(THREADS)
    print(f"environment steps/s, random actions, {THREADS} threads (millions)")
    big = 4096  # the count where a step's fixed cost still shows
    print(f"{'task':26s} {'gymnasium 256':>14s} " + " ".join(f"{'torch ' + str(n):>12s}" for n in args.envs)
          + f" {'TorchRL view ' + str(big):>19s} {'best / gymnasium':>17s}")
    for task in args.tasks:
        gym_rate = gym_steps_per_s(task, 256)
        rates = [torch_steps_per_s(task, n) for n in args.envs]
        view = torch_steps_per_s(task, big, torchrl=True)
        print(f"{task:26s} {gym_rate / 1e6:14.3f} " + " ".join(f"{r / 1e6:12.2f}" for r in rates)
              + f" {view / 1e6:19.2f} {max(rates) / gym_rate:16.0f}x", flush=True)


# --- PPO end to end ----------------------------------------------------------------------------
def run_ours(seed: int, options: list[str], frames: int, every: int) -> dict:
    """One ``fit`` of ours; times from its metrics.csv (evaluation seconds taken out)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", str(CONFIG), *options,
               "--torch_threads", str(THREADS),
               "--seed_everything", str(seed), "--data.total_frames", str(frames),
               "--evaluation.every_frames", str(every), "--checkpoint.every_frames", str(frames),
               "--progress_bar.refresh_rate", "0", "--experiments_dir", tmp, "--experiment", "bench"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        process = time.perf_counter() - start
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        rows = list(csv.DictReader(open(metrics)))
    eval_before, hit, last = 0.0, None, None
    for row in rows:
        if row.get("time/fps"):  # fps covers training from its start, earlier evaluations included
            frames_now = float(row["frames"])
            last = (frames_now, frames_now / float(row["time/fps"]) - eval_before)
        if row.get("eval/return_mean"):
            if hit is None and float(row["eval/return_mean"]) >= TARGET:
                hit = last
            eval_before += float(row.get("time/eval_s") or 0.0)
    return {"fps": last[0] / last[1], "time_to_target": hit[1] if hit else None,
            "frames_to_target": hit[0] if hit else None, "train_s": last[1], "startup_s": process - last[1] - eval_before,
            "eval_s": eval_before}


def run_peer(script: str, seed: int, frames: int, hp: dict) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers" / script), "--seed", str(seed),
                          "--frames", str(frames), "--hp", json.dumps(hp), "--threads", str(THREADS)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    hit = next((r for r in rows if r["return"] is not None and r["return"] >= TARGET), None)
    return {"fps": rows[-1]["frames"] / rows[-1]["elapsed"], "time_to_target": hit["elapsed"] if hit else None,
            "frames_to_target": hit["frames"] if hit else None, "train_s": rows[-1]["elapsed"]}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def bench_ppo(args: argparse.Namespace) -> None:
    methods = {
        "rl_lightning (torch)": lambda s: run_ours(s, [], 131072, 4096),
        "rl_lightning (gymnasium)": lambda s: run_ours(s, ["--data.backend", "gymnasium"], 131072, 4096),
        "sb3 (same)": lambda s: run_peer("sb3_ppo.py", s, 131072, OURS),
        "sb3 (rlzoo)": lambda s: run_peer("sb3_ppo.py", s, 100_000, RLZOO),
        "handwritten (rlzoo)": lambda s: run_peer("handwritten_ppo.py", s, 100_000, RLZOO),
    }
    methods = {k: v for k, v in methods.items() if not args.methods or k.split()[0] in args.methods}
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in args.seeds:  # alternating per seed, so machine noise hits every method alike
        for name, run in methods.items():
            summary = run(seed)
            results[name].append(summary)
            print(f"seed {seed} {name:26s} " + json.dumps({k: round(v, 3) if v else v for k, v in summary.items()}),
                  flush=True)
    print(f"\nPPO CartPole-v1, seeds {args.seeds}, {THREADS} threads (medians)")
    print(f"{'method':26s} {'frames/s':>9s} {'to 475 (s)':>11s} {'frames to 475':>14s} {'reached':>8s} {'start-up s':>11s}")
    fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
    table = {}
    for name, runs in results.items():
        t = table[name] = {k: median([r.get(k) for r in runs]) for k in ("fps", "time_to_target", "frames_to_target",
                                                                         "startup_s")}
        reached = sum(r["time_to_target"] is not None for r in runs)
        print(f"{name:26s} {fmt(t['fps'], '9.0f')} {fmt(t['time_to_target'], '11.2f')} "
              f"{fmt(t['frames_to_target'], '14.0f')} {reached:>5d}/{len(runs)} {fmt(t['startup_s'], '11.1f')}")
    ours = table.get("rl_lightning (torch)")
    if ours:
        for name, theirs in table.items():
            if name != "rl_lightning (torch)":
                print(f"rl_lightning (torch) / {name}: frames/s x{ours['fps'] / theirs['fps']:.1f}")
        print(f"rl_lightning (torch), training seconds to an evaluation >= 475 per seed: "
              f"{[round(r['time_to_target'], 2) if r['time_to_target'] else None for r in results['rl_lightning (torch)']]}")


# --- frames/s against the number of environments ------------------------------------------------
def bench_scaling(args: argparse.Namespace) -> None:
    curves: dict[str, list[tuple[int, float]]] = {"rl_lightning (torch)": [], "rl_lightning (gymnasium)": [],
                                                  "sb3": []}
    for n in args.envs:
        batch = n * 32
        frames = batch * 3
        options = ["--data.num_envs", str(n), "--data.frames_per_batch", str(batch),
                   "--model.minibatch_size", str(batch // 4)]
        curves["rl_lightning (torch)"].append((n, run_ours(1, options, frames, 0)["fps"]))
        if n <= args.max_gym_envs:
            curves["rl_lightning (gymnasium)"].append(
                (n, run_ours(1, [*options, "--data.backend", "gymnasium"], frames, 0)["fps"]))
            curves["sb3"].append((n, run_peer("sb3_ppo.py", 1, frames, {**OURS, "envs": n, "minibatch": batch // 4})["fps"]))
        print(f"num_envs {n:6d}: " + ", ".join(f"{k} {dict(v).get(n, float('nan')):.0f}" for k, v in curves.items()),
              flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="data.num_envs (32 steps each per batch)", ylabel="PPO frames/s",
           title=f"PPO CartPole-v1, {os.cpu_count()}-core CPU, {THREADS} torch thread(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["env", "ppo", "scaling"])
    parser.add_argument("--envs", type=int, nargs="+", default=None)
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--methods", nargs="+", default=None, help="ppo: rl_lightning, sb3, handwritten")
    parser.add_argument("--max-gym-envs", type=int, default=1024, help="scaling: largest count for the NumPy ones")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "torch_envs_scaling.png"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every process")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    if args.what == "env":
        from rl_lightning.envs.batched import TORCH_ENVS

        args.envs = args.envs or [256, 4096, 16384, 65536]
        args.tasks = args.tasks or sorted(TORCH_ENVS)
        bench_env(args)
    elif args.what == "ppo":
        bench_ppo(args)
    else:
        args.envs = args.envs or [16, 64, 256, 1024, 4096]
        bench_scaling(args)


if __name__ == "__main__":
    main()
