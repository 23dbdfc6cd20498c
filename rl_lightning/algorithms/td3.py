"""Twin Delayed DDPG.

Paper: Fujimoto et al. 2018 (arXiv:1802.09477). Reference implementation matched:
Stable-Baselines3 ``TD3`` with RL Zoo hyperparameters (twin critics, target policy
smoothing, delayed actor and target updates, Gaussian exploration noise).

Run it::

    python -m rl_lightning fit --config configs/td3.yaml

Two optimizers: manual optimization; losses on plain tensors (see ``sac.py`` for why).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from rl_lightning.algorithms.offpolicy import (
    OffPolicyModule,
    TwinQ,
    adam,
    check_common,
    frozen_copy,
    soft_update,
)
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import check_range
from rl_lightning.networks import MLP
from rl_lightning.networks.actor import NetworkBuilder
from rl_lightning.networks.encoders import EncoderBuilder


def _default_net(i: int, o: int) -> nn.Module:
    return MLP(i, o, hidden_sizes=(400, 300), activation="relu", output_gain=None)


class TD3(OffPolicyModule):
    """TD3 for continuous actions.

    Args:
        actor_net: head of the actor ``(in_features, action_dim)`` (tanh applied after) over
            the encoder's features; ``None`` is an MLP (400, 300, ReLU).
        critic_net: head of each Q network ``(features + action_dim, 1)``.
        encoder: builder of the observation encoder ``(observation_shape) -> nn.Module``
            (``[batch, *shape] -> [batch, features]``), e.g. ``rl_lightning.networks.NatureCNN``;
            ``None`` is ``Flatten`` (vector observations; refused for images). The twin critics
            share one encoder (trained by the critic loss); the actor gets its own.
        share_encoder: the actor reads the critic encoder's features, detached (trained by the
            critic loss only, as in DrQ), instead of having its own encoder.
        learning_rate: learning rate of actor and critics, in (0, 1].
        lr_schedule: ``linear`` decays the learning rate to zero over ``data.total_frames``.
        adam_eps: Adam's epsilon (a larger value, e.g. 1e-5, damps steps on parameters with tiny gradients).
        gamma: discount factor, in (0, 1].
        tau: Polyak coefficient of the targets, in (0, 1].
        policy_delay: critic updates per actor (and target) update, >= 1.
        target_noise: std of the target policy smoothing noise (actions in [-1, 1]), >= 0.
        target_noise_clip: clip of that noise, >= 0.
        exploration_noise: std of the Gaussian noise added to actions while collecting, >= 0.
    """

    action_kind = "continuous"

    def __init__(
        self,
        actor_net: NetworkBuilder | None = None,
        critic_net: NetworkBuilder | None = None,
        learning_rate: float = 1e-3,
        lr_schedule: Literal["constant", "linear"] = "constant",
        adam_eps: float = 1e-8,
        gamma: float = 0.99,
        tau: float = 0.005,
        policy_delay: int = 2,
        target_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        exploration_noise: float = 0.1,
        encoder: EncoderBuilder | None = None,
        share_encoder: bool = False,
    ) -> None:
        super().__init__()
        check_common(learning_rate, adam_eps, gamma, tau)
        check_range("model.policy_delay", policy_delay, 1)
        for name, value in (("target_noise", target_noise), ("target_noise_clip", target_noise_clip),
                            ("exploration_noise", exploration_noise)):
            check_range(f"model.{name}", value, 0.0)
        self.save_hyperparameters(ignore=["actor_net", "critic_net", "encoder"])
        self.encoder_builder = encoder
        self.actor_builder = actor_net or _default_net
        self.critic_builder = critic_net or _default_net
        #: the latest actor loss (logged on the updates between actor updates); a buffer, so it
        #: is checkpointed (exact resume) and lives on the module's device
        self.register_buffer("last_actor_loss", torch.zeros(()))

    def build(self, spec: EnvSpec) -> None:
        """Actor (encoder + head), twin critics (one encoder + two heads) and their targets."""
        shared = self.hparams.share_encoder
        if not shared:
            self.actor_encoder, features = self.make_encoder(self.encoder_builder)
        self.critic_encoder, critic_features = self.make_encoder(self.encoder_builder)
        self.actor = self.actor_builder(critic_features if shared else features, spec.action_dim)
        self.critic = TwinQ(self.critic_builder, critic_features, spec.action_dim)
        if not shared:
            self.actor_encoder_target = frozen_copy(self.actor_encoder)
        self.actor_target = frozen_copy(self.actor)
        self.critic_encoder_target = frozen_copy(self.critic_encoder)
        self.critic_target = frozen_copy(self.critic)

    def actor_features(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """The (target) actor's input: its encoder's features, or the critic encoder's detached."""
        if self.hparams.share_encoder:
            return self.encode(self.critic_encoder_target if target else self.critic_encoder, obs).detach()
        return self.encode(self.actor_encoder_target if target else self.actor_encoder, obs)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Deterministic actions, plus exploration noise unless ``deterministic``."""
        action = torch.tanh(self.actor(self.actor_features(self.preprocess(obs))))
        if not deterministic:
            action = (action + self.hparams.exploration_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return {"action": action, "env_action": self.spec.scale_action(action)}

    def configure_optimizers(self):
        """Adam for the critics and the actor."""
        lr = self.hparams.learning_rate
        actor = [] if self.hparams.share_encoder else list(self.actor_encoder.parameters())
        return [adam(self, [*self.critic_encoder.parameters(), *self.critic.parameters()], lr),
                adam(self, [*actor, *self.actor.parameters()], lr)]

    def update(self, batch: dict[str, torch.Tensor], optimizers: list) -> dict[str, torch.Tensor]:
        """Critic step; every ``policy_delay`` updates an actor step and target updates."""
        hp = self.hparams
        critic_opt, actor_opt = optimizers
        obs, next_obs = self.preprocess(batch["observation"]), self.preprocess(batch["next_observation"])
        with torch.no_grad():
            noise = (torch.randn_like(batch["action"]) * hp.target_noise).clamp(-hp.target_noise_clip, hp.target_noise_clip)
            next_action = (torch.tanh(self.actor_target(self.actor_features(next_obs, target=True))) + noise).clamp(-1.0, 1.0)
            next_q = torch.min(*self.critic_target(self.encode(self.critic_encoder_target, next_obs), next_action))
            target = batch["reward"] + batch["discount"] * (1.0 - batch["terminated"]) * next_q
        features = self.encode(self.critic_encoder, obs)
        q1, q2 = self.critic(features, batch["action"])
        critic_loss = (batch["weight"] * ((q1 - target).pow(2) + (q2 - target).pow(2))).mean()
        self.optimize(critic_opt, critic_loss)
        self.data.update_priorities(batch["index"], (q1 - target).detach())
        stats = {"loss/value": critic_loss.detach()}
        if (self.update_count + 1) % hp.policy_delay == 0:
            self.critic.requires_grad_(False)  # the actor's gradient flows through the action only
            actor_in = features.detach() if hp.share_encoder else self.encode(self.actor_encoder, obs)
            actor_loss = -self.critic(features.detach(), torch.tanh(self.actor(actor_in)))[0].mean()
            self.optimize(actor_opt, actor_loss)
            self.critic.requires_grad_(True)
            soft_update(self.critic_target, self.critic, hp.tau)
            soft_update(self.actor_target, self.actor, hp.tau)
            soft_update(self.critic_encoder_target, self.critic_encoder, hp.tau)
            if not hp.share_encoder:
                soft_update(self.actor_encoder_target, self.actor_encoder, hp.tau)
            self.last_actor_loss.copy_(actor_loss.detach())
        stats["loss/policy"] = self.last_actor_loss.clone()
        return stats

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints written before ``last_actor_loss`` was saved resume with it at zero."""
        checkpoint.get("state_dict", {}).setdefault("last_actor_loss", torch.zeros(()))
        super().on_load_checkpoint(checkpoint)
