"""Stable-Baselines3 PPO on CartPole-v1, hyperparameters given by ``--hp`` (``pip install -e .[bench]``).

Prints one JSON line per collected batch: frames, elapsed seconds, mean return of the
episodes finished in that batch.
"""

import argparse
import json
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env


class Report(BaseCallback):
    """Reports each batch after its update (at the next rollout's start, or at the end)."""

    def _on_training_start(self):
        self.start, self.finished, self.pending = time.perf_counter(), [], None

    def _on_step(self):
        self.finished += [i["episode"]["r"] for i in self.locals["infos"] if "episode" in i]
        return True

    def _on_rollout_end(self):
        self.pending = (self.num_timesteps, float(np.mean(self.finished)) if self.finished else None)
        self.finished = []

    def _report(self):
        if self.pending:
            frames, mean = self.pending
            print(json.dumps({"frames": frames, "elapsed": time.perf_counter() - self.start, "return": mean}), flush=True)
            self.pending = None

    def _on_rollout_start(self):
        self._report()

    def _on_training_end(self):
        self._report()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--hp", type=json.loads, required=True, help="hyperparameters (see ppo_cartpole_speed.SETTINGS)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args()
    h = a.hp
    torch.set_num_threads(a.threads)
    env = make_vec_env("CartPole-v1", n_envs=h["envs"], seed=a.seed)
    lr = (lambda f: h["lr"] * f) if h["anneal_lr"] else h["lr"]
    clip = (lambda f: h["clip"] * f) if h["anneal_clip"] else h["clip"]
    model = PPO("MlpPolicy", env, n_steps=h["steps"], batch_size=h["minibatch"], gae_lambda=h["lam"], gamma=h["gamma"],
                n_epochs=h["epochs"], ent_coef=h["ent"], learning_rate=lr, clip_range=clip, seed=a.seed, device="cpu",
                policy_kwargs={"activation_fn": torch.nn.ReLU} if h.get("activation") == "relu" else None, verbose=0)
    model.learn(a.frames, callback=Report())


if __name__ == "__main__":
    main()
