"""Network builders.

* Encoders ``Encoder(observation_shape, **options) -> nn.Module`` map observations
  ``[batch, *shape]`` to features ``[batch, features]``: :class:`Flatten` (the default),
  :class:`MLPEncoder`, :class:`NatureCNN`, :class:`ImpalaCNN`, :class:`HistoryTransformer` (over
  stacked recent observations) (``model.init_args.encoder``).
* Heads ``Builder(in_features, out_features, **options) -> nn.Module`` map features to
  outputs: :class:`MLP` (``actor_net``, ``critic_net``, ``q_net``).

A config selects either by ``class_path``, including a user's own module, e.g.
``encoder: {class_path: mypkg.MyEncoder, init_args: {width: 32}}`` or
``actor_net: {class_path: mypkg.MyNet, init_args: {width: 128}}``.
"""

from rl_lightning.networks.encoders import Flatten, HistoryTransformer, ImpalaCNN, MLPEncoder, NatureCNN
from rl_lightning.networks.mlp import MLP

__all__ = ["MLP", "Flatten", "HistoryTransformer", "ImpalaCNN", "MLPEncoder", "NatureCNN"]
