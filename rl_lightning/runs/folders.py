"""Run folders: ``<experiments_dir>/<experiment>/<run id>/`` holding ``config.yaml``,
``metrics.csv``, ``metadata.json`` and ``checkpoints/``."""

from __future__ import annotations

import re
import time
from pathlib import Path

from rl_lightning.errors import ConfigError

LAST = Path("checkpoints") / "last.ckpt"
#: What an experiment name may be: one folder name, no path.
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_experiment_name(name: str, key: str = "--experiment") -> str:
    """``name`` if it is a plain folder name (letters, digits, '_', '-', '.', not starting with
    '.', not ``sweeps``), else ``ConfigError``: an experiment is one folder inside the experiments folder, so
    ``..``, ``a/b`` and absolute paths, which would write elsewhere, are refused."""
    if not EXPERIMENT_NAME.fullmatch(name or "") or name == "sweeps":
        raise ConfigError(
            f"{key} {name!r}: use one folder name of letters, digits, '_', '-' and '.' (not starting with '.', "
            "and not 'sweeps', the folder of sweeps), e.g. ppo-cartpole; runs go to <experiments_dir>/<experiment>/, and paths such as '../x', 'a/b' "
            "or '/tmp/x' are refused. To write elsewhere, set --experiments_dir."
        )
    return name


def default_experiment(algorithm: str, env_id: str | None) -> str:
    """The experiment of a run without ``--experiment``: ``<algorithm>-<env id>``, e.g.
    ``ppo-CartPole-v1`` for ``rl_lightning.algorithms.PPO`` (``:`` and ``/`` become ``_``)."""
    name = algorithm.rsplit(".", 1)[-1].lower()
    name = f"{name}-{env_id}" if env_id else name
    return name.replace(":", "_").replace("/", "_")


#: the suffix of the experiments of ``--debug`` runs
DEBUG_SUFFIX = "-debug"


def experiment_name(name: str, debug: bool = False) -> str:
    """``name``, with :data:`DEBUG_SUFFIX` for a debug run (once: a name that has it keeps it)."""
    return name if not debug or name.endswith(DEBUG_SUFFIX) else name + DEBUG_SUFFIX


def new_run_dir(experiment_dir: str | Path, seed: int | None, create: bool = True) -> Path:
    """Create and return a fresh run folder named by start time and seed (with
    ``create=False`` only name it)."""
    base = f"{time.strftime('%Y%m%d-%H%M%S')}" + (f"-s{seed}" if seed is not None else "")
    root = Path(experiment_dir)
    if not create:
        return root / base
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {root}")


def latest_run(experiment_dir: str | Path) -> Path:
    """The run of an experiment whose ``checkpoints/last.ckpt`` was written most recently."""
    root = Path(experiment_dir)
    runs = [p for p in root.glob("*") if (p / LAST).is_file()] if root.is_dir() else []
    if not runs:
        raise ConfigError(
            f"--ckpt_path last: no run of experiment {root.name!r} has {LAST} under {root}; "
            "start a run without --ckpt_path, or pass --experiment / a checkpoint path."
        )
    return max(runs, key=lambda p: (p / LAST).stat().st_mtime)


#: the line every fit prints at its start and end: ``Run folder: <path>``
RUN_FOLDER_LINE = re.compile(r"^Run folder: (.+)$", re.MULTILINE)


def run_folder_in(output: str) -> str | None:
    """The run folder a ``fit`` child named in its output (the last ``Run folder:`` line), or
    ``None`` when it printed none (it failed before making one)."""
    found = RUN_FOLDER_LINE.findall(output)
    return found[-1].strip() if found else None
