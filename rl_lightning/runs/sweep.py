"""``python -m rl_lightning sweep --config configs/sweeps/<name>.yaml``: multi-seed runs over a
grid, a seeded random search or an Optuna study (see :mod:`rl_lightning.runs.sweep_space`).

Every (trial, seed) is its own ``python -m rl_lightning fit`` process, in
``<experiments_dir>/<name>/<run id>/``. The sweep folder ``<experiments_dir>/sweeps/<name>/``
holds a copy of the sweep file (``sweep.yaml``), ``trials.jsonl`` (one record per finished,
failed, pruned or interrupted run; the latest record of a (params, seed) pair counts),
``logs/`` (each run's output), ``summary.md`` (+ ``summary.png``) and, for Optuna,
``optuna.db``. A re-run skips the pairs already finished and continues interrupted runs
from their ``last.ckpt``; Ctrl-C (or SIGTERM/SIGHUP) stops the running processes at their
next batch boundary with a checkpoint, records them as interrupted and exits with code 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from rl_lightning.errors import ConfigError
from rl_lightning.runs.folders import run_folder_in
from rl_lightning.runs.metadata import read_metadata
from rl_lightning.runs.sweep_space import (
    SweepSpec,
    check_params,
    check_storage,
    cli_value,
    load_sweep,
    open_storage,
    params_key,
    parser_error,
    read_metric,
)

PRUNING = "rl_lightning.callbacks.pruning.OptunaPruning"


def _short(key: str) -> str:
    return key.replace(".init_args.", ".")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else cli_value(value)


def _cell(rec: dict[str, Any]) -> str:
    value = f"{rec['value']:.2f}" if rec.get("value") is not None else ""
    return value if rec["status"] == "finished" else rec["status"] + (f" ({value})" if value else "")


def _last_line(text: str | None) -> str:
    """The error of a failed run's output: its ``error:`` line (made readable), else the last line."""
    return parser_error(text or "")[:300]


class Sweep:
    """One sweep: its folder, its records and its runs.

    Args:
        spec: the validated sweep file.
        name: sweep name (folder, experiment and study name).
        experiments_dir: root of the experiments.
        workers: runs (grid, random) or trials (Optuna) at once.
        storage: Optuna storage URL; default SQLite in the sweep folder.
    """

    def __init__(self, spec: SweepSpec, name: str, experiments_dir: str, workers: int = 1,
                 storage: str | None = None) -> None:
        self.spec, self.name, self.workers = spec, name, workers
        self.root = Path(experiments_dir)
        self.folder = self.root / "sweeps" / name
        self.logs = self.folder / "logs"
        self.state = self.folder / "trials.jsonl"
        self.storage = storage or f"sqlite:///{self.folder.resolve() / 'optuna.db'}"
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()

    # --- records ------------------------------------------------------------------------
    def key(self, params: dict[str, Any], seed: int) -> str:
        """Resume key of a (params, seed) pair under the current base and overrides."""
        return f"{self.spec.fingerprint}|{params_key(params)}|{seed}"

    def records(self) -> dict[str, dict[str, Any]]:
        """The latest record of every (params, seed) pair of the current base and overrides."""
        out: dict[str, dict[str, Any]] = {}
        if self.state.is_file():
            for line in self.state.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if rec.get("fingerprint") == self.spec.fingerprint:
                    out[self.key(rec["params"], rec["seed"])] = rec
        return out

    def _append(self, rec: dict[str, Any]) -> None:
        with self._lock, open(self.state, "a") as file:
            file.write(json.dumps(rec, default=str) + "\n")

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, flush=True)

    # --- one run ------------------------------------------------------------------------
    def log_path(self, trial: int, seed: int) -> Path:
        """The file that receives the output of a (trial, seed) run."""
        return self.logs / f"trial-{trial:03d}-seed-{seed}.log"

    def label(self, trial: int, seed: int) -> str:
        """How the progress lines name a (trial, seed) run."""
        return f"[trial {trial} seed {seed}]"

    def command(self, params: dict[str, Any], seed: int) -> list[str]:
        """The ``fit`` command of a (params, seed) pair."""
        cmd = [sys.executable, "-m", "rl_lightning", "fit"]
        for base in self.spec.base:
            cmd += ["--config", base]
        for key, value in {**self.spec.overrides, **params}.items():
            cmd.append(f"--{key}={cli_value(value)}")
        return cmd + ["--seed_everything", str(seed), "--experiment", self.name,
                      "--experiments_dir", str(self.root), "--progress_bar.refresh_rate", "0"]

    def run_one(self, trial: int, params: dict[str, Any], seed: int, extra: list[str] = (),
                marker: Path | None = None) -> dict[str, Any] | None:
        """Run one (trial, seed) process to its end and record it; ``None`` if the sweep was
        stopped before it started."""
        if self.stop.is_set():
            return None
        log = self.log_path(trial, seed)
        previous = self.records().get(self.key(params, seed), {})
        resume = previous.get("run") and Path(previous["run"]) / "checkpoints" / "last.ckpt"
        resume = resume if previous.get("status") == "interrupted" and resume and resume.is_file() else None
        cmd = self.command(params, seed) + list(extra) + ([f"--ckpt_path={resume}"] if resume else [])
        rec: dict[str, Any] = {"trial": trial, "params": params, "seed": seed, "fingerprint": self.spec.fingerprint,
                               "metric": self.spec.metric, "log": str(log), "started": time.time()}
        label = self.label(trial, seed)
        self._say(f"{label} {'resume' if resume else 'start'}"
                  + (": " + ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in params.items()) if params else "")
                  + (f" (from {resume})" if resume else ""))
        with open(log, "w") as out:
            out.write(f"$ {shlex.join(cmd)}\n\n")
            out.flush()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            # Each run in its own session (process group): Ctrl-C in a terminal signals the whole
            # foreground group, and a run that got it from there and again from stop_processes
            # would take GracefulStop's "second Ctrl-C: stop at once" path without a checkpoint.
            # Only the sweep signals its runs, exactly once each; timing-based de-duplication in
            # the run could not tell a duplicate from a user's real second Ctrl-C.
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        if self.stop.is_set():
            proc.send_signal(signal.SIGINT)
        returncode = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        text = log.read_text(errors="replace")
        run = run_folder_in(text) or (previous.get("run") if resume else None)
        status = read_metadata(run).get("status") if run else None
        rec.update(returncode=returncode, run=run, ended=time.time(), value=None)
        if marker is not None and marker.is_file():
            rec.update(status="pruned", value=json.loads(marker.read_text())["value"])
        elif returncode == 0 and (status in (None, "finished") or resume):  # resumed: maybe nothing left to do
            rec["value"] = read_metric(run, self.spec.metric) if run else None
            rec["status"] = "finished" if rec["value"] is not None else "failed"
            if rec["value"] is None:
                rec["error"] = f"no {self.spec.metric!r} in the run's metadata.json or metrics.csv ({run})"
        elif self.stop.is_set() or status == "interrupted" or "KeyboardInterrupt" in text[-3000:]:
            rec["status"] = "interrupted"
        else:
            rec.update(status="failed", error="\n".join(text.strip().splitlines()[-20:])[-2000:])
        self._append(rec)
        detail = f"{self.spec.metric} = {rec['value']:.2f}" if rec["value"] is not None else f"log: {log}"
        self._say(f"{label} {rec['status']}: {detail}" + (f" (run {run})" if run else ""))
        return rec

    # --- grid and random search ---------------------------------------------------------
    def jobs(self) -> list[tuple[int, dict[str, Any], int, bool]]:
        """``(trial, params, seed, already finished)`` of a grid or random search."""
        done = self.records()
        return [(i, params, seed, done.get(self.key(params, seed), {}).get("status") == "finished")
                for i, params in enumerate(self.spec.trials()) for seed in self.spec.seeds]

    def run_fixed(self) -> None:
        """Run the grid's or random search's pairs not finished yet, ``workers`` at once."""
        jobs = self.jobs()
        todo = [(t, p, s) for t, p, s, finished in jobs if not finished]
        self._say(f"Sweep {self.name}: {len(jobs)} runs ({len(jobs) - len(todo)} already finished), "
                  f"{self.workers} at once; logs in {self.logs}")
        with ThreadPoolExecutor(self.workers) as pool:
            self._drive([pool.submit(self.run_one, *job) for job in todo])

    # --- Optuna -------------------------------------------------------------------------
    def open_study(self):
        """Create or join the Optuna study named after the sweep."""
        import optuna

        from rl_lightning.runs.sweep_space import make_sampler, open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = self.spec.pruner
        return optuna.create_study(
            study_name=self.name, storage=open_storage(self.storage), sampler=make_sampler(self.spec),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=pruner["n_startup_trials"])
            if pruner["type"] == "median" else optuna.pruners.NopPruner(),
            direction=self.spec.direction, load_if_exists=True,
        )

    def budget_used(self, study) -> int:
        """Trials counting towards ``n_trials``: all but waiting and interrupted ones."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        interrupted = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("interrupted")]
        return sum(1 for t in trials if t.state != TrialState.WAITING) - len(interrupted)

    def run_optuna(self) -> None:
        """``workers`` threads, each asking the study for a trial and running its seeds in turn,
        until the study holds ``n_trials`` trials."""
        from rl_lightning.runs.sweep_space import optuna_distributions

        study = self.open_study()
        distributions = optuna_distributions(self.spec.params)
        ask_lock = threading.Lock()
        self._say(f"Sweep {self.name}: Optuna study {self.name!r} in {self.storage}, "
                  f"{self.budget_used(study)}/{self.spec.n_trials} trials so far, {self.workers} at once")

        def worker() -> None:
            while not self.stop.is_set():
                with ask_lock:
                    if self.budget_used(study) >= self.spec.n_trials:
                        return
                    trial = study.ask(distributions)
                self.run_trial(study, trial)

        with ThreadPoolExecutor(self.workers) as pool:
            self._drive([pool.submit(worker) for _ in range(self.workers)])

    def run_trial(self, study, trial) -> None:
        """Run an Optuna trial's seeds one after another and tell the study the mean."""
        from optuna.trial import TrialState

        from rl_lightning.runs.sweep_space import STEP_STRIDE, from_optuna

        params, done, values = from_optuna(self.spec.params, trial.params), self.records(), {}
        for index, seed in enumerate(self.spec.seeds):
            previous = done.get(self.key(params, seed), {})
            if previous.get("status") == "finished":  # a resumed trial keeps its finished seeds
                values[seed] = previous["value"]
                continue
            marker = self.logs / f"trial-{trial.number:03d}-seed-{seed}.pruned"
            marker.unlink(missing_ok=True)
            pruning = {"storage": self.storage, "study_name": self.name, "trial_number": trial.number,
                       "step_offset": index * STEP_STRIDE, "metric": self.spec.metric, "marker": marker,
                       **{k: v for k, v in self.spec.pruner.items() if k != "type"}}
            extra = [f"--trainer.callbacks+={PRUNING}", *(f"--trainer.callbacks.init_args.{k}={v}"
                                                         for k, v in pruning.items())]
            extra = extra if self.spec.pruner["type"] == "median" else []
            rec = self.run_one(trial.number, params, seed, extra, marker)
            status = rec["status"] if rec else "interrupted"
            if status == "interrupted":  # redo it on the next run of the sweep
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={"resumes": trial.number})
                return
            if status in ("failed", "pruned"):
                study.tell(trial, state=TrialState.FAIL if status == "failed" else TrialState.PRUNED)
                return
            values[seed] = rec["value"]
        trial.set_user_attr("seed_values", {str(s): v for s, v in values.items()})
        study.tell(trial, statistics.fmean(values.values()))

    # --- running and stopping -----------------------------------------------------------
    def _drive(self, futures: list) -> None:
        """Wait for the futures; on Ctrl-C (or any error) stop the running processes."""
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
        except BaseException:
            self.stop.set()
            self.stop_processes()
            for future in futures:
                future.cancel()
            raise

    def stop_processes(self, grace: float = 20.0) -> None:
        """SIGINT to every running run (Lightning shuts down cleanly), then SIGTERM and SIGKILL
        to those still alive after ``grace`` seconds."""
        with self._lock:
            procs = list(self._procs)
        for sig, wait_s in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in procs if p.poll() is None]
            for proc in alive:
                proc.send_signal(sig)
            deadline = time.time() + wait_s
            while any(p.poll() is None for p in alive) and time.time() < deadline:
                try:
                    time.sleep(0.1)
                except KeyboardInterrupt:  # pressed again: stop waiting politely
                    break

    # --- summary ------------------------------------------------------------------------
    def summary(self) -> str:
        """Markdown table of the trials, best first; also written to ``summary.md``."""
        spec, seeds = self.spec, self.spec.seeds
        wanted = None if spec.search == "optuna" else {params_key(p) for p in spec.trials()}
        trials: dict[str, dict[int, dict[str, Any]]] = {}
        for rec in sorted(self.records().values(), key=lambda r: r.get("ended", 0)):
            if wanted is None or params_key(rec["params"]) in wanted:
                trials.setdefault(params_key(rec["params"]), {})[rec["seed"]] = rec
        rows, failures = [], []
        for by_seed in trials.values():
            last = list(by_seed.values())[-1]
            values = [r["value"] for s, r in by_seed.items() if s in seeds and r["status"] == "finished"]
            statuses = {r["status"] for r in by_seed.values()}
            status = next((s for s in ("failed", "pruned", "interrupted") if s in statuses),
                          "finished" if len(values) == len(seeds) else f"{len(values)}/{len(seeds)} seeds")
            mean = statistics.fmean(values) if values else math.inf
            score = f"{mean:.2f} ± {statistics.pstdev(values):.2f}" if values else "-"
            cells = ["-" if s not in by_seed else _cell(by_seed[s]) for s in seeds]
            failures += [f"- trial {r['trial']} seed {r['seed']}: `{_last_line(r.get('error'))}` (log: {r['log']})"
                         for r in by_seed.values() if r["status"] == "failed"]
            order = (status != "finished", -mean if spec.direction == "maximize" and values else mean, last["trial"])
            rows.append((order, [str(last["trial"]), *(_fmt(last["params"][p.key]) for p in spec.params),
                                 *cells, score, status]))
        header = ["#", "trial", *(_short(p.key) for p in spec.params), *(f"seed {s}" for s in seeds),
                  "mean ± std", "status"]
        lines = [f"# Sweep {self.name}", "",
                 f"{spec.search} search, {len(rows)} trials x {len(seeds)} seeds; {spec.metric} at the end of each "
                 f"run ({spec.direction}), mean ± std over seeds. Runs: {self.root / self.name}", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += [f"| {rank} | " + " | ".join(cells) + " |" for rank, (_, cells) in enumerate(sorted(rows), 1)]
        lines += ["", "Failed runs:", *failures] if failures else []
        lines += ["", self._study_line()] if spec.search == "optuna" else []
        text = "\n".join(lines) + "\n"
        (self.folder / "summary.md").write_text(text)
        return text

    def _study_line(self) -> str:
        study = self.open_study()
        states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
        text = f"Optuna study {self.name!r} ({self.storage}): " + ", ".join(
            f"{states.count(s)} {s}" for s in sorted(set(states)))
        if "complete" in states:
            best = study.best_trial
            params = ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in best.params.items())
            text += f"; best trial {best.number}: {best.value:.2f} with {params}"
        return text

    def plot(self) -> Path | None:
        """``summary.png``: learning curves of the sweep's runs, one per combination of the swept
        parameters (mean over its seeds), when the plotting helpers exist."""
        try:
            from rl_lightning.runs.plot import plot_curves
            from rl_lightning.runs.registry import find_runs
        except ImportError:
            return None
        try:
            runs = find_runs([str(self.root / self.name)])
            if not runs:
                return None
            # grouped by every swept parameter: one curve per trial's values, over its seeds
            return plot_curves(runs, metric="eval/return_mean", by=[p.key for p in self.spec.params],
                               output=str(self.folder / "summary.png"), title=f"Sweep {self.name}")
        except Exception as err:  # a plot is a bonus: never fail the sweep for it
            print(f"(no summary.png: {type(err).__name__}: {err})")
            return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The ``sweep`` command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m rl_lightning sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="sweep file, e.g. configs/sweeps/ppo_cartpole_grid.yaml")
    parser.add_argument("--workers", type=int, default=1, help="runs (grid, random) or trials (optuna) at once")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite:///<sweep folder>/optuna.db); "
                        "machines join one study through a shared one, e.g. postgresql://user:pass@host/db")
    parser.add_argument("--name", help="sweep name (default: the sweep file's stem)")
    parser.add_argument("--experiments_dir", default="experiments", help="folder of all experiments")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="only list the commands")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    """Run a sweep; exit code 130 when interrupted, 1 when every run failed."""
    args = parse_args(argv)
    spec = load_sweep(args.config)
    name = args.name or Path(args.config).stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name == "sweeps":
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '-' and '.' (and not 'sweeps').")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}.")
    if args.storage and spec.search != "optuna":
        raise ConfigError(f"--storage is for optuna sweeps; {args.config} is a {spec.search} search.")
    if args.storage:  # before the sweep folder exists: a URL that cannot be used leaves nothing behind
        check_storage(args.storage)
        if not args.dry_run:
            open_storage(args.storage)
    sweep = Sweep(spec, name, args.experiments_dir, args.workers, args.storage)
    first = spec.trials()[0] if spec.search != "optuna" else {
        p.key: p.choices[0] if p.choices is not None else p.low for p in spec.params}
    check_params(spec, sweep.command(first, spec.seeds[0]))
    if args.dry_run:
        return dry_run(sweep)
    sweep.logs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.config, sweep.folder / "sweep.yaml")
    try:
        with interrupt_on_stop_signals():
            sweep.run_optuna() if spec.search == "optuna" else sweep.run_fixed()
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):  # the summary of what finished, if it can be written
            sweep.summary()
        again = shlex.join(["python", "-m", "rl_lightning", "sweep", *argv])
        print(f"\nInterrupted: the running runs were stopped and recorded as interrupted; finished runs are kept."
              f"\nResume with: {again}", file=sys.stderr, flush=True)
        sys.exit(130)
    print("\n" + sweep.summary())
    plot = sweep.plot()
    print(f"Sweep folder: {sweep.folder}" + (f" (summary.md, {Path(plot).name})" if plot else " (summary.md)"))
    statuses = {r["status"] for r in sweep.records().values()}
    if statuses == {"failed"}:
        sys.exit(1)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_on_stop_signals():
    """While the block runs (in the main thread), SIGTERM and SIGHUP (a closed terminal: runs
    in their own sessions do not get it) raise ``KeyboardInterrupt`` like Ctrl-C, so the runs
    are stopped cleanly."""
    stop_signals = (signal.SIGTERM, signal.SIGHUP)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.getsignal(signum) for signum in stop_signals} if main_thread else {}
    for signum in previous:
        signal.signal(signum, _raise_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def dry_run(sweep: Sweep) -> None:
    """Print each (trial, seed) command; Optuna's params are drawn while the sweep runs."""
    print(f"# sweep folder: {sweep.folder}")
    if sweep.spec.search == "optuna":
        print(f"# optuna: {sweep.spec.n_trials} trials in {sweep.storage}, each running its seeds in turn "
              f"(with the pruning callback {PRUNING} unless pruner type is none):")
        jobs = [("<n>", {p.key: "<sampled>" for p in sweep.spec.params}, seed, False) for seed in sweep.spec.seeds]
    else:
        jobs = sweep.jobs()
    for trial, params, seed, finished in jobs:
        print(f"# trial {trial}, seed {seed}" + (" (finished: skipped)" if finished else ""))
        print(shlex.join(sweep.command(params, seed)))
