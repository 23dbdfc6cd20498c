"""Pixel pipeline speed and replay memory side by side with Stable-Baselines3, one run.

    python benchmarks/pixel_pipeline_speed.py [--algos ppo dqn] [--env synthetic|carracing]
                                              [--batches N] [--seeds 1 2] [--quick]

Observations are ``uint8`` 84x84x4 frame stacks and both sides use the Nature CNN
(rl_lightning: ``--model.encoder rl_lightning.networks.NatureCNN``; SB3: ``CnnPolicy``, whose
features extractor is the same network) with the same heads, batch shapes and update counts:

* ``ppo``: 8 envs x 128 steps per batch, 4 epochs of 4 minibatches of 256; one shared encoder
  (SB3's default), heads MLP (64, 64, tanh) on both;
* ``dqn``: 8 envs x 32 steps per batch followed by 64 updates of 32; Q head MLP (256, 256).

Environments: ``synthetic`` is ``benchmarks/pixel_env.py`` (stepping costs ~nothing, so the
figures are framework + network cost); ``carracing`` is CarRacing-v3 (Box2D) through
gymnasium's GrayscaleObservation, ResizeObservation (84, 84) and FrameStackObservation (4)
(``CarRacingPixels-v0`` in ``benchmarks/pixel_env.py``, one id for both sides).

Each run is its own process with one torch thread (``--threads``), the methods alternating per
seed. rl_lightning runs ``python -m rl_lightning fit`` and reads ``time/collect_s`` and
``time/update_s`` of each batch from its metrics.csv; SB3 runs ``--worker sb3`` in a
subprocess of this script, timed between its rollout callbacks. Reported: collection frames/s
and update frames/s (frames of a batch / seconds of its collection or of its updates), medians
over the batches after the first and over seeds.

Replay memory: bytes per stored transition of rl_lightning's replay buffer filled from the
environment (plain layout and ``data.compact_observations``, as measured by
``ReplayDataModule.replay_bytes_per_frame``) against SB3's
``ReplayBuffer(optimize_memory_usage=True, handle_timeout_termination=False)`` (and without
``optimize_memory_usage``), the size of its arrays divided by its capacity.

``--quick`` runs one seed of a tiny budget (used by tests/test_benchmarks.py); its figures mean
nothing.
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
ENVS = {"synthetic": "benchmarks.pixel_env:SyntheticPixels-v0", "carracing": "benchmarks.pixel_env:CarRacingPixels-v0"}
#: per algorithm: envs, steps per env per batch, and the update settings
SETTINGS = {
    "ppo": {"envs": 8, "steps": 128, "epochs": 4, "minibatch": 256},
    "dqn": {"envs": 8, "steps": 32, "updates": 64, "batch": 32, "buffer": 10_000},
}
QUICK = {
    "ppo": {"envs": 2, "steps": 16, "epochs": 1, "minibatch": 16},
    "dqn": {"envs": 2, "steps": 8, "updates": 2, "batch": 8, "buffer": 256},
}


def make_env(name: str):
    """One environment of ``ENVS[name]`` (both registered by ``benchmarks/pixel_env.py``)."""
    import gymnasium as gym

    import benchmarks.pixel_env  # noqa: F401  (registers the ids)

    return gym.make(ENVS[name].split(":")[1])


# --- rl_lightning ------------------------------------------------------------------------------
def rl_lightning_command(algo: str, h: dict, env: str, seed: int, batches: int, threads: int, tmp: str) -> list[str]:
    frames = h["envs"] * h["steps"]
    common = ["--seed_everything", str(seed), "--torch_threads", str(threads),
              "--data.env_id", ENVS[env], "--data.num_envs", str(h["envs"]),
              "--data.frames_per_batch", str(frames), "--data.total_frames", str(frames * batches),
              "--model.encoder", "rl_lightning.networks.NatureCNN",
              "--evaluation.every_frames", "0", "--evaluation.episodes", "1",
              "--progress_bar.refresh_rate", "0", "--experiments_dir", tmp, "--experiment", "bench"]
    if algo == "ppo":
        return ["--config", "configs/ppo.yaml", *common, "--model.share_encoder", "true",
                "--model.epochs", str(h["epochs"]), "--model.minibatch_size", str(h["minibatch"])]
    return ["--config", "configs/dqn.yaml", *common, "--data.updates_per_batch", str(h["updates"]),
            "--data.batch_size", str(h["batch"]), "--data.buffer_size", str(h["buffer"]),
            "--data.init_random_frames", str(frames)]


def run_rl_lightning(algo: str, h: dict, env: str, seed: int, batches: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit",
               *rl_lightning_command(algo, h, env, seed, batches, threads, tmp)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"rl_lightning {algo} failed:\n{done.stderr[-3000:]}")
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        with open(metrics) as f:
            rows = [r for r in csv.DictReader(f) if r.get("time/update_s")]
    frames = h["envs"] * h["steps"]
    rows = rows[1:] or rows  # the first batch pays for warm-up (and, for DQN, random actions)
    return {"collect_fps": statistics.median(frames / float(r["time/collect_s"]) for r in rows),
            "update_fps": statistics.median(frames / float(r["time/update_s"]) for r in rows)}


# --- Stable-Baselines3 ---------------------------------------------------------------------------
def sb3_worker(algo: str, h: dict, env: str, seed: int, batches: int, threads: int) -> dict:
    """SB3 on the same env and settings in this process; collection and update seconds of each
    batch from its rollout callbacks."""
    import time

    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(threads)

    class Clock(BaseCallback):
        def __init__(self):
            super().__init__()
            self.collect, self.update, self.mark = [], [], None

        def _on_rollout_start(self):
            now = time.perf_counter()
            if self.mark is not None:
                self.update.append(now - self.mark)
            self.mark = now

        def _on_rollout_end(self):
            now = time.perf_counter()
            self.collect.append(now - self.mark)
            self.mark = now

        def _on_training_end(self):
            self.update.append(time.perf_counter() - self.mark)

        def _on_step(self):
            return True

    vec = make_vec_env(lambda: make_env(env), n_envs=h["envs"], seed=seed)
    frames = h["envs"] * h["steps"]
    if algo == "ppo":
        model = PPO("CnnPolicy", vec, n_steps=h["steps"], batch_size=h["minibatch"], n_epochs=h["epochs"], seed=seed,
                    policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh},
                    device="cpu")
    else:
        model = DQN("CnnPolicy", vec, buffer_size=h["buffer"], learning_starts=frames, batch_size=h["batch"],
                    train_freq=(h["steps"], "step"), gradient_steps=h["updates"], seed=seed, device="cpu",
                    optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False},
                    policy_kwargs={"net_arch": [256, 256]})
    clock = Clock()
    model.learn(frames * batches, callback=clock)
    # DQN: the update after a collection is timed to the next rollout start (SB3 trains there)
    pairs = list(zip(clock.collect, clock.update))[1:] or list(zip(clock.collect, clock.update))
    if algo == "dqn":
        pairs = [(c, u) for c, u in pairs if u > 0] or pairs
    return {"collect_fps": statistics.median(frames / c for c, _ in pairs),
            "update_fps": statistics.median(frames / max(u, 1e-9) for _, u in pairs)}


def run_sb3(algo: str, h: dict, env: str, seed: int, batches: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "sb3", "--algos", algo, "--env", env, "--seeds", str(seed),
           "--batches", str(batches), "--threads", str(threads), "--settings", json.dumps(h)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"SB3 {algo} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- replay memory -------------------------------------------------------------------------------
def replay_memory(env: str, capacity: int, envs: int, steps: int) -> dict[str, float]:
    """Bytes per stored transition: rl_lightning (plain and compact) filled to ``capacity``
    from the environment with random actions, and SB3's replay buffer of that capacity."""
    import numpy as np
    from stable_baselines3.common.buffers import ReplayBuffer

    from rl_lightning.data import ReplayDataModule
    from rl_lightning.data.link import AgentLink

    out = {}
    for compact in (False, True):
        dm = ReplayDataModule(ENVS[env], num_envs=envs, frames_per_batch=envs * steps, buffer_size=capacity,
                              batch_size=min(32, capacity), init_random_frames=0, total_frames=10 * capacity,
                              compact_observations=compact)
        spec = dm.env_spec
        dm.connect(AgentLink(policy=lambda obs, spec=spec: spec.random_actions(obs.shape[0]), spec=spec))
        while len(dm.buffer) < capacity:
            dm.add(dm.collector.rollout())
        out["rl_lightning compact" if compact else "rl_lightning plain"] = dm.replay_bytes_per_frame
        dm.teardown("fit")
    probe = make_env(env)
    for optimize in (True, False):
        buffer = ReplayBuffer(capacity, probe.observation_space, probe.action_space, device="cpu", n_envs=1,
                              optimize_memory_usage=optimize, handle_timeout_termination=False)
        arrays = [a for a in vars(buffer).values() if isinstance(a, np.ndarray)]
        out["sb3 optimize_memory_usage" if optimize else "sb3 plain"] = sum(a.nbytes for a in arrays) / capacity
    probe.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=sorted(SETTINGS), default=["ppo", "dqn"])
    parser.add_argument("--env", choices=sorted(ENVS), default="synthetic")
    parser.add_argument("--batches", type=int, default=3, help="collected batches per run (the first is not counted)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run")
    parser.add_argument("--methods", nargs="+", default=["rl_lightning", "sb3"])
    parser.add_argument("--replay-capacity", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="tiny budget, one seed (for the tests)")
    parser.add_argument("--worker", choices=["sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else SETTINGS
    if args.quick:
        args.batches, args.seeds, args.replay_capacity = 2, args.seeds[:1], 64
    if args.worker:
        (algo,) = args.algos
        result = sb3_worker(algo, json.loads(args.settings), args.env, args.seeds[0], args.batches, args.threads)
        print(json.dumps(result))
        return result
    runners = {"rl_lightning": run_rl_lightning, "sb3": run_sb3}
    table: dict = {}
    for algo in args.algos:
        h = settings[algo]
        results: dict[str, list[dict]] = {m: [] for m in args.methods}
        for seed in args.seeds:
            for method in args.methods:
                results[method].append(runners[method](algo, h, args.env, seed, args.batches, args.threads))
                print(f"  seed {seed} {algo} {method}: {json.dumps(results[method][-1])}", file=sys.stderr, flush=True)
        for method, runs in results.items():
            table[(algo, method)] = {k: statistics.median(r[k] for r in runs) for k in ("collect_fps", "update_fps")}
    print(f"\nPixel pipeline, {args.env} env ({ENVS[args.env]}), uint8 4x84x84, Nature CNN, "
          f"{args.threads} torch thread(s), seeds {args.seeds}, {args.batches} batches per run (medians)")
    print(f"{'algo':5s} {'method':13s} {'collect f/s':>12s} {'update f/s':>11s}")
    for (algo, method), row in table.items():
        print(f"{algo:5s} {method:13s} {row['collect_fps']:12.0f} {row['update_fps']:11.0f}")
    for algo in args.algos:
        if (algo, "rl_lightning") in table and (algo, "sb3") in table:
            a, b = table[(algo, "rl_lightning")], table[(algo, "sb3")]
            print(f"{algo:5s} {'ratio rl/sb3':13s} {a['collect_fps'] / b['collect_fps']:12.2f} "
                  f"{a['update_fps'] / b['update_fps']:11.2f}")
    memory = replay_memory(args.env, args.replay_capacity, settings["dqn"]["envs"], settings["dqn"]["steps"])
    print(f"\nReplay memory per stored transition ({args.replay_capacity} transitions)")
    for name, per in memory.items():
        print(f"{name:26s} {per / 1000:9.1f} KB")
    return {"speed": {f"{a} {m}": v for (a, m), v in table.items()}, "memory": memory}


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # benchmarks.pixel_env
    main()
