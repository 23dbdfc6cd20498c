"""Sweep files: parsing and validation, grid expansion, seeded random sampling and the
Optuna search space of ``python -m rl_lightning sweep``.

A sweep file is YAML::

    base: [configs/ppo.yaml]            # fit configs, composed in order
    overrides: {data.init_args.total_frames: 20000}
    seeds: [1, 2, 3]
    metric: eval/return_mean            # objective: mean over seeds of the final value
    direction: maximize                 # or minimize
    search:
      type: grid                        # grid | random | optuna
      params:
        model.init_args.learning_rate: [0.001, 0.0003]

``random`` and ``optuna`` take ``n_trials`` and ``seed``, and params given as a list of
choices, ``{choices: [...]}`` or ``{low: , high: }`` with optional ``log: true`` and
``int: true``; ``optuna`` also takes ``sampler`` (``tpe`` or ``random``) and ``pruner``
(``{type: median, n_startup_trials: 5, n_warmup_frames: 0}`` or ``{type: none}``).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rl_lightning.errors import ConfigError
from rl_lightning.runs.metadata import read_metadata

TOP_KEYS = ("base", "overrides", "seeds", "metric", "direction", "search")
SEARCH_KEYS = {
    "grid": ("type", "params"),
    "random": ("type", "params", "n_trials", "seed"),
    "optuna": ("type", "params", "n_trials", "seed", "sampler", "pruner"),
}
RANGE_KEYS = ("low", "high", "log", "int")
PRUNER_KEYS = ("type", "n_startup_trials", "n_warmup_frames")
#: Optuna steps reported for seed ``i`` of a trial start at ``i * STEP_STRIDE`` (then the frame).
STEP_STRIDE = 1_000_000_000


@dataclass
class Param:
    """One swept dotted key: a list of ``choices`` or a ``low``/``high`` range."""

    key: str
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def sample(self, rng: random.Random) -> Any:
        """A value drawn with ``rng``: a choice, or uniform / log-uniform in ``[low, high]``."""
        if self.choices is not None:
            return rng.choice(self.choices)
        if self.integer:
            if self.log:
                value = int(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1))))
            else:
                value = rng.randint(int(self.low), int(self.high))
            return min(max(value, int(self.low)), int(self.high))
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(float(f"{value:.6g}"), self.low), self.high)  # readable, still in range


@dataclass
class SweepSpec:
    """A validated sweep file."""

    path: Path
    base: list[str]
    params: list[Param]
    search: str
    seeds: list[int] = field(default_factory=lambda: [1])
    overrides: dict[str, Any] = field(default_factory=dict)
    metric: str = "eval/return_mean"
    direction: str = "maximize"
    n_trials: int = 0
    seed: int = 0
    sampler: str = "tpe"
    pruner: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Hash of what every trial shares (base files and overrides): finished runs are reused
        only while it is unchanged."""
        text = json.dumps({"base": self.base, "overrides": self.overrides}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def trials(self) -> list[dict[str, Any]]:
        """The grid's or random search's trials (``{dotted key: value}``) in a fixed order."""
        if self.search == "grid":
            return grid(self.params)
        if self.search == "random":
            return sample_random(self.params, self.n_trials, self.seed)
        raise ValueError("optuna trials are asked from the study one at a time")


def grid(params: list[Param]) -> list[dict[str, Any]]:
    """Cartesian product of the params' choices, the last key varying fastest."""
    keys = [p.key for p in params]
    return [dict(zip(keys, values)) for values in itertools.product(*(p.choices for p in params))]


def sample_random(params: list[Param], n_trials: int, seed: int) -> list[dict[str, Any]]:
    """``n_trials`` samples drawn with ``random.Random(seed)`` (same seed, same trials),
    resampling duplicates while the space allows."""
    rng = random.Random(seed)
    trials: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(n_trials):
        for _attempt in range(100):
            trial = {p.key: p.sample(rng) for p in params}
            if params_key(trial) not in seen:
                break
        seen.add(params_key(trial))
        trials.append(trial)
    return trials


def params_key(params: dict[str, Any]) -> str:
    """Canonical text of a trial's params (resume key)."""
    return json.dumps(params, sort_keys=True, default=str)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; a :class:`ConfigError` names the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such sweep file.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}).") from err
    return parse_sweep(raw, path)


def parse_sweep(raw: Any, path: str | Path = "<sweep>") -> SweepSpec:
    """Validate the content of a sweep file (see the module docstring)."""
    path = Path(path)

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {message}")

    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with keys {', '.join(TOP_KEYS)}.")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key (allowed: {', '.join(TOP_KEYS)}).")
    base = raw.get("base")
    base = [base] if isinstance(base, str) else base
    if not base or not isinstance(base, list) or not all(isinstance(b, str) for b in base):
        raise fail("base", "a list of fit config files is required, e.g. [configs/ppo.yaml].")
    for file in base:
        if not Path(file).is_file():
            raise fail("base", f"{file} does not exist (paths are relative to the current folder).")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
        raise fail("overrides", "a mapping of dotted keys to values, e.g. {data.init_args.total_frames: 20000}.")
    seeds = raw.get("seeds", [1])
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise fail("seeds", f"a non-empty list of distinct integers, got {seeds!r}.")
    metric = raw.get("metric", "eval/return_mean")
    if not isinstance(metric, str) or not metric:
        raise fail("metric", "a metric name from metrics.csv, e.g. eval/return_mean.")
    direction = raw.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise fail("direction", f"maximize or minimize, got {direction!r}.")

    search = raw.get("search")
    if not isinstance(search, dict):
        raise fail("search", "a mapping with type (grid, random or optuna) and params.")
    kind = search.get("type")
    if kind not in SEARCH_KEYS:
        raise fail("search.type", f"unknown search type {kind!r} (choose grid, random or optuna).")
    unknown = sorted(set(search) - set(SEARCH_KEYS[kind]))
    if unknown:
        raise fail(f"search.{unknown[0]}", f"not a key of a {kind} search (allowed: {', '.join(SEARCH_KEYS[kind])}).")
    params = search.get("params")
    if not isinstance(params, dict) or not params:
        raise fail("search.params", "at least one dotted key to sweep is required.")
    parsed = [_parse_param(f"search.params.{key}", key, spec, kind, fail) for key, spec in params.items()]
    clash = sorted(set(params) & set(overrides))
    if clash:
        raise fail(f"search.params.{clash[0]}", "is also fixed in overrides; keep it in one place.")

    spec = SweepSpec(path=path, base=list(base), params=parsed, search=kind, seeds=list(seeds),
                     overrides=dict(overrides), metric=metric, direction=direction)
    if kind in ("random", "optuna"):
        spec.n_trials = search.get("n_trials")
        if not isinstance(spec.n_trials, int) or isinstance(spec.n_trials, bool) or spec.n_trials < 1:
            raise fail("search.n_trials", f"a positive integer is required, got {spec.n_trials!r}.")
        spec.seed = search.get("seed", 0)
        if not isinstance(spec.seed, int) or isinstance(spec.seed, bool):
            raise fail("search.seed", f"an integer, got {spec.seed!r}.")
    if kind == "optuna":
        spec.sampler = search.get("sampler", "tpe")
        if spec.sampler not in ("tpe", "random"):
            raise fail("search.sampler", f"tpe or random, got {spec.sampler!r}.")
        spec.pruner = _parse_pruner(search.get("pruner", {}), fail)
    return spec


def _parse_param(where: str, key: str, spec: Any, kind: str, fail) -> Param:
    if not isinstance(key, str) or not key or " " in key:
        raise fail(where, "keys are dotted option names such as model.init_args.learning_rate.")
    if isinstance(spec, dict) and kind != "grid":
        unknown = sorted(set(spec) - {"choices", *RANGE_KEYS})
        if unknown:
            raise fail(where, f"unknown field {unknown[0]!r} (use choices, or low/high with log/int).")
        if "choices" in spec:
            if set(spec) != {"choices"}:
                raise fail(where, "give either choices or low/high, not both.")
            spec = spec["choices"]
        else:
            return _parse_range(where, key, spec, fail)
    if not isinstance(spec, list) or not spec:
        hint = "a non-empty list of values" if kind == "grid" else "a list, {choices: [...]} or {low: , high: }"
        raise fail(where, f"{hint}, got {spec!r}.")
    return Param(key, choices=list(spec))


def _parse_range(where: str, key: str, spec: dict, fail) -> Param:
    low, high, log, is_int = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("int", False)
    numbers = [v for v in (low, high) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != 2:
        raise fail(where, f"low and high must both be numbers, got low={low!r}, high={high!r}.")
    if not isinstance(log, bool) or not isinstance(is_int, bool):
        raise fail(where, "log and int are true or false.")
    if not low < high:
        raise fail(where, f"bad range: low ({low}) must be below high ({high}).")
    if log and low <= 0:
        raise fail(where, f"bad range: a log range needs low > 0, got {low}.")
    if is_int and (int(low) != low or int(high) != high):
        raise fail(where, f"an int range needs integer bounds, got {low}, {high}.")
    return Param(key, low=int(low) if is_int else float(low), high=int(high) if is_int else float(high),
                 log=log, integer=is_int)


def _parse_pruner(raw: Any, fail) -> dict[str, Any]:
    raw = {"type": raw} if isinstance(raw, str) else raw
    if not isinstance(raw, dict):
        raise fail("search.pruner", "a mapping such as {type: median, n_startup_trials: 5, n_warmup_frames: 0}.")
    unknown = sorted(set(raw) - set(PRUNER_KEYS))
    if unknown:
        raise fail(f"search.pruner.{unknown[0]}", f"unknown key (allowed: {', '.join(PRUNER_KEYS)}).")
    pruner = {"type": raw.get("type", "median"), "n_startup_trials": raw.get("n_startup_trials", 5),
              "n_warmup_frames": raw.get("n_warmup_frames", 0)}
    if pruner["type"] not in ("median", "none"):
        raise fail("search.pruner.type", f"median or none, got {pruner['type']!r}.")
    for name in ("n_startup_trials", "n_warmup_frames"):
        value = pruner[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise fail(f"search.pruner.{name}", f"a non-negative integer, got {value!r}.")
    return pruner


# --- runs -------------------------------------------------------------------------------------
def cli_value(value: Any) -> str:
    """A config value as one command-line token (JSON for lists, mappings and null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value) if not isinstance(value, float) else repr(value)
    return json.dumps(value)


def read_metric(run: str | Path, metric: str) -> float | None:
    """The final value of ``metric`` of a run: ``final_eval_return`` of its metadata for
    ``eval/return_mean``, else the last value in its ``metrics.csv``."""
    if metric == "eval/return_mean":
        value = read_metadata(run).get("final_eval_return")
        if isinstance(value, (int, float)):
            return float(value)
    last = None
    try:
        with open(Path(run) / "metrics.csv", newline="") as file:
            for row in csv.DictReader(file):
                if row.get(metric) not in (None, ""):
                    last = float(row[metric])
    except (OSError, ValueError):
        return None
    return last


#: Lines of jsonargparse's errors that describe its internals, not the user's mistake.
_PARSER_NOISE = ("Given value type:", "Given value:", "Subtypes:", "Errors:", "Expected a <class 'NoneType'>",
                 "Does not validate against any of the Union subtypes")


def parser_error(text: str) -> str:
    """The fit parser's error in ``text`` (a fit's stderr) as one line, without the lines that
    name jsonargparse's internals (``NestedArg(...)``, union subtypes); the last line of
    ``text`` when it holds no ``error:``."""
    lines = (text or "").strip().splitlines()
    start = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("error:")), None)
    if start is None:
        return lines[-1].strip()[:300] if lines else "?"
    kept = [line.strip().lstrip("- ").strip() for line in lines[start:]]
    kept = [line for line in kept if line and not line.startswith(_PARSER_NOISE)]
    return " ".join(kept)[len("error:"):].strip()[:500]


def check_params(spec: SweepSpec, command: list[str]) -> None:
    """Refuse a sweep whose overrides or params name options the fit config does not have (or
    give them values of the wrong type), before anything runs: ``command`` is the fit command
    of one trial (each param at its first choice or low end), run with ``--print_config``."""
    import subprocess

    result = subprocess.run([*command, "--print_config"], capture_output=True, text=True, timeout=600)
    if result.returncode == 0:
        return
    reason = parser_error(result.stderr)
    keys = [(f"search.params.{p.key}", p.key) for p in spec.params] + [(f"overrides.{k}", k) for k in spec.overrides]
    where = next((name for name, key in keys if f"'{key.rsplit('.', 1)[-1]}'" in result.stderr
                  or f'"{key.rsplit(".", 1)[-1]}"' in result.stderr or f"--{key}=" in result.stderr), None)
    base = ", ".join(spec.base)
    if where is None:
        raise ConfigError(f"{spec.path}: the fit config ({base} with the overrides and params) is refused: {reason}")
    raise ConfigError(f"{spec.path}: {where}: not a valid option or value of the fit config ({base}): {reason}")


# --- Optuna ----------------------------------------------------------------------------------
#: Modules of SQLAlchemy database drivers -> the package that installs them (binary builds
#: where the source one needs a compiler and the database's headers).
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql",
                   "MySQLdb": "mysqlclient"}


def check_storage(url: str) -> None:
    """Refuse an Optuna storage URL SQLAlchemy cannot use (unknown scheme, or its database
    driver not installed), naming the URL (password hidden) and what would work."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        raise ConfigError(f"--storage {url!r}: not a database URL ({err}); e.g. sqlite:///optuna.db or "
                          "postgresql+psycopg://user:pass@host/db.") from err
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError as err:
        raise ConfigError(f"--storage {shown}: SQLAlchemy has no database type {parsed.drivername!r}; e.g. "
                          "sqlite:///optuna.db, postgresql+psycopg://user:pass@host/db, "
                          "mysql+pymysql://user:pass@host/db.") from err
    try:
        dialect.import_dbapi()
    except ImportError as err:
        module = (err.name or dialect.driver or "").split(".")[0]
        install = DRIVER_PACKAGES.get(module, module)
        raise ConfigError(f"--storage {shown}: SQLAlchemy's {parsed.get_backend_name()} driver {dialect.driver!r} "
                          f"needs the {module} package, which is not installed: pip install '{install}'"
                          + (" (or name the driver, e.g. postgresql+psycopg://...)"
                             if parsed.get_backend_name() == "postgresql" else "") + ".") from err


def open_storage(url: str, attempts: int = 5):
    """An Optuna storage for ``url``; SQLite waits up to a minute for a locked database.

    Processes that create the same new database at once can collide on its schema: opening
    is retried ``attempts`` times. A database that cannot be reached is a :class:`ConfigError`.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    check_storage(url)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except SQLAlchemyError as err:
            if attempt == attempts - 1:
                from sqlalchemy.engine import make_url

                first = (str(err).strip().splitlines() or [""])[0][:300]
                raise ConfigError(f"--storage {make_url(url).render_as_string(hide_password=True)}: cannot open "
                                  f"the database ({type(err).__name__}: {first}).") from err
            time.sleep(0.2 + random.random())


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def optuna_distributions(params: list[Param]) -> dict[str, Any]:
    """Optuna distributions of the params (choices that are lists or mappings become their
    JSON text, see :func:`from_optuna`)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for p in params:
        if p.choices is not None:
            choices = p.choices if all(_plain(c) for c in p.choices) else [json.dumps(c) for c in p.choices]
            out[p.key] = CategoricalDistribution(choices)
        elif p.integer:
            out[p.key] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[p.key] = FloatDistribution(p.low, p.high, log=p.log)
    return out


def from_optuna(params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """Trial params as config values (undoes the JSON text of non-plain choices)."""
    out = {}
    for p in params:
        value = values[p.key]
        if p.choices is not None and not all(_plain(c) for c in p.choices):
            value = json.loads(value)
        out[p.key] = value
    return out


def make_sampler(spec: SweepSpec):
    """The study's sampler: trial ``n`` is sampled with seed ``spec.seed + n``, so one worker
    reproduces the same trials and workers sharing a study never repeat each other's draws."""
    import optuna

    base = optuna.samplers.TPESampler if spec.sampler == "tpe" else optuna.samplers.RandomSampler

    class PerTrialSeeded(optuna.samplers.BaseSampler):
        """Delegates to a fresh ``base(seed=seed + trial.number)`` for every trial."""

        def __init__(self) -> None:
            self._local = threading.local()

        def _inner(self):
            return getattr(self._local, "sampler", None) or base(seed=spec.seed)

        def before_trial(self, study, trial) -> None:
            self._local.sampler = base(seed=spec.seed + trial.number)
            self._local.sampler.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner().infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner().sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner().sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values) -> None:
            base(seed=spec.seed).after_trial(study, trial, state, values)

    return PerTrialSeeded()
