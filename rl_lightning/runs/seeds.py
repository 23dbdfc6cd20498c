"""``python -m rl_lightning fit --config ... --seeds 1,2,3``: one ``fit`` per seed, in parallel.

Each seed is its own ``python -m rl_lightning fit ... --seed_everything <seed>`` process (as
the runs of a sweep are: :class:`rl_lightning.runs.sweep.Sweep` starts them), ``--seed_workers``
at once. The runs go to one experiment, ``<experiments_dir>/<experiment>/<run id>/``, the one a
single ``fit`` of the config would use; the group's folder beside them,
``<experiment>/seeds-<start time>/``, holds each seed's output (``seed-<n>.log``), its
records (``seeds.jsonl``) and ``summary.md``: per seed the status, frames, final and best
evaluation return and run folder, then the final evaluation return's mean ± std over seeds.
The exit code is 1 when a seed failed (its log is named), 130 when interrupted.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from rl_lightning.errors import MAX_SEED, ConfigError
from rl_lightning.runs.folders import (
    check_experiment_name,
    default_experiment,
    experiment_name,
)
from rl_lightning.runs.sweep import Sweep, interrupt_on_stop_signals
from rl_lightning.runs.sweep_space import SweepSpec, parser_error

#: options a ``--seeds`` fit sets for each seed itself, or cannot share between seeds
REFUSED = {
    "--seed_everything": "each seed's run gets --seed_everything <seed>",
    "--ckpt_path": "a checkpoint continues one run; continue a seed's run with a fit without --seeds",
}


def parse_seeds(text: str) -> list[int]:
    """The seeds of ``--seeds``: comma-separated seeds and ranges, e.g. ``1,2,3``, ``1-5``, ``1-3,10``."""
    seeds: list[int] = []
    for item in text.replace(" ", "").split(","):
        low, dash, high = item.partition("-")
        try:
            bounds = (int(low), int(high)) if dash else (int(item), int(item))
        except ValueError:
            bounds = (1, 0)
        if bounds[0] > bounds[1]:
            raise ConfigError(f"--seeds {text!r}: expected seeds and ranges separated by commas, e.g. 1,2,3 or 1-5 "
                              f"(a range low-high with low <= high); {item!r} is neither.")
        bad = next((b for b in bounds if not 0 <= b <= MAX_SEED), None)
        if bad is not None:
            raise ConfigError(f"--seeds {text!r}: seeds must be in [0, {MAX_SEED}], got {bad}.")
        seeds += range(bounds[0], bounds[1] + 1)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--seeds {text!r}: seed {repeated[0]} is given twice.")
    return seeds


def split_args(argv: list[str]) -> tuple[list[str], str, int | None]:
    """``(fit arguments, --seeds value, --seed_workers value)`` of the arguments after ``fit``;
    refuses the options each seed's run sets itself (:data:`REFUSED`)."""
    rest: list[str] = []
    found: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        key, eq, value = arg.partition("=")
        if key in REFUSED:
            raise ConfigError(f"{key} cannot be combined with --seeds: {REFUSED[key]}.")
        if key not in ("--seeds", "--seed_workers"):
            rest.append(arg)
            continue
        if key in found:
            raise ConfigError(f"{key} is given twice.")
        value = value if eq else next(args, None)
        if value is None or value.startswith("--"):
            raise ConfigError(f"{key} needs a value, e.g. {key} {'1,2,3' if key == '--seeds' else '2'}.")
        found[key] = value
    workers = found.get("--seed_workers")
    if workers is not None:
        try:
            workers = int(workers)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ConfigError(f"--seed_workers must be a whole number >= 1, got {found['--seed_workers']!r}.")
    return rest, found["--seeds"], workers


def resolve_config(fit_args: list[str], seed: int) -> dict[str, Any]:
    """The fit config of the arguments (``--print_config`` in a child process, which also
    refuses a bad key or value before any run starts)."""
    command = [sys.executable, "-m", "rl_lightning", "fit", *fit_args, "--seed_everything", str(seed),
               "--print_config"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode:
        raise ConfigError(f"the fit config is refused: {parser_error(result.stderr or result.stdout)}")
    try:
        config = yaml.safe_load(result.stdout)
    except yaml.YAMLError as err:
        raise ConfigError(f"could not read the fit config printed by --print_config: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError("could not read the fit config printed by --print_config.")
    return config


def group_experiment(config: dict[str, Any]) -> str:
    """The experiment a fit with this resolved config goes to (as :class:`rl_lightning.cli.RLCLI` names it)."""
    data = (config.get("data") or {}).get("init_args") or {}
    name = config.get("experiment") or default_experiment(str((config.get("model") or {}).get("class_path")),
                                                          data.get("env_id"))
    return check_experiment_name(experiment_name(name, debug=bool(config.get("debug"))))


class SeedGroup(Sweep):
    """The runs of one ``fit --seeds`` command: one process per seed, ``workers`` at once.

    Args:
        fit_args: the fit arguments, without ``--seeds`` / ``--seed_workers``.
        seeds: the seeds, one run each.
        experiment: the experiment of the runs.
        experiments_dir: root of the experiments.
        workers: runs at once.
    """

    def __init__(self, fit_args: list[str], seeds: list[int], experiment: str, experiments_dir: str,
                 workers: int) -> None:
        spec = SweepSpec(path=Path("fit --seeds"), base=[], params=[], search="grid", seeds=seeds)
        super().__init__(spec, experiment, experiments_dir, workers)
        self.fit_args, self.experiment = list(fit_args), experiment
        stamp = time.strftime("%Y%m%d-%H%M%S")
        parent = self.root / experiment
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            folder = parent / (f"seeds-{stamp}" if n == 1 else f"seeds-{stamp}-{n}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        self.folder = self.logs = folder
        self.state = folder / "seeds.jsonl"

    def command(self, params: dict[str, Any], seed: int) -> list[str]:
        """The ``fit`` command of a seed."""
        return [sys.executable, "-m", "rl_lightning", "fit", *self.fit_args, "--seed_everything", str(seed),
                "--experiment", self.experiment, "--progress_bar.refresh_rate", "0"]

    def log_path(self, trial: int, seed: int) -> Path:
        """``<group>/seed-<n>.log``."""
        return self.logs / f"seed-{seed}.log"

    def label(self, trial: int, seed: int) -> str:
        """``[seed <n>]``."""
        return f"[seed {seed}]"

    def run(self) -> None:
        """Run every seed, ``workers`` at once; Ctrl-C stops the running ones at their next batch."""
        seeds = self.spec.seeds
        self._say(f"Seeds {', '.join(map(str, seeds))} of experiment {self.experiment}: {len(seeds)} run{'s' * (len(seeds) != 1)}, "
                  f"{self.workers} at once; logs in {self.folder}")
        with ThreadPoolExecutor(self.workers) as pool:
            self._drive([pool.submit(self.run_one, 0, {}, seed) for seed in seeds])

    def results(self) -> list[dict[str, Any]]:
        """Per seed, in order: its record (status, run, log, ...) with the run's frames and
        final / best evaluation return when its folder exists."""
        from rl_lightning.runs.registry import Run

        records = self.records()
        out = []
        for seed in self.spec.seeds:
            rec = dict(records.get(self.key({}, seed)) or {"seed": seed, "status": "not run", "log": None})
            run = rec.get("run")
            if run and Path(run).is_dir():
                loaded = Run.load(run)
                rec.update(frames=loaded.frames, final=loaded.final_eval_return, best=loaded.best_eval_return)
            out.append(rec)
        return out

    def summary(self) -> str:
        """The table over seeds (also written to ``summary.md``)."""
        from rl_lightning.runs.runs_command import _text_table

        results = self.results()
        rows = [[r["seed"], r["status"], r.get("frames"), r.get("final"), r.get("best"),
                 r.get("run") or f"log: {r.get('log')}"] for r in results]
        lines = [f"Seeds of experiment {self.experiment} ({self.folder}):", "",
                 _text_table(["seed", "status", "frames", "final eval", "best eval", "run"], rows), ""]
        finals = [r["final"] for r in results if r["status"] == "finished" and r.get("final") is not None]
        if finals:
            lines.append(f"Final evaluation return over {len(finals)} of {len(results)} seeds: "
                         f"{statistics.fmean(finals):.2f} ± {statistics.pstdev(finals):.2f} "
                         f"(min {min(finals):.2f}, max {max(finals):.2f})")
        for r in results:
            if r["status"] != "finished":
                exit_code = f" (exit code {r['returncode']})" if r.get("returncode") is not None else ""
                error = f": {parser_error(r['error']).rstrip('.')}" if r.get("error") else ""
                lines.append(f"Seed {r['seed']} {r['status']}{exit_code}{error}; log: {r.get('log')}")
        runs = [r["run"] for r in results if r.get("run")]
        if len(runs) > 1:
            lines += ["", f"Compare: python -m rl_lightning runs compare {shlex.join(runs)}",
                      f"Plot:    python -m rl_lightning plot {shlex.join(runs)}"]
        text = "\n".join(lines) + "\n"
        (self.folder / "summary.md").write_text(text)
        return text


def main(argv: list[str]) -> None:
    """Run ``fit`` once per seed of ``--seeds`` (``argv``: the arguments after ``fit``) and print
    a summary over seeds; exit code 1 when a seed failed, 130 when interrupted."""
    fit_args, seeds_text, workers = split_args(argv)
    seeds = parse_seeds(seeds_text)
    workers = workers or min(len(seeds), os.cpu_count() or 1)
    config = resolve_config(fit_args, seeds[0])
    group = SeedGroup(fit_args, seeds, group_experiment(config), str(config.get("experiments_dir") or "experiments"),
                      workers)
    try:
        with interrupt_on_stop_signals():
            group.run()
    except KeyboardInterrupt:
        print("\n" + group.summary(), flush=True)
        print("Interrupted: the running seeds were stopped (with a checkpoint: continue one with fit "
              "--seed_everything <seed> --ckpt_path <its run>/checkpoints/last.ckpt).", file=sys.stderr, flush=True)
        sys.exit(130)
    print("\n" + group.summary(), end="", flush=True)
    if any(r["status"] != "finished" for r in group.results()):
        sys.exit(1)
