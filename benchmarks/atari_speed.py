"""PPO on an Atari game, rl_lightning and Stable-Baselines3 side by side in one run (frames/s).

    python benchmarks/atari_speed.py [--env ALE/Breakout-v5] [--frames 20000] [--seed 1] [--threads 1]

Same game, preprocessing and settings in both (``pip install -e .[atari,bench]``):
``ALE/Breakout-v5`` with frameskip 1 and sticky actions 0.25, up to 30 no-ops, frame skip 4
with max-pooling, 84x84 grayscale, FIRE at reset, a lost life ends the training episode,
rewards clipped, 4 frames stacked; PPO with 8 envs x 128 steps, 4 epochs of 4 minibatches,
lr 2.5e-4 (linear), clip 0.1, entropy 0.01, value 0.5, gradient norm 0.5, Nature CNN.

* ``rl_lightning``: ``python -m rl_lightning fit --config configs/ppo_atari.yaml --config
  configs/env/atari.yaml`` (no evaluation; checkpoints and CSV logging stay on); frames/s is
  the last row's ``time/fps`` (training time, the start of the process excluded);
* ``sb3``: PPO ``CnnPolicy`` on ``make_atari_env`` (DummyVecEnv, ``AtariWrapper``) and
  ``VecFrameStack(4)``; frames/s over ``model.learn``.

Each runs in its own process with ``--threads`` torch threads. Frames are agent steps (4
emulator frames each). Needs the repository root as working directory.

``--envs-only`` times the environments alone (random actions, 8 copies, same preprocessing):
the training pipeline of ``configs/env/atari.yaml`` on gymnasium's ``SyncVectorEnv`` and
``AsyncVectorEnv``, and EnvPool (``pip install envpool``; its C++ thread pool runs the
emulator and the preprocessing) when installed.

Measured on 2 shared CPU cores, 1 torch thread, ALE/Breakout-v5, seed 1, 20,480 frames:
rl_lightning 134.6 frames/s, Stable-Baselines3 135.5 (ratio 0.99; the CPU convolutions of the
update dominate). Environments alone (8,000 frames, another run on the cores meanwhile):
gymnasium sync 703 frames/s, async 1,083, EnvPool 1,877.
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

SB3 = """
import json, sys, time
import torch
import ale_py, gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
gym.register_envs(ale_py)
env_id, frames, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
env = make_atari_env(env_id, n_envs=8, seed=seed, env_kwargs={"frameskip": 1, "repeat_action_probability": 0.25},
                     wrapper_kwargs={"noop_max": 30, "frame_skip": 4, "screen_size": 84, "terminal_on_life_loss": True,
                                     "clip_reward": True})
env = VecFrameStack(env, 4)
model = PPO("CnnPolicy", env, learning_rate=lambda f: 2.5e-4 * f, n_steps=128, batch_size=256, n_epochs=4,
            gamma=0.99, gae_lambda=0.95, clip_range=0.1, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
            seed=seed, device="cpu", verbose=0)
start = time.perf_counter()
model.learn(frames)
print(json.dumps({"frames": model.num_timesteps, "seconds": time.perf_counter() - start}))
"""


def run_rl_lightning(env_id: str, frames: int, seed: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", "configs/ppo_atari.yaml", "--config",
               "configs/env/atari.yaml", "--data.env_id", env_id, "--seed_everything", str(seed),
               "--data.total_frames", str(frames), "--evaluation.every_frames", "0", "--evaluation.episodes", "1",
               "--torch_threads", str(threads), "--progress_bar.refresh_rate", "0", "--experiments_dir", tmp,
               "--experiment", "bench"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        process = time.perf_counter() - start
        (metrics,) = Path(tmp, "bench").glob("*/metrics.csv")
        with open(metrics, newline="") as file:
            rows = [r for r in csv.DictReader(file) if r.get("time/fps")]
    return {"frames": float(rows[-1]["frames"]), "fps": float(rows[-1]["time/fps"]), "process_s": process}


def run_sb3(env_id: str, frames: int, seed: int, threads: int) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SB3, env_id, str(frames), str(seed), str(threads)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    process = time.perf_counter() - start
    result = json.loads(out.strip().splitlines()[-1])
    return {"frames": result["frames"], "fps": result["frames"] / result["seconds"], "process_s": process}


def env_speed(env_id: str, steps: int, seed: int) -> dict[str, float]:
    """Frames/s of 8 environments stepped with random actions, per vector backend."""
    import numpy as np
    import yaml

    from rl_lightning.envs import make_vector_env

    overlay = yaml.safe_load((ROOT / "configs" / "env" / "atari.yaml").read_text())["data"]["init_args"]
    makers = {f"gymnasium {mode}": lambda mode=mode: make_vector_env(
        env_id, 8, overlay["env_kwargs"], wrappers=overlay["wrappers"], vectorization=mode, training=True)
        for mode in ("sync", "async")}
    try:
        import envpool

        makers["envpool"] = lambda: envpool.make(
            env_id.removeprefix("ALE/"), env_type="gymnasium", num_envs=8, seed=seed, episodic_life=True,
            reward_clip=True, stack_num=4, noop_max=30, frame_skip=4, img_height=84, img_width=84, gray_scale=True,
            repeat_action_probability=0.25, use_fire_reset=True)
    except ImportError:
        print("envpool is not installed (pip install envpool): not timed")
    rng = np.random.default_rng(seed)
    speeds = {}
    for name, make in makers.items():
        env = make()
        env.reset(seed=seed) if name != "envpool" else env.reset()
        actions = rng.integers(0, getattr(env, "single_action_space", env.action_space).n, (steps, 8))
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        speeds[name] = steps * 8 / (time.perf_counter() - start)
        env.close()
        print(f"{name:16s} {speeds[name]:9.0f} frames/s", flush=True)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["rl_lightning", "sb3"], choices=["rl_lightning", "sb3"])
    parser.add_argument("--envs-only", action="store_true", help="time the vector environments alone")
    args = parser.parse_args()
    if args.envs_only:
        env_speed(args.env, max(1, args.frames // 8), args.seed)
        return
    runners = {"rl_lightning": run_rl_lightning, "sb3": run_sb3}
    results = {}
    for method in args.methods:
        results[method] = runners[method](args.env, args.frames, args.seed, args.threads)
        print(f"{method:12s} " + json.dumps({k: round(v, 1) for k, v in results[method].items()}), flush=True)
    print(f"\nPPO {args.env}, {args.frames} frames, seed {args.seed}, {args.threads} torch thread(s)")
    print(f"{'method':12s} {'frames/s':>9s} {'process s':>10s}")
    for method, r in results.items():
        print(f"{method:12s} {r['fps']:9.1f} {r['process_s']:10.1f}")
    if len(results) == 2:
        print(f"ratio rl_lightning / sb3 frames/s: {results['rl_lightning']['fps'] / results['sb3']['fps']:.2f}")


if __name__ == "__main__":
    main()
