"""LightningDataModules built on TorchRL collectors."""

from rl_lightning.data.collector import VectorCollector
from rl_lightning.data.onpolicy import OnPolicyDataModule

__all__ = ["OnPolicyDataModule", "VectorCollector"]
