"""Synchronous advantage actor-critic (A2C).

Paper: Mnih et al., "Asynchronous Methods for Deep Reinforcement Learning", 2016
(arXiv:1602.01783), in its synchronous, batched form.
Reference implementation matched: Stable-Baselines3 ``A2C`` (RL Zoo hyperparameters): one
gradient step on the whole collected batch, ``-(advantage * log_prob).mean()`` policy loss, MSE
value loss, RMSprop (alpha 0.99, eps 1e-5), advantages by GAE with lambda 1 (n-step returns,
bootstrapped from the critic at the batch's end and on time-limit truncation), no advantage
normalization, gradient norm clipped to 0.5 (``trainer.gradient_clip_val`` in the config).

Run it::

    python -m rl_lightning fit --config configs/a2c.yaml

A2C shares PPO's networks (actor, critic, encoders), its acting, its advantage estimation
(:meth:`PPO.compute_advantages`) and its optimizer and schedule set-up; it differs in the update:
one Lightning training step per collected batch (so ``--trainer.gradient_clip_val``,
``--trainer.precision`` and ``accumulate_grad_batches`` act on every update as usual), no
probability ratio and no clipping.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch.nn import functional as F

from rl_lightning.algorithms.base import RLModule
from rl_lightning.algorithms.ppo import PPO, Schedule
from rl_lightning.errors import MAX_LEARNING_RATE, check_range
from rl_lightning.networks import MLP
from rl_lightning.networks.actor import DistributionName, NetworkBuilder
from rl_lightning.networks.encoders import EncoderBuilder


class A2C(PPO):
    """A2C for discrete (categorical), MultiDiscrete/MultiBinary (a categorical per dimension)
    and continuous (Gaussian or Beta) actions.

    Args:
        encoder: builder of the observation encoder ``(observation_shape) -> nn.Module``
            (``[batch, *shape] -> [batch, features]``), e.g. ``rl_lightning.networks.NatureCNN``;
            ``None`` is ``Flatten`` (vector observations; refused for images). Actor and critic
            each get one unless ``share_encoder``.
        share_encoder: one encoder for actor and critic, trained by the policy and the value loss.
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
        optimizer: optimizer factory, e.g. ``torch.optim.Adam``; ``None`` is RMSprop with
            ``alpha=0.99, eps=1e-5`` (as Stable-Baselines3's A2C).
        gamma: discount factor, in (0, 1].
        gae_lambda: GAE lambda, in [0, 1]; 1 gives n-step returns over each environment's
            steps of the batch (bootstrapped from the critic where the batch or a time limit
            cuts an episode).
        value_coef: weight of the value loss (>= 0).
        entropy_coef: weight of the entropy bonus (>= 0).
        normalize_advantage: normalize advantages over each batch (off in the original A2C).
    """

    def __init__(
        self,
        actor_net: NetworkBuilder | None = None,
        critic_net: NetworkBuilder | None = None,
        distribution: DistributionName = "auto",
        encoder: EncoderBuilder | None = None,
        share_encoder: bool = False,
        log_std_init: float = 0.0,
        learning_rate: float = 7e-4,
        lr_schedule: Schedule = "constant",
        optimizer: OptimizerCallable | None = None,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        value_coef: float = 0.5,
        entropy_coef: float = 0.0,
        normalize_advantage: bool = False,
    ) -> None:
        # PPO's __init__ is not called: its PPO-only options (epochs, clip_range, ...) would
        # become hyperparameters of A2C; the attributes PPO's shared methods read are set here
        super(PPO, self).__init__()
        check_range("model.learning_rate", learning_rate, 0.0, MAX_LEARNING_RATE, low_open=True)
        check_range("model.log_std_init", log_std_init)
        check_range("model.gamma", gamma, 0.0, 1.0, low_open=True)
        check_range("model.gae_lambda", gae_lambda, 0.0, 1.0)
        check_range("model.value_coef", value_coef, 0.0)
        check_range("model.entropy_coef", entropy_coef, 0.0)
        # builders and the optimizer factory stay out of the checkpoint (weights_only loading)
        self.save_hyperparameters(ignore=["actor_net", "critic_net", "optimizer", "encoder"])
        self.encoder_builder = encoder
        self.actor_builder = actor_net or functools.partial(MLP, output_gain=0.01)
        self.critic_builder = critic_net or MLP
        # PPO.configure_optimizers calls the factory and sets the learning rate
        self.optimizer_factory = optimizer or functools.partial(torch.optim.RMSprop, alpha=0.99, eps=1e-5)
        self._explained_variance = 0.0

    def setup(self, stage: str) -> None:
        """Build and connect (see :class:`RLModule`); any batch size works."""
        RLModule.setup(self, stage)

    # --- training ------------------------------------------------------------------------
    def training_step(self, dataloader_iter: Iterator) -> torch.Tensor:
        """One update on a freshly collected batch (taking the iterator stops Lightning from
        collecting the next batch ahead with the weights of the previous update)."""
        batch, _, _ = next(dataloader_iter)
        self.update_start = time.perf_counter()
        loss, stats = self.compute_loss(self.compute_advantages(batch.to(self.device)))
        self.at_boundary = True
        self._end_of_batch(stats)
        return loss

    def compute_loss(self, data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy gradient + value loss - entropy bonus over the whole batch.

        Args:
            data: the entries of :meth:`compute_advantages` (``obs``, ``action``,
                ``advantage``, ``target``, ...), one per frame.

        Returns:
            The loss, and detached statistics ``[policy loss, value loss, entropy loss]``.
        """
        hp = self.hparams
        dist, value = self.policy_and_value(data)
        advantage = data["advantage"]
        if hp.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        policy_loss = -(advantage * dist.log_prob(data["action"])).mean()
        value_loss = F.mse_loss(value, data["target"])
        entropy_loss = -dist.entropy().mean()
        loss = policy_loss + hp.value_coef * value_loss + hp.entropy_coef * entropy_loss
        return loss, torch.stack([policy_loss, value_loss, entropy_loss]).detach()

    def _end_of_batch(self, stats: torch.Tensor) -> None:
        """Log the update's statistics; stop once the frame budget is spent."""
        policy, value, entropy = stats.tolist()
        self.end_of_batch({
            "loss/policy": policy,
            "loss/value": value,
            "loss/entropy": entropy,
            "train/explained_variance": self._explained_variance,
            "train/lr": self.optimizers().param_groups[0]["lr"],
        })
