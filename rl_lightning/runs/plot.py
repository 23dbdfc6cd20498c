"""``python -m rl_lightning plot``: learning curves of runs over environment frames.

Runs are grouped so that a group's runs differ only in their seeds: by algorithm and
environment, then by every hyperparameter that differs between the runs (the legend reads
``PPO CartPole-v1, learning_rate=0.001 (3 seeds)``). With ``--by KEY`` (repeatable) the groups
are those keys' values, and the legend names any other hyperparameter pooled within a group.
Seeds are counted as distinct seeds, not runs.

The seeds of a group are aligned on a common frame grid: each run's metric is linearly
interpolated over frames, on the range covered by *every* seed of the group (from the latest
first value to the earliest last value), so that the mean never mixes different numbers of
seeds. A group is drawn as its mean line, a mean ± std band and a lighter min-max band; with
``--stat iqm`` (or ``mean-ci``) as its interquartile mean (or mean) with a 95% bootstrap
confidence band over seeds instead of the std band.

``--profile`` draws performance profiles instead: for each method (algorithm, or ``--by``'s
value), the fraction of its runs (averaged over environments) whose score is above tau, with
a 95% stratified bootstrap band; scores are normalized per environment to [0, 1] by
``--score-range ENV=MIN:MAX``, or by the lowest and highest score of any run on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from rl_lightning.errors import ConfigError
from rl_lightning.runs import stats
from rl_lightning.runs.registry import (
    ALIASES,
    MISSING,
    Run,
    _norm,
    config_value,
    differing_keys,
    find_runs,
    parse_filters,
)
from rl_lightning.runs.runs_command import add_statistics_arguments

SUFFIXES = (".png", ".svg", ".pdf")
MAX_POINTS = 500  # at most this many frames per curve (a union of logged frames, else evenly spaced)
#: ``--stat``: the line drawn and the band around it
STATS = {"mean": "mean; bands: ±std, min-max", "mean-ci": "mean; bands: 95% bootstrap CI, min-max",
         "iqm": "IQM; bands: 95% bootstrap CI, min-max"}


@dataclass
class Curve:
    """One group's aggregate over its seeds, on a common grid of frames."""

    label: str
    runs: list[Run]
    frames: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    #: ``stat="iqm"`` or ``"mean-ci"``: the line (IQM or mean) and its 95% bootstrap interval over seeds
    center: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @property
    def seeds(self) -> int:
        """Distinct seeds among the group's runs (:func:`seed_count`)."""
        return seed_count(self.runs)


#: Config keys that seed a run: runs differing only in these are the seeds of one group.
SEED_KEYS = ("seed_everything", "data.init_args.seed", "evaluation.seed")
#: Config keys that do not change what a run learns or how it is measured (output, bookkeeping,
#: the sweep's pruning hook), besides the folders and names of ``registry.RUN_SPECIFIC``.
BOOKKEEPING = ("progress_bar.*", "checkpoint.*", "torch_threads", "log_every_frames", "weights_only",
               "trainer.logger*", "trainer.enable_progress_bar", "trainer.enable_model_summary",
               "trainer.callbacks*.init_args.storage", "trainer.callbacks*.init_args.study_name",
               "trainer.callbacks*.init_args.trial_number", "trainer.callbacks*.init_args.step_offset",
               "trainer.callbacks*.init_args.marker")
#: Run fields ``--by`` accepts and the config keys they stand for.
FIELD_KEYS = {"algorithm": ("model.class_path",), "env_id": ("data.init_args.env_id",), "seed": SEED_KEYS}
#: Names of config keys in labels, where the last part of the key would not say enough.
NAMES = {"model.class_path": "algorithm", "data.class_path": "data", "data.init_args.env_id": "env"}


def seed_count(runs: list[Run]) -> int:
    """Distinct seeds among ``runs`` (a run without a recorded seed counts as one of its own)."""
    seeds = [(r.seed, r.value("data.init_args.seed")) for r in runs]
    known = {(s, str(d)) for s, d in seeds if s is not None}
    return len(known) + sum(s is None for s, _ in seeds)


def hyperparameter_keys(runs: list[Run], ignore: tuple[str, ...] = ()) -> list[str]:
    """Flattened config keys whose values differ between ``runs``, other than seeds, folders,
    names and output settings (:data:`SEED_KEYS`, :data:`BOOKKEEPING`), and ``ignore``
    (dotted keys, with the keys below them)."""
    skip = (*SEED_KEYS, *BOOKKEEPING)
    return [k for k in differing_keys(runs) if not any(fnmatch(k, p) for p in skip)
            and not any(k == i or k.startswith(i + ".") for i in ignore)]


def _by_keys(by: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``--by`` as a list of keys (repeated, or comma-separated)."""
    if by is None:
        return []
    items = [by] if isinstance(by, str) else list(by)
    return [k.strip() for item in items for k in item.split(",") if k.strip()]


def _config_keys(key: str) -> tuple[str, ...]:
    """The flattened config keys a ``--by`` key covers (``model.lr`` is ``model.init_args.lr``)."""
    field = ALIASES.get(key, key)
    if field in FIELD_KEYS:
        return FIELD_KEYS[field]
    parts = key.split(".")
    return (key, ".".join([parts[0], "init_args", *parts[1:]])) if len(parts) > 1 and parts[1] != "init_args" else (key,)


def _names(keys: list[str]) -> dict[str, str]:
    """Short names of config keys for labels: the last part, longer where two would clash."""
    short = {k: NAMES.get(k) or k.replace(".init_args.", ".").rsplit(".", 1)[-1] for k in keys}
    clashes = {n for n in short.values() if list(short.values()).count(n) > 1}
    return {k: k.replace(".init_args.", ".") if short[k] in clashes else short[k] for k in keys}


def _text(value: Any, key: str = "") -> str:
    if value is MISSING:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if key.endswith("class_path") and isinstance(value, str):
        return value.rsplit(".", 1)[-1]
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str).replace('"', "")
    return str(value)


def _order(value: Any) -> tuple:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, float(value), "") if numeric else (1, 0.0, _text(value))


def group_runs(runs: list[Run], by: str | list[str] | None = None) -> dict[str, list[Run]]:
    """Runs by group label; the runs of a group differ only in their seeds (and settings that do
    not change learning, :data:`BOOKKEEPING`).

    By default runs are grouped by algorithm and environment and then by every hyperparameter
    that differs between them (:func:`hyperparameter_keys`): ``"PPO CartPole-v1,
    learning_rate=0.001"``. With ``by`` (a dotted config key such as
    ``model.init_args.learning_rate``, a run field such as ``seed``, or a list of them) the
    groups are those keys' values, ``"learning_rate=0.001"``, and whatever else differs within a
    group is pooled (:func:`pooled_keys` names it). Groups are ordered by value."""
    keys = _by_keys(by)
    for key in keys:
        if runs and all(r.value(key) is MISSING for r in runs):
            raise ConfigError(f"--by {key}: no run has this config key or field (e.g. model.init_args.learning_rate).")
    if keys:
        names = _names(keys)
        return _split(runs, [(names[k], k) for k in keys], "", lambda run, key: run.value(key))
    out: dict[str, list[Run]] = {}
    buckets: dict[str, list[Run]] = {}
    for run in runs:
        buckets.setdefault(f"{run.algorithm or '?'} {run.env_id or '?'}", []).append(run)
    for prefix in sorted(buckets):
        members = [r for r in buckets[prefix] if r.config]
        differ = hyperparameter_keys(members, ignore=("model.class_path", "data.init_args.env_id"))
        names = _names(differ)
        out.update(_split(members, [(names[k], k) for k in differ], prefix, lambda run, key: config_value(run.config, key)))
        unknown = [r for r in buckets[prefix] if not r.config]
        if unknown:  # no readable config.yaml: nothing tells their hyperparameters
            out[f"{prefix}, config unknown"] = unknown
    return out


def _split(runs: list[Run], keys: list[tuple[str, str]], prefix: str,
           read: Callable[[Run, str], Any]) -> dict[str, list[Run]]:
    """``runs`` grouped by the values ``read`` gives of ``keys`` (name, key), labelled
    ``"<prefix>, name=value, ..."``, in order of the values."""
    groups: dict[tuple, tuple[str, list[Run]]] = {}
    for run in runs:
        values = [read(run, key) for _, key in keys]
        order = tuple((_order(v), _norm(v)) for v in values)
        text = ", ".join(f"{name}={_text(v, key)}" for (name, key), v in zip(keys, values))
        label = ", ".join(part for part in (prefix, text) if part)
        groups.setdefault(order, (label, []))[1].append(run)
    return {label: members for _, (label, members) in sorted(groups.items(), key=lambda item: item[0])}


def pooled_keys(groups: dict[str, list[Run]], by: str | list[str] | None = None) -> list[str]:
    """Hyperparameters whose values differ within some group (pooled there, beside the seeds)."""
    covered = tuple(k for key in _by_keys(by) for k in _config_keys(key))
    return sorted({k for members in groups.values()
                   for k in hyperparameter_keys([r for r in members if r.config], ignore=covered)})


def aggregate(label: str, runs: list[Run], metric: str, stat: str = "mean", reps: int = stats.DEFAULT_REPS,
              seed: int = 0) -> Curve | None:
    """The group's curve, or ``None`` when its runs share no frames (a warning says so).

    Runs without a value of ``metric`` are left out (with a warning). ``stat`` ``iqm`` or
    ``mean-ci`` also computes that statistic at every frame with its 95% bootstrap interval
    (``reps`` resamples of whole runs, seeded by ``seed``).
    """
    series = []
    for run in runs:
        points = sorted(dict(run.series(metric)).items())  # one value per frame count, the last logged
        if points:
            series.append((run, np.array(points, dtype=float)))
        else:
            _warn(f"{run.path}: no values of {metric}; left out of {label!r}.")
    if not series:
        return None
    low, high = max(s[0, 0] for _, s in series), min(s[-1, 0] for _, s in series)
    if low > high:
        _warn(f"group {label!r}: its {len(series)} runs cover no common frames ({metric}); group left out.")
        return None
    grid = np.unique(np.concatenate([s[(s[:, 0] >= low) & (s[:, 0] <= high), 0] for _, s in series]))
    if len(grid) > MAX_POINTS:
        grid = np.linspace(low, high, MAX_POINTS)
    values = np.stack([np.interp(grid, s[:, 0], s[:, 1]) for _, s in series])
    curve = Curve(label, [r for r, _ in series], grid, values.mean(0), values.std(0), values.min(0), values.max(0))
    if stat != "mean":
        statistic = stats.iqm if stat == "iqm" else stats.mean
        curve.center = statistic([values.T])
        picks = np.random.default_rng(seed).integers(0, len(values), size=(reps, len(values)))
        samples = statistic([values[picks].transpose(0, 2, 1)])  # (reps, frames): whole runs resampled
        curve.low, curve.high = np.percentile(samples, [2.5, 97.5], axis=0)
    return curve


def curves(runs: list[Run], metric: str = "eval/return_mean", by: str | list[str] | None = None, stat: str = "mean",
           reps: int = stats.DEFAULT_REPS, seed: int = 0) -> list[Curve]:
    """One :class:`Curve` per group of runs (see :func:`group_runs`).

    Raises:
        ConfigError: no run has ``metric`` (the message lists the columns there are), or no
            group has a value of it.
    """
    if not runs:
        raise ConfigError("no runs to plot: check the folders and --filter.")
    columns = sorted({c for r in runs for c in r.columns})
    if metric not in columns:
        raise ConfigError(f"--metric {metric}: not a column of metrics.csv in any of the {len(runs)} runs; "
                          f"columns available: {', '.join(columns) or 'none (no metrics.csv)'}.")
    if stat not in STATS:
        raise ConfigError(f"--stat {stat}: expected one of {', '.join(STATS)}.")
    if reps < 1:
        raise ConfigError(f"--reps must be >= 1, got {reps}.")
    out = [c for label, group in group_runs(runs, by).items()
           if (c := aggregate(label, group, metric, stat, reps, seed)) is not None]
    if not out:
        raise ConfigError(f"--metric {metric}: no values to plot in these {len(runs)} runs.")
    return out


def _axes():
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(), colormaps


def make_figure(runs: list[Run], metric: str = "eval/return_mean", by: str | list[str] | None = None,
                title: str | None = None, stat: str = "mean", reps: int = stats.DEFAULT_REPS, seed: int = 0):
    """A matplotlib ``Figure`` (800x500 pixels at 100 dpi, Agg canvas, no display) with, per
    group, one line (mean, or IQM with ``stat="iqm"``), one band (±std, or the 95% bootstrap
    interval with ``stat`` ``iqm`` / ``mean-ci``) and one min-max band, and a legend of groups
    and seeds."""
    from matplotlib.ticker import EngFormatter

    data = curves(runs, metric, by, stat, reps, seed)
    fig, ax, colormaps = _axes()
    palette = colormaps["tab10" if len(data) <= 10 else "tab20"]
    handles, labels = [], []
    for i, curve in enumerate(data):
        color = palette(i % palette.N)
        center, low, high = ((curve.mean, curve.mean - curve.std, curve.mean + curve.std) if curve.center is None
                             else (curve.center, curve.low, curve.high))
        ax.fill_between(curve.frames, curve.min, curve.max, color=color, alpha=0.12, linewidth=0)
        band = ax.fill_between(curve.frames, low, high, color=color, alpha=0.3, linewidth=0)
        (line,) = ax.plot(curve.frames, center, color=color, linewidth=2,
                          marker="o" if len(curve.frames) == 1 else None)
        handles.append((band, line))
        seeds = curve.seeds
        runs_note = f", {len(curve.runs)} runs" if seeds != len(curve.runs) else ""
        labels.append(f"{curve.label} ({seeds} seed{'s' * (seeds != 1)}{runs_note})")
    experiments = sorted({r.experiment for c in data for r in c.runs})
    ax.set_title(title or (f"{experiments[0]}: {metric}" if len(experiments) == 1 else metric))
    ax.set_xlabel("frames")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.grid(alpha=0.3)
    legend_title = STATS[stat]
    pooled = pooled_keys({c.label: c.runs for c in data}, by)
    if pooled:
        names = list(_names(pooled).values())
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        legend_title += f"\npooled: runs differing in {shown}"
        _warn(f"some groups pool runs whose {', '.join(pooled)} differ; group by them with --by KEY "
              "(repeatable) or leave --by out to group by every differing hyperparameter.")
    ax.legend(handles, labels, loc="best", fontsize="small", title=legend_title, title_fontsize="small")
    return fig


def profile_figure(runs: list[Run], score: str = "final_eval_return", by: str | None = None,
                   score_range: dict[str, tuple[float, float]] | None = None, title: str | None = None,
                   reps: int = stats.DEFAULT_REPS, seed: int = 0, points: int = 101):
    """A matplotlib ``Figure`` of performance profiles: per method (algorithm, or ``by``'s
    value), the fraction of runs (averaged over environments) whose normalized score is above
    tau, for ``points`` values of tau from 0 to 1, with a 95% stratified bootstrap band.

    Scores (``score``: a run field or a metrics.csv column, its last value) are normalized per
    environment by ``score_range[env] = (min, max)``, else by the lowest and highest score of
    any run on it; the x label says which."""
    if reps < 1:
        raise ConfigError(f"--reps must be >= 1, got {reps}.")
    if not runs:
        raise ConfigError("no runs to plot: check the folders and --filter.")
    normalized, used = stats.normalized_by_method(stats.scores_by_method(runs, score, by), score_range)
    taus = np.linspace(0, 1, points)
    fig, ax, colormaps = _axes()
    palette = colormaps["tab10" if len(normalized) <= 10 else "tab20"]
    for i, (method, tasks) in enumerate(normalized.items()):
        color = palette(i % palette.N)
        scores = list(tasks.values())
        low, high = stats.profile_interval(scores, taus, reps, seed)
        ax.fill_between(taus, low, high, color=color, alpha=0.25, linewidth=0)
        n = sum(len(s) for s in scores)
        ax.plot(taus, stats.performance_profile(scores, taus), color=color, linewidth=2,
                label=f"{method} ({n} run{'s' * (n != 1)}, {len(tasks)} env{'s' * (len(tasks) != 1)})")
    given = [t for t in used if t in (score_range or {})]
    how = ("given min/max" if len(given) == len(used) else "min/max over runs" if not given
           else f"given min/max ({', '.join(given)}), else min/max over runs")
    ax.set_title(title or f"Performance profile: {score}")
    ax.set_xlabel(f"normalized score tau ({how})")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small", title="band: 95% stratified bootstrap CI", title_fontsize="small")
    return fig


def plot_curves(runs: list[Run], metric: str = "eval/return_mean", by: str | list[str] | None = None,
                output: str | Path = "curves.png", title: str | None = None, stat: str = "mean",
                reps: int = stats.DEFAULT_REPS, seed: int = 0) -> Path:
    """Draw the learning curves of ``runs`` (see :func:`make_figure`) and save them.

    Args:
        runs: runs from :func:`rl_lightning.runs.registry.find_runs`.
        metric: a column of ``metrics.csv``.
        by: group by these dotted config keys or run fields (one, a list, or comma-separated)
            instead of algorithm, environment and every differing hyperparameter.
        output: the image file; its suffix (``.png``, ``.svg`` or ``.pdf``) picks the format.
        title: the plot's title (default: the experiment and metric).
        stat: ``mean`` (mean ± std), ``mean-ci`` or ``iqm`` (with 95% bootstrap intervals).
        reps: bootstrap resamples of the intervals.
        seed: seed of the bootstrap.

    Returns:
        The path written.
    """
    output = _check_output(output)
    return _save(make_figure(runs, metric, by, title, stat, reps, seed), output)


def plot_profile(runs: list[Run], score: str = "final_eval_return", by: str | None = None,
                 score_range: dict[str, tuple[float, float]] | None = None, output: str | Path = "profile.png",
                 title: str | None = None, reps: int = stats.DEFAULT_REPS, seed: int = 0) -> Path:
    """Draw the performance profiles of ``runs`` (see :func:`profile_figure`) and save them to
    ``output`` (``.png``, ``.svg`` or ``.pdf``); returns the path written."""
    output = _check_output(output)
    return _save(profile_figure(runs, score, by, score_range, title, reps, seed), output)


def _check_output(output: str | Path) -> Path:
    output = Path(output)
    if output.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"-o {output}: unsupported image type {output.suffix or '(none)'!r}; "
                          f"use one of {', '.join(SUFFIXES)}.")
    return output


def _save(fig, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    return output


def main(argv: list[str]) -> None:
    """Plot learning curves over frames (per group, the mean over seeds with std and min-max
    bands, or the IQM with a bootstrap band), or performance profiles (--profile)."""
    details = __doc__.split("\n\n", 1)[1].replace("``", "")
    parser = argparse.ArgumentParser(prog="python -m rl_lightning plot", description=f"{main.__doc__}\n\n{details}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="experiments folders, experiment folders or run folders (default: experiments)")
    parser.add_argument("--metric", default="eval/return_mean", help="column of metrics.csv (default: %(default)s)")
    parser.add_argument("--filter", action="append", metavar="KEY=VALUE",
                        help="only runs where KEY (a run field or dotted config key) equals VALUE; repeatable")
    parser.add_argument("--title", help="plot title (default: experiment and metric)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="image file; .png, .svg or .pdf by its suffix (default: curves.png, with --profile "
                             "profile.png)")
    parser.add_argument("--stat", choices=tuple(STATS), default="mean",
                        help="curves: mean with a ±std band (mean), mean with a 95%% bootstrap band (mean-ci), or "
                             "interquartile mean with a 95%% bootstrap band (iqm) (default: %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="draw performance profiles (fraction of runs with normalized score > tau) instead of "
                             "learning curves")
    add_statistics_arguments(parser, "group by this config key (e.g. model.init_args.learning_rate) or run field "
                                     "instead of algorithm, environment and every hyperparameter that differs; "
                                     "repeatable or comma-separated; what else differs within a group is named in "
                                     "the legend (--profile: one key, instead of algorithm)", repeatable=True)
    args = parser.parse_args(argv)
    runs = find_runs(args.paths, parse_filters(args.filter))
    if args.profile:
        ranges = stats.parse_ranges(args.score_range)
        keys = [k for item in args.by or [] for k in item.split(",") if k]
        if len(keys) > 1:
            raise ConfigError(f"--profile compares methods by one --by key, got {', '.join(keys)}.")
        print(plot_profile(runs, args.score, keys[0] if keys else None, ranges, args.output or "profile.png", args.title, args.reps,
                           args.seed))
    else:
        print(plot_curves(runs, args.metric, args.by, args.output or "curves.png", args.title, args.stat, args.reps,
                          args.seed))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
