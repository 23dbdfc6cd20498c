"""Loggers whose folder defaults to the run folder (the CLI fills it in)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from rl_lightning.errors import ConfigError

#: Logger class names -> the packages they need (any one of them) and the extra that installs them.
LOGGER_PACKAGES = {
    "TensorBoard": (("tensorboard", "tensorboardX"), "tracking"),
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "tracking"),
    "WandbLogger": (("wandb",), "tracking"),
}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_logger_packages(logger_cfg: Any) -> None:
    """Raise a :class:`ConfigError` naming the logger and ``pip install rl_lightning[...]``
    when a configured logger's package is not installed (``trainer.logger`` entries of a
    parsed config: namespaces with a ``class_path``)."""
    entries = logger_cfg if isinstance(logger_cfg, list) else [logger_cfg]
    for entry in entries:
        class_path = entry.get("class_path") if hasattr(entry, "get") else None
        if not class_path and entry is not None and not isinstance(entry, (bool, str, dict)):
            class_path = type(entry).__name__
        name = str(class_path or "").rsplit(".", 1)[-1]
        if name not in LOGGER_PACKAGES:
            continue
        modules, extra = LOGGER_PACKAGES[name]
        if not any(_installed(m) for m in modules):
            raise ConfigError(
                f"trainer.logger {name} needs the {modules[0]} package, which is not installed: "
                f"pip install 'rl_lightning[{extra}]'."
            )


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
        check_logger_packages([self])
        super().__init__(
            save_dir or ".", name=name, version=version, log_graph=log_graph,
            default_hp_metric=default_hp_metric, prefix=prefix, **kwargs,
        )
