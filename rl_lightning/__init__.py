"""rl_lightning: reinforcement learning the PyTorch Lightning way.

Import submodules directly (``rl_lightning.algorithms.PPO``,
``rl_lightning.data.OnPolicyDataModule``); this package imports nothing heavy so that
``python -m rl_lightning --help`` starts fast.
"""

__version__ = "0.1.0"
