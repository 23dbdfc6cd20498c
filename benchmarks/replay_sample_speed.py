"""Sampling a round of uniform minibatches: TorchRL ``ReplayBuffer.sample`` per update vs one
gather per round (``ReplayDataModule.sample_round``, what DQN/SAC/TD3 train on).

    python benchmarks/replay_sample_speed.py [--updates 128] [--batch 64] [--repeats 5]

A ``LazyTensorStorage`` of 100k CartPole transitions (the keys ``ReplayDataModule`` stores);
one round = ``--updates`` minibatches of ``--batch``. ``sample``: ``buffer.sample()`` before
each update, then the per-key tensors, as a training step reads them. ``round``: the indices of
the whole round drawn at once and gathered from the same storage in one call, then sliced per
update. Both draw uniformly with replacement from the same storage. One torch thread; the two
alternate ``--repeats`` times; medians of microseconds per minibatch.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, RandomSampler, ReplayBuffer

from rl_lightning.data.replay import KEYS, ReplayDataModule, UpdateRound

logging.getLogger("torchrl").setLevel(logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = 100_000
    data = TensorDict({"observation": torch.randn(n, 4), "action": torch.randint(2, (n,)), "reward": torch.ones(n),
                       "next_observation": torch.randn(n, 4), "terminated": torch.zeros(n),
                       "discount": torch.full((n,), 0.99)}, [n])
    buffer = ReplayBuffer(storage=LazyTensorStorage(n), sampler=RandomSampler(), batch_size=args.batch)
    buffer.extend(data)
    module = ReplayDataModule("CartPole-v1", batch_size=args.batch, buffer_size=n)
    module.buffer = buffer

    def per_update() -> None:
        for _ in range(args.updates):
            module.sample()  # buffer.sample(return_info=True) + per-key tensors + index + weight

    def per_round() -> None:
        for batch in UpdateRound(module, args.updates):
            batch["observation"]

    results = {"sample": [], "round": []}
    for fn in (per_update, per_round):
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("sample", per_update), ("round", per_round)):
            start = time.perf_counter()
            for _ in range(args.rounds):
                fn()
            results[name].append((time.perf_counter() - start) / (args.rounds * args.updates) * 1e6)
    sample, gathered = statistics.median(results["sample"]), statistics.median(results["round"])
    print(f"uniform minibatches of {args.batch}, rounds of {args.updates} updates, keys {', '.join(KEYS)}")
    print(f"ReplayBuffer.sample per update: {sample:7.1f} us per minibatch")
    print(f"one gather per round:           {gathered:7.1f} us per minibatch  (x{sample / gathered:.1f} faster)")


if __name__ == "__main__":
    main()
