"""Multi-layer perceptron."""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Sequential):
    """Fully connected network over flat inputs.

    Args:
        in_features: size of one (flattened) input; given by the algorithm from the
            environment's spec.
        out_features: size of the output; given by the algorithm.
        hidden_sizes: width of each hidden layer.
        activation: activation after each hidden layer.
        output_gain: gain of the orthogonal initialization of the last layer (hidden layers
            use sqrt(2)); ``None`` keeps PyTorch's default initialization everywhere.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "tanh",
        output_gain: float | None = 1.0,
    ) -> None:
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
        layers: list[nn.Module] = []
        sizes = (in_features, *hidden_sizes)
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], out_features))
        super().__init__(*layers)
        if output_gain is not None:
            linears = [m for m in self if isinstance(m, nn.Linear)]
            for i, layer in enumerate(linears):
                gain = output_gain if i == len(linears) - 1 else math.sqrt(2)
                nn.init.orthogonal_(layer.weight, gain)
                nn.init.zeros_(layer.bias)
