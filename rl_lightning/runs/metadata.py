"""``<run>/metadata.json``: what ran, where, from which code, how it ended.

Light to import (no torch, no Lightning): the run registry reads it. The callback that
writes it during training is :class:`rl_lightning.callbacks.run_metadata.RunMetadata`."""

from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

PACKAGES = ("rl_lightning", "torch", "lightning", "torchrl", "tensordict", "gymnasium", "numpy")
FILENAME = "metadata.json"
#: ``metadata.json``'s ``kind``: marks a folder as a run folder written by rl_lightning.
RUN_KIND = "rl_lightning run"


def git_state(cwd: str | os.PathLike = ".") -> dict[str, Any]:
    """Commit and dirty flag of the git checkout at ``cwd`` (``None`` outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_metadata(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's metadata (an empty dict if the file is missing or unreadable)."""
    try:
        return json.loads((Path(run_dir) / FILENAME).read_text())
    except (OSError, ValueError):
        return {}


def is_run(run_dir: str | os.PathLike, data: dict[str, Any] | None = None) -> bool:
    """Whether ``run_dir`` is a run folder of rl_lightning: its ``metadata.json`` (``data`` if
    given) has our ``kind``, or, as written before ``kind`` existed, our ``run_id`` (the folder
    name), ``experiment``, ``status`` and ``started``. Other folders, even with a
    ``config.yaml``, are not runs (``runs clean`` never deletes them)."""
    data = read_metadata(run_dir) if data is None else data
    if data.get("kind") == RUN_KIND:
        return True
    return data.get("run_id") == Path(run_dir).name and {"experiment", "status", "started"} <= set(data)


def write_metadata(run_dir: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write atomically (temporary file + rename); on failure (e.g. a full disk) the previous
    file stays and no temporary file is left."""
    path = Path(run_dir) / FILENAME
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
