"""Deep Q-Networks with double Q-learning, dueling heads, n-step returns and prioritized replay.

Papers: Mnih et al. 2015 (DQN), van Hasselt et al. 2016 (double DQN, arXiv:1509.06461),
Wang et al. 2016 (dueling, arXiv:1511.06581), Schaul et al. 2016 (prioritized replay).
Reference implementation matched: Stable-Baselines3 ``DQN`` with RL Zoo hyperparameters
(Huber loss, hard target updates, linear epsilon schedule).

Run it::

    python -m rl_lightning fit --config configs/dqn.yaml

A round of updates follows each collection (see ``OffPolicyModule``); the target network
is copied at the start of a round once ``target_update_interval`` frames have passed, so
it stays fixed during the round and, without double Q-learning, the targets of the whole
round come from one batched forward pass. The TD loss is written on plain tensors:
``benchmarks/offpolicy_loss_speed.py`` measures TorchRL's ``DQNLoss`` slower per update.
"""

from __future__ import annotations

from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch.nn import functional as F

from rl_lightning.algorithms.offpolicy import (
    OffPolicyModule,
    adam,
    check_common,
    frozen_copy,
    soft_update,
)
from rl_lightning.data.replay import UpdateRound
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import check_range
from rl_lightning.networks import MLP
from rl_lightning.networks.actor import NetworkBuilder
from rl_lightning.networks.encoders import EncoderBuilder


class DQN(OffPolicyModule):
    """DQN for discrete actions.

    Args:
        q_net: head of the Q network ``(in_features, out_features) -> nn.Module`` over the
            encoder's features; ``None`` is an MLP (256, 256, ReLU).
        encoder: builder of the observation encoder ``(observation_shape) -> nn.Module``
            (``[batch, *shape] -> [batch, features]``), e.g. ``rl_lightning.networks.NatureCNN``;
            ``None`` is ``Flatten`` (vector observations; refused for images). The target
            network copies encoder and head.
        learning_rate: optimizer learning rate, in (0, 1].
        lr_schedule: ``linear`` decays the learning rate to zero over ``data.total_frames``.
        adam_eps: Adam's epsilon (a larger value, e.g. 1e-5, damps steps on parameters with tiny gradients).
        optimizer: optimizer factory; ``None`` is Adam (fused).
        gamma: discount factor, in (0, 1].
        double_q: pick the next action with the online network, evaluate it with the target.
        dueling: the network outputs one extra value, V(s); Q = V + A - mean(A) over the rest.
        target_update: ``hard`` copies every ``target_update_interval`` frames; ``soft``
            Polyak-averages with ``tau`` after every update.
        target_update_interval: environment frames between hard target copies, >= 1 (as in
            Stable-Baselines3: with many updates per collection, the target then stays fixed
            during each round of updates).
        tau: Polyak coefficient of soft target updates, in (0, 1].
        exploration_initial: epsilon at the start (epsilons and the fraction lie in [0, 1]).
        exploration_final: epsilon after ``exploration_fraction`` of ``data.total_frames``.
        exploration_fraction: part of the frame budget over which epsilon decays linearly.
        loss: ``huber`` (smooth L1) or ``mse`` on the TD error.
        max_grad_norm: clip the gradient's global norm to this (> 0); ``None`` does not clip.
    """

    action_kind = "discrete"

    def __init__(
        self,
        q_net: NetworkBuilder | None = None,
        learning_rate: float = 1e-4,
        lr_schedule: Literal["constant", "linear"] = "constant",
        adam_eps: float = 1e-8,
        optimizer: OptimizerCallable | None = None,
        gamma: float = 0.99,
        double_q: bool = True,
        dueling: bool = False,
        target_update: Literal["hard", "soft"] = "hard",
        target_update_interval: int = 10_000,
        tau: float = 0.005,
        exploration_initial: float = 1.0,
        exploration_final: float = 0.05,
        exploration_fraction: float = 0.1,
        loss: Literal["huber", "mse"] = "huber",
        max_grad_norm: float | None = 10.0,
        encoder: EncoderBuilder | None = None,
    ) -> None:
        super().__init__()
        check_common(learning_rate, adam_eps, gamma, tau)
        check_range("model.target_update_interval", target_update_interval, 1)
        for name, value in (("exploration_initial", exploration_initial), ("exploration_final", exploration_final),
                            ("exploration_fraction", exploration_fraction)):
            check_range(f"model.{name}", value, 0.0, 1.0)
        check_range("model.max_grad_norm", max_grad_norm, 0.0, low_open=True, optional=True)
        self.save_hyperparameters(ignore=["q_net", "optimizer", "encoder"])
        self.encoder_builder = encoder
        self.register_buffer("target_copied_at", torch.zeros((), dtype=torch.long))
        self.q_builder = q_net or (lambda i, o: MLP(i, o, hidden_sizes=(256, 256), activation="relu", output_gain=None))
        self.optimizer_factory = optimizer

    def build(self, spec: EnvSpec) -> None:
        """Encoder and Q head (one output per action, plus V(s) when dueling), and their targets."""
        self.encoder, features = self.make_encoder(self.encoder_builder)
        self.q = self.q_builder(features, spec.n_actions + int(self.hparams.dueling))
        self.encoder_target = frozen_copy(self.encoder)
        self.q_target = frozen_copy(self.q)

    def online_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer trains: the encoder's and the Q head's parameters."""
        return [*self.encoder.parameters(), *self.q.parameters()]

    def q_values(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Q(s, .) of the online (or target) network."""
        out = self.q_target(self.encode(self.encoder_target, obs)) if target else self.q(self.encode(self.encoder, obs))
        if self.hparams.dueling:
            value, advantage = out[..., :1], out[..., 1:]
            return value + advantage - advantage.mean(-1, keepdim=True)
        return out

    def epsilon(self) -> float:
        """Exploration rate at the current frame count."""
        hp = self.hparams
        total = self.data.total_frames if self.attached_trainer is not None else 1
        progress = min(self.frames / max(hp.exploration_fraction * total, 1.0), 1.0)
        return hp.exploration_initial + progress * (hp.exploration_final - hp.exploration_initial)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Greedy actions, or epsilon-greedy when exploring (no forward pass when every
        environment explores, as during the early part of training)."""
        obs = self.preprocess(obs)
        if deterministic:
            action = self.q_values(obs).argmax(-1)
            return {"action": action, "env_action": action}
        n = obs.shape[0]
        explore = torch.rand(n, device=obs.device) < self.epsilon()
        action = torch.randint(self.spec.n_actions, (n,), device=obs.device)
        if not bool(explore.all()):
            action = torch.where(explore, action, self.q_values(obs).argmax(-1))
        return {"action": action, "env_action": action}

    def configure_optimizers(self):
        """Adam (or the configured optimizer)."""
        if self.optimizer_factory is None:
            return adam(self, self.online_parameters(), self.hparams.learning_rate)
        optimizer = self.optimizer_factory(self.online_parameters())
        for group in optimizer.param_groups:
            group["lr"] = self.hparams.learning_rate
        return optimizer

    def start_round(self, round_: UpdateRound) -> None:
        """Hard target copy when due; batched targets of the round when they cannot change."""
        hp = self.hparams
        if hp.target_update == "hard" and self.frames - int(self.target_copied_at) >= hp.target_update_interval:
            self.q_target.load_state_dict(self.q.state_dict())
            self.encoder_target.load_state_dict(self.encoder.state_dict())
            self.target_copied_at.fill_(self.frames)
        if round_.stacked is not None and hp.target_update == "hard" and not hp.double_q:
            next_obs = round_.stacked["next_observation"].to(self.device)
            with torch.no_grad():
                round_.stacked["next_q"] = self.q_values(self.preprocess(next_obs), target=True).max(-1).values

    def update(self, batch: dict[str, torch.Tensor], optimizers: list) -> dict[str, torch.Tensor]:
        """TD loss of a sampled minibatch (importance-weighted under prioritized replay)."""
        hp = self.hparams
        obs = self.preprocess(batch["observation"])
        q = self.q_values(obs).gather(-1, batch["action"].long().unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            next_q = batch.get("next_q")
            if next_q is None:
                next_obs = self.preprocess(batch["next_observation"])
                next_target = self.q_values(next_obs, target=True)
                if hp.double_q:
                    best = self.q_values(next_obs).argmax(-1, keepdim=True)
                    next_q = next_target.gather(-1, best).squeeze(-1)
                else:
                    next_q = next_target.max(-1).values
            target = batch["reward"] + batch["discount"] * (1.0 - batch["terminated"]) * next_q
        td_error = q - target
        per_sample = F.smooth_l1_loss(q, target, reduction="none") if hp.loss == "huber" else td_error.pow(2)
        loss = (batch["weight"] * per_sample).mean()
        self.optimize(optimizers[0], loss, hp.max_grad_norm)
        if hp.target_update == "soft":
            soft_update(self.q_target, self.q, hp.tau)
            soft_update(self.encoder_target, self.encoder, hp.tau)
        self.data.update_priorities(batch["index"], td_error)
        return {"loss/value": loss.detach(), "train/q_mean": q.detach().mean()}

    def round_metrics(self) -> dict[str, float]:
        """The exploration rate."""
        return {"train/epsilon": self.epsilon()}
