"""What every rl_lightning algorithm shares: the connect step with the data module,
network building from the environment's spec, frame counting and metric logging."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from rl_lightning.algorithms.normalize import EPSILON, SETTINGS, Normalizer
from rl_lightning.data.link import AgentLink, TrainingData
from rl_lightning.envs import EnvSpec
from rl_lightning.episodes import EpisodeSettings, evaluate, summarize
from rl_lightning.errors import ConfigError
from rl_lightning.networks.encoders import (
    EncoderBuilder,
    Flatten,
    encode,
    feature_size,
    looks_like_image,
)
from rl_lightning.secrets import ScrubbedHyperparameters, scrub_checkpoint


class RLModule(ScrubbedHyperparameters, L.LightningModule):
    """Base class of the algorithms.

    The data module owns the environments; the algorithm owns networks, losses and
    optimizers. In :meth:`setup` the algorithm reads the environment's :class:`EnvSpec`
    from the data module, builds its networks (:meth:`build`) and hands its acting policy
    to the data module (``datamodule.connect(self.link())``; the interface both ways is
    :mod:`rl_lightning.data.link`). Checkpoints carry the spec, so a module restored from one
    rebuilds the same networks.

    Subclasses implement :meth:`build`, :meth:`act` and ``training_step``. The plain Lightning
    form, ``training_step(self, batch, batch_idx)`` returning the loss, is one update per
    collected batch: the base class hands it a batch collected with the current weights (never
    one collected ahead), then ends the batch (:meth:`end_of_batch`: logs ``loss/train`` with
    the frame counters and episode statistics, and stops at the frame budget). Algorithms that
    take several steps per batch (PPO's minibatches) take ``training_step(self,
    dataloader_iter)``, set :attr:`at_boundary` on every step (True on the one that completes
    the batch's updates) and call :meth:`end_of_batch` there themselves. Callbacks (evaluation,
    checkpoints, progress, signals) act only at boundaries (:func:`batch_consumed`).
    ``self.log(name, value)`` in a training step logs against the frame count, like
    :meth:`log_metrics`.

    With the data module's ``normalize_observation`` / ``normalize_reward`` on, the module also
    holds a :class:`~rl_lightning.algorithms.normalize.Normalizer` (:attr:`normalizer`) whose
    statistics are part of its weights: :meth:`preprocess` normalizes observations with them
    and the algorithms add each collected batch to them (:meth:`observe_batch`).
    """

    #: ``None``: the data module's collector streams ``frames_per_batch``-frame batches. A number
    #: G: group rollouts instead (critic-free algorithms such as GRPO): every batch resets the
    #: environments so that each group of G starts from one state, and runs each to its first
    #: episode's end (see :mod:`rl_lightning.data.group_collector`).
    rollout_group_size: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's own ``training_step`` so that batches end where it did not end
        them (see the class docstring)."""
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("training_step")
        if step is not None and not hasattr(step, "_rl_step"):
            cls.training_step = _ending_batches(step)

    def __init__(self) -> None:
        super().__init__()
        self.spec: EnvSpec | None = None
        #: how ``validate``/``test`` play their episodes (the ``Evaluation`` callback sets its own)
        self.evaluation_settings: EpisodeSettings | None = None
        self._batch_ended = False
        #: True on the training step that finished the updates of a collected batch.
        self.at_boundary = False
        self._pending_metrics: dict[str, float] = {}
        self._fit_start = (0.0, 0)
        #: wall-clock start of the updates of the current collected batch
        self.update_start = 0.0
        #: write a metrics row only at the batch that reaches each multiple of this many
        #: frames (and at the last); 0 writes one per collected batch. ``--log_every_frames``.
        self.log_every_frames = 0
        self._frames_at_last_boundary = 0
        #: observation and reward normalization (built with the networks), or ``None``
        self.normalizer: Normalizer | None = None
        #: its settings (plain types; stored in checkpoints), ``None`` when off
        self.normalization: dict[str, Any] | None = None
        self._normalization_known = False

    # --- building ----------------------------------------------------------------------
    def build(self, spec: EnvSpec) -> None:
        """Create the networks for an environment; called once."""
        raise NotImplementedError

    def make_encoder(self, builder: EncoderBuilder | None, key: str = "model.encoder") -> tuple[torch.nn.Module, int]:
        """``(encoder, number of features)`` for this module's environment.

        ``None`` is :class:`~rl_lightning.networks.Flatten`, refused for image-like observations
        (see :func:`~rl_lightning.networks.encoders.looks_like_image`) so pixels are not fed to an
        MLP by accident; the number of features comes from one forward pass of a zero observation.
        """
        spec = self.spec
        if builder is None:
            if looks_like_image(spec.observation_shape, spec.observation_dtype):
                raise ConfigError(
                    f"observations {spec.observation_shape} {spec.observation_dtype} of {spec.env_id!r} look like "
                    f"images: set {key} to rl_lightning.networks.NatureCNN (or ImpalaCNN), or to "
                    "rl_lightning.networks.Flatten to flatten them on purpose."
                )
            return Flatten(spec.observation_shape), spec.observation_dim
        try:
            encoder = builder(tuple(spec.observation_shape))
        except ConfigError as error:  # e.g. a CNN given vector observations: name the option
            raise ConfigError(f"{key} for {spec.describe()}: {error}") from error
        return encoder, feature_size(encoder, spec.observation_shape, spec.observation_dtype, key)

    def encode(self, encoder: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
        """``encoder``'s features of observations ``[*batch, *observation_shape]`` (any number of
        batch dimensions; the encoder sees one)."""
        return encode(encoder, obs, len(self.spec.observation_shape))

    def connect_spec(self, spec: EnvSpec) -> None:
        """Build the networks for ``spec``, or check that they were built for it."""
        if self.spec is None:
            self.spec = spec
            self.build(spec)
        elif self.spec != spec:
            raise ConfigError(
                f"{type(self).__name__} was built for {self.spec.describe()}, but the environment is "
                f"{spec.describe()}; a model cannot change environments (check data.env_id)."
            )

    def connect_normalization(self, settings: dict[str, Any] | None, source: str) -> None:
        """Build the normalizer for ``settings`` (the data module's ``normalization`` or a
        checkpoint's), or check that it was built for them; ``source`` names where they came
        from in errors. Call after :meth:`connect_spec`."""
        if settings is not None and not (settings.get("observation") or settings.get("reward")):
            settings = None
        if settings is not None:  # epsilon: the constant unless a checkpoint says otherwise
            settings = {key: {"epsilon": EPSILON, **settings}[key] for key in SETTINGS}
        if self._normalization_known:
            if settings != self.normalization:
                raise ConfigError(
                    f"{type(self).__name__} was built with {_describe(self.normalization)}, but {source} has "
                    f"{_describe(settings)}; normalization statistics cannot change meaning: use the run's own "
                    "data options (its config.yaml) or start a new run."
                )
            return
        if settings is not None and settings["observation"] and self.spec.observation_dtype != "float32":
            raise ConfigError(
                f"data.normalize_observation needs float observations, but {self.spec.env_id!r} has "
                f"{self.spec.observation_dtype} observations (images are scaled by the encoder): switch it off."
            )
        self._normalization_known = True
        self.normalization = settings
        if settings is not None:
            shape = tuple(self.spec.observation_shape)
            self.normalizer = Normalizer(shape, float(self.hparams.get("gamma", 0.99)), **settings)

    def setup(self, stage: str) -> None:
        """Build from the data module's environment spec and connect the acting policy."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "connect"):
            raise RuntimeError(
                f"{type(self).__name__} trains on an rl_lightning data module: "
                "call trainer.fit(model, datamodule=OnPolicyDataModule(...))."
            )
        self.connect_spec(datamodule.env_spec)
        self.connect_normalization(getattr(datamodule, "normalization", None), "the data module")
        if stage == "fit":
            datamodule.connect(self.link())

    def link(self) -> AgentLink:
        """What the data module gets of this algorithm (see :mod:`rl_lightning.data.link`)."""
        memory = self.initial_memory(1) is not None
        return AgentLink(policy=self.collect_policy, spec=self.spec, gamma=float(self.hparams.get("gamma", 0.99)),
                         observe_batch=self.observe_batch, initial_memory=self.initial_memory if memory else None,
                         group_size=self.rollout_group_size)

    @property
    def data(self) -> TrainingData:
        """The data module this algorithm trains on (what it may use: :class:`TrainingData`)."""
        return self.trainer.datamodule

    # --- acting ------------------------------------------------------------------------
    def flat_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations ``[*batch, *observation_shape]`` -> ``[*batch, observation_dim]``."""
        dims = len(self.spec.observation_shape)
        return obs if dims == 1 else obs.flatten(-dims)

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the encoders take them, ``[*batch, *observation_shape]`` in the
        spec's dtype (the one place every algorithm passes observations through before a
        network: acting, training targets and losses): normalized with the current statistics
        when ``data.normalize_observation`` is on. Encoders flatten or convolve them."""
        if self.normalizer is not None:  # identity unless observations are normalized (float only)
            obs = self.normalizer.observations(obs)
        dtype = self.spec.observation_dtype
        if dtype != "float32" and obs.is_floating_point():  # integer frames a float path delivered
            obs = obs.to(getattr(torch, dtype))
        return obs

    def observe_batch(self, batch: Any) -> None:
        """Add a collected batch's raw observations and rewards (TensorDict ``[envs, steps]``)
        to the normalization statistics; training only, once per batch. Collective under DDP
        (the batch moments are summed over ranks, so every rank holds the same statistics)."""
        if self.normalizer is None:
            return
        self.normalizer.update_observations(batch["observation"].to(self.device), self._sum_over_ranks)
        self.normalizer.update_returns(batch["next", "reward"].to(self.device), batch["next", "done"].to(self.device),
                                       self._sum_over_ranks)

    def _sum_over_ranks(self, x: torch.Tensor) -> torch.Tensor:
        trainer = self.attached_trainer
        if trainer is None or trainer.world_size == 1:
            return x
        return trainer.strategy.reduce(x, reduce_op="sum")

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Act on a batch of observations; returns at least ``action`` and ``env_action``."""
        raise NotImplementedError

    def initial_memory(self, batch_size: int) -> dict[str, torch.Tensor] | None:
        """The memory of a recurrent policy for ``batch_size`` new episodes (tensors
        ``[batch_size, ...]`` on the module's device); ``None`` for policies without memory
        (the default), which act on the current observation alone."""
        return None

    def step_policy(
        self, obs: torch.Tensor, memory: dict[str, torch.Tensor] | None, is_init: torch.Tensor,
        deterministic: bool = False,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """Act on one step of observations with a memory: ``(act's outputs, memory after the
        step)``. ``is_init`` (``[batch]`` bool) marks the episodes that start at ``obs``: their
        memory is reset first. Evaluation, video, play and the collectors call this; policies
        without memory ignore ``memory`` and ``is_init``."""
        return self.act(obs, deterministic), memory

    @torch.no_grad()
    def collect_policy(
        self, obs: torch.Tensor, memory: dict[str, torch.Tensor] | None = None, is_init: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The policy the collector steps environments with: actions on the observations'
        device (no copy when the environments run where the module does). With a ``memory``
        (recurrent policies), returns ``(outputs, memory after the step)``; the outputs then
        hold ``is_init`` and the memory the step started from (keys ``memory_<name>``), which the
        batch stores."""
        if memory is None:
            out = self.act(obs.to(self.device))
            return out if obs.device == self.device else {k: v.to(obs.device) for k, v in out.items()}
        is_init = is_init.to(self.device)
        start = reset_memory(memory, is_init)
        out, after = self.step_policy(obs.to(self.device), start, torch.zeros_like(is_init))
        out = {**out, "is_init": is_init, **{MEMORY_PREFIX + k: v for k, v in start.items()}}
        if obs.device != self.device:
            out = {k: v.to(obs.device) for k, v in out.items()}
        return out, after

    # --- evaluation (validate / test commands) -------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Evaluation episodes (``validate``) with :attr:`evaluation_settings`: the ``Evaluation``
        callback's when the run has one, so the result matches the run's evaluations (same seeds)."""
        settings = self.evaluation_settings or EpisodeSettings()
        datamodule = self.data
        env = datamodule.make_env(settings.episodes)
        try:
            result = evaluate(self, env, settings.episodes, settings.seed_for(datamodule), settings.deterministic)
        finally:
            env.close()
        self.log_dict(summarize(result), batch_size=1)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Same as :meth:`validation_step` (``test`` command)."""
        self.validation_step(batch, batch_idx)

    # --- counters and logging ----------------------------------------------------------
    def on_train_start(self) -> None:
        """Start the frames/s clock; stop at once if the frame budget is already spent (a resumed
        finished run trains no batch past it)."""
        self._fit_start = (time.perf_counter(), self.frames)
        self._frames_at_last_boundary = self.frames
        total = self.data.total_frames
        if self.frames >= total:
            rank_zero_warn(f"nothing to train: {self.frames} frames done, data.total_frames is {total}.")
            self.trainer.should_stop = True

    def end_of_batch(self, metrics: dict[str, float]) -> None:
        """At a batch boundary: add timings and episode statistics to the algorithm's
        metrics, log them, and stop once the frame budget is spent (on every rank alike).

        With ``log_every_frames``, batches that do not reach the next multiple skip the
        logging; their finished episodes count in the next row's episode statistics. The
        rule depends on frame counts only, so every rank (and a resumed run) agrees."""
        self._batch_ended = True
        datamodule = self.data
        frames, previous = self.frames, self._frames_at_last_boundary
        self._frames_at_last_boundary = frames
        last = frames >= datamodule.total_frames
        if last:
            self.trainer.should_stop = True
        every = self.log_every_frames
        if every and not last and frames // every == previous // every:
            return
        started, frames0 = self._fit_start
        now = time.perf_counter()
        metrics = {
            **metrics,
            "time/collect_s": datamodule.collect_seconds,
            "time/update_s": now - self.update_start,
            "time/fps": (frames - frames0) / max(now - started, 1e-9),
            **datamodule.episode_metrics(),
        }
        self.log_metrics(metrics)

    @property
    def attached_trainer(self) -> L.Trainer | None:
        """The Trainer this module is attached to; ``None`` before (or without) one."""
        try:
            return self.trainer
        except RuntimeError:  # Lightning's answer for a module without a Trainer
            return None

    @property
    def frames(self) -> int:
        """Environment frames collected so far, over all processes."""
        datamodule = getattr(self.attached_trainer, "datamodule", None)
        return int(datamodule.frames) if datamodule is not None else 0

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log scalars against the frame count.

        ``trainer.callback_metrics`` gets them at once (for checkpoint monitors and the
        progress bar); loggers get everything logged during a training step (the module's
        metrics and the callbacks', e.g. evaluation) as one row with ``step = frames`` plus a
        ``frames`` column, after the callbacks ran, so curves share a frame axis across
        algorithms. This bypasses ``self.log``, whose result collection costs many times more
        per call (``benchmarks/log_speed.py`` times both inside a PPO fit).
        """
        self.trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        self._pending_metrics.update(metrics)

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Lightning's ``log``; inside a training step, a scalar logged against the frame count
        (:meth:`log_metrics`), so that it shares the rows and axis of every other metric."""
        trainer = self.attached_trainer
        if trainer is not None and trainer.training and self._in_training_step:
            self.log_metrics({name: float(value.detach() if isinstance(value, torch.Tensor) else value)})
            return
        super().log(name, value, *args, **kwargs)

    _in_training_step = False

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Send the step's metrics to the loggers (callbacks' hooks have run by now)."""
        if not self._pending_metrics:
            return
        frames = self.frames
        metrics = {**self._pending_metrics, "frames": float(frames)}
        self._pending_metrics.clear()
        if self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics(metrics, step=frames)

    # --- checkpoints -------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the environment spec (plain types), the algorithm's name, the frames trained
        (over all processes) and the frame budget they were trained under; mask secrets in
        the model's and the data module's hyperparameters."""
        scrub_checkpoint(checkpoint)
        datamodule = getattr(self.attached_trainer, "datamodule", None)
        checkpoint["rl_lightning"] = {
            "algorithm": f"{type(self).__module__}.{type(self).__qualname__}",
            "env_spec": self.spec.to_dict() if self.spec else None,
            "frames": self.frames,
            "total_frames": getattr(datamodule, "total_frames", None),
            "normalization": dict(self.normalization) if self.normalization else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Build the networks from the stored spec before the weights are loaded."""
        info = checkpoint.get("rl_lightning")
        if not info or not info.get("env_spec"):
            raise ConfigError("this checkpoint was not written by an rl_lightning algorithm.")
        mine = f"{type(self).__module__}.{type(self).__qualname__}"
        if info["algorithm"] != mine:
            raise ConfigError(
                f"this checkpoint holds a {info['algorithm']} model; it cannot be loaded into {mine}."
            )
        saved = EnvSpec.from_dict(info["env_spec"])
        if self.spec is not None and self.spec != saved:  # built from the config's environment in setup
            raise ConfigError(
                f"the checkpoint holds a {type(self).__name__} model trained on {saved.describe()}, but the "
                f"config's environment is {self.spec.describe()} (data.env_id / data.env_kwargs); resume with "
                f"the environment the checkpoint was trained on, or start a new run."
            )
        self.connect_spec(saved)
        self.connect_normalization(info.get("normalization"), "the checkpoint")
        self._check_shapes(checkpoint.get("state_dict", {}))

    def _check_shapes(self, saved: dict[str, torch.Tensor]) -> None:
        """Refuse a checkpoint whose networks differ from the ones this config builds."""
        mine = self.state_dict()
        missing = sorted(set(mine) - set(saved))
        extra = sorted(set(saved) - set(mine))
        changed = [(k, tuple(saved[k].shape), tuple(v.shape)) for k, v in mine.items()
                   if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
        if not (missing or extra or changed):
            return
        details = [f"{k}: checkpoint {a}, config {b}" for k, a, b in changed[:3]]
        details += [f"{k}: only in the config" for k in missing[:3]] + [f"{k}: only in the checkpoint" for k in extra[:3]]
        raise ConfigError(
            f"the checkpoint's networks differ from the ones the config builds for {type(self).__name__} "
            f"({'; '.join(details)}); resume with the run's own config (its config.yaml) or change "
            "the network options (model.init_args) back."
        )


def batch_consumed(module: Any) -> bool:
    """Whether the training step that just ran completed the updates of a collected batch: the
    one moment callbacks (evaluation, checkpoints, progress, signals) act. Modules that are not
    an :class:`RLModule` count every step."""
    return bool(getattr(module, "at_boundary", True))


def _ending_batches(step: Any) -> Any:
    """``step`` (a ``training_step``) as one taking ``dataloader_iter`` (so Lightning collects no
    batch ahead of the update), ending the batch where ``step`` did not (see :class:`RLModule`).
    Called again from inside a training step (a subclass's ``super().training_step(...)``), it
    is ``step`` itself."""
    params = list(inspect.signature(step).parameters)[1:]
    takes_iterator = "dataloader_iter" in params

    @functools.wraps(step)
    def training_step(self: RLModule, *args: Any, **kwargs: Any) -> Any:
        if self._in_training_step:  # a subclass's step calling this one
            return step(self, *args, **kwargs)
        (dataloader_iter,) = args or (kwargs["dataloader_iter"],)
        self.at_boundary, self._batch_ended, self._in_training_step = None, False, True
        try:
            if takes_iterator:
                out = step(self, dataloader_iter)
            else:
                batch, batch_idx, _ = next(dataloader_iter)
                self.update_start = time.perf_counter()
                out = step(self, batch, batch_idx) if len(params) > 1 else step(self, batch)
        finally:
            self._in_training_step = False
        if self.at_boundary is None:  # the step does not mark boundaries: it used up its batch
            self.at_boundary = True
        if self.at_boundary and not self._batch_ended:
            loss = out.get("loss") if isinstance(out, Mapping) else out
            self.end_of_batch({"loss/train": float(loss.detach())} if isinstance(loss, torch.Tensor) else {})
        return out

    # Lightning reads the signature to choose how to feed the step: the iterator, never a prefetch
    del training_step.__wrapped__
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    it = inspect.Parameter("dataloader_iter", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    training_step.__signature__ = inspect.Signature([this, it])
    training_step._rl_step = step
    return training_step


#: prefix of the memory entries a recurrent policy's batches hold (``memory_<name>``)
MEMORY_PREFIX = "memory_"


def reset_memory(memory: dict[str, torch.Tensor], is_init: torch.Tensor) -> dict[str, torch.Tensor]:
    """``memory`` with the rows of the episodes that start (``is_init``, ``[batch]`` bool) set
    to zero, the memory of a new episode."""
    keep = (~is_init).to(next(iter(memory.values())).dtype)
    return {k: v * keep.reshape(-1, *[1] * (v.dim() - 1)) for k, v in memory.items()}


def _describe(settings: dict[str, Any] | None) -> str:
    """Normalization settings as the data options that give them."""
    if settings is None:
        return "no normalization (data.normalize_observation and data.normalize_reward false)"
    names = {"observation": "normalize_observation", "reward": "normalize_reward"}
    return "normalization " + ", ".join(f"data.{names.get(k, k)} {v!r}" for k, v in settings.items())


def frames_to_train(path: str, total_frames: int) -> tuple[int, int]:
    """``(frames left, frames trained)`` of a resume from the checkpoint ``path`` under
    ``total_frames``; 0 frames left when the budget is met (nothing to do). Raises
    :class:`ConfigError` for a budget below the frames already trained, unless it is the
    budget the checkpoint was trained under."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    info = checkpoint.get("rl_lightning") or {}
    frames, budget = info.get("frames"), info.get("total_frames")
    if frames is None:  # checkpoints from before the frames were stored: the single-process count
        frames = next((v["frames"] for v in checkpoint.values() if isinstance(v, dict) and "episodes" in v
                       and isinstance(v.get("frames"), int)), 0)
    if budget is None:
        budget = (checkpoint.get("datamodule_hyper_parameters") or {}).get("total_frames")
    if frames < total_frames:
        return total_frames - frames, frames
    if total_frames == frames or (budget is not None and total_frames >= budget):
        return 0, frames
    raise ConfigError(
        f"data.total_frames {total_frames} is below the {frames} frames that {path} has already trained"
        + (f" (under data.total_frames {budget})" if budget is not None else "")
        + f"; resume with data.total_frames of at least {frames}."
    )
