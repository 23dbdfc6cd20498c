"""``python -m rl_lightning runs list|compare|export|clean``: the registry's command line
(the registry itself is :mod:`rl_lightning.runs.registry`)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl_lightning.errors import ConfigError
from rl_lightning.runs.metadata import is_run, read_metadata, write_metadata
from rl_lightning.runs.registry import (
    ALIASES,
    FIELDS,
    HEAVY,
    MISSING,
    Run,
    differing_keys,
    display_path,
    filter_runs,
    find_runs,
    parse_filters,
    sort_runs,
)


def cmd_list(args: argparse.Namespace) -> None:
    """List runs as a table (run, algorithm, env, seed, status, frames, final/best eval, started)."""
    runs = find_runs(args.paths, parse_filters(args.filter))
    runs = sort_runs(runs, args.sort, args.descending)
    headers = ["run", "algorithm", "env", "seed", "status", "frames", "final eval", "best eval", "started"]
    extra = args.sort if ALIASES.get(args.sort, args.sort) not in FIELDS else None
    rows = [[display_path(r.path), r.algorithm, r.env_id, r.seed, r.status, r.frames, r.final_eval_return,
             r.best_eval_return, _date(r.started)] for r in runs]
    if extra:
        rows = [row + [r.last(extra) if extra in r.columns else r.value(extra)] for row, r in zip(rows, runs)]
    print(_text_table(headers + ([extra] if extra else []), rows))
    print(f"{len(runs)} run{'s' * (len(runs) != 1)}")


def cmd_compare(args: argparse.Namespace) -> None:
    """Compare runs: the config keys that differ between them, and their results side by side."""
    runs = find_runs(args.runs)
    if len(runs) < 2:
        raise ConfigError(f"runs compare needs at least two runs; found {len(runs)} in {', '.join(args.runs)}.")
    labels = [f"{r.experiment}/{r.run_id}" for r in runs]
    keys = differing_keys(runs)
    if keys:
        print(f"Config differences ({len(keys)} key{'s' * (len(keys) != 1)}):")
        print(_text_table(["key", *labels], [[k, *(r.value(k) for r in runs)] for k in keys]))
    else:
        print("Configs are identical (apart from run-specific keys such as folders).")
    print("\nResults:")
    results = [["status", *(r.status for r in runs)], ["frames", *(r.frames for r in runs)],
               ["final eval return", *(r.final_eval_return for r in runs)],
               ["best eval return", *(r.best_eval_return for r in runs)]]
    for metric in ("train/episode_return", "time/fps"):
        results.append([f"{metric} (last)", *(r.last(metric) for r in runs)])
    print(_text_table(["", *labels], results))
    print()
    print_statistics(runs, args.score, args.by, args.reps, args.seed, args.score_range)


def print_statistics(runs: list[Run], score: str = "final_eval_return", by: str | None = None, reps: int = 2000,
                     seed: int = 0, score_range: list[str] | None = None) -> None:
    """Print, per method (algorithm, or ``by``'s value) and environment, the mean, std, IQM and
    95% stratified bootstrap intervals of the runs' scores; with several environments, also the
    IQM and mean across them of scores normalized per environment."""
    from rl_lightning.runs import stats

    if reps < 1:
        raise ConfigError(f"--reps must be >= 1, got {reps}.")
    ranges = stats.parse_ranges(score_range)
    scores = stats.scores_by_method(runs, score, by)
    def num(value: float) -> str:
        return f"{value:.4g}"

    def ci(low: float, high: float) -> str:
        return f"[{num(low)}, {num(high)}]"

    rows = []
    for method, tasks in scores.items():
        for task, values in tasks.items():
            s = stats.summarize([values], reps, seed)
            rows.append([method, task, int(s["n"]), num(s["mean"]), num(s["std"]), num(s["iqm"]),
                         ci(s["iqm_low"], s["iqm_high"]), ci(s["mean_low"], s["mean_high"])])
    print(f"Over seeds ({score}; 95% stratified bootstrap intervals, percentile, {reps} resamples, seed {seed}):")
    print(_text_table(["method", "env", "runs", "mean", "std", "IQM", "IQM 95% CI", "mean 95% CI"], rows))
    all_tasks = sorted({t for tasks in scores.values() for t in tasks})
    if len(all_tasks) < 2:
        return
    normalized, used = stats.normalized_by_method(scores, ranges)
    how = ", ".join(f"{t} {_cell(lo)}..{_cell(hi)} ({'given' if t in ranges else 'range over runs'})"
                    for t, (lo, hi) in used.items())
    rows = []
    for method, tasks in normalized.items():
        s = stats.summarize(list(tasks.values()), reps, seed)
        rows.append([method, len(tasks), int(s["n"]), num(s["iqm"]), ci(s["iqm_low"], s["iqm_high"]), num(s["mean"]),
                     ci(s["mean_low"], s["mean_high"])])
    print(f"\nAcross environments (scores normalized per environment, (score - min) / (max - min): {how}):")
    print(_text_table(["method", "envs", "runs", "IQM", "IQM 95% CI", "mean", "mean 95% CI"], rows))


def export_table(runs: list[Run]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of ``runs export``: main fields, final/best eval, differing hyperparameters."""
    shown = ("seed_everything", "model.class_path", "data.init_args.env_id")  # already columns
    keys = [k for k in differing_keys(runs) if k not in shown]
    headers = ["run", "experiment", "run_id", "algorithm", "env_id", "seed", "status", "frames",
               "final_eval_return", "best_eval_return", "started", *keys]
    rows = [[display_path(r.path), r.experiment, r.run_id, r.algorithm, r.env_id, r.seed, r.status, r.frames,
             r.final_eval_return, r.best_eval_return, _date(r.started), *(r.value(k) for k in keys)] for r in runs]
    return headers, rows


def render(headers: list[str], rows: list[list[Any]], fmt: str) -> str:
    """The table as ``csv``, ``markdown`` or ``latex`` text."""
    cells = [[_cell(v, "" if fmt == "csv" else "-") for v in row] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([headers, *cells])
        return out.getvalue()
    if fmt == "markdown":
        line = lambda values: "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"  # noqa: E731
        return "\n".join([line(headers), "| " + " | ".join("---" for _ in headers) + " |", *map(line, cells)]) + "\n"
    if fmt == "latex":
        line = lambda values: " & ".join(_latex(v) for v in values) + r" \\"  # noqa: E731
        return "\n".join([rf"\begin{{tabular}}{{{'l' * len(headers)}}}", r"\hline", line(headers), r"\hline",
                          *map(line, cells), r"\hline", r"\end{tabular}"]) + "\n"
    raise ConfigError(f"--format {fmt}: expected csv, markdown or latex.")


def cmd_export(args: argparse.Namespace) -> None:
    """Export a table of runs as CSV, Markdown or LaTeX. One row per run: main fields, final and
    best eval return, and the hyperparameters that differ between the runs; to stdout or a file."""
    runs = sort_runs(find_runs(args.paths, parse_filters(args.filter)), "started")
    text = render(*export_table(runs), args.format)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"Wrote {args.output} ({len(runs)} runs)")
    else:
        print(text, end="")


def cmd_clean(args: argparse.Namespace) -> None:
    """Free disk space taken by old runs that are not among the best. Runs that are neither among
    the N best of their experiment (by best eval return) nor newer than D days lose checkpoints/,
    videos/, tensorboard/ and wandb/ (config.yaml, metrics.csv and metadata.json stay, and
    metadata.json records "cleaned": true), or their whole folder with --all. Only run folders
    whose metadata.json rl_lightning wrote count as runs; a run whose process is alive (its lock
    is held, or it is recorded as running) is never touched. Asks before deleting unless --yes."""
    if args.keep_best < 0 or args.keep_recent_days < 0:
        raise ConfigError("--keep-best and --keep-recent-days must be >= 0.")
    found = find_runs(args.paths)
    runs = [r for r in found if is_run(r.path, r.metadata)]
    for r in found:
        if not is_run(r.path, r.metadata):
            print(f"skipped {display_path(r.path)} (not a run folder of rl_lightning: no metadata.json written by it)")
    keep: dict[Path, str] = {}
    for experiment in {r.path.resolve().parent for r in runs}:
        ranked = [r for r in sort_runs([r for r in runs if r.path.resolve().parent == experiment],
                                       "best_eval_return", True) if r.best_eval_return is not None]
        keep.update({r.path: f"best {i + 1} of {r.experiment}" for i, r in enumerate(ranked[:args.keep_best])})
    cutoff = time.time() - args.keep_recent_days * 86400
    for r in runs:
        if r.holder is not None:
            keep[r.path] = f"in use by process {r.holder.get('pid')} on {r.holder.get('host')}"
        elif r.status in ("running", "stale"):
            keep[r.path] = r.status
        elif r.path not in keep and (r.started is None or r.started >= cutoff):
            keep[r.path] = "recent" if r.started is not None else "start time unknown"
    plan: list[tuple[Run, list[Path]]] = []
    for r in filter_runs(runs, parse_filters(args.filter)):
        if r.path in keep:
            print(f"kept    {display_path(r.path)} ({keep[r.path]})")
            continue
        parts = [r.path] if args.all else [p for p in (r.path / n for n in HEAVY) if p.exists() or p.is_symlink()]
        if parts:
            plan.append((r, parts))
    sizes = {part: _size(part) for _, parts in plan for part in parts}
    freed = sum(sizes.values())
    if plan and not args.dry_run and not args.yes:
        for part, size in sizes.items():
            print(f"will remove {display_path(part)}{'/' if part.is_dir() else ''} ({_human(size)})")
        if not _confirm(f"Delete these {len(sizes)} item{'s' * (len(sizes) != 1)} ({_human(freed)}) from {len(plan)} "
                 f"run{'s' * (len(plan) != 1)}?"):
            print("Nothing deleted.")
            return
    verb = "would remove" if args.dry_run else "removed"
    for r, parts in plan:
        for part in parts:
            print(f"{verb} {display_path(part)}{'/' if part.is_dir() else ''} ({_human(sizes[part])})")
            if not args.dry_run:
                part.unlink() if part.is_symlink() or part.is_file() else shutil.rmtree(part)
        if not args.dry_run and not args.all:
            write_metadata(r.path, {**read_metadata(r.path), "cleaned": True, "cleaned_at": time.time()})
    print(f"{'would free' if args.dry_run else 'freed'} {freed:,} bytes ({_human(freed)}) from {len(plan)} "
          f"run{'s' * (len(plan) != 1)}{' (dry run: nothing deleted)' if args.dry_run else ''}")


def _confirm(question: str) -> bool:
    """Ask on the terminal whether to go on (``ConfigError`` if stdin is not a terminal)."""
    if not sys.stdin or not sys.stdin.isatty():
        raise ConfigError("runs clean: stdin is not a terminal, so nothing was deleted; pass --yes to delete "
                          "the items listed above without asking, or --dry-run to only list them.")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def main(argv: list[str]) -> None:
    """Find, list, compare, export and clean runs under experiments/."""
    parser = argparse.ArgumentParser(prog="python -m rl_lightning runs", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,compare,export,clean}")
    paths_help = "experiments folders, experiment folders or run folders (default: experiments)"
    filter_help = ("only runs where a run field (algorithm, env, status, experiment, seed) or a dotted config key "
                   "(model.init_args.learning_rate=1e-3) has this value; repeatable")

    def command(name: str, func: Callable[[argparse.Namespace], None], paths: bool = True) -> argparse.ArgumentParser:
        doc = (func.__doc__ or "").strip()
        p = sub.add_parser(name, help=" ".join(doc.split()).split(". ")[0], description=doc)
        if paths:
            p.add_argument("paths", nargs="*", metavar="PATH", help=paths_help)
            p.add_argument("--filter", action="append", metavar="KEY=VALUE", help=filter_help)
        p.set_defaults(func=func)
        return p

    listing = command("list", cmd_list)
    listing.add_argument("--sort", default="started", metavar="KEY",
                         help="final_eval_return, best_eval_return, started, frames, any run field, any metric "
                              "column (its last value, e.g. eval/return_mean) or config key (default: started)")
    order = listing.add_mutually_exclusive_group()
    order.add_argument("--desc", dest="descending", action="store_true", default=None, help="high to low")
    order.add_argument("--asc", dest="descending", action="store_false",
                       help="low to high (default: high to low for returns, frames and metrics)")
    compare = command("compare", cmd_compare, paths=False)
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or experiment folders: all their runs)")
    add_statistics_arguments(compare)
    export = command("export", cmd_export)
    export.add_argument("--format", choices=("csv", "markdown", "latex"), default="csv", help="table format")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    clean = command("clean", cmd_clean)
    clean.add_argument("--keep-best", type=int, required=True, metavar="N",
                       help="keep the N runs with the best best_eval_return of each experiment")
    clean.add_argument("--keep-recent-days", type=float, required=True, metavar="D",
                       help="keep runs started less than D days ago")
    clean.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
    clean.add_argument("-y", "--yes", action="store_true",
                       help="delete without asking (otherwise the list is shown and a terminal must confirm)")
    clean.add_argument("--all", action="store_true",
                       help="delete whole run folders, not only checkpoints/, videos/, tensorboard/, wandb/")
    args = parser.parse_args(argv)
    args.func(args)


def add_statistics_arguments(parser: argparse.ArgumentParser, by_help: str = "", repeatable: bool = False) -> None:
    """The options of the statistics over seeds (``runs compare``, ``plot``); ``repeatable``:
    ``--by`` may be given several times (a list)."""
    parser.add_argument("--score", default="final_eval_return", metavar="KEY",
                        help="a run's score for the statistics (runs compare, plot --profile): final_eval_return, "
                             "best_eval_return or a metrics.csv column (its last value) (default: %(default)s)")
    parser.add_argument("--by", metavar="KEY", action="append" if repeatable else "store", help=by_help or "compare methods by this config key (e.g. "
                        "model.init_args.learning_rate) or run field instead of by algorithm")
    parser.add_argument("--reps", type=int, default=2000, metavar="N",
                        help="bootstrap resamples of the confidence intervals (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: %(default)s)")
    parser.add_argument("--score-range", action="append", metavar="ENV=MIN:MAX",
                        help="normalize the scores of environment ENV by this min and max (e.g. CartPole-v1=0:500); "
                             "environments without one use the lowest and highest score of their runs; repeatable")


# --- tables ----------------------------------------------------------------------------------
def _cell(value: Any, empty: str = "-") -> str:
    if value is None or value is MISSING:
        return empty
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _date(started: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started is not None else None


def _text_table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [list(headers)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _latex(text: str) -> str:
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(c, c) for c in text)


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum((Path(d) / f).lstat().st_size for d, _, files in os.walk(path) for f in files)


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"

