"""PPO's value pass on image-shaped observations evaluates the critic once per step plus the
episode ends and the batch's last step, and gives the advantages of evaluating all next
observations."""

import pytest
import torch
from tensordict import TensorDict

from rl_lightning.algorithms import PPO
from rl_lightning.envs import EnvSpec


def test_next_values_reuse_the_following_steps_values():
    torch.manual_seed(0)
    envs, steps = 3, 20
    obs = torch.randn(envs, steps + 1, 1, 2)
    done = torch.rand(envs, steps) < 0.2
    truncated = done & (torch.rand(envs, steps) < 0.5)
    next_obs = obs[:, 1:].clone()
    next_obs[done] = torch.randn(int(done.sum()), 1, 2)  # final observations
    batch = TensorDict({
        "observation": obs[:, :-1], "action": torch.zeros(envs, steps, dtype=torch.int64),
        "action_log_prob": torch.zeros(envs, steps),
        "next": {"observation": next_obs, "reward": torch.randn(envs, steps, 1), "terminated": (done & ~truncated)[..., None],
                 "truncated": truncated[..., None], "done": done[..., None]},
    }, batch_size=[envs, steps])

    def advantages(model):
        return model.compute_advantages(batch)

    model = PPO(gamma=0.9, gae_lambda=0.8)
    model.connect_spec(EnvSpec("img", (1, 2), True, n_actions=2))
    rows = []
    model.critic.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[:-1].numel()))
    out = advantages(model)
    assert sum(rows) == envs * steps + int(done[:, :-1].sum()) + envs  # not 2 * envs * steps

    reference = PPO(gamma=0.9, gae_lambda=0.8)
    reference.connect_spec(EnvSpec("vec", (2,), True, n_actions=2))  # flat: all next observations evaluated
    reference.critic.load_state_dict(model.critic.state_dict())
    flat = batch.clone()
    flat["observation"] = batch["observation"].flatten(-2)
    flat["next", "observation"] = batch["next", "observation"].flatten(-2)
    expected = reference.compute_advantages(flat)
    for key in ("advantage", "target", "value"):
        assert out[key] == pytest.approx(expected[key], abs=1e-6), key


def test_a_shared_encoder_on_images_collects_the_values_and_does_not_encode_the_batch_again():
    """With ``share_encoder`` on image observations the collecting policy returns the critic's
    value from the features it acted on; compute_advantages uses it, encoding only the next
    observations it needs, and gets the advantages of recomputing every value."""
    from rl_lightning.networks import NatureCNN

    torch.manual_seed(0)
    envs, steps = 2, 6
    spec = EnvSpec("img", (4, 36, 36), True, n_actions=2, observation_dtype="uint8")
    model = PPO(encoder=NatureCNN, share_encoder=True, gamma=0.9, gae_lambda=0.8)
    model.connect_spec(spec)
    frames = torch.randint(0, 256, (envs, steps + 1, 4, 36, 36), dtype=torch.uint8)
    with torch.no_grad():  # as the collector calls it
        outputs = [model.act(frames[:, t]) for t in range(steps)]
    assert all(o["state_value"].shape == (envs, 1) for o in outputs)
    assert "state_value" not in model.act(frames[:, 0], deterministic=True)  # evaluation: actions only
    done = torch.zeros(envs, steps, 1, dtype=torch.bool)
    done[0, 2] = True
    batch = TensorDict({
        "observation": frames[:, :-1], "action": torch.stack([o["action"] for o in outputs], 1),
        "action_log_prob": torch.stack([o["action_log_prob"] for o in outputs], 1),
        "state_value": torch.stack([o["state_value"] for o in outputs], 1),
        "next": {"observation": frames[:, 1:], "reward": torch.randn(envs, steps, 1), "terminated": done,
                 "truncated": torch.zeros_like(done), "done": done},
    }, batch_size=[envs, steps])
    rows = []
    model.actor.encoder.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    out = model.compute_advantages(batch)
    assert sum(rows) == 1 + envs  # the episode end and each environment's last step, not the batch
    recomputed = model.compute_advantages(batch.exclude("state_value"))
    for key in ("advantage", "target", "value"):
        assert out[key] == pytest.approx(recomputed[key], abs=1e-5), key
