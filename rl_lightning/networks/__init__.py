"""Network builders: ``Builder(in_features, out_features, **options) -> nn.Module``.

Algorithms take builders (any callable or ``nn.Module`` class whose first two arguments
are the input and output sizes), so a config selects one by ``class_path``, including a
user's own module, e.g. ``actor_net: {class_path: mypkg.MyNet, init_args: {width: 128}}``.
"""

from rl_lightning.networks.mlp import MLP

__all__ = ["MLP"]
