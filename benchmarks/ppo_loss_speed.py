"""PPO update step: ``torchrl.objectives.ClipPPOLoss`` against rl_lightning's PPO loss.

    python benchmarks/ppo_loss_speed.py [--batch 256] [--steps 500]

Both: the same 64x64 tanh actor (categorical) and critic, one 256-sample minibatch, loss +
backward + gradient clipping + fused Adam step, one torch thread, alternating 3 rounds.
Prints milliseconds per step and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch


def torchrl_step(batch: int):
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule
    from torchrl.modules import ProbabilisticActor, ValueOperator
    from torchrl.objectives import ClipPPOLoss

    from rl_lightning.networks import MLP

    actor = ProbabilisticActor(TensorDictModule(MLP(4, 2, output_gain=0.01), ["observation"], ["logits"]),
                               in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                               return_log_prob=True)
    loss = ClipPPOLoss(actor, ValueOperator(MLP(4, 1), in_keys=["observation"]), clip_epsilon=0.2, entropy_coeff=0.0)
    data = TensorDict({"observation": torch.randn(batch, 4), "action": torch.randint(0, 2, (batch,)),
                       "action_log_prob": torch.randn(batch) - 0.7, "advantage": torch.randn(batch, 1),
                       "value_target": torch.randn(batch, 1)}, batch_size=[batch])
    params = list(loss.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-5, fused=True)

    def step():
        out = loss(data)
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()

    return step


def rl_lightning_step(batch: int):
    from rl_lightning.algorithms import PPO
    from rl_lightning.envs import EnvSpec

    model = PPO()
    model.connect_spec(EnvSpec("CartPole-v1", (4,), True, n_actions=2))
    data = {"obs": torch.randn(batch, 4), "action": torch.randint(0, 2, (batch,)), "log_prob": torch.randn(batch) - 0.7,
            "advantage": torch.randn(batch), "target": torch.randn(batch), "value": torch.randn(batch)}
    params = list(model.parameters())
    opt = model.configure_optimizers()  # the shipped optimizer: fused Adam, eps 1e-5

    def step():
        total, _ = model.compute_loss(data)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    steps = {"torchrl ClipPPOLoss": torchrl_step(args.batch), "rl_lightning PPO.compute_loss": rl_lightning_step(args.batch)}
    results = {name: [] for name in steps}
    for _ in range(3):
        for name, step in steps.items():
            step()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            results[name].append((time.perf_counter() - start) / args.steps * 1e3)
    print(f"PPO update step, minibatch {args.batch}, 64x64 MLPs (median of 3)")
    medians = {name: statistics.median(v) for name, v in results.items()}
    for name, ms in medians.items():
        print(f"  {name:24s} {ms:6.2f} ms/step")
    a, b = medians.values()
    print(f"  ratio torchrl / rl_lightning: x{a / b:.2f}")


if __name__ == "__main__":
    main()
