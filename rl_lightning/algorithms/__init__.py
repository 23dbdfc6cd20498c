"""Algorithms, one LightningModule each."""

from rl_lightning.algorithms.a2c import A2C
from rl_lightning.algorithms.base import RLModule
from rl_lightning.algorithms.dqn import DQN
from rl_lightning.algorithms.grpo import GRPO
from rl_lightning.algorithms.ppo import PPO
from rl_lightning.algorithms.recurrent_ppo import RecurrentPPO
from rl_lightning.algorithms.sac import SAC
from rl_lightning.algorithms.td3 import TD3

__all__ = ["A2C", "DQN", "GRPO", "PPO", "RLModule", "RecurrentPPO", "SAC", "TD3"]
