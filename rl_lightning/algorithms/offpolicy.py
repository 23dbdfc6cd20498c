"""What the replay-based algorithms share: the update loop over sampled minibatches,
target networks, per-batch logging and the frame budget."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch import nn

from rl_lightning.algorithms.base import RLModule
from rl_lightning.data.replay import UpdateRound
from rl_lightning.errors import MAX_LEARNING_RATE, ConfigError, check_range
from rl_lightning.networks.actor import NetworkBuilder


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` (one fused call)."""
    targets = list(target.parameters())
    if targets:  # a parameter-free module (Flatten) has nothing to average
        with torch.no_grad():
            torch._foreach_lerp_(targets, list(source.parameters()), tau)


def adam(module: "OffPolicyModule", params, lr: float) -> torch.optim.Adam:
    """Adam with the module's ``adam_eps``, fused (faster on CPU and GPU) unless mixed
    precision needs gradient unscaling."""
    fused = "mixed" not in str(module.trainer.precision) if module.attached_trainer is not None else True
    return torch.optim.Adam(params, lr=lr, eps=module.hparams.get("adam_eps", 1e-8), fused=fused)


def check_common(learning_rate: float, adam_eps: float, gamma: float, tau: float) -> None:
    """Range checks of the options every off-policy algorithm has (a :class:`ConfigError`
    names the option): learning rate in (0, 1], Adam epsilon > 0, gamma and tau in (0, 1]."""
    check_range("model.learning_rate", learning_rate, 0.0, MAX_LEARNING_RATE, low_open=True)
    check_range("model.adam_eps", adam_eps, 0.0, low_open=True)
    check_range("model.gamma", gamma, 0.0, 1.0, low_open=True)
    check_range("model.tau", tau, 0.0, 1.0, low_open=True)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy of ``module`` without gradients."""
    import copy

    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def _plain_backward_suffices(module: "OffPolicyModule") -> bool:
    """Whether ``loss.backward()`` and the bare optimizer's ``step()`` do all that
    ``manual_backward`` and Lightning's optimizer step would: one device, full precision, and
    no callback or module hook around the backward pass or before the optimizer step.
    Lightning's wrappers (hooks, precision plugin, closure, clipping dispatch) cost time on
    every update (``benchmarks/offpolicy_loss_speed.py`` times DQN and SAC with and without
    them), so they are skipped when they would do nothing."""
    from lightning.pytorch import Callback, LightningModule
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy

    trainer = module.trainer
    if type(trainer.strategy) is not SingleDeviceStrategy or type(trainer.precision_plugin) is not Precision:
        return False
    hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
    if any(getattr(type(cb), h) is not getattr(Callback, h) for cb in trainer.callbacks for h in hooks):
        return False
    return all(getattr(type(module), h) is getattr(LightningModule, h) for h in (*hooks, "backward"))


class TwinQ(nn.Module):
    """Two Q heads over (features of the observation, action): the critics of SAC and TD3."""

    def __init__(self, builder: NetworkBuilder, in_features: int, act_dim: int) -> None:
        super().__init__()
        self.q1 = builder(in_features + act_dim, 1)
        self.q2 = builder(in_features + act_dim, 1)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action], -1)
        return self.q1(x).squeeze(-1).float(), self.q2(x).squeeze(-1).float()


class OffPolicyModule(RLModule):
    """Base of DQN, SAC and TD3.

    Each training step is one round of updates: the collection ``ReplayDataModule`` made
    just before, then ``data.updates_per_batch`` gradient updates on sampled minibatches.
    A whole round in one Lightning step keeps Lightning's per-step work (hooks, callbacks,
    logging) off the per-update path, which is what an off-policy run's time is made of.
    Optimization is manual; subclasses implement :meth:`update` and may override
    :meth:`start_round`.
    """

    #: shown in pairing errors
    action_kind = "continuous"

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        #: updates done so far, as a Python int during a round (``updates`` is its saved copy)
        self.update_count = 0
        self._direct_backward = False

    def connect_spec(self, spec) -> None:
        """Check the action space fits the algorithm before building."""
        discrete_wanted = self.action_kind == "discrete"
        if spec.multi_discrete:
            raise ConfigError(
                f"{type(self).__name__} needs {self.action_kind} actions, but {spec.env_id!r} has "
                f"MultiDiscrete/MultiBinary actions {list(spec.action_nvec)}; use PPO (its multi_categorical "
                "distribution), or wrap the environment to flatten them into one Discrete action."
            )
        if spec.discrete != discrete_wanted:
            kind = "discrete" if spec.discrete else "continuous"
            raise ConfigError(
                f"{type(self).__name__} needs {self.action_kind} actions, but {spec.env_id!r} has {kind} actions "
                f"(use {'DQN or PPO' if spec.discrete else 'SAC, TD3 or PPO'})."
            )
        super().connect_spec(spec)

    def start_round(self, round_: UpdateRound) -> None:
        """Called before the updates of a round (e.g. hard target copies)."""

    def update(self, batch: dict[str, torch.Tensor], optimizers: list) -> dict[str, torch.Tensor]:
        """One gradient update on a minibatch; returns detached statistics to average."""
        raise NotImplementedError

    def optimize(self, optimizer, loss: torch.Tensor, max_grad_norm: float | None = None) -> None:
        """Backward, optional gradient-norm clipping, step: through Lightning (precision
        plugins, hooks, strategy) unless :func:`_plain_backward_suffices` found it would do
        nothing, then directly."""
        optimizer.zero_grad(set_to_none=True)
        if self._direct_backward:
            loss.backward()
            if max_grad_norm:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)
            # the bare optimizer, with Lightning's step accounting (global_step, profiler)
            optimizer._on_before_step()
            optimizer.optimizer.step()
            optimizer._on_after_step()
            return
        self.manual_backward(loss)
        if max_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()

    def on_train_start(self) -> None:
        """Decide once whether backward passes can skip Lightning's wrappers."""
        super().on_train_start()
        self._direct_backward = _plain_backward_suffices(self)

    def training_step(self, dataloader_iter: Iterator) -> None:
        """One round: the updates that follow a collection."""
        round_, _, _ = next(dataloader_iter)
        self.at_boundary = True
        self.update_start = time.perf_counter()
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        self.update_count = int(self.updates)
        if self.hparams.get("lr_schedule", "constant") == "linear":
            self.set_learning_rate(optimizers)
        self.start_round(round_)
        stats = []
        for batch in round_:
            if self.device.type != "cpu":
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            if self.normalizer is not None:  # the buffer holds raw rewards: scale with the current statistics
                batch = {**batch, "reward": self.normalizer.rewards(batch["reward"])}
            stats.append(self.update(batch, optimizers))
            self.update_count += 1
        self.updates.fill_(self.update_count)
        keys = stats[0].keys()
        means = torch.stack([torch.stack([s[k] for k in keys]) for s in stats]).mean(0).tolist()
        self.end_of_batch({**dict(zip(keys, means)), **self.round_metrics(),
                           "train/lr": optimizers[0].param_groups[0]["lr"]})

    def set_learning_rate(self, optimizers: list) -> None:
        """Linear decay of every optimizer's learning rate to zero over ``data.total_frames``,
        set from the frame count at the start of each round (so a resumed run continues it)."""
        total = self.data.total_frames
        lr = self.hparams.learning_rate * max(1.0 - self.frames / total, 0.0)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def round_metrics(self) -> dict[str, float]:
        """Extra metrics logged once per round."""
        return {}
