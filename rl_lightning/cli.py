"""The command line: ``python -m rl_lightning fit --config configs/ppo.yaml``.

A ``LightningCLI`` whose config schema is the typed ``__init__`` of the algorithm
(``model``), the data module (``data``), the ``Trainer``, and the callbacks every run has
(``evaluation``, ``checkpoint``, ``progress_bar``). On ``fit`` it gives the run a folder
``<experiments_dir>/<experiment>/<run id>/`` with ``config.yaml``, ``metrics.csv``,
``metadata.json`` and ``checkpoints/``; ``--ckpt_path last`` continues the newest run of the
experiment there. Every fit also stops cleanly on Ctrl-C/SIGTERM and on NaN/Inf. ``--debug``
makes a fit a quick check (a tiny budget, into the experiment ``<experiment>-debug``);
``fit --seeds 1,2,3`` runs one fit per seed (:mod:`rl_lightning.runs.seeds`). The other
commands (``play``, ``runs``, ``plot``, ``sweep``, ``reproduce``) are listed in
:mod:`rl_lightning.commands`; Lightning's ``predict`` is not offered.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ActionYesNo, Namespace
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.cli import (
    LightningArgumentParser,
    LightningCLI,
    SaveConfigCallback,
)
from typing_extensions import override

from rl_lightning.algorithms.base import RLModule, frames_to_train
from rl_lightning.callbacks import (
    Evaluation,
    FrameCheckpoint,
    FrameProgressBar,
)
from rl_lightning.callbacks.nan_guard import NonFiniteError
from rl_lightning.callbacks.run_metadata import RunMetadata
from rl_lightning.commands import (
    COMMANDS,
    NOT_OFFERED,
    help_text,
    seeds_requested,
    unknown_command,
)
from rl_lightning.envs import check_env
from rl_lightning.envs.batched import check_torch_env
from rl_lightning.errors import MAX_SEED, ConfigError
from rl_lightning.preflight import check_config_files, missing_package_error
from rl_lightning.runs.csv_logger import RunCSVLogger
from rl_lightning.runs.folders import (
    check_experiment_name,
    default_experiment,
    experiment_name,
    latest_run,
    new_run_dir,
)
from rl_lightning.runs.lock import FILENAME as LOCK_FILE
from rl_lightning.runs.lock import RunLock
from rl_lightning.runs.loggers import (
    TensorBoard,  # noqa: F401  (makes `--trainer.logger+=TensorBoard` resolve)
    check_logger_packages,
)
from rl_lightning.secrets import SECRET_KEYS, scrub_secrets, scrubbed_argv  # noqa: F401  (SECRET_KEYS: public name)
from rl_lightning.training import (
    RUN_DIR_ENV,
    TORCH_THREADS,
    TRAINER_DEFAULTS,
    check_gradient_clipping,
    final_report,
    quiet,
    run_callbacks,
    write_run_config,
)


class RunConfigSaver(SaveConfigCallback):
    """Writes the fully resolved config to ``<run>/config.yaml`` (values of keys that look like
    secrets, such as ``api_key`` or ``token``, replaced by ``***``); a resumed run keeps its
    original file and records the resuming config as ``config.resume-<time>.yaml``.

    Written when training starts, so a command refused before then (a checkpoint that does not
    fit, a config error in setup) leaves no file behind."""

    @override
    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        """Nothing: the config is written in :meth:`on_fit_start`."""

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: Any) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            write_run_config(trainer.default_root_dir, yaml.safe_load(self.parser.dump(self.config, skip_unset=False)))
        self.already_saved = True


#: the algorithm and data module a config without ``model`` / ``data`` gets
DEFAULT_CLASSES = {"model": "rl_lightning.algorithms.PPO", "data": "rl_lightning.data.OnPolicyDataModule"}


class RLCLI(LightningCLI):
    """rl_lightning's LightningCLI: run folders, frame-based callbacks, one torch thread."""

    def __init__(self, args: Any = None, run: bool = True) -> None:
        self.run_dir: Path | None = None
        self._lock: RunLock | None = None
        self._run_metadata: RunMetadata | None = None
        self._created: list[Path] = []  # folders this command created, innermost first
        self._existing: set[str] | None = None  # entries of a resumed run folder before this command
        try:
            self._init(args, run)
        except BaseException:
            if self._run_metadata is None or not self._run_metadata.started:
                self._undo()
            raise
        finally:
            if self._lock is not None:
                self._lock.release()

    def _init(self, args: Any, run: bool) -> None:
        super().__init__(
            model_class=RLModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=RunConfigSaver,
            trainer_defaults=dict(TRAINER_DEFAULTS),
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    @staticmethod
    @override
    def subcommands() -> dict[str, set[str]]:
        """``fit``, ``validate`` and ``test`` (Lightning's ``predict`` has no meaning here: there
        is no dataset to predict on; ``play`` watches an agent)."""
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name not in NOT_OFFERED}

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--experiment",
            type=str | None,
            default=None,
            help="Experiment name: runs go to <experiments_dir>/<experiment>/. Default: <algorithm>-<env_id>.",
        )
        parser.add_argument("--experiments_dir", type=str, default="experiments", help="Folder of all experiments.")
        parser.add_argument(
            "--torch_threads",
            type=int,
            default=TORCH_THREADS,
            help="torch intra-op threads; small RL networks run fastest on 1.",
        )
        parser.add_argument(
            "--log_every_frames",
            type=int,
            default=0,
            help="Write a metrics row (CSV, TensorBoard, W&B) each time training reaches a multiple of "
            "this many frames; 0 writes one per collected batch (SAC/TD3 collect one frame per batch).",
        )
        parser.add_argument(
            "--debug",
            action=ActionYesNo,
            default=False,
            help=f"Quick check of a new algorithm or env: at most {DEBUG_FRAMES} frames (or two batches, never "
            "more than data.total_frames), evaluation at half way and at the end over at most "
            f"{DEBUG_EPISODES} episodes, autograd anomaly detection (trainer.detect_anomaly), NaN/Inf checks; "
            "runs go to the experiment <experiment>-debug.",
        )
        parser.add_argument(
            "--seeds",
            type=str | None,
            default=None,
            help="fit only, on the command line: one run per seed, in parallel processes, e.g. 1,2,3 or 1-5 "
            "(each with --seed_everything <seed>; logs and a summary in <experiment>/seeds-<time>/).",
        )
        parser.add_argument(
            "--seed_workers",
            type=int | None,
            default=None,
            help="with --seeds: runs at once (default: the number of seeds, at most the number of CPUs).",
        )
        parser.add_lightning_class_args(Evaluation, "evaluation")
        parser.add_lightning_class_args(FrameCheckpoint, "checkpoint")
        parser.add_lightning_class_args(FrameProgressBar, "progress_bar")
        parser.set_defaults({key: {"class_path": path} for key, path in DEFAULT_CLASSES.items()})

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then refuse values that would otherwise fail later with a traceback."""
        self._default_to_chosen_classes(parser, args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        cfg = self.config[subcommand] if subcommand else self.config
        if cfg.get("torch_threads") is not None and cfg.torch_threads < 1:
            raise ConfigError(f"--torch_threads must be >= 1, got {cfg.torch_threads}.")
        seed = cfg.get("seed_everything")
        if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"--seed_everything must be in [0, {MAX_SEED}] (or true / false), got {seed}.")

    def _default_to_chosen_classes(self, parser: LightningArgumentParser, args: Any) -> None:
        """Make the algorithm and data module the arguments choose the defaults before parsing.

        jsonargparse keeps the values of the options a new ``class_path`` shares with the
        default class (PPO, OnPolicyDataModule), so ``--model DQN`` would otherwise train with
        PPO's default learning rate. A first parse (quiet, printing and help actions left out)
        finds the chosen classes; any error is left to the real parse to report."""
        if isinstance(args, (dict, Namespace)):
            return
        argv, skip = [], False
        for arg in list(sys.argv[1:] if args is None else args):
            if skip:
                skip = False
                if not arg.startswith("-"):
                    continue
            if arg in ("-h", "--help") or arg.startswith("--print_config") or arg.split("=")[0].endswith(".help"):
                skip = "=" not in arg and arg not in ("-h", "--help")  # its value may follow
                continue
            argv.append(arg)
        parsers = [parser, *self._subcommand_parsers.values()]
        before = [p.exit_on_error for p in parsers]
        for p in parsers:
            p.exit_on_error = False
        try:
            config = parser.parse_args(argv)
        except (Exception, SystemExit):  # the real parse reports it
            return
        finally:
            for p, value in zip(parsers, before):
                p.exit_on_error = value
        subcommand = config.get("subcommand")
        cfg = config[subcommand] if subcommand else config
        chosen = {key: cfg[key].class_path for key in DEFAULT_CLASSES
                  if cfg.get(key) is not None and cfg[key].get("class_path") not in (None, DEFAULT_CLASSES[key])}
        if chosen:
            target = self._subcommand_parsers.get(subcommand, parser) if subcommand else parser
            target.set_defaults({key: {"class_path": path} for key, path in chosen.items()})

    def _parse_ckpt_path(self) -> None:
        """Keep the config as given (LightningCLI would overwrite the model's options with
        the checkpoint's hyperparameters, but only for explicit paths, not ``last``); the
        checkpoint is checked in :meth:`before_instantiate_classes` with a clear error."""

    # --- run folders ---------------------------------------------------------------------
    @override
    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        torch.set_num_threads(cfg.torch_threads)
        if cfg.get("seeds") is not None:
            raise ConfigError("seeds: an option of the command line (`python -m rl_lightning fit ... --seeds 1,2,3`), "
                              "not a config key; remove it from the config file.")
        if cfg.get("seed_workers") is not None:
            raise ConfigError("--seed_workers goes with --seeds (`python -m rl_lightning fit ... --seeds 1,2,3 "
                              "--seed_workers 2`).")
        if cfg.get("debug"):
            _apply_debug(cfg, self.subcommand)
        if cfg.experiment is not None:
            check_experiment_name(cfg.experiment)  # before any folder exists: never write outside experiments_dir
        experiment = cfg.experiment or _default_experiment(cfg)
        experiment_dir = Path(cfg.experiments_dir) / experiment
        if self.subcommand in ("validate", "test"):
            cfg.ckpt_path = _evaluation_checkpoint(cfg, experiment_dir)
            check_checkpoint(cfg.ckpt_path, str(cfg.model.class_path))
            if cfg.trainer.logger in (None, True):
                cfg.trainer.logger = False  # evaluating prints a table; it writes no logs
            return
        if self.subcommand != "fit":
            return
        env_id = cfg.data.init_args.get("env_id") if cfg.data.get("init_args") else None
        if env_id:  # before a run folder exists: a bad id, option or missing package leaves nothing behind
            env_kwargs = dict(cfg.data.init_args.get("env_kwargs") or {})
            if cfg.data.init_args.get("backend") == "torch":
                check_torch_env(env_id, env_kwargs)
            else:
                check_env(env_id, env_kwargs, cfg.data.init_args.get("wrappers"))
        check_logger_packages(cfg.trainer.logger)
        _check_gradient_clipping(cfg)
        if cfg.log_every_frames < 0:
            raise ConfigError(f"--log_every_frames must be 0 or more, got {cfg.log_every_frames}.")
        inherited = os.environ.get(RUN_DIR_ENV) if int(os.environ.get("LOCAL_RANK", 0)) > 0 else None
        # processes of other nodes never write files: they name a folder but create or lock none
        other_node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0))) > 0
        if inherited:  # a DDP worker started by rank 0's launcher: share rank 0's run folder
            self.run_dir = Path(inherited)
            if cfg.ckpt_path == "last":
                cfg.ckpt_path = str(self.run_dir / "checkpoints" / "last.ckpt")
            if cfg.ckpt_path:
                _check_resume(cfg)
        elif cfg.ckpt_path == "last":
            self.run_dir = latest_run(experiment_dir)
            cfg.ckpt_path = str(self.run_dir / "checkpoints" / "last.ckpt")
            _check_resume(cfg)
        elif cfg.ckpt_path:
            ckpt = Path(cfg.ckpt_path)
            if not ckpt.is_file():
                raise ConfigError(f"--ckpt_path {cfg.ckpt_path}: no such checkpoint file.")
            _check_resume(cfg)  # before a run folder exists
            run = ckpt.resolve().parent.parent
            self.run_dir = run if (run / "config.yaml").is_file() else self._new_run_dir(experiment_dir, cfg)
        else:
            self.run_dir = (new_run_dir(experiment_dir, _seed(cfg), create=False) if other_node
                            else self._new_run_dir(experiment_dir, cfg))
        if not (inherited or other_node) and self.run_dir.is_dir():  # other ranks share rank 0's lock
            if not self._created:
                self._existing = set(os.listdir(self.run_dir))
            self._lock = RunLock(self.run_dir).acquire()  # before the CSV logger touches metrics.csv
        os.environ[RUN_DIR_ENV] = str(self.run_dir)  # inherited by DDP workers this process launches
        # always this run's folders: a config saved by another run names that run's folders,
        # and reusing them would overwrite its checkpoints
        cfg.trainer.default_root_dir = str(self.run_dir)
        cfg.checkpoint.dirpath = str(self.run_dir / "checkpoints")
        _place_loggers(cfg.trainer.logger, self.run_dir, experiment)

    def _new_run_dir(self, experiment_dir: Path, cfg: Namespace) -> Path:
        """A new run folder, remembered (with the parents it needed) to be removed if this
        command is refused before training starts."""
        missing = [p for p in (experiment_dir, experiment_dir.parent) if not p.exists()]
        run_dir = new_run_dir(experiment_dir, _seed(cfg))
        self._created = [run_dir, *missing]
        return run_dir

    def _undo(self) -> None:
        """Leave no trace of a command refused before training started: remove the run folder
        it created, or what it added to the run folder it resumes (held under its lock)."""
        if self._created:
            shutil.rmtree(self._created[0], ignore_errors=True)
            for folder in self._created[1:]:
                try:
                    folder.rmdir()  # only if empty: another run may have appeared meanwhile
                except OSError:
                    pass
        elif self._lock is not None and self._existing is not None and self.run_dir is not None:
            for name in set(os.listdir(self.run_dir)) - self._existing - {LOCK_FILE}:
                path = self.run_dir / name
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Every fit logs ``<run>/metrics.csv`` (beside any logger the config adds), keeps
        ``<run>/metadata.json``, stops cleanly on Ctrl-C/SIGTERM and stops on NaN/Inf."""
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        configured = trainer_cfg.get("logger")
        if self.run_dir is not None and configured is not False:
            extra = [] if configured in (None, True) else list(configured) if isinstance(configured, list) else [configured]
            kwargs["logger"] = [RunCSVLogger(self.run_dir), *extra]
        if self.run_dir is not None:
            cfg = self.config[self.subcommand]
            safety = run_callbacks(self.run_dir, cfg.experiment or _default_experiment(cfg), _seed(cfg))
            self._run_metadata = next(c for c in safety if isinstance(c, RunMetadata))
            configured_callbacks = trainer_cfg.get("callbacks") or []
            if not isinstance(configured_callbacks, list):
                configured_callbacks = [configured_callbacks]
            kwargs["callbacks"] = [*configured_callbacks, *safety]
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Trainer:
        """``--trainer.enable_progress_bar false`` drops the frame progress bar (Lightning
        refuses a progress bar callback together with that flag)."""
        if config.get("enable_progress_bar") is False:
            callbacks = [c for c in callbacks if not isinstance(c, FrameProgressBar)]
        return super()._instantiate_trainer(config, callbacks)

    def before_fit(self) -> None:
        """Say where the run lives (also printed at the end; a stopped run's log has it too);
        apply ``--log_every_frames``; send the whole resolved config to W&B (Lightning sends
        the model's hparams only), secrets masked there and in the command line W&B records
        when its run starts."""
        if self.run_dir is not None and self.trainer.is_global_zero:
            print(f"Run folder: {self.run_dir}", flush=True)
        self.model.log_every_frames = self.config[self.subcommand].log_every_frames
        wandb_loggers = [lg for lg in self.trainer.loggers if type(lg).__name__ == "WandbLogger"]
        if wandb_loggers and self.trainer.is_global_zero:
            parser = self._parser(self.subcommand)
            config = scrub_secrets(yaml.safe_load(parser.dump(self.config[self.subcommand], skip_unset=False)))
            for logger in wandb_loggers:
                with scrubbed_argv():
                    experiment = logger.experiment  # starts the W&B run
                experiment.config.update(config, allow_val_change=True)

    def after_fit(self) -> None:
        """Close W&B runs; print the final evaluation and where the run lives."""
        if not self.trainer.is_global_zero:
            return
        for logger in self.trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.finish()
        final_report(self.trainer, self.run_dir)


#: the frame budget of ``--debug`` (at least two batches; never more than the config's)
DEBUG_FRAMES = 4096
#: the most evaluation episodes of ``--debug``
DEBUG_EPISODES = 3


def _apply_debug(cfg: Namespace, subcommand: str | None) -> None:
    """``--debug``: the run's experiment gets the suffix ``-debug``; a fit gets a tiny budget
    (:data:`DEBUG_FRAMES`, or two batches when one batch is larger, never more than
    ``data.total_frames``), evaluations and checkpoints at half way and at the end over at most
    :data:`DEBUG_EPISODES` episodes, random frames of a replay buffer capped at a quarter of the
    budget (so updates run), and autograd anomaly detection. Applying it twice (a debug run's
    ``config.yaml``) changes nothing more."""
    name = cfg.experiment or _default_experiment(cfg)
    cfg.experiment = experiment_name(name, debug=True)
    if subcommand == "fit":
        cfg.trainer.detect_anomaly = True
    args = cfg.data.get("init_args") if cfg.data.get("init_args") is not None else None
    total = args.get("total_frames") if args is not None else None
    if subcommand != "fit" or not isinstance(total, int):
        return
    batch = args.get("frames_per_batch") or 0
    budget = min(total, max(DEBUG_FRAMES, 2 * batch)) if batch else min(total, DEBUG_FRAMES)
    args.total_frames = budget
    half = max(1, budget // 2)
    if isinstance(args.get("init_random_frames"), int) and args.init_random_frames >= half:
        args.init_random_frames = budget // 4
    cfg.evaluation.every_frames = half
    cfg.evaluation.episodes = min(cfg.evaluation.episodes, DEBUG_EPISODES)
    cfg.checkpoint.every_frames = min(cfg.checkpoint.every_frames, half)
    if cfg.log_every_frames:
        cfg.log_every_frames = min(cfg.log_every_frames, max(1, budget // 16))
    print(f"Debug mode: {budget} frames (data.total_frames {total}), evaluation every {half} frames over "
          f"{cfg.evaluation.episodes} episodes, anomaly detection and NaN/Inf checks on; experiment {cfg.experiment}",
          flush=True)


def _place_loggers(logger_cfg: Any, run_dir: Path, experiment: str) -> None:
    """Point configured loggers without an explicit folder into the run folder."""
    entries = logger_cfg if isinstance(logger_cfg, list) else [logger_cfg]
    for entry in entries:
        if not isinstance(entry, Namespace) or "init_args" not in entry:
            continue
        args, name = entry.init_args, str(entry.class_path).rsplit(".", 1)[-1]
        if args.get("save_dir") in (None, "", "."):
            # absolute: W&B's service process outlives a fit and resolves relative folders
            # against its own working directory (a second fit in one process, e.g. a notebook
            # that changed folders, would write its record elsewhere)
            args.save_dir = str(run_dir.resolve())
        if name == "WandbLogger":
            args.project = args.get("project") or experiment
            args.name = args.get("name") or run_dir.name


def check_checkpoint(path: str, algorithm: str, data: Namespace | None = None) -> None:
    """Fail early, naming the file, unless ``path`` is a readable rl_lightning checkpoint of
    ``algorithm`` (an import path such as ``rl_lightning.algorithms.PPO``) and, given the
    ``data`` config of a resuming fit, that config keeps every option the checkpoint's data
    state fixes (``EnvDataModule.options_fixed_by``): a refusal names each option with the
    checkpoint's and the config's value, before anything is written.

    Loads with ``weights_only=True`` (tensors and plain types only, no code runs) and
    memory-mapped, so large checkpoints are not read twice into memory.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"--ckpt_path {path}: not a readable checkpoint ({type(err).__name__}: {first}).") from err
    info = checkpoint.get("rl_lightning") if isinstance(checkpoint, dict) else None
    if not info:
        raise ConfigError(f"--ckpt_path {path}: not a checkpoint written by rl_lightning.")
    short = lambda name: name.rsplit(".", 1)[-1]  # noqa: E731
    if short(info["algorithm"]) != short(algorithm):
        raise ConfigError(
            f"--ckpt_path {path} holds a {short(info['algorithm'])} model, but the config selects "
            f"{short(algorithm)} (model.class_path)."
        )
    if data is not None:
        _check_fixed_options(path, checkpoint, data)


def _check_fixed_options(path: str, checkpoint: dict[str, Any], data: Namespace) -> None:
    """Refuse a resume whose ``data`` options differ from those the checkpoint fixes."""
    import importlib

    from rl_lightning.data.base import EnvDataModule

    module_name, _, class_name = str(data.class_path).rpartition(".")
    data_class = getattr(importlib.import_module(module_name), class_name, None)
    saved_state = checkpoint.get(getattr(data_class, "__qualname__", ""))
    if not (isinstance(data_class, type) and issubclass(data_class, EnvDataModule)) or saved_state is None:
        return
    options = data.init_args.as_dict() if isinstance(data.get("init_args"), Namespace) else {}
    fixed = data_class.options_fixed_by(dict(checkpoint.get("datamodule_hyper_parameters") or {}), saved_state, options)
    if fixed:
        raise ConfigError(
            f"--ckpt_path {path}: the checkpoint fixes {', '.join(fixed)}; resume with the checkpoint's "
            "values (the run's config.yaml) or start a new run."
        )


def _check_resume(cfg: Namespace) -> None:
    """Before a run folder is made or touched: the checkpoint must be a readable one of the
    config's algorithm whose fixed data options agree with the config, and a resume whose
    frame budget is met ends here; checkpoints then load with ``weights_only``."""
    check_checkpoint(cfg.ckpt_path, str(cfg.model.class_path), cfg.data)
    _exit_if_budget_met(cfg)
    if cfg.get("weights_only") is None:
        cfg.weights_only = True  # tensors and plain types only, whatever torch's default


def _exit_if_budget_met(cfg: Namespace) -> None:
    """A resume whose frame budget is already met does nothing (no file of the run changes):
    say so and exit 0. A budget below the frames trained is refused (ConfigError)."""
    total = cfg.data.init_args.get("total_frames") if cfg.data.get("init_args") else None
    if not isinstance(total, int):
        return
    left, frames = frames_to_train(cfg.ckpt_path, total)
    if not left:
        print(f"Nothing to do: {cfg.ckpt_path} has trained {frames} frames, data.total_frames is {total}; "
              "raise data.total_frames to train on.")
        sys.exit(0)


def _evaluation_checkpoint(cfg: Namespace, experiment_dir: Path) -> str:
    """``validate``/``test``: ``last``/``best`` of the config's run folder (or the newest run of
    the experiment); otherwise a path that must exist."""
    path = cfg.ckpt_path
    if path in ("last", "best"):
        run = Path(cfg.trainer.default_root_dir or "")
        if not (run / "checkpoints" / f"{path}.ckpt").is_file():
            run = latest_run(experiment_dir)
        path = str(run / "checkpoints" / f"{path}.ckpt")
    if not path:
        raise ConfigError("--ckpt_path is required: a checkpoint file, or last / best of the run.")
    if not Path(path).is_file():
        raise ConfigError(f"--ckpt_path {path}: no such checkpoint file.")
    return path


def _check_gradient_clipping(cfg: Namespace) -> None:
    """Off-policy algorithms optimize manually, where Lightning's clipping does not apply."""
    if not cfg.trainer.get("gradient_clip_val"):
        return
    import importlib

    module_name, _, class_name = str(cfg.model.class_path).rpartition(".")
    check_gradient_clipping(getattr(importlib.import_module(module_name), class_name, None),
                            cfg.trainer.gradient_clip_val)


def _default_experiment(cfg: Namespace) -> str:
    env_id = getattr(cfg.data.init_args, "env_id", None) if cfg.data.get("init_args") else None
    return default_experiment(str(cfg.model.class_path), env_id)


def _seed(cfg: Namespace) -> int | None:
    seed = cfg.seed_everything
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def main(args: Any = None) -> None:
    """Entry point of ``python -m rl_lightning``: Lightning's ``fit``/``validate``/``test``,
    plus the commands in :data:`COMMANDS` (``play``, ``runs``, ``plot``, ``sweep``, ``reproduce``)."""
    quiet()
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] in ([], ["-h"], ["--help"]):
        print(help_text())
        sys.exit(0 if argv else 2)
    if argv[0] in NOT_OFFERED:
        print(unknown_command(argv[0]), file=sys.stderr)
        sys.exit(2)
    try:
        if argv[0] in COMMANDS or seeds_requested(argv):
            import importlib

            module = "rl_lightning.runs.seeds" if seeds_requested(argv) else COMMANDS[argv[0]]
            importlib.import_module(module).main(argv[1:])
        else:
            check_config_files(argv)
            RLCLI(args=args)
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        config_error = _find_config_error(err) or missing_package_error(err)
        if config_error is not None:
            print(f"error: {config_error}", file=sys.stderr)
            sys.exit(2)
        disk_full = _find_disk_full(err)
        if disk_full is None:
            raise
        where = f" while writing {disk_full.filename}" if disk_full.filename else ""
        print(f"error: disk full ({disk_full.strerror or disk_full}){where}: the command stopped; temporary files "
              "were removed and the run keeps its last good checkpoint. Free disk space, then run the command "
              "again (--ckpt_path last continues the run).", file=sys.stderr)
        sys.exit(1)


def _find_disk_full(err: BaseException | None) -> OSError | None:
    """The "no space left on device" (or quota exceeded) error behind ``err``, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _find_config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``err`` (jsonargparse wraps errors raised while instantiating)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ConfigError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
