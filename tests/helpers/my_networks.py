"""A user's own encoder, defined outside rl_lightning: selected by ``class_path`` from YAML
(``tests.helpers.my_networks.TinyCNN``) with no ``out_features`` attribute and no framework
change."""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """One strided 4x4 convolution, flattened: ``(C, H, W)`` uint8 frames -> ``width * h * w`` features.

    Args:
        observation_shape: ``(C, H, W)``; given by the algorithm.
        width: convolution channels.
    """

    def __init__(self, observation_shape: tuple[int, ...], width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(observation_shape[0], width, 4, stride=2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(obs.float() / 255.0))
        return x.flatten(1)
