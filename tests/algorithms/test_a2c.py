import math

import lightning as L
import pytest
import torch
from tensordict import TensorDict

from rl_lightning.algorithms import A2C
from rl_lightning.data import OnPolicyDataModule
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError
from tests.test_cli import CONFIGS, rows, run_cli

A2C_YAML = str(CONFIGS / "a2c.yaml")


def trainer(tmp_path, callbacks=(), **kwargs):
    return L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, callbacks=list(callbacks), **kwargs)


class Lookup(torch.nn.Module):
    """A critic that reads its value from a table keyed by the (one-entry) observation."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def forward(self, x):
        return x.clone().apply_(lambda v: self.values[v])


def test_gae_lambda_one_gives_discounted_bootstrapped_returns():
    """Two envs, 4 steps. Env 0: step 1 is truncated (bootstrap from its final observation), the
    batch ends mid-episode (bootstrap from the next observation). Env 1: step 1 terminates."""
    model = A2C(gamma=0.9)  # gae_lambda 1 by default
    model.connect_spec(EnvSpec("x", (1,), True, n_actions=2))
    obs = torch.tensor([[[0.0], [1.0], [2.0], [3.0]], [[10.0], [11.0], [12.0], [13.0]]])
    next_obs = torch.tensor([[[1.0], [7.0], [3.0], [4.0]], [[11.0], [17.0], [13.0], [14.0]]])
    values = {0.0: 1.0, 1.0: 2.0, 2.0: 3.0, 3.0: 4.0, 4.0: 6.0, 7.0: 5.0,
              10.0: 0.5, 11.0: 1.5, 12.0: 2.5, 13.0: 3.5, 14.0: 8.0, 17.0: 99.0}
    model.critic = Lookup(values)
    reward = torch.tensor([[[1.0], [2.0], [3.0], [4.0]], [[1.0], [1.0], [1.0], [1.0]]])
    truncated = torch.zeros(2, 4, 1, dtype=torch.bool)
    terminated = torch.zeros(2, 4, 1, dtype=torch.bool)
    truncated[0, 1] = terminated[1, 1] = True
    batch = TensorDict({
        "observation": obs, "action": torch.zeros(2, 4, dtype=torch.int64), "action_log_prob": torch.zeros(2, 4),
        "next": {"observation": next_obs, "reward": reward, "terminated": terminated, "truncated": truncated,
                 "done": terminated | truncated},
    }, batch_size=[2, 4])
    out = model.compute_advantages(batch)
    g = 0.9
    r3 = 4 + g * 6.0  # batch end: bootstrap from V(next obs)
    r2 = 3 + g * r3
    r1 = 2 + g * 5.0  # truncated: bootstrap from V(final obs), not from the next episode
    r0 = 1 + g * r1
    q3 = 1 + g * 8.0
    q2 = 1 + g * q3
    q1 = 1.0  # terminated: no bootstrap (V = 99 of the final obs is ignored)
    q0 = 1 + g * q1
    assert out["target"].tolist() == pytest.approx([r0, r1, r2, r3, q0, q1, q2, q3])
    assert out["advantage"].tolist() == pytest.approx(
        [r0 - 1, r1 - 2, r2 - 3, r3 - 4, q0 - 0.5, q1 - 1.5, q2 - 2.5, q3 - 3.5])


def test_loss_matches_a_hand_computation():
    """Policy loss -(A * log pi).mean(), value loss MSE weighted 0.5, entropy bonus; no normalization."""
    model = A2C(entropy_coef=0.1)
    model.connect_spec(EnvSpec("x", (1,), True, n_actions=2))

    class Logits(torch.nn.Module):  # pi = (0.25, 0.75) everywhere
        def forward(self, x):
            return torch.log(torch.tensor([[0.25, 0.75]])).expand(x.shape[0], 2)

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1), 2.0)

    model.actor.net, model.critic = Logits(), Constant()
    data = {"obs": torch.zeros(3, 1), "action": torch.tensor([0, 1, 1]), "advantage": torch.tensor([1.0, -2.0, 0.5]),
            "target": torch.tensor([1.0, 2.0, 5.0])}
    loss, stats = model.compute_loss(data)
    policy = -(1.0 * math.log(0.25) - 2.0 * math.log(0.75) + 0.5 * math.log(0.75)) / 3
    value = ((2 - 1) ** 2 + 0 + (2 - 5) ** 2) / 3
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert stats.tolist() == pytest.approx([policy, value, -entropy])
    assert loss.item() == pytest.approx(policy + 0.5 * value - 0.1 * entropy)
    # normalized advantages (the option) change the policy loss only
    model.hparams.normalize_advantage = True
    _, normalized = model.compute_loss(data)
    assert normalized[0].item() != pytest.approx(policy) and normalized[1:].tolist() == pytest.approx([value, -entropy])


def test_one_rmsprop_step_per_collected_batch(tmp_path):
    L.seed_everything(0)
    data = OnPolicyDataModule("CartPole-v1", num_envs=4, frames_per_batch=20, total_frames=200)
    model = A2C()
    trainer(tmp_path, gradient_clip_val=0.5).fit(model, datamodule=data)
    assert data.frames == 200
    optimizer = model.optimizers().optimizer
    assert type(optimizer) is torch.optim.RMSprop
    group = optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"]) == (7e-4, 0.99, 1e-5)
    assert model.trainer.global_step == 10  # 10 batches of 20 frames, one optimizer step each
    steps = {float(state["step"]) for state in optimizer.state.values()}
    assert steps == {10.0}


def test_optimizer_option_and_linear_schedule(tmp_path):
    data = OnPolicyDataModule("CartPole-v1", num_envs=4, frames_per_batch=20, total_frames=200)
    model = A2C(optimizer=lambda params: torch.optim.Adam(params, lr=0.5), learning_rate=1e-3, lr_schedule="linear")
    trainer(tmp_path).fit(model, datamodule=data)
    optimizer = model.optimizers().optimizer
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # decayed over the 200 frames


@pytest.mark.parametrize("distribution", ["normal", "beta"])
def test_continuous_actions_learn_a_target(tmp_path, distribution):
    """Slider rewards -(a - 1)^2: the deterministic action moves from about 0 toward 1."""
    L.seed_everything(0)
    data = OnPolicyDataModule("tests.helpers.envs:Slider-v0", num_envs=4, frames_per_batch=40, total_frames=6_000)
    model = A2C(distribution=distribution, learning_rate=3e-3, gamma=0.5, normalize_advantage=True)
    trainer(tmp_path, gradient_clip_val=0.5).fit(model, datamodule=data)
    action = model.act(torch.zeros(1, 2), deterministic=True)["env_action"]
    assert abs(action.item() - 1.0) < 0.35


def test_cli_fit_logs_the_a2c_metrics_and_help_lists_only_a2c_options(in_tmp, capsys):
    run_cli("fit", "--config", A2C_YAML, "--data.total_frames", "2000", "--evaluation.every_frames", "1000",
            "--evaluation.episodes", "2", "--checkpoint.every_frames", "1000", "--progress_bar.refresh_rate", "0", "--experiment", "a2c")
    (run,) = (in_tmp / "experiments" / "a2c").iterdir()
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    # SB3's settings, none of PPO's (the CLI's default model) carried over
    assert {k: hparams[k] for k in ("learning_rate", "gae_lambda", "normalize_advantage", "gamma")} == {
        "learning_rate": 7e-4, "gae_lambda": 1.0, "normalize_advantage": False, "gamma": 0.99}
    assert not {"epochs", "clip_range", "minibatch_size"} & set(hparams)
    metrics = rows(run / "metrics.csv")
    assert float(metrics[-1]["frames"]) == 2000
    assert len(metrics) == 2  # the config writes a row every 1000 frames (the evaluation rows)
    for key in ("loss/policy", "loss/value", "loss/entropy", "train/explained_variance", "train/lr"):
        assert metrics[-1][key] != "", key
    assert [r["frames"] for r in metrics if r.get("eval/return_mean")] == ["1000.0", "2000.0"]
    assert (run / "checkpoints" / "last.ckpt").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_cli("fit", "--model.help", "A2C")
    out = capsys.readouterr().out
    assert "--model.value_coef" in out and "RMSprop" in out
    for ppo_only in ("clip_range", "epochs", "minibatch_size", "value_clip", "clip_schedule"):
        assert ppo_only not in out, ppo_only


def test_invalid_hyperparameters_name_the_key():
    with pytest.raises(ConfigError, match="model.gae_lambda"):
        A2C(gae_lambda=1.5)
    with pytest.raises(ConfigError, match="model.learning_rate"):
        A2C(learning_rate=0.0)
