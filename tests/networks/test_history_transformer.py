"""HistoryTransformer: a causal transformer over stacked recent observations."""

import pytest
import torch

from rl_lightning.data import OnPolicyDataModule
from rl_lightning.errors import ConfigError
from rl_lightning.networks import HistoryTransformer
from rl_lightning.networks.encoders import encode, feature_size, looks_like_image
from tests.test_cli import CONFIGS, PPO, rows, run_cli

HISTORY = str(CONFIGS / "env" / "cartpole_novel_history.yaml")
WRAPPERS = [{"class_path": "rl_lightning.envs.partial.MaskVelocity"},
            {"class_path": "gymnasium.wrappers.FrameStackObservation", "init_args": {"stack_size": 8}}]


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_shapes(positional):
    net = HistoryTransformer((8, 4), d_model=16, heads=4, layers=2, dim_feedforward=32, positional=positional)
    obs = torch.randn(5, 8, 4)
    assert net(obs).shape == (5, 16)
    assert net.tokens(obs).shape == (5, 8, 16)
    assert feature_size(net, (8, 4)) == 16
    assert encode(net, torch.randn(3, 5, 8, 4), 2).shape == (3, 5, 16)  # [envs, steps] batches
    learned = sum(p.numel() for p in net.parameters() if p.dim() == 2 and p.shape == (8, 16))
    assert (learned > 0) == (positional == "learned")


def test_attention_is_causal():
    """Changing step j changes the features of steps >= j and none before; the output (the last
    step's) depends on every step of the window, the oldest included."""
    torch.manual_seed(0)
    net = HistoryTransformer((6, 3), layers=2)
    obs = torch.randn(4, 6, 3)
    before = net.tokens(obs)
    for j in range(6):
        changed = obs.clone()
        changed[:, j] += 1.0
        after = net.tokens(changed)
        torch.testing.assert_close(after[:, :j], before[:, :j], rtol=0, atol=1e-6)
        assert (after[:, j:] - before[:, j:]).abs().amax(-1).min() > 1e-4
    oldest = obs.clone()
    oldest[:, 0] = 0.0
    assert not torch.allclose(net(oldest), net(obs))


def test_positions_matter():
    """The same observations in another order give other features (the encoding tells steps apart)."""
    torch.manual_seed(0)
    net = HistoryTransformer((4, 2))
    obs = torch.randn(2, 4, 2)
    obs[:, -1] = 0.5  # same last step, the older ones reversed
    assert not torch.allclose(net(obs), net(torch.cat([obs[:, :3].flip(1), obs[:, 3:]], 1)))


def test_bad_input_is_refused_with_the_option():
    with pytest.raises(ConfigError, match="FrameStackObservation"):
        HistoryTransformer((4,))
    with pytest.raises(ConfigError, match=r"d_model \(30\) must be a multiple of heads \(4\)"):
        HistoryTransformer((8, 4), d_model=30, heads=4)
    with pytest.raises(ConfigError, match="model.encoder.init_args.layers"):
        HistoryTransformer((8, 4), layers=0)


def test_stacked_float_observations_are_not_images_and_start_padded():
    """[K, D] float stacks go to vector encoders (only integer 2-D arrays look like images); at an
    episode's start FrameStackObservation repeats the reset observation, velocities masked."""
    assert not looks_like_image((8, 4), "float32") and looks_like_image((8, 4), "uint8")
    data = OnPolicyDataModule("CartPole-v1", num_envs=2, frames_per_batch=2, total_frames=2, wrappers=WRAPPERS)
    spec = data.env_spec
    assert tuple(spec.observation_shape) == (8, 4) and spec.observation_dtype == "float32"
    env = data.make_env(2)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    assert obs.shape == (2, 8, 4)
    assert (obs == obs[:, :1]).all()  # 8 copies of the reset observation
    assert (obs[..., [1, 3]] == 0).all()


def test_ppo_fits_with_the_history_overlay(in_tmp):
    """Collection, evaluation, checkpoints and video all take [K, D] observations."""
    run_cli("fit", "--config", PPO, "--config", str(CONFIGS / "env" / "cartpole_novel.yaml"), "--config", HISTORY,
            "--data.total_frames", "512", "--evaluation.every_frames", "256", "--evaluation.episodes", "2",
            "--checkpoint.every_frames", "256", "--progress_bar.refresh_rate", "0", "--experiment", "history",
            "--trainer.callbacks+=rl_lightning.callbacks.Video", "--trainer.callbacks.every_evaluations", "2",
            "--trainer.callbacks.max_frames", "20")
    (run,) = (in_tmp / "experiments" / "history").iterdir()
    metrics = rows(run / "metrics.csv")
    assert float(metrics[-1]["frames"]) == 512 and metrics[-1]["eval/return_mean"]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuple(checkpoint["rl_lightning"]["env_spec"]["observation_shape"]) == (8, 4)
    assert any(key.startswith("actor.encoder.layers.") for key in checkpoint["state_dict"])
    assert list(run.rglob("*.mp4"))
