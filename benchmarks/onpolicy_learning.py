"""On-policy learning over seeds, each of ours beside its reference in the same run.

    python benchmarks/onpolicy_learning.py [--tasks recurrent-ppo-cartpole-novel sb3-recurrent-ppo-cartpole-novel
        ppo-cartpole-novel] [--seeds 1 2 3] [--jobs 1] [--frames N]

Ours (``python -m rl_lightning fit <configs> --seed_everything <seed>``, see
``benchmarks/learning.py``) and the peers (``benchmarks/peers/*.py``) are measured alike: every
few thousand frames, 10 deterministic evaluation episodes on separate environments; a seed
reaches the target when an evaluation's mean return does within the budget; training seconds
exclude the evaluations. Printed: seeds reaching the target, frames and training seconds to it
(medians over those seeds), frames/s (median), final evaluation per seed, and each of ours
against its peer (frames/s ratio, frames to target). Runs alternate per seed so that machine
noise hits every method alike. ``--jobs 1`` (default) keeps the timings clean.

Tasks:

* ``recurrent-ppo-cartpole-novel``: ``configs/recurrent_ppo.yaml`` (LSTM, CartPole with the
  velocities hidden, RL Zoo's CartPoleNoVel-v1 settings, 100k frames);
  ``sb3-recurrent-ppo-cartpole-novel``: sb3-contrib ``RecurrentPPO`` with the same settings;
  ``ppo-cartpole-novel``: plain PPO (MLP, no memory) on the same masked task (expected to fail).
* ``ppo-history-transformer-cartpole-novel``: PPO (``configs/ppo.yaml``) on the masked task seeing
  its last 8 observations through ``HistoryTransformer`` (``configs/env/cartpole_novel_history.yaml``,
  300k frames).
* ``a2c-cartpole``: ``configs/a2c.yaml`` (RL Zoo's CartPole-v1 A2C, 500k frames); ``sb3-a2c-cartpole``:
  Stable-Baselines3's A2C with the same settings (evaluation every 25k frames on both sides).
* ``grpo-cartpole``: ``configs/grpo.yaml`` (no critic, groups of 8, 500k frames) beside
  ``ppo-cartpole`` (``configs/ppo.yaml``, 100k frames) on the same seeds.
* ``grpo-pendulum`` / ``grpo-pendulum-beta``: GRPO on Pendulum-v1 (``configs/env/pendulum_grpo.yaml``,
  Gaussian / Beta policy, 200k frames) beside ``ppo-pendulum`` (``configs/env/pendulum.yaml``, same
  budget); target -200.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning

ROOT = Path(__file__).resolve().parent.parent


def peer(script: str, target: float, algorithm: str, env: str, frames: int, *extra: str) -> dict:
    """A peer's task: ``benchmarks/peers/<script>`` printing JSON lines of ``frames``, ``elapsed``
    (training seconds) and, at evaluations, ``eval`` (the mean evaluation return)."""
    return {"peer": script, "args": list(extra), "target": target, "algorithm": algorithm, "env": env,
            "frames": frames}


TASKS = {
    "recurrent-ppo-cartpole-novel": learning.task(["recurrent_ppo.yaml"], 475.0, "RecurrentPPO (ours)",
                                                  "CartPole-v1 no velocities", 100_000),
    "sb3-recurrent-ppo-cartpole-novel": peer("sb3_recurrent_ppo.py", 475.0, "sb3-contrib RecurrentPPO",
                                             "CartPole-v1 no velocities", 100_000),
    "ppo-cartpole-novel": learning.task(["ppo.yaml", "env/cartpole_novel.yaml"], 475.0, "PPO MLP (ours)",
                                        "CartPole-v1 no velocities", 100_000, "--data.normalize_observation", "true"),
    "ppo-history-transformer-cartpole-novel": learning.task(
        ["ppo.yaml", "env/cartpole_novel.yaml", "env/cartpole_novel_history.yaml"], 475.0, "PPO + HistoryTransformer (ours)",
        "CartPole-v1 no velocities", 300_000),
    "a2c-cartpole": learning.task(["a2c.yaml"], 475.0, "A2C (ours)", "CartPole-v1", 500_000),
    "sb3-a2c-cartpole": peer("sb3_a2c.py", 475.0, "SB3 A2C", "CartPole-v1", 500_000),
    "grpo-cartpole": learning.task(["grpo.yaml"], 475.0, "GRPO (ours)", "CartPole-v1", 500_000),
    "ppo-cartpole": learning.TASKS["ppo-cartpole"],
    "grpo-pendulum": learning.task(["grpo.yaml", "env/pendulum_grpo.yaml"], -200.0, "GRPO Gaussian (ours)",
                                   "Pendulum-v1", 200_000),
    "grpo-pendulum-beta": learning.task(["grpo.yaml", "env/pendulum_grpo.yaml"], -200.0, "GRPO Beta (ours)",
                                        "Pendulum-v1", 200_000, "--model.distribution", "beta"),
    "ppo-pendulum": learning.task(["ppo.yaml", "env/pendulum.yaml"], -200.0, "PPO Gaussian (ours)", "Pendulum-v1",
                                  200_000, "--data.total_frames", "200000"),
}
#: each of ours and the peer it is compared with
PAIRS = {"recurrent-ppo-cartpole-novel": "sb3-recurrent-ppo-cartpole-novel", "a2c-cartpole": "sb3-a2c-cartpole",
         "grpo-cartpole": "ppo-cartpole", "grpo-pendulum": "ppo-pendulum"}


def run_peer(spec: dict, seed: int, frames: int | None) -> dict:
    """One seeded run of a peer script, summarized as :func:`learning.run` does."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers" / spec["peer"]), "--seed", str(seed),
           "--frames", str(frames or spec["frames"]), "--threads", "1", *spec["args"]]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    evals = [r for r in rows if r.get("eval") is not None]
    hit = next((r for r in evals if r["eval"] >= spec["target"]), None)
    return {"seed": seed, "final": evals[-1]["eval"], "best": max(r["eval"] for r in evals),
            "wall": time.perf_counter() - start, "frames_to_target": hit["frames"] if hit else None,
            "seconds_to_target": hit["elapsed"] if hit else None, "fps": rows[-1]["frames"] / rows[-1]["elapsed"],
            "curve": [(r["frames"], r["eval"]) for r in evals]}


def run_any(name: str, seed: int, frames: int | None) -> dict:
    spec = TASKS[name]
    return run_peer(spec, seed, frames) if "peer" in spec else learning.run(spec, seed, frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS),
                        default=["recurrent-ppo-cartpole-novel", "sb3-recurrent-ppo-cartpole-novel", "ppo-cartpole-novel"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (timings are cleanest with 1)")
    parser.add_argument("--frames", type=int, default=None, help="override every task's budget (shorter checks)")
    args = parser.parse_args()
    jobs = [(name, seed) for seed in args.seeds for name in args.tasks]  # alternating per seed
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_any(job[0], job[1], args.frames), jobs))
    learning.report(TASKS, args.tasks, jobs, results, args.frames)
    by_task = {name: [r for (t, _), r in zip(jobs, results) if t == name] for name in args.tasks}
    print(f"\n{'task':36s} {'frames/s (median)':>18s}")
    for name, runs in by_task.items():
        print(f"{name:36s} {statistics.median(r['fps'] for r in runs):18.0f}")
    for ours, theirs in PAIRS.items():
        if ours in by_task and theirs in by_task:
            fps = statistics.median(r["fps"] for r in by_task[ours]) / statistics.median(r["fps"] for r in by_task[theirs])
            frames = [(a["frames_to_target"], b["frames_to_target"]) for a, b in zip(by_task[ours], by_task[theirs])]
            print(f"{ours} vs {theirs}: frames/s x{fps:.2f}; frames to target per seed (ours, theirs): {frames}")


if __name__ == "__main__":
    main()
