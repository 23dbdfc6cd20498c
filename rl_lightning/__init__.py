"""rl_lightning: reinforcement learning the PyTorch Lightning way.

Import submodules directly (``rl_lightning.algorithms.PPO``,
``rl_lightning.data.OnPolicyDataModule``); this package imports nothing heavy so that
``python -m rl_lightning --help`` starts fast. ``rl_lightning.train`` and
``rl_lightning.make_trainer`` (from :mod:`rl_lightning.training`, imported on first use) give
Python what ``python -m rl_lightning fit`` adds to a ``lightning.Trainer``: one torch thread,
a run folder, and the evaluation, checkpoint, progress, NaN-guard and graceful-stop callbacks.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["make_trainer", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rl_lightning import training

        return getattr(training, name)
    raise AttributeError(f"module 'rl_lightning' has no attribute {name!r}")
