"""Encoders: shapes, dtypes, layouts, output sizes, and the errors of bad input."""

import pytest
import torch
from torch import nn

from rl_lightning.algorithms import DQN, PPO, SAC, TD3
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError
from rl_lightning.networks import Flatten, ImpalaCNN, MLPEncoder, NatureCNN
from rl_lightning.networks.encoders import feature_size, looks_like_image
from tests.helpers.my_networks import TinyCNN

LAYOUTS = {"chw": (3, 40, 40), "hwc": (40, 40, 3), "hw": (40, 40)}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cnn, features", [(NatureCNN, 512), (ImpalaCNN, 256)])
def test_cnns_take_every_layout_and_dtype(cnn, features, layout):
    shape = LAYOUTS[layout]
    net = cnn(shape)
    assert net.input.channels_last == (layout == "hwc")
    frames = torch.randint(0, 256, (5, *shape), dtype=torch.uint8)
    out = net(frames)
    assert out.shape == (5, features) and out.dtype == torch.float32
    # uint8 frames are scaled to [0, 1] inside: the same as floats already in [0, 1]
    torch.testing.assert_close(out, net(frames.float() / 255.0))
    assert feature_size(net, shape, "uint8") == features
    # extra leading batch dimensions (e.g. [envs, steps]) are kept
    assert net(frames.reshape(5, 1, *shape)).shape == (5, 1, features)


def test_channel_layout_is_read_from_the_pixels_not_only_the_shape():
    """A channel-last frame and its channel-first transpose give the same features."""
    torch.manual_seed(0)
    chw = NatureCNN((3, 40, 40))
    torch.manual_seed(0)
    hwc = NatureCNN((40, 40, 3))
    frame = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)
    torch.testing.assert_close(chw(frame), hwc(frame.permute(0, 2, 3, 1)))
    # an explicit option overrides the guess
    assert ImpalaCNN((40, 40, 3), channels_last=False).input.chw == (40, 40, 3)
    assert ImpalaCNN((4, 40, 4), channels_last=True).input.chw == (4, 4, 40)


def test_cnn_options_and_init():
    net = ImpalaCNN((1, 12, 12), channels=(4, 8), features_dim=16)
    assert net(torch.zeros(2, 1, 12, 12, dtype=torch.uint8)).shape == (2, 16)
    conv = net.cnn[0]
    # orthogonal init (gain sqrt 2) like the MLPs, zero biases
    w = conv.weight.flatten(1)
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(w.shape[0]), atol=1e-5, rtol=0)
    assert not conv.bias.any()
    with pytest.raises(ConfigError, match="at least 36x36"):
        NatureCNN((1, 12, 12))
    with pytest.raises(ConfigError, match=r"\(C, H, W\), \(H, W, C\) or \(H, W\)"):
        ImpalaCNN((8,))


def test_flatten_and_mlp_encoder():
    obs = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(Flatten((3, 4))(obs), obs.reshape(2, 12))
    vec = torch.randn(7, 5)
    assert Flatten((5,))(vec) is vec  # vector observations pass through untouched
    assert Flatten((2, 2))(torch.ones(1, 2, 2, dtype=torch.uint8)).dtype == torch.float32
    enc = MLPEncoder((3, 4), hidden_sizes=(32, 16))
    assert enc(obs).shape == (2, 16) and feature_size(enc, (3, 4)) == 16
    assert sum(p.numel() for p in Flatten((3, 4)).parameters()) == 0


def test_feature_size_probes_any_module_and_names_the_option():
    assert feature_size(TinyCNN((1, 12, 12), width=5), (1, 12, 12), "uint8") == 5 * 5 * 5
    with pytest.raises(ConfigError, match=r"model.encoder \(Identity\) must map .* returned \(1, 3, 4\)"):
        feature_size(nn.Identity(), (3, 4))
    with pytest.raises(ConfigError, match=r"model.encoder \(Linear\) cannot encode observations \(3, 4\)"):
        feature_size(nn.Linear(7, 2), (3, 4))


def test_image_rule():
    assert looks_like_image((4, 84, 84), "uint8") and looks_like_image((84, 84), "uint8")
    assert looks_like_image((3, 8, 8), "float32")
    assert not looks_like_image((84, 84), "float32") and not looks_like_image((10,), "uint8")


IMAGE = EnvSpec("Pix-v0", (4, 84, 84), True, n_actions=2, observation_dtype="uint8")


@pytest.mark.parametrize("algorithm", [PPO, DQN])
def test_images_with_the_default_encoder_are_refused(algorithm):
    with pytest.raises(ConfigError) as error:
        algorithm().connect_spec(IMAGE)
    assert str(error.value) == (
        "observations (4, 84, 84) uint8 of 'Pix-v0' look like images: set model.encoder to "
        "rl_lightning.networks.NatureCNN (or ImpalaCNN), or to rl_lightning.networks.Flatten to flatten them on purpose."
    )
    model = algorithm(encoder=Flatten)  # explicitly chosen: allowed
    model.connect_spec(IMAGE)


def test_every_algorithm_builds_encoders_and_heads():
    ppo = PPO(encoder=lambda s: NatureCNN(s, features_dim=32))
    ppo.connect_spec(IMAGE)
    assert ppo.actor.net[0].in_features == 32 and ppo.critic[0].in_features == 32
    assert ppo.actor.encoder is not ppo.critic_encoder
    shared = PPO(encoder=lambda s: NatureCNN(s, features_dim=32), share_encoder=True)
    shared.connect_spec(IMAGE)
    assert not hasattr(shared, "critic_encoder")
    assert len(list(shared.parameters())) == len(list(ppo.parameters())) - len(list(ppo.critic_encoder.parameters()))
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert shared.act(frames)["action"].shape == (3,) and shared.value(frames).shape == (3, 1)

    dqn = DQN(encoder=lambda s: TinyCNN(s, width=6))
    dqn.connect_spec(IMAGE)
    assert dqn.q[0].in_features == 6 * 41 * 41 and isinstance(dqn.encoder_target, TinyCNN)
    assert not any(p.requires_grad for p in dqn.encoder_target.parameters())
    assert {id(p) for p in dqn.online_parameters()} >= {id(p) for p in dqn.encoder.parameters()}

    box = EnvSpec("PixBox-v0", (36, 36, 3), False, action_shape=(2,), action_low=(-1.0, -1.0),
                  action_high=(1.0, 1.0), observation_dtype="uint8")
    for algorithm in (SAC, TD3):
        for share in (False, True):
            model = algorithm(encoder=lambda s: NatureCNN(s, features_dim=16), share_encoder=share)
            model.connect_spec(box)
            assert hasattr(model, "actor_encoder") != share
            assert model.critic.q1[0].in_features == 16 + 2
            out = model.act(torch.randint(0, 256, (2, 36, 36, 3), dtype=torch.uint8))
            assert out["env_action"].shape == (2, 2)
