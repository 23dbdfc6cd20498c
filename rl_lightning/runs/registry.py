"""The registry of run folders: :class:`Run` and finding, filtering and sorting runs (the
``runs`` command is :mod:`rl_lightning.runs.runs_command`).

A run is a folder ``<experiments_dir>/<experiment>/<run id>/`` holding ``config.yaml``,
``metrics.csv`` and ``metadata.json``. What ``metadata.json`` lacks (older or broken runs)
is read from ``config.yaml`` and ``metrics.csv``. Only folders whose ``metadata.json`` was
written by rl_lightning (:func:`rl_lightning.runs.metadata.is_run`) are ever deleted by
``runs clean``.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import yaml

from rl_lightning.errors import ConfigError
from rl_lightning.runs.lock import FILENAME as LOCK_FILE
from rl_lightning.runs.lock import lock_holder, process_alive
from rl_lightning.runs.metadata import read_metadata

RUN_FILES = ("config.yaml", "metadata.json", "metrics.csv")
HEAVY = ("checkpoints", "videos", "tensorboard", "wandb")
EVAL = "eval/return_mean"
FIELDS = ("experiment", "run_id", "algorithm", "env_id", "seed", "status", "started", "frames",
          "final_eval_return", "best_eval_return")
ALIASES = {"env": "env_id", "final_eval": "final_eval_return", "best_eval": "best_eval_return"}
#: Config keys that differ between any two runs by construction (folders, names).
RUN_SPECIFIC = ("trainer.default_root_dir", "checkpoint.dirpath", "ckpt_path", "experiment", "experiments_dir",
                "*.save_dir", "*.dirpath", "trainer.logger*.name", "trainer.logger*.version", "trainer.logger*.id")
#: Sorted high to low unless --asc: the rest are sorted low to high unless --desc.
DESCENDING = ("final_eval_return", "best_eval_return", "frames")
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()


@dataclass
class Run:
    """A run folder and what is known about it: ``metadata.json`` first, then ``config.yaml``
    (algorithm, env_id, seed) and ``metrics.csv`` (frames, final/best ``eval/return_mean``).

    ``status`` is running, finished, failed, interrupted, unknown (no metadata), ``dead``
    (recorded as running, but its process is gone from this host) or ``stale`` (recorded as
    running on another host, which holds no lock on it); ``started`` a unix time; ``config`` and ``rows`` (of ``metrics.csv``) are read when first used.
    """

    path: Path
    experiment: str
    run_id: str
    algorithm: str | None = None
    env_id: str | None = None
    seed: int | None = None
    status: str = "unknown"
    started: float | None = None
    frames: int | None = None
    final_eval_return: float | None = None
    best_eval_return: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Run:
        """Read the run folder at ``path``."""
        path = Path(path)
        meta = read_metadata(path)
        run = cls(path, meta.get("experiment") or path.parent.name, meta.get("run_id") or path.name, metadata=meta)
        fallbacks: dict[str, Callable[[], Any]] = {
            "algorithm": lambda: str(run.value("model.class_path") or "").rsplit(".", 1)[-1] or None,
            "env_id": lambda: run.value("data.init_args.env_id") or None,
            "seed": lambda: run.value("seed_everything") if isinstance(run.value("seed_everything"), int) else None,
            "status": lambda: "unknown",
            "started": run._started_fallback,
            "frames": lambda: None if run.last("frames") is None else int(run.last("frames") or 0),
            "final_eval_return": lambda: run.last(EVAL),
            "best_eval_return": lambda: max((v for _, v in run.series(EVAL)), default=None),
        }
        for name, fallback in fallbacks.items():
            setattr(run, name, meta[name] if meta.get(name) is not None else fallback())
        if run.status == "running":
            run.status = run._liveness()
        return run

    @cached_property
    def holder(self) -> dict[str, Any] | None:
        """The process holding the run's lock (``pid``, ``host``, ``since``), or ``None``."""
        return lock_holder(self.path)

    def _liveness(self) -> str:
        """``running``, ``dead`` or ``stale`` for a run whose metadata says running."""
        if self.holder is not None:
            return "running"
        host, pid = self.metadata.get("host"), self.metadata.get("pid")
        if (self.path / LOCK_FILE).exists():  # left by a process that died (the OS released its lock)
            return "dead" if host in (None, socket.gethostname()) else "stale"
        if host == socket.gethostname() and isinstance(pid, int):
            return "running" if process_alive(pid) else "dead"
        return "stale" if host not in (None, socket.gethostname()) else "running"  # nothing tells it ended

    @cached_property
    def config(self) -> dict[str, Any]:
        """``config.yaml`` as a dict (empty if missing or unreadable)."""
        try:
            data = yaml.safe_load((self.path / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    @cached_property
    def rows(self) -> list[dict[str, str]]:
        """The rows of ``metrics.csv`` (column -> cell text; empty cells are ``''``)."""
        try:
            with open(self.path / "metrics.csv", newline="") as file:
                return list(csv.DictReader(file))
        except OSError:
            return []

    @property
    def columns(self) -> list[str]:
        """The metric columns of ``metrics.csv``."""
        return list(self.rows[0]) if self.rows else []

    def series(self, metric: str) -> list[tuple[float, float]]:
        """``(frames, value)`` of every row where ``metric`` has a value, in file order."""
        pairs = ((_float(row.get("frames") or row.get("step")), _float(row.get(metric))) for row in self.rows)
        return [(x, y) for x, y in pairs if x is not None and y is not None]

    def last(self, metric: str) -> float | None:
        """The last value of a metric column (``None`` if it never has one)."""
        values = [v for row in self.rows if (v := _float(row.get(metric))) is not None]
        return values[-1] if values else None

    def value(self, key: str) -> Any:
        """A run field (``algorithm``, ``env`` ...) or a dotted config key; ``MISSING`` if absent.

        ``model.learning_rate`` is read as ``model.init_args.learning_rate`` when only that exists.
        """
        key = ALIASES.get(key, key)
        if key in FIELDS:
            return getattr(self, key)
        return config_value(self.config, key)

    def _started_fallback(self) -> float | None:
        try:
            return time.mktime(time.strptime(self.run_id[:15], "%Y%m%d-%H%M%S"))
        except ValueError:
            files = [self.path / name for name in RUN_FILES if (self.path / name).exists()]
            return min((f.stat().st_mtime for f in files), default=None)


def find_runs(paths: list[str] | None = None, filters: dict[str, str] | None = None) -> list[Run]:
    """The runs under ``paths`` that match every filter.

    Args:
        paths: experiments folders, experiment folders or run folders (default ``experiments``).
        filters: ``{key: value}``; a key is a run field (``algorithm``, ``env`` or ``env_id``,
            ``status``, ``experiment``, ``seed``, ``run_id``) or a dotted config key
            (``model.init_args.learning_rate``). Values are compared after YAML parsing, numbers
            as numbers (``1e-3`` matches ``0.001``).
    """
    seen: dict[Path, Path] = {}
    for target in paths or ["experiments"]:
        for folder in _run_dirs(Path(target)):
            seen.setdefault(folder.resolve(), folder)
    return filter_runs([Run.load(folder) for folder in seen.values()], filters)


def filter_runs(runs: list[Run], filters: dict[str, str] | None) -> list[Run]:
    """The runs matching every ``{key: value}`` filter (see :func:`find_runs`)."""
    for key, wanted in (filters or {}).items():
        if runs and ALIASES.get(key, key) not in FIELDS and all(r.value(key) is MISSING for r in runs):
            raise ConfigError(f"--filter {key}={wanted}: {key!r} is neither a run field ({', '.join(FIELDS)}, env) "
                              "nor a config key of any run (e.g. model.init_args.learning_rate).")
        runs = [r for r in runs if r.value(key) is not MISSING and _norm(r.value(key)) == _norm(wanted)]
    return runs


def parse_filters(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a malformed item raises ``ConfigError``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter {item!r}: expected KEY=VALUE, e.g. algorithm=PPO or env=CartPole-v1.")
        out[key.strip()] = value.strip()
    return out


def sort_runs(runs: list[Run], key: str, descending: bool | None = None) -> list[Run]:
    """Runs ordered by a run field, a metric column (its last value) or a config key; runs
    without a value come last. ``descending=None``: high to low for returns, frames and
    metrics, low to high otherwise."""
    field_name = ALIASES.get(key, key)
    if field_name in FIELDS:
        get: Callable[[Run], Any] = lambda r: getattr(r, field_name)  # noqa: E731
    elif any(key in r.columns for r in runs):
        get, field_name = (lambda r: r.last(key)), "metric"
    elif runs and any(r.value(key) is not MISSING for r in runs):
        get = lambda r: r.value(key)  # noqa: E731
    elif runs:
        columns = sorted({c for r in runs for c in r.columns})
        raise ConfigError(f"--sort {key}: not a run field ({', '.join(FIELDS)}), a metric column "
                          f"({', '.join(columns) or 'none'}) or a config key of these runs.")
    else:
        return runs
    if descending is None:
        descending = field_name in (*DESCENDING, "metric")
    values = [(r, get(r)) for r in runs]
    present = [(r, v) for r, v in values if v is not None and v is not MISSING]
    numeric = all(isinstance(v, (int, float)) for _, v in present)
    present.sort(key=lambda rv: rv[1] if numeric else str(rv[1]), reverse=descending)
    return [r for r, _ in present] + [r for r, v in values if v is None or v is MISSING]


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value at a dotted key (list items by index), trying ``a.init_args.b`` for ``a.b``;
    ``MISSING`` if absent."""
    parts = key.split(".")
    candidates = [parts]
    if len(parts) > 1 and parts[1] != "init_args":
        candidates.append([parts[0], "init_args", *parts[1:]])
    for candidate in candidates:
        node: Any = config
        for part in candidate:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break
        else:
            return node
    return MISSING


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{dotted key: value}``; lists of dicts are indexed (``a.0.b``),
    other lists stay values."""
    if isinstance(config, dict) and config:
        items = config.items()
    elif isinstance(config, list) and any(isinstance(v, dict) for v in config):
        items = enumerate(config)
    else:
        return {prefix: config}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differing_keys(runs: list[Run]) -> list[str]:
    """Flattened config keys whose values differ between the runs (missing counts as a value),
    without run-specific keys such as ``trainer.default_root_dir``."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f if not any(fnmatch(k, p) for p in RUN_SPECIFIC)})
    return [k for k in keys if len({_norm(f.get(k, MISSING)) for f in flat}) > 1]


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- helpers ---------------------------------------------------------------------------------
def _run_dirs(root: Path) -> list[Path]:
    if not root.exists():
        raise ConfigError(f"{root}: no such folder (expected an experiments folder, an experiment or a run folder).")
    if root.is_file():  # a file inside a run folder, e.g. config.yaml or checkpoints/last.ckpt
        return next(([p] for p in (root.parent, root.parent.parent) if _is_run(p)), [])
    if _is_run(root):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        found += [child] if _is_run(child) else sorted(g for g in child.iterdir() if g.is_dir() and _is_run(g))
    return found


def _is_run(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _norm(value: Any) -> str:
    """Canonical text of a value for comparisons: YAML-parsed, numbers as floats."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(float(value))
    return json.dumps(value, sort_keys=True, default=str) if value is not MISSING else "<missing>"
