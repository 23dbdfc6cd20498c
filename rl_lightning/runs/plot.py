"""``python -m rl_lightning plot``: learning curves of runs over environment frames.

Runs are grouped (by algorithm and environment, or by the value of a config key with
``--by``). The seeds of a group are aligned on a common frame grid: each run's metric is
linearly interpolated over frames, on the range covered by *every* seed of the group (from
the latest first value to the earliest last value), so that the mean never mixes different
numbers of seeds. A group is drawn as its mean line, a mean ± std band and a lighter
min-max band; with ``--stat iqm`` (or ``mean-ci``) as its interquartile mean (or mean) with a
95% bootstrap confidence band over seeds instead of the std band.

``--profile`` draws performance profiles instead: for each method (algorithm, or ``--by``'s
value), the fraction of its runs (averaged over environments) whose score is above tau, with
a 95% stratified bootstrap band; scores are normalized per environment to [0, 1] by
``--score-range ENV=MIN:MAX``, or by the lowest and highest score of any run on it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl_lightning.errors import ConfigError
from rl_lightning.runs import stats
from rl_lightning.runs.registry import (
    MISSING,
    Run,
    add_statistics_arguments,
    find_runs,
    parse_filters,
)

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


def group_runs(runs: list[Run], by: str | None = None) -> dict[str, list[Run]]:
    """Runs by group label: ``"<algorithm> <env_id>"``, or ``"<name>=<value>"`` with ``by`` a
    dotted config key (``model.init_args.learning_rate`` gives ``learning_rate=0.001``) or a run
    field (``seed``); groups ordered by value."""
    if by is not None and runs and all(r.value(by) is MISSING for r in runs):
        raise ConfigError(f"--by {by}: no run has this config key or field (e.g. model.init_args.learning_rate).")
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if by is None:
            key: tuple = (0, f"{run.algorithm or '?'} {run.env_id or '?'}")
        else:
            value = run.value(by)
            text = "-" if value is MISSING else f"{value:g}" if isinstance(value, float) else str(value)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            key = (0, float(value), text) if numeric else (1, text)
        groups.setdefault(key, []).append(run)
    return {(k[-1] if by is None else f"{by.rsplit('.', 1)[-1]}={k[-1]}"): groups[k] for k in sorted(groups)}


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


def curves(runs: list[Run], metric: str = "eval/return_mean", by: str | None = None, stat: str = "mean",
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


def make_figure(runs: list[Run], metric: str = "eval/return_mean", by: str | None = None, title: str | None = None,
                stat: str = "mean", reps: int = stats.DEFAULT_REPS, seed: int = 0):
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
        labels.append(f"{curve.label} ({len(curve.runs)} seed{'s' * (len(curve.runs) != 1)})")
    experiments = sorted({r.experiment for c in data for r in c.runs})
    ax.set_title(title or (f"{experiments[0]}: {metric}" if len(experiments) == 1 else metric))
    ax.set_xlabel("frames")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.grid(alpha=0.3)
    ax.legend(handles, labels, loc="best", fontsize="small", title=STATS[stat], title_fontsize="small")
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


def plot_curves(runs: list[Run], metric: str = "eval/return_mean", by: str | None = None,
                output: str | Path = "curves.png", title: str | None = None, stat: str = "mean",
                reps: int = stats.DEFAULT_REPS, seed: int = 0) -> Path:
    """Draw the learning curves of ``runs`` (see :func:`make_figure`) and save them.

    Args:
        runs: runs from :func:`rl_lightning.runs.registry.find_runs`.
        metric: a column of ``metrics.csv``.
        by: group by this dotted config key instead of algorithm + environment.
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
                                     "instead of algorithm + environment (--profile: instead of algorithm)")
    args = parser.parse_args(argv)
    runs = find_runs(args.paths, parse_filters(args.filter))
    if args.profile:
        ranges = stats.parse_ranges(args.score_range)
        print(plot_profile(runs, args.score, args.by, ranges, args.output or "profile.png", args.title, args.reps,
                           args.seed))
    else:
        print(plot_curves(runs, args.metric, args.by, args.output or "curves.png", args.title, args.stat, args.reps,
                          args.seed))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
