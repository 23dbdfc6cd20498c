"""A minimal hand-written PPO loop on a gymnasium sync vector env: the speed floor.

The same algorithm as rl_lightning's PPO, hyperparameters given by ``--hp``: separate
64x64 tanh actor/critic, orthogonal init, GAE with bootstrap on truncation, advantage
normalization, optional linear lr and clip schedules, gradient clipping 0.5, Adam eps 1e-5.
Prints one JSON line per collected batch: frames, elapsed seconds, mean return of the
episodes finished in that batch.
"""

import argparse
import json
import math
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn


def mlp(i, o, gain):
    net = nn.Sequential(nn.Linear(i, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, o))
    for k, layer in enumerate([m for m in net if isinstance(m, nn.Linear)]):
        nn.init.orthogonal_(layer.weight, gain if k == 2 else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return net


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--hp", type=json.loads, required=True, help="hyperparameters (see ppo_cartpole_speed.SETTINGS)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    h = a.hp
    n, steps, epochs, mb, gamma, lam, lr, clip = (h[k] for k in ("envs", "steps", "epochs", "minibatch", "gamma", "lam", "lr", "clip"))
    ent = h["ent"]
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    actor, critic = mlp(4, 2, 0.01), mlp(4, 1, 1.0)
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=lr, eps=1e-5, fused=True)
    obs = torch.as_tensor(env.reset(seed=a.seed)[0])
    ep_ret, frames, start = np.zeros(n), 0, time.perf_counter()
    while frames < a.frames:
        remaining = 1 - frames / a.frames
        O, A, LP, R, NO, TE, DN, finished = [], [], [], [], [], [], [], []
        with torch.no_grad():
            for _ in range(steps):
                dist = torch.distributions.Categorical(logits=actor(obs))
                act = dist.sample()
                nobs, rew, term, trunc, info = env.step(act.numpy())
                done = term | trunc
                real = nobs.copy()
                for i in np.flatnonzero(done):
                    real[i] = info["final_obs"][i]
                ep_ret += rew
                finished += list(ep_ret[done])
                ep_ret[done] = 0
                O.append(obs); A.append(act); LP.append(dist.log_prob(act)); R.append(torch.as_tensor(rew, dtype=torch.float32))
                NO.append(torch.as_tensor(real)); TE.append(torch.as_tensor(term)); DN.append(torch.as_tensor(done))
                obs = torch.as_tensor(nobs)
            O, NO = torch.stack(O), torch.stack(NO)
            v, nv = critic(O).squeeze(-1), critic(NO).squeeze(-1)
            R, TE, DN = torch.stack(R), torch.stack(TE).float(), torch.stack(DN).float()
            delta = R + gamma * nv * (1 - TE) - v
            adv, last = torch.zeros_like(R), torch.zeros(n)
            for t in reversed(range(steps)):
                last = delta[t] + gamma * lam * (1 - DN[t]) * last
                adv[t] = last
            ret = adv + v
        frames += steps * n
        O, A, LP, adv, ret = O.flatten(0, 1), torch.stack(A).flatten(), torch.stack(LP).flatten(), adv.flatten(), ret.flatten()
        for g in opt.param_groups:
            g["lr"] = lr * (remaining if h["anneal_lr"] else 1.0)
        c = clip * (remaining if h["anneal_clip"] else 1.0)
        for _ in range(epochs):
            for idx in torch.randperm(steps * n).split(mb):
                dist = torch.distributions.Categorical(logits=actor(O[idx]))
                ratio = (dist.log_prob(A[idx]) - LP[idx]).exp()
                entropy = dist.entropy().mean()
                ad = (adv[idx] - adv[idx].mean()) / (adv[idx].std() + 1e-8)
                pl = -torch.min(ratio * ad, ratio.clamp(1 - c, 1 + c) * ad).mean()
                vl = nn.functional.mse_loss(critic(O[idx]).squeeze(-1), ret[idx])
                opt.zero_grad()
                (pl + 0.5 * vl - ent * entropy).backward()
                nn.utils.clip_grad_norm_(params, 0.5)
                opt.step()
        mean = float(np.mean(finished)) if finished else None
        print(json.dumps({"frames": frames, "elapsed": time.perf_counter() - start, "return": mean}), flush=True)


if __name__ == "__main__":
    main()
