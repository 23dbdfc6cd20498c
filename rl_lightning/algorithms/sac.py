"""Soft Actor-Critic with automatic entropy tuning.

Papers: Haarnoja et al. 2018 (arXiv:1801.01290, arXiv:1812.05905).
Reference implementation matched: Stable-Baselines3 ``SAC`` with RL Zoo hyperparameters
(tanh-squashed Gaussian actor with state-dependent std, twin critics with Polyak-averaged
targets, learned temperature with target entropy -dim(A)).

Run it::

    python -m rl_lightning fit --config configs/sac.yaml

Three optimizers (critics, actor, temperature): manual optimization, a round of updates per
training step (see ``OffPolicyModule``). The losses are written on plain tensors: an update
is the whole cost of an off-policy step, and ``benchmarks/offpolicy_loss_speed.py`` measures
TorchRL's ``SACLoss`` slower per update.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from rl_lightning.algorithms.offpolicy import (
    OffPolicyModule,
    TwinQ,
    adam,
    check_common,
    frozen_copy,
    soft_update,
)
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError, check_range
from rl_lightning.networks import MLP
from rl_lightning.networks.actor import NetworkBuilder
from rl_lightning.networks.encoders import EncoderBuilder


def _default_net(i: int, o: int) -> nn.Module:
    return MLP(i, o, hidden_sizes=(256, 256), activation="relu", output_gain=None)


class SAC(OffPolicyModule):
    """SAC for continuous actions.

    Args:
        actor_net: head of the actor ``(in_features, 2 * action_dim) -> nn.Module`` (mean and
            log std) over the encoder's features; ``None`` is an MLP (256, 256, ReLU).
        critic_net: head of each Q network ``(features + action_dim, 1)``.
        encoder: builder of the observation encoder ``(observation_shape) -> nn.Module``
            (``[batch, *shape] -> [batch, features]``), e.g. ``rl_lightning.networks.NatureCNN``;
            ``None`` is ``Flatten`` (vector observations; refused for images). The twin critics
            share one encoder (trained by the critic loss); the actor gets its own.
        share_encoder: the actor reads the critic encoder's features, detached (trained by the
            critic loss only, as in DrQ), instead of having its own encoder.
        learning_rate: learning rate of the actor, critics and temperature, in (0, 1].
        lr_schedule: ``linear`` decays the learning rate to zero over ``data.total_frames``.
        adam_eps: Adam's epsilon (a larger value, e.g. 1e-5, damps steps on parameters with tiny gradients).
        gamma: discount factor, in (0, 1].
        tau: Polyak coefficient of the target critics, in (0, 1].
        init_alpha: initial entropy temperature (> 0).
        learn_alpha: tune the temperature toward ``target_entropy``.
        target_entropy: ``None`` is -dim(action).
        log_std_min: lower clamp of the actor's log std (below ``log_std_max``).
        log_std_max: upper clamp of the actor's log std.
    """

    action_kind = "continuous"

    def __init__(
        self,
        actor_net: NetworkBuilder | None = None,
        critic_net: NetworkBuilder | None = None,
        learning_rate: float = 3e-4,
        lr_schedule: Literal["constant", "linear"] = "constant",
        adam_eps: float = 1e-8,
        gamma: float = 0.99,
        tau: float = 0.005,
        init_alpha: float = 1.0,
        learn_alpha: bool = True,
        target_entropy: float | None = None,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        encoder: EncoderBuilder | None = None,
        share_encoder: bool = False,
    ) -> None:
        super().__init__()
        check_common(learning_rate, adam_eps, gamma, tau)
        check_range("model.init_alpha", init_alpha, 0.0, low_open=True)
        check_range("model.target_entropy", target_entropy, optional=True)
        check_range("model.log_std_min", log_std_min)
        check_range("model.log_std_max", log_std_max)
        if log_std_min >= log_std_max:
            raise ConfigError(
                f"model.log_std_min ({log_std_min}) must be below model.log_std_max ({log_std_max})."
            )
        self.save_hyperparameters(ignore=["actor_net", "critic_net", "encoder"])
        self.encoder_builder = encoder
        self.actor_builder = actor_net or _default_net
        self.critic_builder = critic_net or _default_net
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)), requires_grad=learn_alpha)

    def build(self, spec: EnvSpec) -> None:
        """Actor (encoder + head), twin critics (one encoder + two heads) and their targets."""
        if not self.hparams.share_encoder:
            self.actor_encoder, features = self.make_encoder(self.encoder_builder)
        self.critic_encoder, critic_features = self.make_encoder(self.encoder_builder)
        self.actor = self.actor_builder(features if not self.hparams.share_encoder else critic_features,
                                        2 * spec.action_dim)
        self.critic = TwinQ(self.critic_builder, critic_features, spec.action_dim)
        self.critic_encoder_target = frozen_copy(self.critic_encoder)
        self.critic_target = frozen_copy(self.critic)
        self.target_entropy = self.hparams.target_entropy if self.hparams.target_entropy is not None else -float(spec.action_dim)

    def actor_features(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's input: its encoder's features, or the critic encoder's detached."""
        if self.hparams.share_encoder:
            return self.encode(self.critic_encoder, obs).detach()
        return self.encode(self.actor_encoder, obs)

    def sample(
        self, features: torch.Tensor, deterministic: bool = False, with_log_prob: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Squashed actions in [-1, 1] and their log-probabilities (``None`` unless asked), from
        the actor's features (:meth:`actor_features`)."""
        mean, log_std = self.actor(features).float().chunk(2, -1)  # float32 also under mixed precision
        if deterministic:
            return torch.tanh(mean), (torch.zeros(mean.shape[:-1], device=mean.device) if with_log_prob else None)
        log_std = log_std.clamp(self.hparams.log_std_min, self.hparams.log_std_max)
        noise = torch.randn_like(mean)
        pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh)
        if not with_log_prob:
            return action, None
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2) written without cancellation: finite for any u
        log_prob = log_prob - (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)
        return action, log_prob

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Actions in [-1, 1] (``action``) and in the environment's bounds (``env_action``)."""
        action, _ = self.sample(self.actor_features(self.preprocess(obs)), deterministic, with_log_prob=False)
        return {"action": action, "env_action": self.spec.scale_action(action)}

    def configure_optimizers(self):
        """Adam for the critics, the actor and the temperature."""
        lr = self.hparams.learning_rate
        actor = [] if self.hparams.share_encoder else list(self.actor_encoder.parameters())
        return [
            adam(self, [*self.critic_encoder.parameters(), *self.critic.parameters()], lr),
            adam(self, [*actor, *self.actor.parameters()], lr),
            adam(self, [self.log_alpha], lr),
        ]

    def update(self, batch: dict[str, torch.Tensor], optimizers: list) -> dict[str, torch.Tensor]:
        """Critic, actor and temperature steps, then the target critics."""
        critic_opt, actor_opt, alpha_opt = optimizers
        obs, next_obs = self.preprocess(batch["observation"]), self.preprocess(batch["next_observation"])
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_log_prob = self.sample(self.actor_features(next_obs))
            next_q = torch.min(*self.critic_target(self.encode(self.critic_encoder_target, next_obs), next_action)) - alpha * next_log_prob
            target = batch["reward"] + batch["discount"] * (1.0 - batch["terminated"]) * next_q
        features = self.encode(self.critic_encoder, obs)
        q1, q2 = self.critic(features, batch["action"])
        weight = batch["weight"]
        critic_loss = 0.5 * (weight * ((q1 - target).pow(2) + (q2 - target).pow(2))).mean()
        self.optimize(critic_opt, critic_loss)
        self.data.update_priorities(batch["index"], (q1 - target).detach())

        actor_in = features.detach() if self.hparams.share_encoder else self.encode(self.actor_encoder, obs)
        action, log_prob = self.sample(actor_in)
        self.critic.requires_grad_(False)  # the actor's gradient flows through the action only
        actor_loss = (alpha * log_prob - torch.min(*self.critic(features.detach(), action))).mean()
        self.optimize(actor_opt, actor_loss)
        self.critic.requires_grad_(True)

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        if self.hparams.learn_alpha:
            self.optimize(alpha_opt, alpha_loss)
        soft_update(self.critic_target, self.critic, self.hparams.tau)
        soft_update(self.critic_encoder_target, self.critic_encoder, self.hparams.tau)
        return {"loss/value": critic_loss.detach(), "loss/policy": actor_loss.detach(),
                      "loss/alpha": alpha_loss.detach(), "train/alpha": alpha, "train/entropy": -log_prob.detach().mean()}
