"""On-policy data: batches freshly collected with the current policy."""

from __future__ import annotations

from torch.utils.data import DataLoader

from rl_lightning.data.base import EnvDataModule, identity_collate


class OnPolicyDataModule(EnvDataModule):
    """Batches of fresh experience, each collected with the current policy and used once.

    Training stops once ``total_frames`` frames were collected (over all processes); each
    process collects ``frames_per_batch`` frames per batch from ``num_envs`` environments,
    seeded ``seed + rank * num_envs + i``.

    Args:
        env_id: Gymnasium environment id, e.g. ``CartPole-v1``; ``module:Name-v0`` imports
            ``module`` (which registers the environment) first.
        num_envs: environments stepped together in this process (in-process vector env).
        frames_per_batch: frames per collected batch per process; a multiple of ``num_envs``
            (``frames_per_batch / num_envs`` steps per environment).
        total_frames: training budget in environment frames, over all processes.
        env_kwargs: keyword arguments for ``gymnasium.make``, e.g. ``{max_episode_steps: 200}``.
        seed: seed of the environments; ``None`` takes the run's ``seed_everything``.
        wrappers: Gymnasium wrappers around each environment, in order, each ``{class_path: ...,
            init_args: {...}}``, e.g. ``{class_path: gymnasium.wrappers.ResizeObservation, init_args:
            {shape: [84, 84]}}``; every environment of the run (training, evaluation, video, play)
            gets them; one that renders (``AddRenderObservation``) makes it with ``render_mode=rgb_array``.
        vectorization: ``sync`` (in this process) or ``async`` (one subprocess per environment,
            gymnasium ``AsyncVectorEnv``; a resume then restarts the running episodes).
        vector_wrappers: Gymnasium vector wrappers around the vector environment, same form.
        normalize_observation: normalize observations with their running mean and standard
            deviation (as Stable-Baselines3's ``VecNormalize``), for float observations; the
            statistics are part of the model's checkpoint and frozen outside training.
        normalize_reward: divide rewards by the running standard deviation of the discounted
            return (the algorithm's ``gamma``); episode returns are still logged unscaled.
        clip_observation: normalized observations are clipped to ``[-clip, clip]`` (> 0).
        clip_reward: scaled rewards are clipped to ``[-clip, clip]`` (> 0).
    """

    def train_dataloader(self) -> DataLoader:
        """The collector as an endless stream of batches."""
        if self.collector is None:
            raise RuntimeError("connect(agent) must run before training (the algorithm's setup does it).")
        return DataLoader(self.collector, batch_size=None, collate_fn=identity_collate, num_workers=0)

