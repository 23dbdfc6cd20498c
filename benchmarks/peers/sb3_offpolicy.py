"""Stable-Baselines3 DQN / SAC / TD3 with RL Zoo's settings (``pip install -e .[bench]``).

    python benchmarks/peers/sb3_offpolicy.py --task dqn-cartpole --seed 1 --frames 50000 [--threads 1]

Prints one JSON line per evaluation (every ``--eval-every`` frames and at the end: frames,
elapsed training seconds without the evaluations, mean return of ``--eval-episodes``
deterministic episodes) and a last line with the training frames/s.
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise

TASKS = {
    "dqn-cartpole": ("CartPole-v1", lambda env, seed: DQN(
        "MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
        target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
        exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu")),
    "sac-pendulum": ("Pendulum-v1", lambda env, seed: SAC(
        "MlpPolicy", env, learning_rate=1e-3, seed=seed, device="cpu")),
    "td3-pendulum": ("Pendulum-v1", lambda env, seed: TD3(
        "MlpPolicy", env, gamma=0.98, buffer_size=200_000, learning_starts=10_000, learning_rate=1e-3,
        action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), policy_kwargs={"net_arch": [400, 300]},
        seed=seed, device="cpu")),
}


class Evaluate(BaseCallback):
    """Deterministic evaluation every ``every`` frames, its time excluded from the clock."""

    def __init__(self, env_id, every, episodes, seed):
        super().__init__()
        self.env = gym.make(env_id)
        self.every, self.episodes, self.seed = every, episodes, seed
        self.paused = 0.0

    def _on_training_start(self):
        self.start = time.perf_counter()

    def evaluate(self):
        pause = time.perf_counter()
        returns = []
        for episode in range(self.episodes):
            obs, _ = self.env.reset(seed=self.seed + episode)
            done, total = False, 0.0
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = self.env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        self.paused += time.perf_counter() - pause
        elapsed = pause - self.start - (self.paused - (time.perf_counter() - pause))
        print(json.dumps({"frames": self.num_timesteps, "elapsed": elapsed, "eval": float(np.mean(returns))}), flush=True)

    def _on_step(self):
        if self.every and self.num_timesteps % self.every == 0:
            self.evaluate()
        return True

    def _on_training_end(self):
        if not self.every or self.num_timesteps % self.every:
            self.evaluate()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads; default: torch's own choice")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=10)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    env_id, make = TASKS[a.task]
    env = gym.make(env_id)
    model = make(env, a.seed)
    callback = Evaluate(env_id, a.eval_every, a.eval_episodes, seed=10**6 + a.seed)
    start = time.perf_counter()
    model.learn(a.frames, callback=callback)
    train_s = time.perf_counter() - start - callback.paused
    print(json.dumps({"fps": a.frames / train_s, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
