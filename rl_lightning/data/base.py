"""What every data module shares: environments, the collector, frame counting, episode
statistics and checkpointed collector state."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from rl_lightning.data.collector import VectorCollector
from rl_lightning.data.group_collector import (
    GroupCollector,
    GymGroupCollector,
    TorchGroupCollector,
)
from rl_lightning.data.link import AgentLink
from rl_lightning.data.torch_collector import TorchCollector
from rl_lightning.envs import (
    EnvSpec,
    check_env,
    make_env,
    make_vector_env,
    resolve_wrappers,
)
from rl_lightning.envs.batched import TorchVectorEnv, check_torch_env, make_torch_env
from rl_lightning.envs.batched.adapters import TorchEnvAsGym, TorchVectorAsGym
from rl_lightning.envs.wrappers import plain_items
from rl_lightning.errors import MAX_SEED, ConfigError, check_range
from rl_lightning.secrets import ScrubbedHyperparameters, scrub_secrets

if TYPE_CHECKING:
    import gymnasium as gym



#: the normalization options, fixed by a checkpoint (its model holds their statistics)
#: The environment pipeline's options a checkpoint fixes: the running episodes were captured
#: through these wrapper layers, and the networks were trained on what they produce.
PIPELINE_OPTIONS = ("wrappers", "vector_wrappers")
NORMALIZATION_OPTIONS = ("normalize_observation", "normalize_reward", "clip_observation", "clip_reward")


def identity_collate(batch: Any) -> Any:
    """Collate function passing TensorDict batches through untouched."""
    return batch


class EnvDataModule(ScrubbedHyperparameters, L.LightningDataModule):
    """Base of the data modules: training environments, a collector that steps them with the
    algorithm's policy, frame counting and episode statistics.

    Training stops once ``total_frames`` frames were collected (over all processes); each
    process collects ``frames_per_batch`` frames per collection from ``num_envs``
    environments, seeded ``seed + rank * num_envs + i``. Subclasses define
    ``train_dataloader``.

    Args:
        env_id: Gymnasium environment id, e.g. ``CartPole-v1``; ``module:Name-v0`` imports
            ``module`` (which registers the environment) first.
        num_envs: environments stepped together in this process (one vector environment, see
            ``vectorization``).
        frames_per_batch: frames per collected batch per process; a multiple of ``num_envs``
            (``frames_per_batch / num_envs`` steps per environment).
        total_frames: training budget in environment frames, over all processes.
        env_kwargs: keyword arguments for ``gymnasium.make``, e.g. ``{max_episode_steps: 200}``.
        seed: seed of the environments, in [0, 2**32 - 1]; ``None`` takes the run's ``seed_everything``.
        wrappers: Gymnasium wrappers around each environment, applied in order, each
            ``{class_path: <import path>, init_args: {<argument>: <value>}}``, e.g.
            ``[{class_path: gymnasium.wrappers.GrayscaleObservation}, {class_path:
            gymnasium.wrappers.ResizeObservation, init_args: {shape: [84, 84]}}]``; any
            ``gymnasium.Wrapper`` subclass, a user's own too. Training, evaluation, validate/test,
            video and play environments all get them, except items marked ``training_only: true``,
            which wrap the training environments only, at their place in the list (reward clipping,
            a lost life ending the episode: evaluations then play whole episodes with the real
            score); they must keep the observation and action spaces. A
            ``gymnasium.wrappers.RecordEpisodeStatistics`` placed before them also logs the whole
            episodes of training (``train/game_return``, ``train/game_length``), as
            ``train/episode_return`` counts the episodes the training-only wrappers make. A wrapper that renders
            (``AddRenderObservation``) makes the environment with ``render_mode=rgb_array``.
            ``Dict`` observations of vector parts and ``Discrete`` observations are flattened
            afterwards (``FlattenObservation``).
        vectorization: ``sync`` steps the environments in this process (fastest for light
            simulators); ``async`` in one subprocess each (gymnasium ``AsyncVectorEnv``), worth it
            for slow steps; a checkpoint then cannot capture the running episodes, so a resume
            restarts them from a seeded reset.
        vector_wrappers: Gymnasium vector wrappers around the vector environment, applied in
            order, same form as ``wrappers`` (``training_only`` too), e.g. ``[{class_path: gymnasium.wrappers.vector.ClipReward,
            init_args: {min_reward: -1, max_reward: 1}}]``; prefer the ``gymnasium.wrappers.vector.Vectorize*``
            ones for observations (they transform the final observation of an episode too).
        normalize_observation: normalize observations with their running mean and standard
            deviation (as Stable-Baselines3's ``VecNormalize``), for float observations; the
            statistics are part of the model's checkpoint and frozen outside training.
        normalize_reward: divide rewards by the running standard deviation of the discounted
            return (the algorithm's ``gamma``); episode returns are still logged unscaled.
        clip_observation: normalized observations are clipped to ``[-clip, clip]`` (> 0).
        clip_reward: scaled rewards are clipped to ``[-clip, clip]`` (> 0).
        backend: ``gymnasium`` steps gymnasium environments (``vectorization``); ``torch`` steps
            the batched torch version of a classic-control task (CartPole-v1, Acrobot-v1,
            MountainCar-v0, MountainCarContinuous-v0, Pendulum-v1) on ``device``: the policy, the
            environments and the batches stay there, no NumPy in the loop (see
            :mod:`rl_lightning.envs.batched`). ``env_kwargs`` then take the task's options and
            ``dtype`` (``float32`` or ``float64``); ``wrappers`` are not available. Evaluation,
            video and ``play`` step the same torch task and draw it with gymnasium's renderer.
        device: where ``backend: torch`` environments run: ``auto`` is the device the algorithm
            trains on (each process its own), or ``cpu``, ``cuda``, ``cuda:1``.
    """

    #: Options a checkpoint's state fixes (the running episodes have one row per environment):
    #: resuming with another value is refused, see :meth:`options_fixed_by`.
    fixed_by_checkpoint: tuple[str, ...] = ("num_envs", "backend", *PIPELINE_OPTIONS, *NORMALIZATION_OPTIONS)

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        num_envs: int = 8,
        frames_per_batch: int = 256,
        total_frames: int = 100_000,
        env_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        wrappers: list[dict[str, Any]] | None = None,
        vectorization: Literal["sync", "async"] = "sync",
        vector_wrappers: list[dict[str, Any]] | None = None,
        normalize_observation: bool = False,
        normalize_reward: bool = False,
        clip_observation: float = 10.0,
        clip_reward: float = 10.0,
        backend: Literal["gymnasium", "torch"] = "gymnasium",
        device: str = "auto",
    ) -> None:
        super().__init__()
        if backend not in ("gymnasium", "torch"):
            raise ConfigError(f"data.backend must be 'gymnasium' or 'torch', got {backend!r}.")
        if vectorization not in ("sync", "async"):
            raise ConfigError(f"data.vectorization must be 'sync' or 'async', got {vectorization!r}.")
        if backend == "torch":
            check_torch_env(env_id, env_kwargs)
            for name, value in (("wrappers", wrappers), ("vector_wrappers", vector_wrappers)):
                if value:
                    raise ConfigError(f"data.{name} are gymnasium wrappers, which data.backend torch cannot apply; "
                                      "remove them or use data.backend gymnasium.")
            if vectorization != "sync":
                raise ConfigError("data.vectorization async has no meaning with data.backend torch (one batched "
                                  "environment steps every copy); remove it.")
            try:
                torch.device(device if device != "auto" else "cpu")
            except (RuntimeError, TypeError) as error:
                raise ConfigError(f"data.device {device!r} is not a device (auto, cpu, cuda, cuda:1).") from error
        else:
            resolve_wrappers(wrappers)  # class paths and init_args: errors name data.wrappers[i]
            resolve_wrappers(vector_wrappers, "data.vector_wrappers")
            # makes one, wrapped: unknown kwargs, a missing package or a wrapper that does not fit fail here
            check_env(env_id, env_kwargs, wrappers)
        check_range("data.seed", seed, 0, MAX_SEED, optional=True)
        check_range("data.clip_observation", clip_observation, 0.0, low_open=True)
        check_range("data.clip_reward", clip_reward, 0.0, low_open=True)
        self.save_hyperparameters()
        if num_envs < 1:
            raise ConfigError(f"data.num_envs must be >= 1, got {num_envs}.")
        if frames_per_batch < num_envs or frames_per_batch % num_envs:
            raise ConfigError(
                f"data.frames_per_batch ({frames_per_batch}) must be a positive multiple of "
                f"data.num_envs ({num_envs})."
            )
        if total_frames < 1:
            raise ConfigError(f"data.total_frames must be >= 1, got {total_frames}.")
        self.env_id = env_id
        self.num_envs = num_envs
        self.frames_per_batch = frames_per_batch
        self.total_frames = total_frames
        self.env_kwargs = dict(env_kwargs or {})
        self.seed = seed
        #: the ``data.wrappers`` items as configured (plain mappings, also in the hyperparameters)
        self.wrappers = [dict(w) for w in wrappers or []]
        self.vectorization = vectorization
        self.vector_wrappers = [dict(w) for w in vector_wrappers or []]
        self.normalize_observation, self.normalize_reward = bool(normalize_observation), bool(normalize_reward)
        self.clip_observation, self.clip_reward = float(clip_observation), float(clip_reward)
        self.backend = backend
        self.device = device
        self.env: gym.vector.VectorEnv | TorchVectorEnv | None = None
        self.collector: VectorCollector | TorchCollector | GroupCollector | None = None
        self._spec: EnvSpec | None = None
        self._pending_state: dict[str, Any] | None = None

    # --- environments --------------------------------------------------------------------
    def make_env(self, num_envs: int, render_mode: str | None = None, training: bool = False) -> gym.vector.VectorEnv:
        """A new vector environment of the run's pipeline (id, ``env_kwargs``, ``wrappers``,
        ``vectorization``, ``vector_wrappers``): evaluation and validate/test environments, and
        (``training``: with the ``training_only`` wrappers) the training ones of the gymnasium
        backend. With ``backend: torch``, the torch task on the CPU behind gymnasium's vector interface."""
        if self.backend == "torch":
            return TorchVectorAsGym(make_torch_env(self.env_id, num_envs, "cpu", self.env_kwargs))
        return make_vector_env(self.env_id, num_envs, self.env_kwargs, render_mode, self.wrappers, self.vectorization,
                               self.vector_wrappers, training)

    def make_single_env(self, render_mode: str | None = "rgb_array") -> gym.Env:
        """One environment of the run's pipeline, not vectorized (video, ``play``), without the
        ``training_only`` wrappers."""
        if self.backend == "torch":
            return TorchEnvAsGym(make_torch_env(self.env_id, 1, "cpu", self.env_kwargs), render_mode)
        return make_env(self.env_id, self.env_kwargs, self.wrappers, render_mode)

    @property
    def env_spec(self) -> EnvSpec:
        """Spaces of the environment, read from one instance."""
        if self._spec is None:
            env = self.env or self.make_env(1)
            self._spec = EnvSpec.from_env(self.env_id, env)
            if env is not self.env:
                env.close()
        return self._spec

    @property
    def normalization(self) -> dict[str, Any] | None:
        """The normalization the model builds for this data (plain types, see
        :class:`~rl_lightning.algorithms.normalize.Normalizer`), ``None`` when both are off."""
        if not (self.normalize_observation or self.normalize_reward):
            return None
        return {"observation": self.normalize_observation, "reward": self.normalize_reward,
                "clip_observation": self.clip_observation, "clip_reward": self.clip_reward,
                "num_envs": self.num_envs}

    @property
    def base_seed(self) -> int:
        """``seed``, or the run's ``seed_everything`` value, or 0."""
        if self.seed is not None:
            return self.seed
        return int(os.environ.get("PL_GLOBAL_SEED", "0"))

    @property
    def world_size(self) -> int:
        """Number of collecting processes."""
        return self.trainer.world_size if self.trainer is not None else 1

    @property
    def env_device(self) -> torch.device:
        """Where the training environments run: the CPU for gymnasium; ``device`` for torch
        (``auto``: the trainer's device for this process)."""
        if self.backend != "torch":
            return torch.device("cpu")
        if self.device != "auto":
            return torch.device(self.device)
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def setup(self, stage: str) -> None:
        """Create the training environments."""
        if stage == "fit" and self.env is None:
            if self.backend == "torch":
                self.env = make_torch_env(self.env_id, self.num_envs, self.env_device, self.env_kwargs)
            else:
                self.env = self.make_env(self.num_envs, training=True)

    def connect(self, agent: AgentLink) -> None:
        """Collect with ``agent.policy`` from now on (the explicit hand-over, see
        :mod:`rl_lightning.data.link`). With ``agent.group_size`` set (GRPO), group rollouts (see
        :mod:`rl_lightning.data.group_collector`): one episode per environment per batch, groups of
        that many environments starting from one state; ``frames_per_batch`` is then unused."""
        if self.env is None:
            self.setup("fit")
        rank = self.trainer.global_rank if self.trainer is not None else 0
        seed = self.base_seed + rank * self.num_envs
        if rank:  # same seed_everything on every rank: decorrelate action sampling
            torch.manual_seed(seed)
        group_size = agent.group_size
        if group_size:  # critic-free algorithms: groups of environments start each batch from one state
            if self.num_envs % group_size:
                raise ConfigError(
                    f"data.num_envs ({self.num_envs}) must be a multiple of model.group_size ({group_size}): the "
                    f"environments form groups of {group_size} that start from the same state."
                )
            collector = TorchGroupCollector if self.backend == "torch" else GymGroupCollector
            self.collector = collector(self.env, agent.policy, group_size, seed)
        else:
            collector = TorchCollector if self.backend == "torch" else VectorCollector
            self.collector = collector(self.env, agent.policy, self.frames_per_batch, seed,
                                       initial_memory=agent.initial_memory)
        if self._pending_state is not None:
            self.load_state_dict(self._pending_state)

    def train_dataloader(self) -> DataLoader:
        """Defined by each kind of data module."""
        raise NotImplementedError

    def val_dataloader(self) -> list:
        """One item, so ``validate`` runs the algorithm's evaluation episodes once. Empty
        during ``fit``: evaluation there is the ``Evaluation`` callback, on a frame schedule."""
        fitting = self.trainer is not None and self.trainer.state.fn == "fit"
        return [] if fitting else DataLoader([0], batch_size=None)

    def test_dataloader(self) -> list:
        """As :meth:`val_dataloader`, for ``test``."""
        return self.val_dataloader()

    def teardown(self, stage: str) -> None:
        """Close the environments."""
        if stage == "fit" and self.env is not None:
            self.env.close()
            self.env = None

    # --- counters and statistics -----------------------------------------------------------
    @property
    def frames(self) -> int:
        """Frames collected so far, over all processes."""
        return self.collector.frames * self.world_size if self.collector is not None else 0

    @property
    def collect_seconds(self) -> float:
        """Seconds spent collecting the latest batch."""
        return self.collector.collect_seconds if self.collector is not None else 0.0

    def episode_metrics(self) -> dict[str, float]:
        """Mean return and length of the episodes finished since the last call, over all
        processes (empty if none finished). Collective under DDP: call on every rank."""
        totals = list(self.collector.episode_totals())
        if self.records_games:
            totals += self.collector.game_totals()
        totals = torch.tensor(totals, dtype=torch.float64)
        if self.world_size > 1:
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        ret_sum, len_sum, count, episodes = totals[:4].tolist()
        metrics = {"train/episodes": episodes}
        if count:
            metrics.update({"train/episode_return": ret_sum / count, "train/episode_length": len_sum / count})
        if self.records_games and totals[6] > 0:
            game_return, game_length, games = totals[4:].tolist()
            metrics.update({"train/game_return": game_return / games, "train/game_length": game_length / games})
        return metrics

    @property
    def records_games(self) -> bool:
        """Whether ``data.wrappers`` holds a ``gymnasium.wrappers.RecordEpisodeStatistics``: its
        whole episodes are then logged as ``train/game_return`` and ``train/game_length``."""
        import gymnasium as gym

        if getattr(self, "_records_games", None) is None:
            self._records_games = self.backend == "gymnasium" and any(
                issubclass(w.cls, gym.wrappers.RecordEpisodeStatistics) for w in resolve_wrappers(self.wrappers))
        return self._records_games and hasattr(self.collector, "game_totals")

    @classmethod
    def options_fixed_by(
        cls, saved_options: dict[str, Any], saved_state: dict[str, Any], options: dict[str, Any]
    ) -> list[str]:
        """The options in ``options`` (a config's ``data.init_args``) that differ from the values
        a checkpoint fixes, each as ``"data.<name> (checkpoint <value>, config <value>)"``.

        Args:
            saved_options: the checkpoint's ``datamodule_hyper_parameters``.
            saved_state: the data module's state in the checkpoint.
            options: the options the resuming config gives.
        """
        def plain(name: str, value: Any) -> Any:  # secrets are masked in the checkpoint's copy
            value = scrub_secrets(value)
            return plain_items(value) if name in PIPELINE_OPTIONS else value

        return [
            f"data.{name} (checkpoint {saved_options[name]!r}, config {scrub_secrets(options[name])!r})"
            for name in cls.fixed_by_checkpoint
            if name in saved_options and name in options and plain(name, saved_options[name]) != plain(name, options[name])
        ]

    def state_dict(self) -> dict[str, Any]:
        """The collector's state (counters, running episodes, random-number generators)."""
        return self.collector.state_dict() if self.collector is not None else dict(self._pending_state or {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the collector's state. In a single process the run continues exactly
        (same episodes, same random numbers); under DDP the checkpoint holds rank 0's
        collector only, so every rank restarts its environments from a reset seeded by the
        frame count. A single process refuses a changed ``num_envs`` (:class:`ConfigError`)."""
        if self.collector is None:
            self._pending_state = dict(state_dict)
            return
        self._pending_state = None
        running = state_dict.get("running")
        saved_envs = int(running["obs"].shape[0]) if running is not None else self.num_envs
        if self.world_size == 1 and saved_envs != self.num_envs:
            raise ConfigError(
                f"data.num_envs is {self.num_envs}, but the checkpoint continues {saved_envs} running environments: "
                f"resume with data.num_envs {saved_envs} (the checkpoint fixes it), or start a new run."
            )
        env_state = (running or {}).get("env") or {}
        if self.world_size == 1 and running is not None and not env_state.get("exact", True):
            rank_zero_warn(
                f"resuming {self.env_id} inexactly: the checkpoint could not capture the running episodes "
                f"({env_state.get('reason', 'environment state that is not plain values')}); the environments "
                "restart from a reset seeded by the frame count, so the run continues but not bit-identically."
            )
        self.collector.load_state_dict(state_dict, exact=self.world_size == 1)
