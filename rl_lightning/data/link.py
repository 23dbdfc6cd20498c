"""The interface between an algorithm and the data module it trains on, both ways.

An algorithm (``RLModule``) hands its data module an :class:`AgentLink` in ``setup``
(``datamodule.connect(module.link())``): the policy to collect with and the few facts about the
algorithm the data side needs. The data module keeps nothing else of the algorithm: it never
reads the module's attributes or hyperparameters.

The other way, an algorithm uses only what :class:`TrainingData` lists of its data module,
through ``RLModule.data``: the frame counters and budget, the collection statistics of the
latest batch, evaluation environments, and (replay) priority updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from rl_lightning.data.collector import MemoryFactory, Policy
    from rl_lightning.envs import EnvSpec


@dataclass(frozen=True)
class AgentLink:
    """What a data module uses of the algorithm that trains on it.

    Args:
        policy: the acting policy (``RLModule.collect_policy``): observations -> outputs with
            ``action`` and ``env_action``; with ``initial_memory``, ``policy(obs, memory,
            is_init) -> (outputs, memory after)``.
        spec: the environment spec the algorithm's networks were built for (random warm-up
            actions of replay data are drawn from it).
        gamma: the algorithm's discount (n-step returns in replay buffers).
        observe_batch: called with each collected batch before it is stored (normalization
            statistics), or ``None``.
        initial_memory: a recurrent policy's memory for new episodes, or ``None``.
        group_size: group rollouts of this many environments from one state (GRPO), or ``None``.
    """

    policy: Policy | None
    spec: EnvSpec | None = None
    gamma: float = 0.99
    observe_batch: Callable[[Any], None] | None = None
    initial_memory: MemoryFactory | None = None
    group_size: int | None = None


class TrainingData(Protocol):
    """What an algorithm uses of its data module (``RLModule.data``)."""

    #: environment frames collected so far, over all processes
    frames: int
    #: the frame budget (``data.total_frames``)
    total_frames: int
    #: seconds the latest collection took
    collect_seconds: float
    #: frames per collected batch and environments per process (for the algorithms' config
    #: checks; group rollouts have no fixed batch)
    frames_per_batch: int
    num_envs: int

    def episode_metrics(self) -> dict[str, float]:
        """``train/episode_*`` statistics of the episodes finished since the last call."""

    def make_env(self, num_envs: int) -> Any:
        """Evaluation environments through the run's pipeline."""

    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        """New priorities of sampled replay rows (prioritized replay; a no-op otherwise)."""
