"""Stochastic actors: a network plus an action distribution (categorical, Gaussian, Beta)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.distributions import Beta, Categorical, Distribution, Independent, Normal

from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError

#: A network builder: ``builder(in_features, out_features) -> nn.Module``.
NetworkBuilder = Callable[[int, int], nn.Module]

DistributionName = Literal["auto", "categorical", "normal", "beta"]


class StochasticActor(nn.Module):
    """Maps flat observations to an action distribution.

    * ``categorical``: the network outputs one logit per discrete action.
    * ``normal``: the network outputs the mean; a learned, state-independent log standard
      deviation; sampled actions are clipped to the action bounds only when sent to the
      environment (the unclipped action is what is trained on).
    * ``beta``: the network outputs two concentrations per action dimension (softplus + 1);
      samples in (0, 1) are scaled to the action bounds for the environment.

    Args:
        spec: the environment's spec.
        network: builder of the network.
        distribution: ``auto`` picks categorical for discrete and normal for continuous actions.
        log_std_init: initial log standard deviation of the ``normal`` distribution.
    """

    def __init__(
        self,
        spec: EnvSpec,
        network: NetworkBuilder,
        distribution: DistributionName = "auto",
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        if distribution == "auto":
            distribution = "categorical" if spec.discrete else "normal"
        if spec.discrete != (distribution == "categorical"):
            kind = "discrete" if spec.discrete else "continuous"
            raise ConfigError(
                f"distribution {distribution!r} does not fit the {kind} action space of "
                f"{spec.env_id!r}; use 'categorical' for discrete actions and 'normal' or "
                "'beta' for continuous ones (or 'auto')."
            )
        self.distribution = distribution
        self.spec = spec
        out = spec.action_dim * (2 if distribution == "beta" else 1)
        self.net = network(spec.observation_dim, out)
        if distribution == "normal":
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), float(log_std_init)))
        if not spec.discrete:
            low = torch.tensor(spec.action_low).reshape(spec.action_shape)
            high = torch.tensor(spec.action_high).reshape(spec.action_shape)
            self.register_buffer("action_low", low, persistent=False)
            self.register_buffer("action_high", high, persistent=False)

    def dist(self, obs: torch.Tensor) -> Distribution:
        """The action distribution for a batch of flat observations."""
        out = self.net(obs)
        if self.distribution == "categorical":
            return Categorical(logits=out, validate_args=False)
        if self.distribution == "normal":
            return Independent(Normal(out, self.log_std.exp(), validate_args=False), 1)
        alpha, beta = nn.functional.softplus(out).add(1.0).chunk(2, dim=-1)
        return Independent(Beta(alpha, beta, validate_args=False), 1)

    def deterministic_action(self, dist: Distribution) -> torch.Tensor:
        """Most likely action for categorical, the mean otherwise."""
        if self.distribution == "categorical":
            return dist.logits.argmax(-1)
        return dist.mean

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action as the environment takes it (clipped or scaled to its bounds)."""
        if self.distribution == "categorical":
            return action
        if self.distribution == "beta":
            return self.action_low + action * (self.action_high - self.action_low)
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Act on a batch of flat observations: ``action``, ``action_log_prob``, ``env_action``."""
        dist = self.dist(obs)
        action = self.deterministic_action(dist) if deterministic else dist.sample()
        if self.distribution == "beta":  # keep samples strictly inside (0, 1) for log_prob
            action = action.clamp(1e-6, 1 - 1e-6)
        return {
            "action": action,
            "action_log_prob": dist.log_prob(action),
            "env_action": self.env_action(action),
        }
