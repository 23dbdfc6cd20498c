"""REINFORCE as a user writes it: one module file outside the package, plus one config.

    python -m rl_lightning fit --config examples/reinforce.yaml

(run from the repository root, so that ``examples.reinforce.Reinforce`` imports.) The base
class gives the rest: the frame budget, evaluation, checkpoints and exact resume, run folders,
signals, logging against frames.
"""

from __future__ import annotations

import torch

from rl_lightning.algorithms import RLModule
from rl_lightning.envs import EnvSpec
from rl_lightning.networks import MLP


class Reinforce(RLModule):
    """Monte-Carlo policy gradient with a discounted reward-to-go, normalized over the batch
    (discrete actions). Each collected batch is one update; returns are cut at the batch end.

    Args:
        learning_rate: Adam's step size.
        gamma: discount of the reward-to-go.
        hidden_size: width of the policy's two hidden layers.
    """

    def __init__(self, learning_rate: float = 0.003, gamma: float = 0.99, hidden_size: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()

    def build(self, spec: EnvSpec) -> None:
        """The policy network: observation -> action logits."""
        self.policy = MLP(spec.observation_dim, spec.n_actions, (self.hparams.hidden_size,) * 2, output_gain=0.01)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Sample (or pick the most likely) actions; the collector stores ``action``."""
        logits = self.policy(self.flat_obs(self.preprocess(obs)))
        action = logits.argmax(-1) if deterministic else torch.distributions.Categorical(logits=logits).sample()
        return {"action": action, "env_action": action}

    def training_step(self, batch, batch_idx):
        """The ordinary Lightning step: one collected batch (TensorDict ``[envs, steps]``) in, the loss out."""
        reward, done = batch["next", "reward"].squeeze(-1), batch["next", "done"].squeeze(-1)
        to_go, running = torch.zeros_like(reward), torch.zeros_like(reward[:, 0])
        for t in reversed(range(reward.shape[1])):  # reward-to-go, restarted where an episode ended
            running = reward[:, t] + self.hparams.gamma * running * (~done[:, t])
            to_go[:, t] = running
        advantage = (to_go - to_go.mean()) / (to_go.std() + 1e-8)
        logits = self.policy(self.flat_obs(self.preprocess(batch["observation"])))
        log_prob = torch.distributions.Categorical(logits=logits).log_prob(batch["action"])
        loss = -(advantage * log_prob).mean()
        self.log("train/return_to_go", to_go.mean())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on the policy."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
