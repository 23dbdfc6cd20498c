"""Loggers whose folder defaults to the run folder (the CLI fills it in)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger


class TensorBoard(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` writing to ``<run>/tensorboard/`` unless told otherwise:
    ``--trainer.logger+=TensorBoard``.

    Args:
        save_dir: folder of the event files; ``None`` is the run folder (set by the CLI).
        name: sub-folder under ``save_dir``.
        version: sub-folder under ``name`` (empty: none, so a resumed run appends).
        log_graph: add the model graph.
        default_hp_metric: log a placeholder ``hp_metric``.
        prefix: prefix of every metric name.
        **kwargs: passed on to ``torch.utils.tensorboard.SummaryWriter``.
    """

    def __init__(
        self,
        save_dir: str | None = None,
        name: str = "tensorboard",
        version: str = "",
        log_graph: bool = False,
        default_hp_metric: bool = False,
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            save_dir or ".", name=name, version=version, log_graph=log_graph,
            default_hp_metric=default_hp_metric, prefix=prefix, **kwargs,
        )
