import lightning as L
import pytest
import torch
from tensordict import TensorDict

from rl_lightning.algorithms import PPO
from rl_lightning.callbacks import Evaluation
from rl_lightning.data import OnPolicyDataModule
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError


def trainer(tmp_path, callbacks=(), **kwargs):
    return L.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
        **kwargs,
    )


def test_advantages_match_hand_computed_gae():
    """One env, 3 steps: step 1 is truncated (bootstrap from its final observation),
    step 2 terminates (no bootstrap)."""
    model = PPO(gamma=0.9, gae_lambda=0.5)
    model.connect_spec(EnvSpec("x", (1,), True, n_actions=2))
    obs = torch.tensor([[[0.0], [1.0], [2.0]]])
    next_obs = torch.tensor([[[1.0], [7.0], [3.0]]])  # 7: final obs of the truncated episode
    values = {0.0: 1.0, 1.0: 2.0, 2.0: 3.0, 3.0: 4.0, 7.0: 5.0}

    class Lookup(torch.nn.Module):
        def forward(self, x):
            return x.clone().apply_(lambda v: values[v])

    model.critic = Lookup()
    reward = torch.tensor([[[1.0], [1.0], [1.0]]])
    truncated = torch.tensor([[[False], [True], [False]]])
    terminated = torch.tensor([[[False], [False], [True]]])
    batch = TensorDict(
        {
            "observation": obs,
            "action": torch.zeros(1, 3, dtype=torch.int64),
            "action_log_prob": torch.zeros(1, 3),
            "next": {"observation": next_obs, "reward": reward, "terminated": terminated,
                     "truncated": truncated, "done": terminated | truncated},
        },
        batch_size=[1, 3],
    )
    out = model.compute_advantages(batch)
    g, lam = 0.9, 0.5
    d2 = 1 - 3.0  # terminal: r - V(s2)
    d1 = 1 + g * 5.0 - 2.0  # truncated: bootstrap from V(final obs)
    d0 = 1 + g * 2.0 - 1.0
    a2, a1 = d2, d1  # the episode boundary after step 1 cuts the lambda-return
    a0 = d0 + g * lam * a1
    assert out["advantage"].tolist() == pytest.approx([a0, a1, a2])
    assert out["target"].tolist() == pytest.approx([a0 + 1.0, a1 + 2.0, a2 + 3.0])


def test_python_api_learns_cartpole(tmp_path):
    """Same classes as the CLI, no CLI: CartPole return well above random (~22) in 20k frames."""
    L.seed_everything(1)
    data = OnPolicyDataModule("CartPole-v1", num_envs=8, frames_per_batch=256, total_frames=20_000)
    model = PPO(learning_rate=1e-3, epochs=20, minibatch_size=256, gamma=0.98, gae_lambda=0.8)
    evaluation = Evaluation(every_frames=0, episodes=10)
    trainer(tmp_path, [evaluation], gradient_clip_val=0.5).fit(model, datamodule=data)
    assert data.frames == 20_224  # stops at the first batch boundary past the budget
    assert evaluation.last["eval/return_mean"] > 100


@pytest.mark.parametrize("distribution", ["normal", "beta"])
def test_continuous_actions_learn_a_target(tmp_path, distribution):
    """Slider rewards -(a - 1)^2: the deterministic action moves toward 1 (start: 0 or mid-range)."""
    L.seed_everything(0)
    data = OnPolicyDataModule("tests.helpers.envs:Slider-v0", num_envs=4, frames_per_batch=200, total_frames=6_000)
    model = PPO(distribution=distribution, learning_rate=3e-3, epochs=5, minibatch_size=100, gamma=0.5)
    start = []

    class Start(L.Callback):
        def on_train_start(self, trainer, pl_module):
            start.append(pl_module.act(torch.zeros(1, 2), deterministic=True)["env_action"].item())

    trainer(tmp_path, [Start()]).fit(model, datamodule=data)
    action = model.act(torch.zeros(1, 2), deterministic=True)["env_action"]
    assert abs(start[0]) < 0.1  # untrained: about 0 (the normal's mean, the beta's mid-range)
    assert abs(action.item() - 1.0) < 0.35


def test_categorical_on_continuous_actions_fails_early(tmp_path):
    data = OnPolicyDataModule("Pendulum-v1", num_envs=1, frames_per_batch=8, total_frames=8)
    model = PPO(distribution="categorical")
    with pytest.raises(ConfigError, match="continuous action space of 'Pendulum-v1'"):
        trainer(tmp_path).fit(model, datamodule=data)


def test_invalid_hyperparameters_name_the_key():
    with pytest.raises(ConfigError, match="model.minibatch_size"):
        PPO(minibatch_size=0)
    with pytest.raises(ConfigError, match="data.frames_per_batch"):
        OnPolicyDataModule(num_envs=8, frames_per_batch=100)


def value_loss(value_clip, new_value, old_value, target):
    """The value-loss statistic of one minibatch whose critic predicts ``new_value``."""
    model = PPO(value_clip=value_clip)
    model.connect_spec(EnvSpec("x", (1,), True, n_actions=2))

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1), new_value)

    model.critic = Constant()
    mb = {"obs": torch.zeros(4, 1), "action": torch.zeros(4, dtype=torch.int64), "log_prob": torch.full((4,), -0.7),
          "advantage": torch.tensor([1.0, -1.0, 0.5, 0.0]), "target": torch.full((4,), target),
          "value": torch.full((4,), old_value)}
    _, stats = model.compute_loss(mb)
    return stats[1].item()


def test_value_clip_keeps_the_new_value_near_the_old_one():
    # the critic jumped from 1.0 to 5.0; the target is 0: clipped at 1.0 + 0.1
    assert value_loss(0.1, 5.0, 1.0, 0.0) == pytest.approx(1.1 ** 2)
    assert value_loss(None, 5.0, 1.0, 0.0) == pytest.approx(25.0)
    # within the clip distance the prediction is used as it is
    assert value_loss(0.5, 1.2, 1.0, 0.0) == pytest.approx(1.2 ** 2)
