"""PPO with recurrent (LSTM or GRU) policies and critics, for partially observed tasks.

Run it (CartPole with its velocities hidden; a policy without memory cannot balance it)::

    python -m rl_lightning fit --config configs/recurrent_ppo.yaml

Reference matched: sb3-contrib's ``RecurrentPPO`` with RL Zoo's ``CartPoleNoVel-v1`` settings
(a 64-unit LSTM for the actor and one for the critic, (64) ReLU heads, observation
normalization). What differs from it: minibatches are fixed-length chunks of each
environment's rollout (``sequence_length``), not sequences cut at episode starts and padded;
inside a chunk the memory is reset where an episode starts, so no frame is padding.

How the memory flows:

* collecting: the collector keeps each environment's memory (``initial_memory``), resets it
  where an episode starts and stores ``is_init`` and the memory every step started from in the
  batch (``RLModule.collect_policy``); the running memory is part of the checkpoint, so resume
  is exact;
* advantages: the critic is unrolled over each environment's rollout from the memory of its
  first step (no gradient);
* updates: each chunk is unrolled from the memory stored at its first step (computed by the
  weights that collected it, as in the reference), with resets inside the chunk;
* evaluation, video and ``play`` step the policy one observation at a time with its memory
  (``step_policy``), starting each episode from zero memory.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import torch
from torch import nn
from torch.distributions import Distribution
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from rl_lightning.algorithms.base import MEMORY_PREFIX, reset_memory
from rl_lightning.algorithms.ppo import PPO
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError
from rl_lightning.networks.actor import StochasticActor

Cell = Literal["lstm", "gru"]
Memory = dict[str, torch.Tensor]


class RecurrentPPO(PPO):
    """PPO whose actor (and critic) read a recurrent memory of the episode so far: encoder ->
    LSTM/GRU -> head. Takes every :class:`PPO` option (``--model.help RecurrentPPO`` lists them);
    ``actor_net`` / ``critic_net`` are the heads over the recurrent features, ``minibatch_size``
    counts frames (``minibatch_size // sequence_length`` chunks per gradient step) and
    ``share_encoder`` is not available (see ``shared_rnn``).

    Args:
        cell: ``lstm`` or ``gru``.
        hidden_size: features of the recurrent layer(s).
        num_layers: stacked recurrent layers.
        shared_rnn: one recurrent core for actor and critic (trained by both losses); by
            default the critic has its own encoder and recurrent core.
        sequence_length: frames per training chunk, a divisor of the steps each environment
            takes per batch (``data.frames_per_batch / data.num_envs``); ``None`` is that
            number (one chunk per environment and batch).
    """

    def __init__(
        self,
        cell: Cell = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        shared_rnn: bool = False,
        sequence_length: int | None = None,
        **ppo_options: Any,
    ) -> None:
        if cell not in ("lstm", "gru"):
            raise ConfigError(f"model.cell must be 'lstm' or 'gru', got {cell!r}.")
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if value < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {value}.")
        if sequence_length is not None and sequence_length < 1:
            raise ConfigError(f"model.sequence_length must be >= 1, got {sequence_length}.")
        if ppo_options.get("share_encoder"):
            raise ConfigError("model.share_encoder is not available for RecurrentPPO: use model.shared_rnn.")
        super().__init__(**ppo_options)

    # --- networks ------------------------------------------------------------------------
    def build(self, spec: EnvSpec) -> None:
        """Actor: ``actor_encoder`` -> ``actor_rnn`` -> policy head; critic: ``critic_encoder`` ->
        ``critic_rnn`` -> ``critic`` (or the actor's core with ``shared_rnn``)."""
        hp = self.hparams
        rnn = nn.LSTM if hp.cell == "lstm" else nn.GRU
        self.actor_encoder, features = self.make_encoder(self.encoder_builder)
        self.actor_rnn = rnn(features, hp.hidden_size, hp.num_layers, batch_first=True)
        self.actor = StochasticActor(spec, self.actor_builder, hp.distribution, hp.log_std_init, nn.Identity(),
                                     hp.hidden_size)
        if not hp.shared_rnn:
            self.critic_encoder, features = self.make_encoder(self.encoder_builder)
            self.critic_rnn = rnn(features, hp.hidden_size, hp.num_layers, batch_first=True)
        self.critic = self.critic_builder(hp.hidden_size, 1)

    def setup(self, stage: str) -> None:
        """As :class:`PPO`; the chunk length must divide each environment's steps per batch."""
        super().setup(stage)
        frames, envs = getattr(self.data, "frames_per_batch", None), getattr(self.data, "num_envs", None)
        length = self.hparams.sequence_length
        if stage == "fit" and frames and envs and length and (frames // envs) % length:
            raise ConfigError(
                f"model.sequence_length ({length}) must divide the steps each environment takes per batch, "
                f"data.frames_per_batch / data.num_envs = {frames // envs}."
            )

    def _cores(self) -> list[tuple[str, nn.Module, nn.Module]]:
        """``(name, encoder, recurrent core)`` of the actor, and of the critic unless shared."""
        cores = [("actor", self.actor_encoder, self.actor_rnn)]
        if not self.hparams.shared_rnn:
            cores.append(("critic", self.critic_encoder, self.critic_rnn))
        return cores

    def initial_memory(self, batch_size: int) -> Memory:
        """Zero memory for ``batch_size`` new episodes: ``<core>_h`` (and ``<core>_c`` for an
        LSTM) per core, ``[batch_size, num_layers, hidden_size]``."""
        hp = self.hparams
        names = ("h", "c") if hp.cell == "lstm" else ("h",)
        shape = (batch_size, hp.num_layers, hp.hidden_size)
        return {f"{core}_{n}": torch.zeros(shape, device=self.device) for core, _, _ in self._cores() for n in names}

    def _state(self, memory: Memory, core: str) -> Any:
        """The core's memory as ``nn.LSTM`` / ``nn.GRU`` take it (``[layers, batch, hidden]``)."""
        h = memory[f"{core}_h"].transpose(0, 1).contiguous()
        return (h, memory[f"{core}_c"].transpose(0, 1).contiguous()) if self.hparams.cell == "lstm" else h

    def _memory(self, state: Any, core: str) -> Memory:
        """Inverse of :meth:`_state`."""
        if self.hparams.cell == "lstm":
            return {f"{core}_h": state[0].transpose(0, 1), f"{core}_c": state[1].transpose(0, 1)}
        return {f"{core}_h": state.transpose(0, 1)}

    def _core_memory(self, memory: Memory, core: str) -> Memory:
        return {k: v for k, v in memory.items() if k.startswith(core + "_")}

    def unroll(
        self, core: str, obs: torch.Tensor, memory: Memory, is_init: torch.Tensor
    ) -> tuple[torch.Tensor, Memory]:
        """Run one core over sequences: observations ``[batch, time, *shape]`` (preprocessed)
        from ``memory`` (``[batch, ...]``), reset where ``is_init`` (``[batch, time]``) is True.
        Returns the features ``[batch, time, hidden_size]`` and the memory after the last step.

        The sequences are cut only at the time steps where some episode starts: each piece is one
        ``nn.LSTM`` / ``nn.GRU`` call, with the starting rows' memory zeroed."""
        encoder, rnn = {name: (e, r) for name, e, r in self._cores()}[core]
        x = self.encode(encoder, obs)
        memory = self._core_memory(memory, core)
        cuts = is_init.any(0)
        cuts[0] = True
        bounds = [*torch.nonzero(cuts).flatten().tolist(), obs.shape[1]]
        pieces = []
        for start, end in itertools.pairwise(bounds):
            memory = reset_memory(memory, is_init[:, start])
            y, state = rnn(x[:, start:end], self._state(memory, core))
            memory = self._memory(state, core)
            pieces.append(y)
        return torch.cat(pieces, 1), memory

    # --- acting --------------------------------------------------------------------------
    def step_policy(
        self, obs: torch.Tensor, memory: Memory | None, is_init: torch.Tensor, deterministic: bool = False
    ) -> tuple[dict[str, torch.Tensor], Memory]:
        """One step of every core on a batch of observations (``[batch, *shape]``); the memory
        of the rows in ``is_init`` is reset first (``None``: all new episodes)."""
        if memory is None:
            memory = self.initial_memory(obs.shape[0])
        obs = self.preprocess(obs)[:, None]
        steps = is_init[:, None]
        after: Memory = {}
        features = None
        for core, _, _ in self._cores():
            y, core_after = self.unroll(core, obs, memory, steps)
            after.update(core_after)
            if features is None:
                features = y[:, 0]
        return self.actor.act_on_features(features, deterministic), after

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """Act on observations as the first step of new episodes (zero memory); callers that
        follow episodes use :meth:`step_policy`."""
        is_init = torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device)
        return self.step_policy(obs, None, is_init, deterministic)[0]

    # --- training ------------------------------------------------------------------------
    def _values(self, obs: torch.Tensor, memory: Memory, is_init: torch.Tensor) -> torch.Tensor:
        core = "actor" if self.hparams.shared_rnn else "critic"
        features, _ = self.unroll(core, obs, memory, is_init)
        return self.critic(features)

    @torch.no_grad()
    def compute_advantages(self, batch) -> dict[str, torch.Tensor]:
        """GAE advantages and value targets of a collected batch (``[envs, steps]``), cut into
        chunks of ``sequence_length``: entries ``[chunks, sequence_length, ...]``, plus
        ``is_init`` and each chunk's starting memory (``memory_<name>``, ``[chunks, ...]``).

        The critic is unrolled over each environment's whole rollout; the value after an
        episode's last step (time-limit bootstrap) and after the rollout's last step continue the
        memory of the step before."""
        hp = self.hparams
        obs = self.preprocess(batch["observation"])
        next_obs = self.preprocess(batch["next", "observation"])
        is_init = batch["is_init"]
        memory = {k[len(MEMORY_PREFIX):]: batch[k] for k in batch.keys() if k.startswith(MEMORY_PREFIX)}
        start = {k: v[:, 0] for k, v in memory.items()}
        core = "actor" if hp.shared_rnn else "critic"
        envs, steps = is_init.shape
        # one step at a time: the memory after every step feeds the next-observation values
        values, next_values = [], torch.empty(envs, steps, 1, device=obs.device)
        fresh = batch["next", "done"].squeeze(-1).clone()
        fresh[:, -1] = True
        state = self._core_memory(start, core)
        for t in range(steps):
            y, state = self.unroll(core, obs[:, t : t + 1], state, is_init[:, t : t + 1])
            values.append(self.critic(y[:, 0]))
            rows = fresh[:, t]
            if rows.any():
                no_reset = torch.zeros(int(rows.sum()), 1, dtype=torch.bool, device=obs.device)
                y_next, _ = self.unroll(core, next_obs[rows, t : t + 1], {k: v[rows] for k, v in state.items()},
                                        no_reset)
                next_values[rows, t] = self.critic(y_next[:, 0])
        value = torch.stack(values, 1)
        later = ~fresh
        next_values[:, :-1][later[:, :-1]] = value[:, 1:][later[:, :-1]]
        self.observe_batch(batch)
        reward = batch["next", "reward"] if self.normalizer is None else self.normalizer.rewards(batch["next", "reward"])
        advantage, target = vec_generalized_advantage_estimate(
            hp.gamma, hp.gae_lambda, value, next_values, reward, batch["next", "done"], batch["next", "terminated"]
        )
        self._explained_variance = float(1 - (target - value).var() / target.var().clamp_min(1e-8))
        length = hp.sequence_length or steps

        def chunks(x: torch.Tensor) -> torch.Tensor:  # [envs, steps, ...] -> [chunks, length, ...]
            return x.reshape(envs * (steps // length), length, *x.shape[2:])

        out = {
            "obs": chunks(obs),
            "action": chunks(batch["action"]),
            "log_prob": chunks(batch["action_log_prob"]),
            "advantage": chunks(advantage.squeeze(-1)),
            "target": chunks(target.squeeze(-1)),
            "value": chunks(value.squeeze(-1)),
            "is_init": chunks(is_init),
        }
        out.update({MEMORY_PREFIX + k: chunks(v)[:, 0] for k, v in memory.items()})
        return out

    def _minibatches(self, data: dict[str, torch.Tensor]):
        """``epochs`` shuffled passes over whole chunks (``minibatch_size // sequence_length``
        per step); per-frame entries are flattened to ``[frames]``. Yields ``(minibatch, is_last)``."""
        epochs = self.hparams.epochs
        chunks, length = data["is_init"].shape
        size = max(1, self.hparams.minibatch_size // length)
        sequences = {"obs", "is_init"}
        for epoch in range(epochs):
            order = torch.randperm(chunks, device=self.device)
            for start in range(0, chunks, size):
                index = order[start : start + size]
                last = epoch == epochs - 1 and start + size >= chunks
                mb = {}
                for key, value in data.items():
                    picked = value[index]
                    keep = key in sequences or key.startswith(MEMORY_PREFIX)
                    mb[key] = picked if keep else picked.flatten(0, 1)
                yield mb, last

    def policy_and_value(self, mb: dict[str, torch.Tensor]) -> tuple[Distribution, torch.Tensor]:
        """Unroll the cores over the minibatch's chunks from their stored memory."""
        memory = {k[len(MEMORY_PREFIX):]: v for k, v in mb.items() if k.startswith(MEMORY_PREFIX)}
        features, _ = self.unroll("actor", mb["obs"], memory, mb["is_init"])
        features = features.flatten(0, 1)
        dist = self.actor.dist_from_features(features)
        if self.hparams.shared_rnn:
            return dist, self.critic(features).squeeze(-1)
        return dist, self._values(mb["obs"], memory, mb["is_init"]).flatten(0, 1).squeeze(-1)
