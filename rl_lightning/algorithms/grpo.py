"""Group Relative Policy Optimization: a clipped policy gradient with no value network.

Paper: Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open
Language Models", 2024 (arXiv:2402.03300), section 4.1, here applied to control tasks: a
"prompt" is an initial state, a "completion" an episode. Each collected batch resets the
environments so that every group of ``group_size`` starts from one state and runs each to the
end of its first episode (:mod:`rl_lightning.data.group_collector`); an episode's advantage is
its return relative to its group (minus the group mean, over the group standard deviation),
which replaces a learned baseline. The update is PPO's clipped surrogate plus a KL penalty to a
frozen reference copy of the policy (the k3 estimator of Schulman's "Approximating KL
divergence", as the paper).

There is no reference implementation of GRPO for control tasks to match. The objective is the
paper's equation (3) with one change: the surrogate and the KL are averaged over the valid
steps of a minibatch (every step weighs the same) rather than per episode and then over the
group. Besides the shared metrics, ``train/kl_ref`` is the KL to the reference policy,
``train/batch_frames`` the valid frames of the batch and ``train/flat_groups`` the fraction of
groups whose members all scored alike (no learning signal; on CartPole, groups that all reached
the time limit).

Run it::

    python -m rl_lightning fit --config configs/grpo.yaml

One Lightning training step is one minibatch (as :class:`~rl_lightning.algorithms.PPO`), so
``--trainer.gradient_clip_val`` and ``--trainer.precision`` act as usual. A batch is one
episode per environment, so its size varies with the episodes' lengths; frames are its valid
(unmasked) steps, and ``data.frames_per_batch`` is not used.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable

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
AdvantageKind = Literal["return", "reward_to_go"]

#: added to the group standard deviation (a group whose members scored alike gets advantage 0)
STD_EPS = 1e-8


def group_advantages(
    reward: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    gamma: float = 1.0,
    kind: AdvantageKind = "return",
) -> torch.Tensor:
    """Group-relative advantages ``[envs, steps]`` (0 on masked steps).

    Args:
        reward: rewards ``[envs, steps]``; consecutive rows ``group_size`` at a time form a group.
        mask: True on the steps of each environment's episode ``[envs, steps]``.
        group_size: environments per group (at least 2).
        gamma: discount factor.
        kind: ``return``: every step of an episode gets the episode's discounted return minus its
            group's mean, over the group's standard deviation (sample, unbiased) + 1e-8.
            ``reward_to_go``: step t gets its discounted reward-to-go normalized over the group at
            the same time step t: minus the mean and over the standard deviation of the group
            members' reward-to-go at t, where a member whose episode ended before t counts with
            reward-to-go 0 (so surviving longer than the group scores).
    """
    reward = reward * mask
    envs, steps = reward.shape
    if kind == "return":
        discount = gamma ** torch.arange(steps, dtype=torch.float64, device=reward.device)
        score = (reward.double() * discount).sum(1).view(-1, group_size)  # [groups, G]
        advantage = (score - score.mean(1, keepdim=True)) / (score.std(1, keepdim=True) + STD_EPS)
        return advantage.view(envs, 1).to(reward.dtype) * mask
    to_go = torch.zeros_like(reward, dtype=torch.float64)
    running = torch.zeros(envs, dtype=torch.float64, device=reward.device)
    for t in range(steps - 1, -1, -1):
        running = reward[:, t].double() + gamma * running
        to_go[:, t] = running
    score = to_go.view(-1, group_size, steps)  # [groups, G, steps]
    advantage = (score - score.mean(1, keepdim=True)) / (score.std(1, keepdim=True) + STD_EPS)
    return advantage.view(envs, steps).to(reward.dtype) * mask


def k3_kl(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    """Per-sample k3 estimate of KL(policy || reference) from samples of the policy:
    ``exp(ref - new) - (ref - new) - 1`` (unbiased, never negative)."""
    diff = ref_log_prob - log_prob
    return diff.exp() - diff - 1


class GRPO(MinibatchUpdates):
    """GRPO: group-relative advantages (no critic), PPO's clipped surrogate and a KL penalty to a
    reference policy, for discrete (categorical), MultiDiscrete/MultiBinary and continuous
    (Gaussian or Beta) actions.

    Args:
        encoder: builder of the observation encoder ``(observation_shape) -> nn.Module``, e.g.
            ``rl_lightning.networks.NatureCNN``; ``None`` is ``Flatten`` (vector observations).
        actor_net: head of the policy ``(in_features, out_features) -> nn.Module`` over the
            encoder's features; ``None`` is an MLP (64, 64, tanh) whose output layer is
            initialized with gain 0.01.
        distribution: action distribution: ``auto`` (categorical for discrete actions,
            multi_categorical for MultiDiscrete/MultiBinary, normal for continuous),
            ``categorical``, ``multi_categorical``, ``normal`` or ``beta``.
        log_std_init: initial log standard deviation of the normal distribution.
        learning_rate: learning rate of the optimizer (overrides an ``lr`` given to it), in (0, 1].
        lr_schedule: ``linear`` decays the learning rate to zero over ``data.total_frames``.
        optimizer: optimizer factory, e.g. ``torch.optim.AdamW``; ``None`` is Adam with ``eps=1e-5``.
        group_size: environments per group, which start each batch from one initial state (G in
            the paper), at least 2; ``data.num_envs`` must be a multiple of it.
        advantage: ``return`` (each episode's discounted return, normalized in its group, for all
            its steps) or ``reward_to_go`` (each step's discounted reward-to-go, normalized over
            its group at the same time step, a finished member counting 0).
        gamma: discount factor of returns, in (0, 1].
        epochs: passes over each collected batch.
        minibatch_size: valid frames per gradient step at most: each pass splits the batch's
            valid steps into ``ceil(steps / minibatch_size)`` minibatches of equal size (+-1).
        clip_range: clipping of the probability ratio, in (0, 1].
        kl_coef: weight of the KL penalty to the reference policy (beta in the paper, >= 0).
        ref_update_every: the reference policy becomes a copy of the policy every this many
            collected batches (before the update of the batch that reaches the count), >= 1.
        entropy_coef: weight of the entropy bonus (>= 0).
    """

    def __init__(
        self,
        actor_net: NetworkBuilder | None = None,
        distribution: DistributionName = "auto",
        encoder: EncoderBuilder | None = None,
        log_std_init: float = 0.0,
        learning_rate: float = 1e-3,
        lr_schedule: Schedule = "constant",
        optimizer: OptimizerCallable | None = None,
        group_size: int = 8,
        advantage: AdvantageKind = "return",
        gamma: float = 1.0,
        epochs: int = 4,
        minibatch_size: int = 1024,
        clip_range: float = 0.2,
        kl_coef: float = 0.0,
        ref_update_every: int = 1,
        entropy_coef: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("epochs", epochs), ("minibatch_size", minibatch_size),
                            ("ref_update_every", ref_update_every)):
            if value < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {value}.")
        if group_size < 2:
            raise ConfigError(f"model.group_size must be >= 2 (advantages compare the members of a group), "
                              f"got {group_size}.")
        if advantage not in ("return", "reward_to_go"):
            raise ConfigError(f"model.advantage must be 'return' or 'reward_to_go', got {advantage!r}.")
        check_range("model.learning_rate", learning_rate, 0.0, MAX_LEARNING_RATE, low_open=True)
        check_range("model.log_std_init", log_std_init)
        check_range("model.gamma", gamma, 0.0, 1.0, low_open=True)
        check_range("model.clip_range", clip_range, 0.0, 1.0, low_open=True)
        check_range("model.kl_coef", kl_coef, 0.0)
        check_range("model.entropy_coef", entropy_coef, 0.0)
        # builders and the optimizer factory are callables: keep them out of the checkpoint's
        # hyperparameters so checkpoints load with weights_only=True (config.yaml records them)
        self.save_hyperparameters(ignore=["actor_net", "optimizer", "encoder"])
        self.encoder_builder = encoder
        self.actor_builder = actor_net or (lambda i, o: MLP(i, o, output_gain=0.01))
        self.optimizer_factory = optimizer
        #: collected batches trained on (decides when the reference policy is refreshed)
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self._batch_info: dict[str, float] = {}

    @property
    def rollout_group_size(self) -> int:
        """Group rollouts of ``group_size`` environments (read by the data module's ``connect``)."""
        return int(self.hparams.group_size)

    # --- networks ------------------------------------------------------------------------
    def build(self, spec: EnvSpec) -> None:
        """Create the actor (encoder + head) and its frozen copy, the reference policy."""
        hp = self.hparams
        encoder, features = self.make_encoder(self.encoder_builder)
        self.actor = StochasticActor(spec, self.actor_builder, hp.distribution, hp.log_std_init, encoder, features)
        self.ref_actor = copy.deepcopy(self.actor).requires_grad_(False)

    def setup(self, stage: str) -> None:
        """Build and connect (see :class:`RLModule`); refuses what group rollouts cannot serve."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and getattr(datamodule, "normalize_reward", False):
            raise ConfigError("data.normalize_reward has no effect on GRPO (advantages are normalized within each "
                              "group): switch it off.")
        if stage == "fit" and self.trainer.world_size > 1:
            raise ConfigError("GRPO trains in one process for now: its batches hold a different number of frames "
                              "on each process; use --trainer.devices 1.")
        super().setup(stage)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Sample (or pick the most likely) actions for a batch of observations."""
        return self.actor(self.preprocess(obs), deterministic)

    def configure_optimizers(self) -> Any:
        """Adam (or the configured optimizer) over the policy, with an optional linear decay."""
        hp = self.hparams
        params = list(self.actor.parameters())
        if self.optimizer_factory is None:
            fused = "mixed" not in str(self.trainer.precision) if self.attached_trainer is not None else True
            optimizer = torch.optim.Adam(params, lr=hp.learning_rate, eps=1e-5, fused=fused)
        else:
            optimizer = self.optimizer_factory(params)
            for group in optimizer.param_groups:
                group["lr"] = hp.learning_rate
        if hp.lr_schedule == "constant":
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._remaining)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _remaining(self, _step: int = 0) -> float:
        """Fraction of the frame budget still ahead (1 -> 0), for the linear schedule."""
        return max(1.0 - self.frames / self.data.total_frames, 0.0)

    # --- training (MinibatchUpdates.training_step runs the plan) ----------------------------
    @torch.no_grad()
    def compute_advantages(self, batch) -> dict[str, torch.Tensor]:
        """Group-relative advantages and reference log-probabilities of a group batch.

        Args:
            batch: a group collector batch (TensorDict ``[envs, steps]`` with ``mask``).

        Returns:
            Flat tensors over the valid steps: ``obs``, ``action``, ``log_prob`` (of the
            collecting policy), ``ref_log_prob`` and ``advantage``.

        The reference policy is refreshed first when this batch reaches ``ref_update_every``.
        """
        hp = self.hparams
        if int(self.batches) % hp.ref_update_every == 0:
            self.ref_actor.load_state_dict(self.actor.state_dict())
        self.batches += 1
        mask = batch["mask"]
        advantage = group_advantages(batch["next", "reward"].squeeze(-1), mask, hp.group_size, hp.gamma, hp.advantage)
        raw = batch["observation"][mask]
        obs = self.preprocess(raw)
        if self.normalizer is not None:  # moves only now: the batch was collected with the old statistics
            self.normalizer.update_observations(raw, self._sum_over_ranks)
        action = batch["action"][mask]
        ref_log_prob = self.ref_actor.dist(obs).log_prob(action)
        groups = advantage.view(-1, hp.group_size, advantage.shape[1]).abs().sum((1, 2))
        self._batch_info = {"train/batch_frames": float(obs.shape[0]),
                            "train/flat_groups": float((groups == 0).float().mean())}
        return {"obs": obs, "action": action, "log_prob": batch["action_log_prob"][mask],
                "ref_log_prob": ref_log_prob, "advantage": advantage[mask]}

    def _minibatches(self, data: dict[str, torch.Tensor]) -> Iterator[tuple[dict[str, torch.Tensor], bool]]:
        """``epochs`` shuffled passes, each in equal minibatches; yields ``(minibatch, is_last)``."""
        epochs = self.hparams.epochs
        n = data["obs"].shape[0]
        count = max(math.ceil(n / self.hparams.minibatch_size), 1)
        for epoch in range(epochs):
            parts = torch.randperm(n, device=self.device).tensor_split(count)
            for i, index in enumerate(parts):
                yield {key: value[index] for key, value in data.items()}, epoch == epochs - 1 and i == count - 1

    def compute_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clipped surrogate + ``kl_coef`` * KL to the reference - entropy bonus.

        Args:
            mb: a minibatch: the entries of :meth:`compute_advantages`, indexed.

        Returns:
            The loss, and detached statistics ``[policy loss, KL to the reference, entropy loss,
            approx KL to the collecting policy, clip fraction]``.
        """
        hp = self.hparams
        dist = self.actor.dist(mb["obs"])
        log_prob = dist.log_prob(mb["action"])
        log_ratio = log_prob - mb["log_prob"]
        ratio = log_ratio.exp()
        advantage = mb["advantage"]
        clip = hp.clip_range
        policy_loss = -torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage).mean()
        kl_ref = k3_kl(log_prob, mb["ref_log_prob"]).mean()
        entropy_loss = -dist.entropy().mean()
        loss = policy_loss + hp.kl_coef * kl_ref + hp.entropy_coef * entropy_loss
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clip_fraction = ((ratio - 1).abs() > clip).float().mean()
            stats = torch.stack([policy_loss, kl_ref, entropy_loss, approx_kl, clip_fraction])
        return loss, stats

    def _end_of_batch(self) -> None:
        """Log the batch's statistics; stop once the frame budget is spent."""
        policy, kl_ref, entropy, kl, clip_fraction = torch.stack(self._stats).mean(0).tolist()
        self._stats.clear()
        self.end_of_batch({
            "loss/policy": policy,
            "loss/entropy": entropy,
            "train/kl_ref": kl_ref,
            "train/approx_kl": kl,
            "train/clip_fraction": clip_fraction,
            "train/lr": self.optimizers().param_groups[0]["lr"],
            **self._batch_info,
        })
