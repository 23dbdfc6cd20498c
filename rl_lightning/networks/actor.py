"""Stochastic actors: an encoder, a head and an action distribution (categorical,
per-dimension categorical, Gaussian, Beta)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.distributions import Beta, Categorical, Distribution, Independent, Normal

from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError
from rl_lightning.networks.encoders import Flatten, encode

#: A network (head) builder: ``builder(in_features, out_features) -> nn.Module``.
NetworkBuilder = Callable[[int, int], nn.Module]

DistributionName = Literal["auto", "categorical", "multi_categorical", "normal", "beta"]


class MultiCategorical(Distribution):
    """Independent categoricals, one per action dimension (MultiDiscrete / MultiBinary
    actions): log-probabilities and entropies add up over dimensions. torch has no such
    distribution, and TorchRL's categoricals are single-dimension too.

    Args:
        logits: ``[*batch, sum(nvec)]``, the logits of each dimension one after the other.
        nvec: number of choices of each dimension.
    """

    arg_constraints: ClassVar[dict] = {}

    def __init__(self, logits: torch.Tensor, nvec: tuple[int, ...]) -> None:
        self.parts = [Categorical(logits=part, validate_args=False) for part in logits.split(list(nvec), -1)]
        super().__init__(logits.shape[:-1], torch.Size([len(nvec)]), validate_args=False)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        return torch.stack([part.sample(sample_shape) for part in self.parts], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = value.long()
        return torch.stack([part.log_prob(value[..., i]) for i, part in enumerate(self.parts)], -1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([part.entropy() for part in self.parts], -1).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return torch.stack([part.logits.argmax(-1) for part in self.parts], -1)


class StochasticActor(nn.Module):
    """Maps observations to an action distribution: ``encoder`` (observations -> features),
    then ``network`` (features -> distribution parameters).

    * ``categorical``: the network outputs one logit per discrete action.
    * ``multi_categorical``: one categorical per dimension of a MultiDiscrete or MultiBinary
      action (the logits of every dimension, one after the other).
    * ``normal``: the network outputs the mean; a learned, state-independent log standard
      deviation; sampled actions are clipped to the action bounds only when sent to the
      environment (the unclipped action is what is trained on).
    * ``beta``: the network outputs two concentrations per action dimension (softplus + 1);
      samples in (0, 1) are scaled to the action bounds for the environment.

    Args:
        spec: the environment's spec.
        network: builder of the head ``(in_features, out_features)``.
        distribution: ``auto`` picks categorical for discrete, multi_categorical for
            MultiDiscrete/MultiBinary and normal for continuous actions.
        log_std_init: initial log standard deviation of the ``normal`` distribution.
        encoder: the observation encoder; ``None`` is :class:`Flatten`.
        in_features: number of features ``encoder`` outputs (``spec.observation_dim`` when
            ``encoder`` is ``None``).
    """

    def __init__(
        self,
        spec: EnvSpec,
        network: NetworkBuilder,
        distribution: DistributionName = "auto",
        log_std_init: float = 0.0,
        encoder: nn.Module | None = None,
        in_features: int | None = None,
    ) -> None:
        super().__init__()
        fits = "multi_categorical" if spec.multi_discrete else "categorical" if spec.discrete else "normal"
        if distribution == "auto":
            distribution = fits
        if distribution != fits and not (fits == "normal" and distribution == "beta"):
            kind = "MultiDiscrete/MultiBinary" if spec.multi_discrete else "discrete" if spec.discrete else "continuous"
            raise ConfigError(
                f"model.distribution {distribution!r} does not fit the {kind} action space of "
                f"{spec.env_id!r}; use 'categorical' for discrete actions, 'multi_categorical' for "
                "MultiDiscrete/MultiBinary ones and 'normal' or 'beta' for continuous ones (or 'auto')."
            )
        self.distribution = distribution
        self.spec = spec
        if encoder is None:
            encoder, in_features = Flatten(spec.observation_shape), spec.observation_dim
        self.encoder = encoder
        out = spec.action_dim * (2 if distribution == "beta" else 1)
        self.net = network(in_features, out)
        if distribution == "normal":
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), float(log_std_init)))
        if not spec.discrete:
            low = torch.tensor(spec.action_low).reshape(spec.action_shape)
            high = torch.tensor(spec.action_high).reshape(spec.action_shape)
            self.register_buffer("action_low", low, persistent=False)
            self.register_buffer("action_high", high, persistent=False)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """The encoder's features of observations ``[*batch, *observation_shape]``."""
        return encode(self.encoder, obs, len(self.spec.observation_shape))

    def dist(self, obs: torch.Tensor) -> Distribution:
        """The action distribution for a batch of observations."""
        return self.dist_from_features(self.encode(obs))

    def dist_from_features(self, features: torch.Tensor) -> Distribution:
        """The action distribution for a batch of the encoder's features."""
        out = self.net(features)
        if self.distribution == "categorical":
            return Categorical(logits=out, validate_args=False)
        if self.distribution == "multi_categorical":
            return MultiCategorical(out, self.spec.action_nvec)
        if self.distribution == "normal":
            return Independent(Normal(out, self.log_std.exp(), validate_args=False), 1)
        alpha, beta = nn.functional.softplus(out).add(1.0).chunk(2, dim=-1)
        return Independent(Beta(alpha, beta, validate_args=False), 1)

    def deterministic_action(self, dist: Distribution) -> torch.Tensor:
        """Most likely action for categoricals, the mean otherwise."""
        if self.distribution == "categorical":
            return dist.logits.argmax(-1)
        if self.distribution == "multi_categorical":
            return dist.mode
        return dist.mean

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action as the environment takes it (clipped or scaled to its bounds)."""
        if self.distribution == "categorical":
            return action
        if self.distribution == "multi_categorical":  # one integer per dimension, in the space's shape
            return action.reshape(*action.shape[:-1], *self.spec.action_shape)
        if self.distribution == "beta":
            return self.action_low + action * (self.action_high - self.action_low)
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Act on a batch of observations: ``action``, ``action_log_prob``, ``env_action``."""
        return self.act_on_features(self.encode(obs), deterministic)

    def act_on_features(self, features: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """:meth:`forward` on the encoder's features."""
        dist = self.dist_from_features(features)
        action = self.deterministic_action(dist) if deterministic else dist.sample()
        if self.distribution == "beta":  # keep samples strictly inside (0, 1) for log_prob
            action = action.clamp(1e-6, 1 - 1e-6)
        return {
            "action": action,
            "action_log_prob": dist.log_prob(action),
            "env_action": self.env_action(action),
        }
