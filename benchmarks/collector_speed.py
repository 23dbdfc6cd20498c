"""Collection speed: TorchRL's ``Collector`` against ``rl_lightning.data.VectorCollector``.

    python benchmarks/collector_speed.py [--envs 8] [--frames-per-batch 256] [--batches 40]

Same environments (CartPole-v1 in one in-process gymnasium ``SyncVectorEnv`` with same-step
autoreset), same 64x64 tanh MLP categorical policy, one torch thread, alternating 3 rounds.
Prints frames/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch
from torch import nn


def policy_net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))


def torchrl_collector(envs: int, fpb: int):
    from tensordict.nn import TensorDictModule
    from torchrl.collectors import Collector
    from torchrl.envs import GymWrapper
    from torchrl.modules import ProbabilisticActor

    from rl_lightning.envs import make_vector_env

    env = GymWrapper(make_vector_env("CartPole-v1", envs), categorical_action_encoding=True)
    actor = ProbabilisticActor(TensorDictModule(policy_net(), ["observation"], ["logits"]), in_keys=["logits"],
                               distribution_class=torch.distributions.Categorical, return_log_prob=True,
                               spec=env.action_spec)
    return iter(Collector(env, actor, frames_per_batch=fpb, total_frames=-1))


def vector_collector(envs: int, fpb: int):
    from rl_lightning.algorithms import PPO
    from rl_lightning.data import VectorCollector
    from rl_lightning.envs import EnvSpec, make_vector_env

    env = make_vector_env("CartPole-v1", envs)
    model = PPO()
    model.connect_spec(EnvSpec.from_env("CartPole-v1", env))
    return iter(VectorCollector(env, model.collect_policy, fpb, seed=0))


def measure(batches, n: int, fpb: int) -> float:
    next(batches)  # warm-up (resets, first allocations)
    start = time.perf_counter()
    for _ in range(n):
        next(batches)
    return n * fpb / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--frames-per-batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    makers = {"torchrl Collector + GymWrapper": torchrl_collector, "rl_lightning VectorCollector": vector_collector}
    iters = {name: make(args.envs, args.frames_per_batch) for name, make in makers.items()}
    results = {name: [] for name in makers}
    for _ in range(3):
        for name, batches in iters.items():
            results[name].append(measure(batches, args.batches, args.frames_per_batch))
    print(f"CartPole-v1, {args.envs} envs, {args.frames_per_batch} frames per batch, MLP policy (median of 3)")
    medians = {name: statistics.median(v) for name, v in results.items()}
    for name, fps in medians.items():
        print(f"  {name:32s} {fps:9.0f} frames/s")
    a, b = medians.values()
    print(f"  ratio rl_lightning / torchrl: x{b / a:.2f}")


if __name__ == "__main__":
    main()
