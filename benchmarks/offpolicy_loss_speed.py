"""Off-policy update step: the shipped ``DQN`` / ``SAC`` training step against TorchRL's ``DQNLoss`` / ``SACLoss``.

    python benchmarks/offpolicy_loss_speed.py [--algorithms dqn sac] [--repeats 5] [--rounds 20]

rl_lightning: the algorithm module of ``configs/dqn.yaml`` / ``configs/sac.yaml`` (its
hyperparameters, networks, optimizers and ``updates_per_batch``), set up by a real
``Trainer.fit`` on the config's environment with its ``ReplayDataModule``. Once the buffer holds
its random warm-up frames, a callback times the module's own ``training_step`` on rounds of
updates drawn from that buffer (``UpdateRound``: the round's minibatches gathered at once,
DQN's targets of a round in one forward pass, the updates, the round's logging), exactly what
a training round runs, minus the collection (and hard target copies: the frame count does not
advance while timing). Reported per update (a DQN round holds 128, a
SAC round one). The same rounds are also timed with Lightning's backward/optimizer wrappers
(``manual_backward``, ``LightningOptimizer.step``), the path taken when a callback, a hook,
mixed precision or several devices need them.

TorchRL, per update: sample a minibatch from a random 10k-transition TensorDict
(``torch.randint`` indices), loss, backward, optimizer step, target update, with the same
network shapes, batch size, learning rate and fused Adam; one torch thread.

- DQN (CartPole: 4 observations, 2 actions; 256x256 ReLU Q network; batch 64; Huber loss;
  gamma 0.99; gradient norm clipped at 10; no double Q): ``QValueActor`` + ``DQNLoss``
  (``delay_value=True``, ``loss_function="smooth_l1"``, TD(0)) and ``HardUpdate`` stepped
  every update (copy every 128), one Adam over the loss module's parameters.
- SAC (Pendulum: 3 observations, 1 action; 256x256 ReLU actor and twin critics; batch 256;
  learned alpha; gamma 0.99): ``ProbabilisticActor`` (``TanhNormal`` over MLP +
  ``NormalParamExtractor``), ``ValueOperator`` over observation and action, ``SACLoss``
  (``num_qvalue_nets=2``, ``loss_function="l2"``), the three losses summed and stepped by ONE
  Adam over all of the loss module's parameters (TorchRL's usual way), then
  ``SoftUpdate(tau=0.005)``.

The ways alternate ``--repeats`` times after a warm-up; medians are printed with the ratio
torchrl / rl_lightning.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml

from rl_lightning.networks import MLP

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BUFFER = 10_000
GAMMA = 0.99
DQN_BATCH, DQN_LR, TARGET_EVERY = 64, 2.3e-3, 128
SAC_BATCH, SAC_LR, TAU = 256, 1e-3, 0.005


def mlp(i: int, o: int) -> torch.nn.Module:
    return MLP(i, o, hidden_sizes=(256, 256), activation="relu", output_gain=None)


def as_tensordict(obs_dim: int, action: torch.Tensor):
    """A random buffer of ``BUFFER`` transitions in TorchRL's layout."""
    from tensordict import TensorDict

    done = (torch.rand(BUFFER, 1) < 0.02)
    return TensorDict({"observation": torch.randn(BUFFER, obs_dim), "action": action,
                       "next": {"observation": torch.randn(BUFFER, obs_dim), "reward": torch.randn(BUFFER, 1),
                                "done": done, "terminated": done.clone()}}, batch_size=[BUFFER])


def sample(data, batch: int):
    return data[torch.randint(BUFFER, (batch,))]


def dqn_torchrl():
    from torchrl.modules import QValueActor
    from torchrl.objectives import DQNLoss, HardUpdate, ValueEstimators

    actor = QValueActor(mlp(4, 2), in_keys=["observation"], action_space="categorical")
    loss = DQNLoss(actor, loss_function="smooth_l1", delay_value=True, action_space="categorical")
    loss.make_value_estimator(ValueEstimators.TD0, gamma=GAMMA)
    updater = HardUpdate(loss, value_network_update_interval=TARGET_EVERY)
    params = [p for p in loss.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=DQN_LR, fused=True)
    data = as_tensordict(4, torch.randint(2, (BUFFER,)))

    def step():
        out = loss(sample(data, DQN_BATCH))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0, foreach=True)
        opt.step()
        updater.step()

    return step


def sac_torchrl():
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
    data = as_tensordict(3, torch.rand(BUFFER, 1) * 2 - 1)

    def step():
        out = loss(sample(data, SAC_BATCH))
        opt.zero_grad(set_to_none=True)
        (out["loss_qvalue"] + out["loss_actor"] + out["loss_alpha"]).backward()
        opt.step()
        updater.step()

    return step


class _TimeRounds(L.Callback):
    """At the end of the first real round, runs ``measure(module, optimizers)`` and stops."""

    def __init__(self, measure) -> None:
        self.measure = measure
        self.result = None

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if self.result is None:
            optimizers = pl_module.optimizers()
            self.result = self.measure(pl_module, optimizers if isinstance(optimizers, list) else [optimizers])
        trainer.should_stop = True


def shipped(config: str, measure):
    """Fit the config's module and data module until the first round, then ``measure``."""
    from rl_lightning.algorithms import DQN, SAC
    from rl_lightning.data import ReplayDataModule

    cfg = yaml.safe_load((CONFIGS / config).read_text())
    algorithm = {"DQN": DQN, "SAC": SAC}[cfg["model"]["class_path"].rsplit(".", 1)[1]]
    model = algorithm(**cfg["model"]["init_args"])
    model.log_every_frames = cfg.get("log_every_frames", 0)
    data = ReplayDataModule(**{**cfg["data"]["init_args"], "total_frames": 10**9})
    callback = _TimeRounds(measure)
    with tempfile.TemporaryDirectory() as folder:
        L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, default_root_dir=folder, callbacks=[callback]).fit(model, datamodule=data)
    return callback.result


def rounds_of(module, optimizers, through_lightning: bool):
    """One call: one round of the shipped training step; returns the updates it made."""
    from rl_lightning.data.replay import UpdateRound

    datamodule = module.trainer.datamodule

    def step() -> int:
        module._direct_backward = not through_lightning
        module.training_step(iter([(UpdateRound(datamodule, datamodule.updates_per_batch), 0, 0)]))
        return datamodule.updates_per_batch

    return step


def per_update(step, n: int) -> float:
    """Milliseconds per update of ``n`` calls of ``step`` (each returns its update count)."""
    start, updates = time.perf_counter(), 0
    for _ in range(n):
        updates += step()
    return (time.perf_counter() - start) / updates * 1e3


ALGORITHMS = {"dqn": ("dqn.yaml", dqn_torchrl), "sac": ("sac.yaml", sac_torchrl)}


def compare(config: str, torchrl_maker, repeats: int, rounds: int) -> dict[str, float]:
    """Median ms per update of the shipped rounds (direct and through Lightning) and TorchRL's."""

    def measure(module, optimizers):
        updates_per_round = module.trainer.datamodule.updates_per_batch
        theirs = torchrl_maker()

        def torchrl_round() -> int:
            for _ in range(updates_per_round):
                theirs()
            return updates_per_round

        steps = {"rl_lightning": rounds_of(module, optimizers, False),
                 "through Lightning": rounds_of(module, optimizers, True), "torchrl": torchrl_round}
        results = {name: [] for name in steps}
        warm = max(1, 20 // updates_per_round)
        for step in steps.values():
            per_update(step, warm)
        for _ in range(repeats):
            for name, step in steps.items():
                results[name].append(per_update(step, rounds))
        return {name: statistics.median(v) for name, v in results.items()}

    return shipped(config, measure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", choices=sorted(ALGORITHMS), default=["dqn", "sac"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20,
                        help="rounds per timing (DQN: 128 updates each, SAC: one), TorchRL doing as many updates")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    print(f"Off-policy update step, one thread (median of {args.repeats} x {args.rounds} rounds), ms per update")
    print(f"  {'algorithm':10s} {'rl_lightning':>13s} {'via Lightning':>14s} {'torchrl':>8s} {'torchrl / rl_lightning':>23s}")
    for name in args.algorithms:
        config, torchrl_maker = ALGORITHMS[name]
        ms = compare(config, torchrl_maker, args.repeats, args.rounds)
        ratio = "x" + format(ms["torchrl"] / ms["rl_lightning"], ".2f")
        print(f"  {name:10s} {ms['rl_lightning']:13.2f} {ms['through Lightning']:14.2f} {ms['torchrl']:8.2f} {ratio:>23s}",
              flush=True)


if __name__ == "__main__":
    main()
