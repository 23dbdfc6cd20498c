"""Callbacks whose work is a bonus to training (videos): their errors never fail a run."""

from __future__ import annotations

from typing import Any, Callable

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn


class OptionalCallback(Callback):
    """Base of callbacks whose failure is not about training. Work done through
    :meth:`optional` that raises an ``Exception`` logs one warning and turns the callback off
    for the rest of the run; training, checkpoints and evaluations go on."""

    #: set after a failure; the callback does nothing more in this run
    disabled: bool = False

    def optional(self, what: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``work(*args, **kwargs)``; on an error warn (naming ``what``), disable and return ``None``."""
        if self.disabled:
            return None
        try:
            return work(*args, **kwargs)
        except Exception as err:
            self.disabled = True
            rank_zero_warn(f"{type(self).__name__} turned off for the rest of the run: {what} failed "
                           f"({type(err).__name__}: {err}). Training goes on.")
            return None
