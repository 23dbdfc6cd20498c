"""What a run gets beside Lightning's ``Trainer``, for the command line and for Python.

``python -m rl_lightning fit`` and :func:`make_trainer` / :func:`train` share these pieces: one
torch thread, a run folder ``<experiments_dir>/<experiment>/<run id>/`` (``config.yaml``,
``metadata.json``, ``metrics.csv``, ``checkpoints/``) that ``runs list`` sees, and the callbacks
every run has: ``Evaluation``, ``FrameCheckpoint``, ``FrameProgressBar``, ``NanGuard``,
``GracefulStop`` and ``RunMetadata``.

From Python::

    import lightning as L
    import rl_lightning
    from rl_lightning.algorithms import PPO
    from rl_lightning.data import OnPolicyDataModule

    L.seed_everything(1)
    data = OnPolicyDataModule("CartPole-v1", num_envs=8, frames_per_batch=256, total_frames=50_000)
    model = PPO(learning_rate=1e-3, epochs=20, minibatch_size=256, gamma=0.98, gae_lambda=0.8)
    trainer = rl_lightning.train(model, data, gradient_clip_val=0.5)
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from rl_lightning.errors import ConfigError
from rl_lightning.runs.lock import RunLock

#: Trainer options every run starts from (the CLI's ``trainer`` defaults): the frame budget of
#: the data module ends training, not epochs; no sanity validation, no model summary.
TRAINER_DEFAULTS: dict[str, Any] = {"max_epochs": -1, "num_sanity_val_steps": 0, "enable_model_summary": False}
#: torch intra-op threads of a run: small RL networks run fastest on one.
TORCH_THREADS = 1
#: Environment variable through which DDP workers find the run folder rank 0 created.
RUN_DIR_ENV = "RL_LIGHTNING_RUN_DIR"


def write_run_config(run_dir: str | os.PathLike, config: dict[str, Any], header: str = "") -> Path:
    """Write ``<run>/config.yaml`` (values of keys that look like secrets replaced by ``***``);
    when the run already has one (a resumed run), ``config.resume-<time>.yaml``. Returns the path."""
    from rl_lightning.secrets import scrub_secrets

    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if path.exists():
        path = run_dir / f"config.resume-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(scrub_secrets(config), sort_keys=False))
    return path


def check_gradient_clipping(model_class: Any, gradient_clip_val: Any) -> None:
    """Off-policy algorithms optimize manually, where Lightning's clipping does not apply:
    ``ConfigError`` for ``trainer.gradient_clip_val`` with one of them."""
    if not gradient_clip_val:
        return
    import inspect

    from rl_lightning.algorithms.offpolicy import OffPolicyModule

    if isinstance(model_class, type) and issubclass(model_class, OffPolicyModule):
        hint = " use --model.init_args.max_grad_norm" if "max_grad_norm" in inspect.signature(model_class).parameters else ""
        raise ConfigError(
            f"trainer.gradient_clip_val: {model_class.__name__} updates with manual optimization, "
            f"where Lightning's gradient clipping does not apply;{hint or ' remove it'}."
        )


def run_callbacks(run_dir: str | os.PathLike, experiment: str, seed: int | None) -> list:
    """The safety nets and record every run has: ``NanGuard``, ``GracefulStop``, ``RunMetadata``."""
    from rl_lightning.callbacks import GracefulStop, NanGuard
    from rl_lightning.callbacks.run_metadata import RunMetadata

    return [NanGuard(), GracefulStop(), RunMetadata(run_dir, experiment, seed)]


def final_report(trainer: Any, run_dir: str | os.PathLike | None) -> None:
    """Print the final evaluation (``Final evaluation: return ...``) and where the run lives."""
    from rl_lightning.callbacks import Evaluation

    evaluation = next((c for c in trainer.callbacks if isinstance(c, Evaluation)), None)
    if evaluation is not None and evaluation.last:
        last = evaluation.last
        print(
            f"Final evaluation: return {last['eval/return_mean']:.1f} +/- {last['eval/return_std']:.1f} "
            f"over {evaluation.episodes} episodes (best {evaluation.best:.1f})"
        )
    if run_dir is not None:
        print(f"Run folder: {run_dir}")


def quiet() -> None:
    """Silence known noise from the stack (see the project's STACK notes)."""
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless rendering, no SDL warnings
    from rl_lightning.envs.suites import headless_gl

    headless_gl()  # MUJOCO_GL=egl when unset and no display exists
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*InitTracker.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=".*dataloader_iter.*")
    warnings.filterwarnings("ignore", message=".*turned on `Trainer.detect_anomaly=True.`.*")  # --debug says so
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # float64 spaces (dm_control's) made float32 for the networks on purpose (pipeline._float32)
    warnings.filterwarnings("ignore", message=r".*Box (low|high)'s precision lowered by casting to float32.*")
    warnings.filterwarnings("ignore", message=".*Total length of `list` across ranks is zero.*")  # no val loop in fit
    # resuming writes into the run's existing folder on purpose (RunCSVLogger keeps metrics.csv)
    warnings.filterwarnings("ignore", message=".*Previous log files in this directory will be deleted.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")


# --- the Python API ---------------------------------------------------------------------------
def _plain(value: Any) -> bool:
    """Whether ``value`` is plain YAML data (what a config file can hold)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _class_config(obj: Any, key: str, left_out: list[str]) -> dict[str, Any]:
    """``{class_path, init_args}`` of a module from its saved hyperparameters (plain values only;
    the keys of the others go to ``left_out``)."""
    init_args = {}
    for name, value in dict(getattr(obj, "hparams", {}) or {}).items():
        if _plain(value):
            init_args[name] = list(value) if isinstance(value, tuple) else value
        else:
            left_out.append(f"{key}.init_args.{name}")
    cls = type(obj)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


def _callback_config(callback: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(callback, name, None) for name in names if _plain(getattr(callback, name, None))}


class RunFolder(Callback):
    """Writes ``<run>/config.yaml`` when ``fit`` starts (a resumed run adds
    ``config.resume-<time>.yaml``) and holds ``<run>/.lock`` while it runs, so no other process
    trains in the folder meanwhile. :func:`make_trainer` adds it.

    Args:
        run_dir: the run folder.
        config: returns the config to write and the keys left out of it (values that are not
            plain data, such as network objects).
    """

    def __init__(self, run_dir: str | os.PathLike, config: Callable[[], tuple[dict[str, Any], list[str]]]) -> None:
        self.run_dir, self.config = Path(run_dir), config
        self.lock: RunLock | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero and self.lock is None:
            self.lock = RunLock(self.run_dir).acquire()

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            config, left_out = self.config()
            header = "# written by rl_lightning.make_trainer (Python)"
            header += f"; not recorded (not plain values): {', '.join(left_out)}\n" if left_out else "\n"
            write_run_config(self.run_dir, config, header)

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._release()

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _pick(option: Any, cls: type, name: str, **defaults: Any) -> Any:
    """``option`` as a callback: an instance is used as given, a dict gives its arguments,
    ``None``/``True`` the defaults, ``False`` none."""
    if option is False:
        return None
    if isinstance(option, cls):
        return option
    if option is None or option is True:
        return cls(**defaults)
    if isinstance(option, dict):
        return cls(**{**defaults, **option})
    raise ConfigError(f"{name}: expected a {cls.__name__}, a dict of its arguments, True/None (defaults) or False "
                      f"(none), got {type(option).__name__}.")


def make_trainer(
    model: Any,
    data: Any,
    run_dir: str | os.PathLike | None = None,
    *,
    experiment: str | None = None,
    experiments_dir: str | os.PathLike = "experiments",
    seed: int | None = None,
    torch_threads: int = TORCH_THREADS,
    log_every_frames: int = 0,
    evaluation: Any = None,
    checkpoint: Any = None,
    progress_bar: Any = None,
    **trainer_kwargs: Any,
):
    """A ``lightning.Trainer`` set up as ``python -m rl_lightning fit`` sets one up.

    It sets torch's thread count, names a run folder (created now) that ``runs list`` and
    ``plot`` see, and adds the CLI's callbacks with the CLI's defaults: ``Evaluation`` (every
    10 000 frames, 10 episodes), ``FrameCheckpoint`` (``<run>/checkpoints``, every 10 000 frames,
    ``best.ckpt`` by ``eval/return_mean`` and ``last.ckpt``), ``FrameProgressBar``, ``NanGuard``
    (stops on NaN/Inf), ``GracefulStop`` (Ctrl-C/SIGTERM finish the batch and checkpoint) and
    ``RunMetadata`` (``metadata.json``). ``metrics.csv`` is written beside any logger given;
    ``config.yaml`` (the model's and data module's hyperparameters, the trainer's plain options)
    when training starts. Known noise of the stack (warnings about experimental Lightning
    signatures, TorchRL logs) is silenced as on the command line. Call
    ``trainer.fit(model, datamodule=data)``, or use :func:`train`.

    Args:
        model: the algorithm (an ``rl_lightning.algorithms`` module).
        data: its data module (``rl_lightning.data``).
        run_dir: the run folder; default a new ``<experiments_dir>/<experiment>/<time>-s<seed>``.
            An existing run folder is continued (resume with ``trainer.fit(..., ckpt_path=...)``).
        experiment: the experiment name (default ``<algorithm>-<env_id>``, e.g. ``ppo-CartPole-v1``).
        experiments_dir: the folder of all experiments.
        seed: the seed recorded in the run's name and metadata (default: the seed
            ``lightning.seed_everything`` set, if any). Seed before building the model.
        torch_threads: torch intra-op threads (``torch.set_num_threads``); 1 is fastest for small networks.
        log_every_frames: write a metrics row each time training reaches a multiple of this many
            frames; 0 writes one per collected batch.
        evaluation: an ``Evaluation``, a dict of its arguments, ``None`` (defaults) or ``False`` (none).
        checkpoint: a ``FrameCheckpoint``, a dict of its arguments, ``None`` (defaults) or ``False``.
        progress_bar: a ``FrameProgressBar``, a dict of its arguments, ``None`` (defaults) or ``False``.
        **trainer_kwargs: ``lightning.Trainer`` options over ``max_epochs=-1``,
            ``num_sanity_val_steps=0``, ``enable_model_summary=False`` (``logger=False``: no
            ``metrics.csv``; ``callbacks``: added to the ones above).

    Returns:
        The trainer; its run folder is ``trainer.default_root_dir``.
    """
    import torch

    from rl_lightning.callbacks import Evaluation, FrameCheckpoint, FrameProgressBar
    from rl_lightning.runs.csv_logger import RunCSVLogger
    from rl_lightning.runs.folders import check_experiment_name, default_experiment, new_run_dir

    if isinstance(torch_threads, bool) or not isinstance(torch_threads, int) or torch_threads < 1:
        raise ConfigError(f"torch_threads must be an int >= 1, got {torch_threads!r}.")
    if log_every_frames < 0:
        raise ConfigError(f"log_every_frames must be 0 or more, got {log_every_frames}.")
    if "default_root_dir" in trainer_kwargs:
        raise ConfigError("default_root_dir: the trainer's folder is the run folder; pass run_dir= instead.")
    check_gradient_clipping(type(model), trainer_kwargs.get("gradient_clip_val"))
    if seed is None and os.environ.get("PL_GLOBAL_SEED", "").lstrip("-").isdigit():
        seed = int(os.environ["PL_GLOBAL_SEED"])
    env_id = getattr(data, "env_id", None)
    if experiment is not None:
        check_experiment_name(experiment, "experiment")
    options = {**TRAINER_DEFAULTS, **trainer_kwargs}
    given = options.pop("callbacks", None) or []
    given = list(given) if isinstance(given, (list, tuple)) else [given]

    def has(cls: type) -> bool:
        return any(isinstance(c, cls) for c in given)

    if progress_bar is False:
        options.setdefault("enable_progress_bar", False)  # nor Lightning's default bar
    progress_off = options.get("enable_progress_bar") is False
    # callbacks first: a bad option is refused before the run folder exists
    evaluation = None if has(Evaluation) else _pick(evaluation, Evaluation, "evaluation")
    checkpoint = None if has(FrameCheckpoint) else _pick(checkpoint, FrameCheckpoint, "checkpoint")
    progress_bar = (None if progress_off or has(L.pytorch.callbacks.ProgressBar)
                    else _pick(progress_bar, FrameProgressBar, "progress_bar"))
    if checkpoint is None and not has(L.pytorch.callbacks.ModelCheckpoint):
        options.setdefault("enable_checkpointing", False)  # no Lightning default checkpoint either
    ours = [c for c in (evaluation, checkpoint, progress_bar) if c is not None]

    if run_dir is None and int(os.environ.get("LOCAL_RANK", "0")) > 0 and os.environ.get(RUN_DIR_ENV):
        run_dir = os.environ[RUN_DIR_ENV]  # a DDP worker its launcher started: rank 0's run folder
    if run_dir is None:
        experiment = experiment or default_experiment(type(model).__name__, env_id)
        run_dir = new_run_dir(Path(experiments_dir) / experiment, seed)
    else:
        run_dir = Path(run_dir)
        experiment = experiment or run_dir.parent.name
        run_dir.mkdir(parents=True, exist_ok=True)
    for callback in (checkpoint, *given):
        if isinstance(callback, FrameCheckpoint) and callback.dirpath is None:
            callback.dirpath = os.path.realpath(run_dir / "checkpoints")  # the run's, as on the command line
    os.environ[RUN_DIR_ENV] = str(run_dir)  # inherited by DDP workers this process launches
    torch.set_num_threads(torch_threads)
    quiet()

    logger = options.get("logger")
    if logger is not False:
        extra = [] if logger in (None, True) else list(logger) if isinstance(logger, (list, tuple)) else [logger]
        options["logger"] = [RunCSVLogger(run_dir), *extra]

    def config() -> tuple[dict[str, Any], list[str]]:
        left_out: list[str] = []
        trainer_plain = {}
        for key, value in {**options, "default_root_dir": str(run_dir)}.items():
            if key in ("logger", "callbacks") or not _plain(value):
                if key != "logger":
                    left_out.append(f"trainer.{key}")
                continue
            trainer_plain[key] = value
        eval_cb = evaluation or next((c for c in given if isinstance(c, Evaluation)), None)
        ckpt_cb = checkpoint or next((c for c in given if isinstance(c, FrameCheckpoint)), None)
        return {
            "seed_everything": seed,
            "trainer": trainer_plain,
            "model": _class_config(model, "model", left_out),
            "data": _class_config(data, "data", left_out),
            "experiment": experiment,
            "experiments_dir": str(experiments_dir),
            "torch_threads": torch_threads,
            "log_every_frames": log_every_frames,
            **({"evaluation": _callback_config(eval_cb, ("every_frames", "episodes", "deterministic", "seed"))}
               if eval_cb is not None else {}),
            **({"checkpoint": {"every_frames": ckpt_cb.every_frames, "dirpath": str(run_dir / "checkpoints")}}
               if ckpt_cb is not None and _plain(getattr(ckpt_cb, "every_frames", None)) else {}),
        }, left_out

    callbacks = [*given, *ours, *run_callbacks(run_dir, experiment, seed), RunFolder(run_dir, config)]
    model.log_every_frames = log_every_frames
    return L.Trainer(default_root_dir=str(run_dir), callbacks=callbacks, **options)


def train(model: Any, data: Any, run_dir: str | os.PathLike | None = None, *, ckpt_path: str | None = None,
          **kwargs: Any):
    """Train ``model`` on ``data`` as ``python -m rl_lightning fit`` does: :func:`make_trainer`
    (same arguments), then ``fit``; prints the final evaluation and the run folder.

    Args:
        model: the algorithm.
        data: its data module.
        run_dir: the run folder (default: a new one; see :func:`make_trainer`).
        ckpt_path: continue from this checkpoint (loaded with ``weights_only=True``); ``"last"``
            is ``<run_dir>/checkpoints/last.ckpt``, or without ``run_dir`` that of the newest run
            of the experiment, whose folder the run then continues.
        **kwargs: :func:`make_trainer`'s keyword arguments and ``lightning.Trainer`` options.

    Returns:
        The trainer after ``fit`` (``trainer.default_root_dir`` is the run folder). A run
        refused before training starts (e.g. a checkpoint that does not fit) leaves no new folder.
    """
    from rl_lightning.callbacks.run_metadata import RunMetadata
    from rl_lightning.runs.folders import default_experiment, latest_run

    if ckpt_path == "last":
        if run_dir is None:
            experiment = kwargs.get("experiment") or default_experiment(type(model).__name__, getattr(data, "env_id", None))
            run_dir = latest_run(Path(kwargs.get("experiments_dir", "experiments")) / experiment)
        ckpt_path = str(Path(run_dir) / "checkpoints" / "last.ckpt")
    if ckpt_path is not None:
        from rl_lightning.cli import check_checkpoint

        check_checkpoint(ckpt_path, f"{type(model).__module__}.{type(model).__qualname__}")
    new = run_dir is None or not Path(run_dir).exists()
    trainer = make_trainer(model, data, run_dir, **kwargs)
    folder = Path(trainer.default_root_dir)
    print(f"Run folder: {folder}", flush=True)
    try:
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, **({"weights_only": True} if ckpt_path else {}))
    except BaseException:
        metadata = next((c for c in trainer.callbacks if isinstance(c, RunMetadata)), None)
        if new and metadata is not None and not metadata.started:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    final_report(trainer, folder)
    return trainer
