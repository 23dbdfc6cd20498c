"""Reliable statistics over seeds and tasks (numpy only): interquartile mean, stratified
bootstrap confidence intervals and performance profiles.

The definitions are those of Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS 2021), as its ``rliable`` library computes them:

- **IQM** (interquartile mean): the mean of the middle 50% of all scores (runs x tasks pooled),
  ``int(0.25 * n)`` scores cut from each end, exactly as ``scipy.stats.trim_mean(scores, 0.25,
  axis=None)``.
- **mean**: the mean over tasks of each task's mean over runs (with the same number of runs per
  task, the mean of all scores).
- **stratified bootstrap**: each replicate resamples the runs of every task with replacement,
  within that task (so each task keeps its number of runs); a 95% **percentile** interval is
  the 2.5th and 97.5th percentiles of the statistic over the replicates.
- **performance profile**: the fraction of runs whose (normalized) score is above ``tau``,
  averaged over tasks, for a grid of ``tau``.

Scores of a task are a 1-D array of one score per run; a statistic takes a list of them, one
per task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Bootstrap replicates by default (fast: milliseconds for tens of runs).
DEFAULT_REPS = 2000
#: Confidence level of the intervals.
CONFIDENCE = 0.95

Tasks = Sequence[np.ndarray]
#: A statistic of scores grouped by task, vectorized: arrays of shape ``(..., runs)`` in,
#: one value per leading index out.
Statistic = Callable[[Tasks], np.ndarray]


def _tasks(scores: Tasks | np.ndarray) -> list[np.ndarray]:
    """Scores as a list of 1-D float arrays, one per task; a 1-D array is one task, a 2-D
    array is ``(runs, tasks)`` as rliable lays it out."""
    if isinstance(scores, np.ndarray):
        scores = [scores] if scores.ndim == 1 else list(scores.T)
    out = [np.asarray(s, dtype=float) for s in scores]
    if not out or any(s.ndim != 1 or s.size == 0 for s in out):
        raise ValueError("scores: expected one non-empty 1-D array of run scores per task.")
    if any(not np.isfinite(s).all() for s in out):
        raise ValueError("scores: NaN or infinite values.")
    return out


def trim_mean(values: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """The mean of ``values`` along the last axis after cutting ``int(proportion * n)`` values
    from each end (``scipy.stats.trim_mean``); 0.25 gives the interquartile mean."""
    values = np.sort(np.asarray(values, dtype=float), axis=-1)
    n = values.shape[-1]
    cut = int(proportion * n)
    return values[..., cut:n - cut].mean(-1)


def iqm(tasks: Tasks | np.ndarray) -> np.ndarray:
    """Interquartile mean of all scores, runs x tasks pooled."""
    tasks = _tasks(tasks) if not _batched(tasks) else tasks
    return trim_mean(np.concatenate(list(tasks), axis=-1), 0.25)


def mean(tasks: Tasks | np.ndarray) -> np.ndarray:
    """Mean over tasks of the mean over runs of each task."""
    tasks = _tasks(tasks) if not _batched(tasks) else tasks
    return np.mean([t.mean(-1) for t in tasks], axis=0)


def _batched(tasks) -> bool:
    """Whether ``tasks`` are already arrays ``(..., runs)`` with leading batch axes (bootstrap
    replicates, frames), which the statistics reduce along their last axis."""
    return isinstance(tasks, (list, tuple)) and bool(tasks) and all(
        isinstance(t, np.ndarray) and t.ndim >= 2 for t in tasks)


STATISTICS: dict[str, Statistic] = {"mean": mean, "iqm": iqm}


def bootstrap_samples(tasks: Tasks | np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0) -> list[np.ndarray]:
    """``reps`` stratified bootstrap replicates: per task an array ``(reps, runs)`` of that
    task's scores drawn with replacement."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}.")
    rng = np.random.default_rng(seed)
    return [t[rng.integers(0, t.size, size=(reps, t.size))] for t in _tasks(tasks)]


def confidence_interval(tasks: Tasks | np.ndarray, statistic: Statistic = iqm, reps: int = DEFAULT_REPS,
                        seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The stratified bootstrap percentile interval of ``statistic`` (default 95%); the same
    ``seed`` gives the same interval."""
    values = statistic(bootstrap_samples(tasks, reps, seed))
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [alpha, 100 - alpha])
    return float(low), float(high)


def summarize(tasks: Tasks | np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0) -> dict[str, float]:
    """``n``, ``mean``, ``std`` (over all scores, ``ddof=0``), ``iqm`` and the 95% stratified
    bootstrap intervals ``mean_low``/``mean_high`` and ``iqm_low``/``iqm_high``."""
    tasks = _tasks(tasks)
    pooled = np.concatenate(tasks)
    out = {"n": float(pooled.size), "mean": float(mean(tasks)), "std": float(pooled.std()),
           "iqm": float(iqm(tasks))}
    samples = bootstrap_samples(tasks, reps, seed)
    for name in ("mean", "iqm"):
        values = STATISTICS[name](samples)
        out[f"{name}_low"], out[f"{name}_high"] = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    return out


def normalize(tasks: dict[str, np.ndarray], ranges: dict[str, tuple[float, float]] | None = None,
              ) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """Scores of each task mapped to ``(score - low) / (high - low)``: ``low, high`` from
    ``ranges[task]`` when given, else the lowest and highest score of the task over all runs.

    Returns the normalized scores and the range used for each task. A task whose range is
    empty raises ``ValueError`` naming it."""
    ranges = dict(ranges or {})
    used, out = {}, {}
    for task, scores in tasks.items():
        scores = np.asarray(scores, dtype=float)
        low, high = ranges.get(task, (float(scores.min()), float(scores.max())))
        if not high > low:
            raise ValueError(f"task {task!r}: score range [{low:g}, {high:g}] is empty; give its min and max.")
        used[task] = (low, high)
        out[task] = (scores - low) / (high - low)
    return out, used


def performance_profile(tasks: Tasks | np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with score > tau, for each ``tau``, averaged over tasks."""
    taus = np.asarray(taus, dtype=float)
    if _batched(tasks):
        return np.mean([(t[..., None, :] > taus[:, None]).mean(-1) for t in tasks], axis=0)
    return np.mean([(t[None, :] > taus[:, None]).mean(-1) for t in _tasks(tasks)], axis=0)


def profile_interval(tasks: Tasks | np.ndarray, taus: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
                     confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise stratified bootstrap percentile interval of :func:`performance_profile`."""
    values = performance_profile(bootstrap_samples(tasks, reps, seed), taus)  # (reps, taus)
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [alpha, 100 - alpha], axis=0)
    return low, high


# --- scores of run folders ---------------------------------------------------------------------
def method_label(run, by: str | None = None) -> str:
    """What a run is compared as: its algorithm, or ``<name>=<value>`` of the config key or run
    field ``by`` (``model.init_args.learning_rate`` gives ``learning_rate=0.001``)."""
    from rl_lightning.runs.registry import MISSING

    if by is None:
        return run.algorithm or "?"
    value = run.value(by)
    text = "-" if value is MISSING else f"{value:g}" if isinstance(value, float) else str(value)
    return f"{by.rsplit('.', 1)[-1]}={text}"


def run_score(run, score: str) -> float | None:
    """A run's score: a run field (``final_eval_return``, ``best_eval_return``, ``frames``) or
    the last value of a column of ``metrics.csv``."""
    from rl_lightning.runs.registry import ALIASES, FIELDS

    key = ALIASES.get(score, score)
    value = getattr(run, key) if key in FIELDS else run.last(score)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def scores_by_method(runs: list, score: str = "final_eval_return", by: str | None = None,
                     ) -> dict[str, dict[str, np.ndarray]]:
    """``{method: {task (env_id): scores of its runs}}``; runs without a score are left out (a
    warning on stderr names them). ``ConfigError`` if ``score`` is neither a run field nor a
    metric column, or no run has a score."""
    import sys

    from rl_lightning.errors import ConfigError
    from rl_lightning.runs.registry import ALIASES, FIELDS, MISSING

    if ALIASES.get(score, score) not in FIELDS and not any(score in r.columns for r in runs):
        columns = sorted({c for r in runs for c in r.columns})
        raise ConfigError(f"--score {score}: neither a run field (final_eval_return, best_eval_return) nor a "
                          f"column of metrics.csv ({', '.join(columns) or 'none'}).")
    if by is not None and runs and all(r.value(by) is MISSING for r in runs):
        raise ConfigError(f"--by {by}: no run has this config key or field (e.g. model.init_args.learning_rate).")
    grouped: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        value = run_score(run, score)
        if value is None:
            print(f"warning: {run.path}: no {score}; left out of the statistics.", file=sys.stderr)
            continue
        grouped.setdefault(method_label(run, by), {}).setdefault(run.env_id or "?", []).append(value)
    if not grouped:
        raise ConfigError(f"--score {score}: none of the {len(runs)} runs has a value.")
    return {m: {t: np.array(v) for t, v in sorted(tasks.items())} for m, tasks in sorted(grouped.items())}


def parse_ranges(items: list[str] | None) -> dict[str, tuple[float, float]]:
    """``["CartPole-v1=0:500", ...]`` as ``{task: (low, high)}``; ``ConfigError`` if malformed."""
    from rl_lightning.errors import ConfigError

    out = {}
    for item in items or []:
        task, _, bounds = item.rpartition("=")
        low, sep, high = bounds.partition(":")
        try:
            pair = (float(low), float(high))
        except ValueError:
            pair = None
        if not task or not sep or pair is None or not pair[1] > pair[0]:
            raise ConfigError(f"--score-range {item!r}: expected ENV=MIN:MAX with MIN < MAX, e.g. CartPole-v1=0:500.")
        out[task] = pair
    return out


def normalized_by_method(scores: dict[str, dict[str, np.ndarray]], ranges: dict[str, tuple[float, float]] | None,
                         ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple[float, float]]]:
    """Every method's scores normalized per task (see :func:`normalize`); a task without a given
    range takes the lowest and highest score of any run of any method on it."""
    from rl_lightning.errors import ConfigError

    tasks = sorted({t for by_task in scores.values() for t in by_task})
    pooled = {t: np.concatenate([s[t] for s in scores.values() if t in s]) for t in tasks}
    unknown = sorted(set(ranges or {}) - set(tasks))
    if unknown:
        raise ConfigError(f"--score-range {unknown[0]}: no run of that environment (environments: {', '.join(tasks)}).")
    try:
        _, used = normalize(pooled, ranges)
    except ValueError as err:
        raise ConfigError(f"{err} (--score-range ENV=MIN:MAX)") from err
    out = {m: {t: (s - used[t][0]) / (used[t][1] - used[t][0]) for t, s in by_task.items()}
           for m, by_task in scores.items()}
    return out, used
