"""Stable-Baselines3 A2C on CartPole-v1, hyperparameters given by ``--hp`` (``pip install -e .[bench]``).

    python benchmarks/peers/sb3_a2c.py --seed 1 --frames 500000 [--hp '{"envs": 8, ...}'] [--threads 1]

The default ``--hp`` is RL Zoo's CartPole-v1 A2C (the settings of ``configs/a2c.yaml``): 8
environments and Stable-Baselines3's defaults (5 steps, learning rate 7e-4, gamma 0.99, GAE
lambda 1, no entropy bonus, RMSprop, gradient norm 0.5).

Prints one JSON line per collected batch, as ``sb3_ppo.py``: frames, elapsed seconds, mean return
of the episodes finished in that batch; with ``--eval-every N`` (default 25000) the line of the
first batch at or past each multiple of N (and the last) also has ``eval``, the mean return of
``--eval-episodes`` deterministic episodes, whose time is left out of ``elapsed``.
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

RLZOO = {"envs": 8, "steps": 5, "lr": 7e-4, "gamma": 0.99, "lam": 1.0, "ent": 0.0, "anneal_lr": False}


class Report(BaseCallback):
    """Reports each batch after its update (at the next rollout's start, or at the end)."""

    def __init__(self, every, episodes, seed):
        super().__init__()
        self.every, self.episodes, self.seed = every, episodes, seed
        self.eval_env = gym.make("CartPole-v1")

    def _on_training_start(self):
        self.start, self.paused, self.finished, self.pending = time.perf_counter(), 0.0, [], None
        self.next_eval = self.every or None

    def _on_step(self):
        self.finished += [i["episode"]["r"] for i in self.locals["infos"] if "episode" in i]
        return True

    def _on_rollout_end(self):
        self.pending = (self.num_timesteps, float(np.mean(self.finished)) if self.finished else None)
        self.finished = []

    def evaluate(self):
        pause = time.perf_counter()
        returns = []
        for episode in range(self.episodes):
            obs, _ = self.eval_env.reset(seed=self.seed + 1000 + episode)
            done, total = False, 0.0
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        self.paused += time.perf_counter() - pause
        return float(np.mean(returns))

    def _report(self, last=False):
        if self.pending:
            frames, mean = self.pending
            row = {"frames": frames, "elapsed": time.perf_counter() - self.start - self.paused, "return": mean}
            if self.next_eval is not None and (frames >= self.next_eval or last):
                row["eval"] = self.evaluate()
                while self.next_eval <= frames:
                    self.next_eval += self.every
            print(json.dumps(row), flush=True)
            self.pending = None

    def _on_rollout_start(self):
        self._report()

    def _on_training_end(self):
        self._report(last=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frames", type=int, default=500_000)
    p.add_argument("--hp", type=json.loads, default=RLZOO, help="hyperparameters (default: RL Zoo's, see RLZOO)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--eval-every", type=int, default=25_000, help="frames between evaluations; 0: none")
    p.add_argument("--eval-episodes", type=int, default=10)
    a = p.parse_args()
    h = {**RLZOO, **a.hp}
    torch.set_num_threads(a.threads)
    env = make_vec_env("CartPole-v1", n_envs=h["envs"], seed=a.seed)
    lr = (lambda f: h["lr"] * f) if h["anneal_lr"] else h["lr"]
    model = A2C("MlpPolicy", env, n_steps=h["steps"], gae_lambda=h["lam"], gamma=h["gamma"], ent_coef=h["ent"],
                learning_rate=lr, seed=a.seed, device="cpu", verbose=0)
    model.learn(a.frames, callback=Report(a.eval_every, a.eval_episodes, a.seed))


if __name__ == "__main__":
    main()
