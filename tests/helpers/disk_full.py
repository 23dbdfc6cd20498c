"""A disk that fills up during training: checkpoint writes fail with ENOSPC after a number of
successful ones, leaving a partial temporary file as a real full disk does.

``python -m tests.helpers.disk_full fit ...`` runs the command line that way, with
``DISK_FULL_AFTER`` (successful checkpoint writes, default 2) and ``DISK_FULL_METADATA=1``
(``metadata.json`` cannot be written either once the disk is full).
"""

from __future__ import annotations

import errno
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any


def fill_disk(after: int, metadata: bool = False, patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make the ``after + 1``-th checkpoint write (and, with ``metadata``, every later
    ``metadata.json`` write) fail with ``OSError(ENOSPC)``; ``patch`` is ``setattr`` or
    pytest's ``monkeypatch.setattr``."""
    from lightning.pytorch import Trainer

    real_save, real_write = Trainer.save_checkpoint, pathlib.Path.write_text
    state = {"saves": 0, "full": False}

    def no_space(path: Any) -> OSError:
        state["full"] = True
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def save_checkpoint(self: Trainer, filepath: Any, *args: Any, **kwargs: Any) -> None:
        state["saves"] += 1
        if state["saves"] <= after:
            return real_save(self, filepath, *args, **kwargs)
        pathlib.Path(filepath).write_bytes(b"partial")
        raise no_space(filepath)

    def write_text(self: pathlib.Path, data: str, *args: Any, **kwargs: Any) -> int:
        if state["full"] and self.name.endswith(".json.tmp"):
            real_write(self, data[: len(data) // 2], *args, **kwargs)
            raise no_space(self)
        return real_write(self, data, *args, **kwargs)

    patch(Trainer, "save_checkpoint", save_checkpoint)
    if metadata:
        patch(pathlib.Path, "write_text", write_text)


if __name__ == "__main__":
    fill_disk(int(os.environ.get("DISK_FULL_AFTER", "2")), os.environ.get("DISK_FULL_METADATA") == "1")
    from rl_lightning.cli import main

    main(sys.argv[1:])
