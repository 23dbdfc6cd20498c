"""Off-policy update step: TorchRL's ``DQNLoss`` / ``SACLoss`` against rl_lightning's plain-tensor losses.

    python benchmarks/offpolicy_loss_speed.py [--algorithms dqn sac] [--repeats 5] [--steps 300] [--compile]

One update = sample a minibatch from a random 10k-transition buffer (``torch.randint``
indices, the same for both ways), loss, backward, optimizer step, target update. Both ways use
the same network shapes and fused Adam; one torch thread; the two ways alternate ``--repeats``
times (``--steps`` updates each, after a warm-up) and the median milliseconds per update is
reported with the ratio torchrl / rl_lightning. ``--compile`` adds rl_lightning's step with its
loss functions under ``torch.compile`` (forward and backward compiled; optimizer unchanged).

- DQN (CartPole shapes: 4 observations, 2 actions; 256x256 ReLU Q network; batch 64; lr 2.3e-3;
  Huber loss; gamma 0.99; gradient norm clipped at 10; no double Q, as ``configs/dqn.yaml``).
  rl_lightning: the arithmetic of ``DQN.update`` (target forward on every update, not batched per
  round) with a hard target copy every 128 updates. torchrl: ``QValueActor`` + ``DQNLoss``
  (``delay_value=True``, ``loss_function="smooth_l1"``, TD(0)) and ``HardUpdate`` stepped every
  update (copy every 128), one Adam over the loss module's parameters.
- SAC (Pendulum shapes: 3 observations, 1 action; 256x256 ReLU actor and twin critics; batch 256;
  lr 1e-3; learned alpha; gamma 0.99). rl_lightning: the arithmetic of ``SAC.update``: critic,
  actor and alpha steps with three Adams, then Polyak (tau 0.005) via ``torch._foreach_lerp_``.
  torchrl: ``ProbabilisticActor`` (``TanhNormal`` over MLP + ``NormalParamExtractor``),
  ``ValueOperator`` over observation and action, ``SACLoss`` (``num_qvalue_nets=2``,
  ``loss_function="l2"``), the three losses summed and stepped by ONE Adam over all of the loss
  module's parameters (TorchRL's usual way; the actor loss uses detached critic parameters),
  then ``SoftUpdate(tau=0.005)``.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
import warnings

import torch
from torch.nn import functional as F

from rl_lightning.networks import MLP

BUFFER = 10_000
GAMMA = 0.99
DQN_BATCH, DQN_LR, TARGET_EVERY = 64, 2.3e-3, 128
SAC_BATCH, SAC_LR, TAU = 256, 1e-3, 0.005


def mlp(i: int, o: int) -> torch.nn.Module:
    return MLP(i, o, hidden_sizes=(256, 256), activation="relu", output_gain=None)


def transitions(obs_dim: int, action: torch.Tensor) -> dict[str, torch.Tensor]:
    """A random buffer of ``BUFFER`` transitions in rl_lightning's flat layout."""
    return {"observation": torch.randn(BUFFER, obs_dim), "action": action, "reward": torch.randn(BUFFER),
            "next_observation": torch.randn(BUFFER, obs_dim), "terminated": (torch.rand(BUFFER) < 0.02).float(),
            "discount": torch.full((BUFFER,), GAMMA), "weight": torch.ones(BUFFER)}


def as_tensordict(buffer: dict[str, torch.Tensor]):
    """The same transitions in TorchRL's layout (``next`` sub-tensordict, trailing reward/done dims)."""
    from tensordict import TensorDict

    done = buffer["terminated"].bool().unsqueeze(-1)
    return TensorDict({"observation": buffer["observation"], "action": buffer["action"],
                       "next": {"observation": buffer["next_observation"], "reward": buffer["reward"].unsqueeze(-1),
                                "done": done, "terminated": done.clone()}}, batch_size=[BUFFER])


def sample(buffer, batch: int):
    index = torch.randint(BUFFER, (batch,))
    return {k: v[index] for k, v in buffer.items()} if isinstance(buffer, dict) else buffer[index]


def dqn_rl_lightning(buffer, compiled: bool = False):
    q = mlp(4, 2)
    q_target = mlp(4, 2).requires_grad_(False)
    q_target.load_state_dict(q.state_dict())
    params = list(q.parameters())
    opt = torch.optim.Adam(params, lr=DQN_LR, fused=True)
    count = 0

    def td_loss(batch):
        value = q(batch["observation"]).gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            next_q = q_target(batch["next_observation"]).max(-1).values
            target = batch["reward"] + batch["discount"] * (1.0 - batch["terminated"]) * next_q
        return (batch["weight"] * F.smooth_l1_loss(value, target, reduction="none")).mean()

    loss_fn = torch.compile(td_loss) if compiled else td_loss

    def step():
        nonlocal count
        if count % TARGET_EVERY == 0:
            q_target.load_state_dict(q.state_dict())
        count += 1
        loss = loss_fn(sample(buffer, DQN_BATCH))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0, foreach=True)
        opt.step()

    return step


def dqn_torchrl(buffer):
    from torchrl.modules import QValueActor
    from torchrl.objectives import DQNLoss, HardUpdate, ValueEstimators

    actor = QValueActor(mlp(4, 2), in_keys=["observation"], action_space="categorical")
    loss = DQNLoss(actor, loss_function="smooth_l1", delay_value=True, action_space="categorical")
    loss.make_value_estimator(ValueEstimators.TD0, gamma=GAMMA)
    updater = HardUpdate(loss, value_network_update_interval=TARGET_EVERY)
    params = [p for p in loss.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=DQN_LR, fused=True)
    data = as_tensordict(buffer)

    def step():
        out = loss(sample(data, DQN_BATCH))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0, foreach=True)
        opt.step()
        updater.step()

    return step


def sac_rl_lightning(buffer, compiled: bool = False):
    actor, q1, q2 = mlp(3, 2), mlp(4, 1), mlp(4, 1)
    critic = torch.nn.ModuleList([q1, q2])
    critic_target = torch.nn.ModuleList([mlp(4, 1), mlp(4, 1)]).requires_grad_(False)
    critic_target.load_state_dict(critic.state_dict())
    log_alpha = torch.nn.Parameter(torch.zeros(()))
    critic_opt = torch.optim.Adam(critic.parameters(), lr=SAC_LR, fused=True)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=SAC_LR, fused=True)
    alpha_opt = torch.optim.Adam([log_alpha], lr=SAC_LR, fused=True)
    target_entropy = -1.0

    def policy(obs):
        mean, log_std = actor(obs).chunk(2, -1)
        std = log_std.clamp(-20.0, 2.0).exp()
        noise = torch.randn_like(mean)
        action = torch.tanh(mean + std * noise)
        log_prob = (-0.5 * noise.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        return action, log_prob - torch.log1p(-action.pow(2) + 1e-6).sum(-1)

    def twin(nets, obs, action):
        x = torch.cat([obs, action], -1)
        return nets[0](x).squeeze(-1), nets[1](x).squeeze(-1)

    def optimize(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def critic_loss(batch, alpha):
        with torch.no_grad():
            next_action, next_log_prob = policy(batch["next_observation"])
            next_q = torch.min(*twin(critic_target, batch["next_observation"], next_action)) - alpha * next_log_prob
            target = batch["reward"] + batch["discount"] * (1.0 - batch["terminated"]) * next_q
        v1, v2 = twin(critic, batch["observation"], batch["action"])
        return 0.5 * (batch["weight"] * ((v1 - target).pow(2) + (v2 - target).pow(2))).mean()

    def actor_loss(obs, alpha):
        action, log_prob = policy(obs)
        return (alpha * log_prob - torch.min(*twin(critic, obs, action))).mean(), log_prob

    if compiled:
        critic_loss, actor_loss = torch.compile(critic_loss), torch.compile(actor_loss)

    def step():
        batch = sample(buffer, SAC_BATCH)
        obs = batch["observation"]
        alpha = log_alpha.exp().detach()
        optimize(critic_opt, critic_loss(batch, alpha))
        critic.requires_grad_(False)
        loss, log_prob = actor_loss(obs, alpha)
        optimize(actor_opt, loss)
        critic.requires_grad_(True)
        optimize(alpha_opt, -(log_alpha * (log_prob.detach() + target_entropy)).mean())
        with torch.no_grad():
            torch._foreach_lerp_(list(critic_target.parameters()), list(critic.parameters()), TAU)

    return step


def sac_torchrl(buffer):
    from tensordict.nn import NormalParamExtractor, TensorDictModule
    from torchrl.data import Bounded
    from torchrl.modules import MLP as TorchRLMLP
    from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
    from torchrl.objectives import SACLoss, SoftUpdate, ValueEstimators

    spec = Bounded(-1.0, 1.0, (1,))
    actor = ProbabilisticActor(TensorDictModule(torch.nn.Sequential(mlp(3, 2), NormalParamExtractor()),
                                                in_keys=["observation"], out_keys=["loc", "scale"]),
                               in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal)
    critic = TorchRLMLP(in_features=4, out_features=1, num_cells=[256, 256], activation_class=torch.nn.ReLU)
    qvalue = ValueOperator(critic, in_keys=["observation", "action"])
    loss = SACLoss(actor, qvalue, num_qvalue_nets=2, loss_function="l2", action_spec=spec)
    loss.make_value_estimator(ValueEstimators.TD0, gamma=GAMMA)
    updater = SoftUpdate(loss, tau=TAU)
    opt = torch.optim.Adam(loss.parameters(), lr=SAC_LR, fused=True)
    data = as_tensordict(buffer)

    def step():
        out = loss(sample(data, SAC_BATCH))
        opt.zero_grad(set_to_none=True)
        (out["loss_qvalue"] + out["loss_actor"] + out["loss_alpha"]).backward()
        opt.step()
        updater.step()

    return step


ALGORITHMS = {
    "dqn": (lambda: transitions(4, torch.randint(2, (BUFFER,))), dqn_rl_lightning, dqn_torchrl),
    "sac": (lambda: transitions(3, torch.rand(BUFFER, 1) * 2 - 1), sac_rl_lightning, sac_torchrl),
}


def measure(steps: dict, repeats: int, n: int) -> dict[str, float]:
    """Median ms per update of each step function, the functions alternating ``repeats`` times."""
    results = {name: [] for name in steps}
    for step in steps.values():
        for _ in range(20):
            step()
    for _ in range(repeats):
        for name, step in steps.items():
            step()
            start = time.perf_counter()
            for _ in range(n):
                step()
            results[name].append((time.perf_counter() - start) / n * 1e3)
    return {name: statistics.median(v) for name, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", choices=sorted(ALGORITHMS), default=["dqn", "sac"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--compile", action="store_true",
                        help="also time rl_lightning's loss under torch.compile (inductor; needs a C++ compiler)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    print(f"Off-policy update step, one thread (median of {args.repeats} x {args.steps} updates)")
    extra = f" {'compiled ms':>12s} {'eager / compiled':>17s}" if args.compile else ""
    print(f"  {'algorithm':10s} {'rl_lightning ms':>16s} {'torchrl ms':>11s} {'torchrl / rl_lightning':>23s}{extra}")
    for name in args.algorithms:
        make_buffer, ours, theirs = ALGORITHMS[name]
        buffer = make_buffer()
        steps = {"rl_lightning": ours(buffer), "torchrl": theirs(buffer)}
        if args.compile:
            steps["compiled"] = ours(buffer, compiled=True)
        ms = measure(steps, args.repeats, args.steps)
        ratio = "x" + format(ms["torchrl"] / ms["rl_lightning"], ".2f")
        line = f"  {name:10s} {ms['rl_lightning']:16.2f} {ms['torchrl']:11.2f} {ratio:>23s}"
        if args.compile:
            line += f" {ms['compiled']:12.2f} {'x' + format(ms['rl_lightning'] / ms['compiled'], '.2f'):>17s}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
