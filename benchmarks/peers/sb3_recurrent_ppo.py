"""sb3-contrib RecurrentPPO on CartPole-v1 with its velocities hidden, RL Zoo's CartPoleNoVel-v1
settings (``pip install -e .[bench]``).

Prints one JSON line per evaluation: frames, training seconds so far (evaluations excluded),
the mean return of ``--eval-episodes`` deterministic episodes (one environment each, memory
carried, observations normalized with the training statistics).
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from rl_lightning.envs.partial import MaskVelocity


def masked(**kwargs):
    return MaskVelocity(gym.make("CartPole-v1", **kwargs))


class Report(BaseCallback):
    """Evaluates every ``every`` frames at a batch boundary; the clock stops meanwhile."""

    def __init__(self, every: int, episodes: int, seed: int):
        super().__init__()
        self.every, self.episodes, self.seed = every, episodes, seed
        self.next = every

    def _on_training_start(self):
        self.start, self.eval_s = time.perf_counter(), 0.0
        self.eval_env = VecNormalize(make_vec_env(masked, n_envs=1, seed=self.seed + 1_000_000), training=False,
                                     norm_obs=True, norm_reward=False)

    def _on_step(self):
        return True

    def _evaluate(self):
        started = time.perf_counter()
        elapsed = started - self.start - self.eval_s  # training time so far
        self.eval_env.obs_rms = self.training_env.obs_rms
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.episodes, deterministic=True)
        self.eval_s += time.perf_counter() - started
        print(json.dumps({"frames": self.num_timesteps, "elapsed": elapsed, "eval": float(mean)}), flush=True)

    def _on_rollout_start(self):
        if self.num_timesteps >= self.next:
            self._evaluate()
            while self.next <= self.num_timesteps:
                self.next += self.every

    def _on_training_end(self):
        self._evaluate()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    np.random.seed(a.seed)
    env = VecNormalize(make_vec_env(masked, n_envs=8, seed=a.seed), norm_obs=True, norm_reward=False)
    model = RecurrentPPO(
        "MlpLstmPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
        learning_rate=lambda f: 1e-3 * f, clip_range=lambda f: 0.2 * f, seed=a.seed, device="cpu", verbose=0,
        policy_kwargs={"ortho_init": False, "activation_fn": torch.nn.ReLU, "lstm_hidden_size": 64,
                       "enable_critic_lstm": True, "net_arch": {"pi": [64], "vf": [64]}},
    )
    model.learn(a.frames, callback=Report(a.eval_every, a.eval_episodes, a.seed))


if __name__ == "__main__":
    main()
