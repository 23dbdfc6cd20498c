"""``python -m rl_lightning plot``: learning curves of runs over environment frames.

Runs are grouped (by algorithm and environment, or by the value of a config key with
``--by``). The seeds of a group are aligned on a common frame grid: each run's metric is
linearly interpolated over frames, on the range covered by *every* seed of the group (from
the latest first value to the earliest last value), so that the mean never mixes different
numbers of seeds. A group is drawn as its mean line, a mean ± std band and a lighter
min-max band.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl_lightning.errors import ConfigError
from rl_lightning.runs.registry import MISSING, Run, find_runs, parse_filters

SUFFIXES = (".png", ".svg", ".pdf")
MAX_POINTS = 500  # at most this many frames per curve (a union of logged frames, else evenly spaced)


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


def aggregate(label: str, runs: list[Run], metric: str) -> Curve | None:
    """The group's curve, or ``None`` when its runs share no frames (a warning says so).

    Runs without a value of ``metric`` are left out (with a warning).
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
    return Curve(label, [r for r, _ in series], grid, values.mean(0), values.std(0), values.min(0), values.max(0))


def curves(runs: list[Run], metric: str = "eval/return_mean", by: str | None = None) -> list[Curve]:
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
    out = [c for label, group in group_runs(runs, by).items() if (c := aggregate(label, group, metric)) is not None]
    if not out:
        raise ConfigError(f"--metric {metric}: no values to plot in these {len(runs)} runs.")
    return out


def make_figure(runs: list[Run], metric: str = "eval/return_mean", by: str | None = None, title: str | None = None):
    """A matplotlib ``Figure`` (800x500 pixels at 100 dpi, Agg canvas, no display) with one
    mean line, one std band and one min-max band per group, and a legend of groups and seeds."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    data = curves(runs, metric, by)
    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    palette = colormaps["tab10" if len(data) <= 10 else "tab20"]
    handles, labels = [], []
    for i, curve in enumerate(data):
        color = palette(i % palette.N)
        ax.fill_between(curve.frames, curve.min, curve.max, color=color, alpha=0.12, linewidth=0)
        band = ax.fill_between(curve.frames, curve.mean - curve.std, curve.mean + curve.std, color=color,
                               alpha=0.3, linewidth=0)
        (line,) = ax.plot(curve.frames, curve.mean, color=color, linewidth=2,
                          marker="o" if len(curve.frames) == 1 else None)
        handles.append((band, line))
        labels.append(f"{curve.label} ({len(curve.runs)} seed{'s' * (len(curve.runs) != 1)})")
    experiments = sorted({r.experiment for c in data for r in c.runs})
    ax.set_title(title or (f"{experiments[0]}: {metric}" if len(experiments) == 1 else metric))
    ax.set_xlabel("frames")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.grid(alpha=0.3)
    ax.legend(handles, labels, loc="best", fontsize="small", title="mean; bands: ±std, min-max",
              title_fontsize="small")
    return fig


def plot_curves(runs: list[Run], metric: str = "eval/return_mean", by: str | None = None,
                output: str | Path = "curves.png", title: str | None = None) -> Path:
    """Draw the learning curves of ``runs`` (see :func:`make_figure`) and save them.

    Args:
        runs: runs from :func:`rl_lightning.runs.registry.find_runs`.
        metric: a column of ``metrics.csv``.
        by: group by this dotted config key instead of algorithm + environment.
        output: the image file; its suffix (``.png``, ``.svg`` or ``.pdf``) picks the format.
        title: the plot's title (default: the experiment and metric).

    Returns:
        The path written.
    """
    output = Path(output)
    if output.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"-o {output}: unsupported image type {output.suffix or '(none)'!r}; "
                          f"use one of {', '.join(SUFFIXES)}.")
    fig = make_figure(runs, metric, by, title)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    return output


def main(argv: list[str]) -> None:
    """Plot learning curves over frames: per group, the mean over seeds with std and min-max bands."""
    details = __doc__.split("\n\n", 1)[1].replace("``", "")
    parser = argparse.ArgumentParser(prog="python -m rl_lightning plot", description=f"{main.__doc__}\n\n{details}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="experiments folders, experiment folders or run folders (default: experiments)")
    parser.add_argument("--metric", default="eval/return_mean", help="column of metrics.csv (default: %(default)s)")
    parser.add_argument("--by", metavar="KEY", help="group by this config key (e.g. model.init_args.learning_rate) "
                                                    "or run field instead of algorithm + environment")
    parser.add_argument("--filter", action="append", metavar="KEY=VALUE",
                        help="only runs where KEY (a run field or dotted config key) equals VALUE; repeatable")
    parser.add_argument("--title", help="plot title (default: experiment and metric)")
    parser.add_argument("-o", "--output", default="curves.png", metavar="FILE",
                        help="image file; .png, .svg or .pdf by its suffix (default: %(default)s)")
    args = parser.parse_args(argv)
    runs = find_runs(args.paths, parse_filters(args.filter))
    print(plot_curves(runs, args.metric, args.by, args.output, args.title))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
