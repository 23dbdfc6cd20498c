"""Algorithms with encoders through the CLI: CNNs learn tiny image tasks, a user's encoder
runs from YAML, SAC/TD3 with CNN encoders fit and resume; MultiDiscrete/MultiBinary actions."""

import json

import gymnasium as gym
import lightning as L
import numpy as np
import pytest
import torch
import yaml

from rl_lightning.algorithms import DQN, PPO, SAC, TD3
from rl_lightning.callbacks import Evaluation
from rl_lightning.cli import main
from rl_lightning.data import OnPolicyDataModule, ReplayDataModule
from rl_lightning.envs import EnvSpec
from rl_lightning.envs.gym import EnvError
from rl_lightning.errors import ConfigError
from tests.helpers import image_envs, multi_envs  # noqa: F401  (registers the environments)

PIXELS = "tests.helpers.image_envs:PixelChoice-v0"
QUIET = ["--progress_bar.refresh_rate", "0"]


def write(path, config):
    path.write_text(yaml.safe_dump(config))
    return str(path)


def final_eval(run):
    return json.loads((run / "metadata.json").read_text())


def ppo_config(encoder, env_kwargs=None, total=2048):
    return {
        "seed_everything": 0,
        "model": {"class_path": "rl_lightning.algorithms.PPO", "init_args": {
            "encoder": encoder, "share_encoder": True, "learning_rate": 0.001, "epochs": 4,
            "minibatch_size": 64, "gamma": 0.5, "entropy_coef": 0.01}},
        "data": {"class_path": "rl_lightning.data.OnPolicyDataModule", "init_args": {
            "env_id": PIXELS, "env_kwargs": env_kwargs or {}, "num_envs": 4, "frames_per_batch": 128,
            "total_frames": total}},
        "evaluation": {"every_frames": total, "episodes": 10},
    }


def last_eval(in_tmp, experiment):
    (run,) = (in_tmp / "experiments" / experiment).iterdir()
    import csv

    with open(run / "metrics.csv", newline="") as file:
        rows = [r for r in csv.DictReader(file) if r.get("eval/return_mean")]
    return run, float(rows[-1]["eval/return_mean"])


def test_ppo_with_a_shared_nature_cnn_learns_pixel_choice(in_tmp):
    """Best return 8, random 4; ~10 s on one core."""
    config = write(in_tmp / "ppo.yaml", ppo_config(
        {"class_path": "rl_lightning.networks.NatureCNN", "init_args": {"features_dim": 64}}))
    main(["fit", "--config", config, *QUIET, "--experiment", "pix"])
    run, ret = last_eval(in_tmp, "pix")
    assert ret >= 7.5
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]["encoder"]
    assert saved == {"class_path": "rl_lightning.networks.NatureCNN",
                     "init_args": {"features_dim": 64, "channels_last": None}}
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert "actor.encoder.cnn.0.weight" in ckpt["state_dict"] and "encoder" not in ckpt["hyper_parameters"]


def test_dqn_with_nature_cnn_learns_pixel_choice(in_tmp):
    config = write(in_tmp / "dqn.yaml", {
        "seed_everything": 0,
        "model": {"class_path": "rl_lightning.algorithms.DQN", "init_args": {
            "encoder": {"class_path": "rl_lightning.networks.NatureCNN", "init_args": {"features_dim": 64}},
            "q_net": {"class_path": "rl_lightning.networks.MLP", "init_args": {"hidden_sizes": []}},
            "learning_rate": 0.001, "gamma": 0.5, "target_update_interval": 64,
            "exploration_fraction": 0.3, "exploration_final": 0.02}},
        "data": {"class_path": "rl_lightning.data.ReplayDataModule", "init_args": {
            "env_id": PIXELS, "num_envs": 4, "frames_per_batch": 32, "updates_per_batch": 8, "batch_size": 32,
            "buffer_size": 5000, "init_random_frames": 256, "total_frames": 1536}},
        "evaluation": {"every_frames": 1536, "episodes": 10},
    })
    main(["fit", "--config", config, *QUIET, "--experiment", "dqn-pix"])
    run, ret = last_eval(in_tmp, "dqn-pix")
    assert ret >= 7.5
    keys = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert "encoder.cnn.0.weight" in keys and "encoder_target.cnn.0.weight" in keys  # the target copies the encoder


@pytest.mark.parametrize("layout, encoder", [
    ("chw", {"class_path": "tests.helpers.my_networks.TinyCNN", "init_args": {"width": 8}}),
    ("hwc", {"class_path": "rl_lightning.networks.ImpalaCNN", "init_args": {"channels": [8], "features_dim": 32}}),
    ("hw", {"class_path": "rl_lightning.networks.ImpalaCNN", "init_args": {"channels": [8], "features_dim": 32}}),
], ids=["users-TinyCNN-chw", "ImpalaCNN-hwc", "ImpalaCNN-hw"])
def test_small_cnns_from_yaml_learn_every_frame_layout(in_tmp, layout, encoder):
    """A user's module defined outside the package (``tests.helpers.my_networks.TinyCNN``, no
    ``out_features`` attribute: the size is probed) and ImpalaCNN on channel-last and grayscale
    12x12 frames, all selected by class_path from YAML."""
    config = write(in_tmp / "ppo.yaml", ppo_config(encoder, {"size": 12, "layout": layout, "channels": 3}, total=1536))
    main(["fit", "--config", config, *QUIET, "--experiment", "mine"])
    assert last_eval(in_tmp, "mine")[1] >= 7.5


def test_print_config_shows_the_encoder_options(in_tmp, capsys):
    config = write(in_tmp / "ppo.yaml", ppo_config({"class_path": "rl_lightning.networks.ImpalaCNN"}))
    with pytest.raises(SystemExit):
        main(["fit", "--config", config, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert printed["encoder"] == {"class_path": "rl_lightning.networks.ImpalaCNN",
                                  "init_args": {"channels": [16, 32, 32], "features_dim": 256, "channels_last": None}}
    assert printed["share_encoder"] is True


def test_images_with_the_default_encoder_fail_early_with_the_fix(in_tmp, capsys):
    config = write(in_tmp / "ppo.yaml", ppo_config(None))
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", config, *QUIET])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "observations (1, 36, 36) uint8 of 'tests.helpers.image_envs:PixelChoice-v0' look like images" in err
    assert "model.encoder to rl_lightning.networks.NatureCNN" in err


@pytest.mark.parametrize("algorithm, share", [("SAC", False), ("TD3", True)])
def test_sac_and_td3_with_a_cnn_fit_and_resume(in_tmp, algorithm, share):
    config = write(in_tmp / "off.yaml", {
        "seed_everything": 0,
        "model": {"class_path": f"rl_lightning.algorithms.{algorithm}", "init_args": {
            "encoder": {"class_path": "rl_lightning.networks.ImpalaCNN",
                        "init_args": {"channels": [4], "features_dim": 16}},
            "share_encoder": share,
            "actor_net": {"class_path": "rl_lightning.networks.MLP", "init_args": {"hidden_sizes": [32]}},
            "critic_net": {"class_path": "rl_lightning.networks.MLP", "init_args": {"hidden_sizes": [32]}}}},
        "data": {"class_path": "rl_lightning.data.ReplayDataModule", "init_args": {
            "env_id": "tests.helpers.image_envs:PixelTarget-v0", "env_kwargs": {"size": 12, "layout": "hwc"},
            "num_envs": 2, "frames_per_batch": 16, "batch_size": 16, "init_random_frames": 32,
            "total_frames": 96}},
        "evaluation": {"every_frames": 96, "episodes": 2},
        "checkpoint": {"every_frames": 48},
    })
    main(["fit", "--config", config, *QUIET, "--experiment", "off"])
    (run,) = (in_tmp / "experiments" / "off").iterdir()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    keys = ckpt["state_dict"]
    assert "critic_encoder.cnn.0.weight" in keys and "critic_encoder_target.cnn.0.weight" in keys
    assert ("actor_encoder.cnn.0.weight" in keys) != share
    main(["fit", "--config", config, *QUIET, "--experiment", "off", "--data.total_frames", "160", "--ckpt_path", "last"])
    meta = final_eval(run)
    assert meta["status"] == "finished" and meta["frames"] == 160
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not torch.equal(resumed["critic_encoder.cnn.0.weight"], keys["critic_encoder.cnn.0.weight"])


# --- MultiDiscrete / MultiBinary actions ---------------------------------------------------
def test_multi_discrete_and_multi_binary_specs():
    md = EnvSpec.from_env("m", gym.make("tests.helpers.multi_envs:MultiChoice-v0"))
    assert (md.discrete, md.multi_discrete, md.action_nvec, md.action_shape, md.n_actions) == (True, True, (3, 2), (2,), 5)
    assert "MultiDiscrete actions [3, 2]" in md.describe()
    mb = EnvSpec.from_env("b", gym.make("tests.helpers.multi_envs:BitsChoice-v0"))
    assert mb.action_nvec == (2, 2, 2) and mb.action_shape == (3,)
    torch.manual_seed(0)
    random = md.random_actions(2000)
    assert random["action"].shape == (2000, 2) and random["action"].dtype == torch.int64
    assert random["action"][:, 0].unique().tolist() == [0, 1, 2] and random["action"][:, 1].unique().tolist() == [0, 1]
    assert EnvSpec.from_dict(md.to_dict()) == md
    old = {k: v for k, v in EnvSpec("CartPole-v1", (4,), True, n_actions=2).to_dict().items() if k != "action_nvec"}
    assert EnvSpec.from_dict(old).action_nvec == ()  # specs in older checkpoints still load


def test_other_action_spaces_are_refused_by_name():
    class TupleActions(gym.Env):
        observation_space = gym.spaces.Box(0, 1, (2,))
        action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))

    with pytest.raises(EnvError, match="supported: Discrete, Box, MultiDiscrete, MultiBinary"):
        EnvSpec.from_env("tuple-env", TupleActions())
    shifted = type("Shifted", (TupleActions,), {"action_space": gym.spaces.MultiDiscrete([2, 3], start=[1, 0])})
    with pytest.raises(EnvError, match="nonzero start"):
        EnvSpec.from_env("shifted", shifted())


@pytest.mark.parametrize("env_id, best", [("MultiChoice-v0", 10.0), ("BitsChoice-v0", 15.0)])
def test_ppo_learns_multi_discrete_and_multi_binary_actions(tmp_path, env_id, best):
    """Random play gets 5 * (1/3 + 1/2) ~ 4.2 and 7.5."""
    L.seed_everything(0)
    data = OnPolicyDataModule(f"tests.helpers.multi_envs:{env_id}", num_envs=4, frames_per_batch=128, total_frames=3072)
    model = PPO(learning_rate=3e-3, epochs=4, minibatch_size=64, gamma=0.5)
    evaluation = Evaluation(every_frames=0, episodes=10)
    L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[evaluation], default_root_dir=tmp_path).fit(model, datamodule=data)
    assert model.actor.distribution == "multi_categorical"
    assert evaluation.last["eval/return_mean"] >= best - 0.5
    out = model.act(torch.zeros(3, *model.spec.observation_shape))
    assert out["env_action"].shape == (3, len(model.spec.action_nvec)) and not out["env_action"].is_floating_point()


@pytest.mark.parametrize("algorithm", [DQN, SAC, TD3])
def test_replay_algorithms_refuse_multi_discrete_actions(tmp_path, algorithm):
    data = ReplayDataModule("tests.helpers.multi_envs:MultiChoice-v0", total_frames=10, init_random_frames=0)
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        default_root_dir=tmp_path)
    with pytest.raises(ConfigError, match=rf"{algorithm.__name__} needs .* MultiDiscrete/MultiBinary actions \[3, 2\]; use PPO"):
        trainer.fit(algorithm(), datamodule=data)


def test_distribution_must_fit_multi_discrete_actions():
    spec = EnvSpec("m", (5,), True, n_actions=5, action_shape=(2,), action_nvec=(3, 2))
    with pytest.raises(ConfigError, match="'categorical' does not fit the MultiDiscrete/MultiBinary action space"):
        PPO(distribution="categorical").connect_spec(spec)
    model = PPO()
    model.connect_spec(spec)
    dist = model.actor.dist(torch.zeros(4, 5))
    assert dist.log_prob(torch.tensor([[2, 1]] * 4)).shape == (4,)
    np.testing.assert_allclose(dist.entropy().detach().numpy(), np.log(3) + np.log(2), rtol=1e-2)
