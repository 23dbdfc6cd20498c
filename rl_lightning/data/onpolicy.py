"""On-policy data: batches freshly collected with the current policy."""

from __future__ import annotations

from torch.utils.data import DataLoader

from rl_lightning.data.base import EnvDataModule, identity_collate


class OnPolicyDataModule(EnvDataModule):
    """Batches of fresh experience, each collected with the current policy and used once.

    Training stops once ``total_frames`` frames were collected (over all processes); each
    process collects ``frames_per_batch`` frames per batch from ``num_envs`` environments,
    seeded ``seed + rank * num_envs + i``. An algorithm that asks for group rollouts (GRPO,
    ``model.group_size``) gets one episode per environment per batch instead, groups of
    environments starting from one state (:mod:`rl_lightning.data.group_collector`), and
    ``frames_per_batch`` is unused.

    Options: see :class:`~rl_lightning.data.base.EnvDataModule` (``--data.help OnPolicyDataModule``
    lists them with their documentation).
    """

    def train_dataloader(self) -> DataLoader:
        """The collector as an endless stream of batches."""
        if self.collector is None:
            raise RuntimeError("connect(agent) must run before training (the algorithm's setup does it).")
        return DataLoader(self.collector, batch_size=None, collate_fn=identity_collate, num_workers=0)

