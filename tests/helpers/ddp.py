"""A callback for DDP tests: what each rank's model looked like around its first update."""

from __future__ import annotations

import lightning as L
import torch


class RecordFirstUpdate(L.Callback):
    """Saves, on every rank, the trainable parameters before training and after the first
    training step, with that step's local loss, to ``ddp-rank<rank>.pt`` in the working folder."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.before = {n: p.detach().clone() for n, p in pl_module.named_parameters() if p.requires_grad}
        self.saved = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.saved:
            return
        self.saved = True
        # PPO returns its minibatch loss; the off-policy algorithms log their round's mean loss
        loss = outputs["loss"] if outputs and "loss" in outputs else trainer.callback_metrics["loss/value"]
        after = {n: p.detach().clone() for n, p in pl_module.named_parameters() if p.requires_grad}
        torch.save({"before": self.before, "after": after, "loss": float(loss)}, f"ddp-rank{trainer.global_rank}.pt")


class RecordNormalizer(L.Callback):
    """Saves, on every rank, the model's normalization state at the end of training to
    ``norm-rank<rank>.pt`` in the working folder."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.normalizer.state_dict().items()}
        torch.save(state, f"norm-rank{trainer.global_rank}.pt")
