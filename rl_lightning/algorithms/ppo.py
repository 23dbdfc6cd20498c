"""Proximal Policy Optimization with a clipped surrogate objective.

Paper: Schulman et al., "Proximal Policy Optimization Algorithms", 2017 (arXiv:1707.06347),
with generalized advantage estimation (Schulman et al., 2016, arXiv:1506.02438).
Reference implementation matched: Stable-Baselines3 ``PPO`` with RL Zoo hyperparameters
(separate actor and critic MLPs, orthogonal initialization, advantage normalization per
minibatch, bootstrapping on time-limit truncation, linear schedules).

Run it::

    python -m rl_lightning fit --config configs/ppo.yaml

Each collected batch of ``frames_per_batch`` frames is updated ``epochs`` times in shuffled
minibatches of ``minibatch_size``; one Lightning training step is one minibatch, so
``--trainer.gradient_clip_val``, ``--trainer.precision`` and ``accumulate_grad_batches``
act on every minibatch as usual.

The surrogate loss is written out here instead of using ``torchrl.objectives.ClipPPOLoss``:
on 64x64 networks a ClipPPOLoss step is slower than this module's ``compute_loss`` step
(``benchmarks/ppo_loss_speed.py`` times both), and PPO runs are dominated by update steps. Advantages use TorchRL's GAE (``vec_generalized_advantage_estimate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch.nn import functional as F
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from rl_lightning.algorithms.minibatches import MinibatchUpdates
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import MAX_LEARNING_RATE, ConfigError, check_range
from rl_lightning.networks import MLP
from rl_lightning.networks.actor import (
    DistributionName,
    NetworkBuilder,
    StochasticActor,
)
from rl_lightning.networks.encoders import EncoderBuilder

Schedule = Literal["constant", "linear"]


class PPO(MinibatchUpdates):
    """PPO with a clipped objective for discrete (categorical), MultiDiscrete/MultiBinary
    (a categorical per dimension) and continuous (Gaussian or Beta) actions.

    Args:
        encoder: builder of the observation encoder ``(observation_shape) -> nn.Module``
            (``[batch, *shape] -> [batch, features]``), e.g. ``rl_lightning.networks.NatureCNN``;
            ``None`` is ``Flatten`` (vector observations; refused for images). Actor and critic
            each get one unless ``share_encoder``.
        share_encoder: one encoder for actor and critic, trained by the policy and the value
            loss (as in Nature-style PPO on pixels).
        actor_net: head of the policy ``(in_features, out_features) -> nn.Module`` over the
            encoder's features; ``None`` is an MLP (64, 64, tanh) whose output layer is
            initialized with gain 0.01.
        critic_net: head of the value function over the encoder's features; ``None`` is an
            MLP (64, 64, tanh).
        distribution: action distribution: ``auto`` (categorical for discrete actions,
            multi_categorical for MultiDiscrete/MultiBinary, normal for continuous),
            ``categorical``, ``multi_categorical``, ``normal`` or ``beta``.
        log_std_init: initial log standard deviation of the normal distribution.
        learning_rate: learning rate of the optimizer (overrides an ``lr`` given to it), in (0, 1].
        lr_schedule: ``linear`` decays the learning rate to zero over ``data.total_frames``.
        optimizer: optimizer factory, e.g. ``torch.optim.AdamW``; ``None`` is Adam with
            ``eps=1e-5`` (fused implementation, except under mixed precision).
        epochs: passes over each collected batch.
        minibatch_size: frames per gradient step, at most ``data.frames_per_batch``; a batch's
            last minibatch may be smaller.
        gamma: discount factor, in (0, 1].
        gae_lambda: GAE lambda (bias/variance trade-off of advantages), in [0, 1].
        clip_range: clipping of the probability ratio, epsilon in the paper, in (0, 1].
        clip_schedule: ``linear`` decays ``clip_range`` to zero over ``data.total_frames``.
        value_clip: if set (> 0), clip the new value prediction to this distance from the old one.
        value_coef: weight of the value loss (>= 0).
        entropy_coef: weight of the entropy bonus (>= 0).
        normalize_advantage: normalize advantages within each minibatch.
    """

    def __init__(
        self,
        actor_net: NetworkBuilder | None = None,
        critic_net: NetworkBuilder | None = None,
        distribution: DistributionName = "auto",
        encoder: EncoderBuilder | None = None,
        share_encoder: bool = False,
        log_std_init: float = 0.0,
        learning_rate: float = 3e-4,
        lr_schedule: Schedule = "constant",
        optimizer: OptimizerCallable | None = None,
        epochs: int = 10,
        minibatch_size: int = 64,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float = 0.2,
        clip_schedule: Schedule = "constant",
        value_clip: float | None = None,
        value_coef: float = 0.5,
        entropy_coef: float = 0.0,
        normalize_advantage: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("epochs", epochs), ("minibatch_size", minibatch_size)):
            if value < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {value}.")
        check_range("model.learning_rate", learning_rate, 0.0, MAX_LEARNING_RATE, low_open=True)
        check_range("model.log_std_init", log_std_init)
        check_range("model.gamma", gamma, 0.0, 1.0, low_open=True)
        check_range("model.gae_lambda", gae_lambda, 0.0, 1.0)
        check_range("model.clip_range", clip_range, 0.0, 1.0, low_open=True)
        check_range("model.value_clip", value_clip, 0.0, low_open=True, optional=True)
        check_range("model.value_coef", value_coef, 0.0)
        check_range("model.entropy_coef", entropy_coef, 0.0)
        # builders and the optimizer factory are callables: keep them out of the checkpoint's
        # hyperparameters so checkpoints stay loadable with weights_only=True (the run's
        # config.yaml records them)
        self.save_hyperparameters(ignore=["actor_net", "critic_net", "optimizer", "encoder"])
        self.encoder_builder = encoder
        self.actor_builder = actor_net or (lambda i, o: MLP(i, o, output_gain=0.01))
        self.critic_builder = critic_net or MLP
        self.optimizer_factory = optimizer
        self._explained_variance = 0.0

    # --- networks ------------------------------------------------------------------------
    def build(self, spec: EnvSpec) -> None:
        """Create the actor (encoder + head) and the critic (``critic_encoder`` unless the
        encoder is shared, + head ``critic``) for ``spec``."""
        hp = self.hparams
        encoder, features = self.make_encoder(self.encoder_builder)
        self.actor = StochasticActor(spec, self.actor_builder, hp.distribution, hp.log_std_init, encoder, features)
        if not hp.share_encoder:
            self.critic_encoder, features = self.make_encoder(self.encoder_builder)
        self.critic = self.critic_builder(features, 1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """The critic's value of a batch of (preprocessed) observations, ``[*batch, 1]``."""
        encoder = self.actor.encoder if self.hparams.share_encoder else self.critic_encoder
        return self.critic(self.encode(encoder, obs))

    def setup(self, stage: str) -> None:
        """Build and connect (see :class:`RLModule`); a minibatch cannot exceed the collected batch."""
        super().setup(stage)
        frames = getattr(self.data, "frames_per_batch", None)
        if stage == "fit" and frames is not None and self.hparams.minibatch_size > frames:
            raise ConfigError(
                f"model.minibatch_size ({self.hparams.minibatch_size}) is larger than the collected batch, "
                f"data.frames_per_batch ({frames}): lower model.minibatch_size or raise data.frames_per_batch."
            )

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Sample (or pick the most likely) actions for a batch of observations. Sampling with
        a shared encoder on image observations also returns ``state_value``, the critic's value
        from the same features: the collector stores it, and :meth:`compute_advantages` does not
        encode the batch again."""
        obs = self.preprocess(obs)
        if deterministic or not (self.hparams.share_encoder and len(self.spec.observation_shape) > 1):
            return self.actor(obs, deterministic)
        features = self.actor.encode(obs)
        return {**self.actor.act_on_features(features), "state_value": self.critic(features)}

    def configure_optimizers(self) -> Any:
        """Adam (or the configured optimizer) with an optional linear decay over frames."""
        hp = self.hparams
        if self.optimizer_factory is None:
            # fused Adam is faster, but Lightning's mixed-precision plugins cannot clip its gradients
            fused = "mixed" not in str(self.trainer.precision) if self.attached_trainer is not None else True
            optimizer = torch.optim.Adam(self.parameters(), lr=hp.learning_rate, eps=1e-5, fused=fused)
        else:
            optimizer = self.optimizer_factory(self.parameters())
            for group in optimizer.param_groups:
                group["lr"] = hp.learning_rate
        if hp.lr_schedule == "constant":
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._remaining)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _remaining(self, _step: int = 0) -> float:
        """Fraction of the frame budget still ahead (1 -> 0), for linear schedules."""
        total = self.data.total_frames
        return max(1.0 - self.frames / total, 0.0)

    def _clip_range(self) -> float:
        hp = self.hparams
        return hp.clip_range * (self._remaining() if hp.clip_schedule == "linear" else 1.0)

    # --- training (MinibatchUpdates.training_step runs the plan) ----------------------------
    @torch.no_grad()
    def compute_advantages(self, batch) -> dict[str, torch.Tensor]:
        """GAE advantages and value targets of a collected batch.

        Args:
            batch: a collector batch (TensorDict ``[envs, steps]``, TorchRL layout).

        Returns:
            Flat tensors ``obs``, ``action``, ``log_prob``, ``advantage``, ``target`` (value
            target) and ``value`` (the critic's estimate), one entry per frame.

        With normalization on, observations are normalized with the statistics the batch was
        collected with (so the first epoch's probability ratios are exactly 1) before the batch
        is added to them; rewards are scaled after the batch's returns are added.
        """
        hp = self.hparams
        obs = self.preprocess(batch["observation"])
        if len(self.spec.observation_shape) == 1:
            # flat vectors: one critic call over both, as before (a smaller call can differ in
            # the last bits, and vector results stay bit-identical); the cost is an MLP's
            value, next_value = self.value(torch.cat([obs, self.preprocess(batch["next", "observation"])])).chunk(2)
        else:
            # the values the collecting policy computed from the same weights (see act), when it did
            value = batch["state_value"] if "state_value" in batch.keys() else self.value(obs)
            # the value after step t is the value of step t + 1 unless step t ended an episode
            # (its next observation is the final one) or is the batch's last: only those take a
            # critic call on next observations (with a CNN critic, half the cost of all of them)
            fresh = batch["next", "done"].squeeze(-1).clone()
            fresh[:, -1] = True
            next_value = torch.cat([value[:, 1:], value[:, -1:]], 1)
            next_value[fresh] = self.value(self.preprocess(batch["next", "observation"][fresh]))
        # the statistics move only now: this batch was normalized with the ones it was collected with
        self.observe_batch(batch)
        reward = batch["next", "reward"] if self.normalizer is None else self.normalizer.rewards(batch["next", "reward"])
        advantage, target = vec_generalized_advantage_estimate(
            hp.gamma,
            hp.gae_lambda,
            value,
            next_value,
            reward,
            batch["next", "done"],
            batch["next", "terminated"],
        )
        self._explained_variance = float(1 - (target - value).var() / target.var().clamp_min(1e-8))
        return {
            "obs": obs.flatten(0, 1),
            "action": batch["action"].flatten(0, 1),
            "log_prob": batch["action_log_prob"].flatten(0, 1),
            "advantage": advantage.flatten(),
            "target": target.flatten(),
            "value": value.flatten(),
        }

    def _minibatches(self, data: dict[str, torch.Tensor]) -> Iterator[tuple[dict[str, torch.Tensor], bool]]:
        """``epochs`` shuffled passes; yields ``(minibatch, is_last)``."""
        epochs, size = self.hparams.epochs, self.hparams.minibatch_size
        n = data["obs"].shape[0]
        for epoch in range(epochs):
            order = torch.randperm(n, device=self.device)
            for start in range(0, n, size):
                index = order[start : start + size]
                last = epoch == epochs - 1 and start + size >= n
                yield {key: value[index] for key, value in data.items()}, last

    def compute_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clipped surrogate + value loss - entropy bonus.

        Args:
            mb: a minibatch: the entries of :meth:`compute_advantages`, indexed.

        Returns:
            The loss, and detached statistics ``[policy loss, value loss, entropy loss,
            approx KL, clip fraction]``.
        """
        hp = self.hparams
        dist, value = self.policy_and_value(mb)
        log_ratio = dist.log_prob(mb["action"]) - mb["log_prob"]
        ratio = log_ratio.exp()
        advantage = mb["advantage"]
        if hp.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        clip = self._clip_range()
        policy_loss = -torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage).mean()
        if hp.value_clip is not None:
            value = mb["value"] + (value - mb["value"]).clamp(-hp.value_clip, hp.value_clip)
        value_loss = F.mse_loss(value, mb["target"])
        entropy_loss = -dist.entropy().mean()
        loss = policy_loss + hp.value_coef * value_loss + hp.entropy_coef * entropy_loss
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clip_fraction = ((ratio - 1).abs() > clip).float().mean()
            stats = torch.stack([policy_loss, value_loss, entropy_loss, approx_kl, clip_fraction])
        return loss, stats

    def policy_and_value(self, mb: dict[str, torch.Tensor]) -> tuple[torch.distributions.Distribution, torch.Tensor]:
        """The current policy's action distribution and the critic's values (``[frames]``) on a
        minibatch's observations."""
        if self.hparams.share_encoder:  # encode once for policy and value
            features = self.actor.encode(mb["obs"])
            return self.actor.dist_from_features(features), self.critic(features).squeeze(-1)
        return self.actor.dist(mb["obs"]), self.value(mb["obs"]).squeeze(-1)

    def _end_of_batch(self) -> None:
        """Log the batch's statistics; stop once the frame budget is spent."""
        policy, value, entropy, kl, clip_fraction = torch.stack(self._stats).mean(0).tolist()
        self._stats.clear()
        metrics = {
            "loss/policy": policy,
            "loss/value": value,
            "loss/entropy": entropy,
            "train/approx_kl": kl,
            "train/clip_fraction": clip_fraction,
            "train/explained_variance": self._explained_variance,
            "train/lr": self.optimizers().param_groups[0]["lr"],
            "train/clip_range": self._clip_range(),
        }
        self.end_of_batch(metrics)
