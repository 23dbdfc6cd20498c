"""LightningDataModules built on TorchRL collectors and replay buffers."""

from rl_lightning.data.collector import VectorCollector
from rl_lightning.data.onpolicy import OnPolicyDataModule
from rl_lightning.data.replay import ReplayDataModule

__all__ = ["OnPolicyDataModule", "ReplayDataModule", "VectorCollector"]
