
from torch import nn


class ResidualMLP(nn.Module):
    """Two residual blocks of width ``width``."""

    def __init__(self, in_features: int, out_features: int, width: int = 64):
        super().__init__()
        self.inp = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Tanh(), nn.Linear(width, width)) for _ in range(2)])
        self.out = nn.Linear(width, out_features)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h.tanh())
