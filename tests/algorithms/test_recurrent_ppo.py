"""Recurrent PPO: the memory the collector keeps, the unroll with episode resets, the chunks
trained on, evaluation with memory, and a fit through the CLI."""

import gymnasium as gym
import pytest
import torch

from rl_lightning.algorithms import RecurrentPPO
from rl_lightning.callbacks.evaluation import evaluate
from rl_lightning.data.collector import VectorCollector
from rl_lightning.data.torch_collector import TorchCollector
from rl_lightning.envs import EnvSpec
from rl_lightning.envs.batched import make_torch_env
from rl_lightning.errors import ConfigError
from tests.test_cli import CONFIGS, run_cli

SPEC = EnvSpec("CartPole-v1", (4,), True, n_actions=2)


def model(cell="lstm", **options):
    torch.manual_seed(0)
    module = RecurrentPPO(cell=cell, hidden_size=8, **options)
    module.connect_spec(SPEC)
    return module


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unroll_with_resets_equals_stepping_one_observation_at_a_time(cell):
    module = model(cell)
    obs = torch.randn(3, 7, 4)
    is_init = torch.zeros(3, 7, dtype=torch.bool)
    is_init[0, 2] = is_init[1, 5] = is_init[2, 0] = is_init[0, 6] = True
    memory = {k: torch.randn_like(v) for k, v in module.initial_memory(3).items()}
    features, after = module.unroll("actor", obs, memory, is_init)
    state = {k: v for k, v in memory.items() if k.startswith("actor_")}
    for t in range(7):
        for k in state:  # a new episode starts from zero memory
            state[k] = torch.where(is_init[:, t, None, None], torch.zeros_like(state[k]), state[k])
        h = state["actor_h"].transpose(0, 1).contiguous()
        arg = (h, state["actor_c"].transpose(0, 1).contiguous()) if cell == "lstm" else h
        y, new = module.actor_rnn(module.actor_encoder(obs[:, t])[:, None], arg)
        torch.testing.assert_close(features[:, t], y[:, 0])
        new = new if cell == "lstm" else (new,)
        state = dict(zip(["actor_h", "actor_c"], [s.transpose(0, 1) for s in new]))
    for k in state:
        torch.testing.assert_close(after[k], state[k])


@pytest.mark.parametrize("backend", ["gymnasium", "torch"])
def test_collector_keeps_memory_per_environment_and_resets_it_where_episodes_start(backend):
    module = model()
    n = 4
    if backend == "torch":
        env = make_torch_env("CartPole-v1", n, "cpu")
        collector = TorchCollector(env, module.collect_policy, n * 40, seed=1, initial_memory=module.initial_memory)
    else:
        env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n,
                                       autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        collector = VectorCollector(env, module.collect_policy, n * 40, seed=1, initial_memory=module.initial_memory)
    batch = collector.rollout()
    done = batch["next", "done"].squeeze(-1)
    is_init = batch["is_init"]
    assert done.any()  # a random CartPole policy ends episodes within 40 steps
    assert is_init[:, 0].all()  # the first reset
    assert torch.equal(is_init[:, 1:], done[:, :-1])  # same-step autoreset: the next step starts anew
    h = batch["memory_actor_h"]
    assert (h[is_init] == 0).all() and (h[~is_init] != 0).any()
    # each stored memory is the one the previous step left: replaying the episode gives it
    with torch.no_grad():
        obs = module.preprocess(batch["observation"])
        start = {k[len("memory_"):]: v[:, 0] for k, v in batch.items() if k.startswith("memory_")}
        features, _ = module.unroll("actor", obs, start, is_init)
    later = ~is_init[:, 1:]  # the memory a step starts from is the one the step before left
    torch.testing.assert_close(h[:, 1:, 0][later], features[:, :-1][later], rtol=1e-5, atol=1e-6)
    # the next batch continues the running episodes from the memory the last step left
    second = collector.rollout()
    rows = ~second["is_init"][:, 0]
    torch.testing.assert_close(second["memory_actor_h"][rows, 0, 0], features[rows, -1], rtol=1e-5, atol=1e-6)
    state = collector.state_dict()
    assert "memory" in state["running"] and state["running"]["memory"]["actor_h"].shape == (n, 1, 8)


def test_chunks_carry_their_starting_memory_and_minibatches_are_whole_chunks():
    module = model(sequence_length=5, minibatch_size=10, epochs=1)
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    collector = VectorCollector(env, module.collect_policy, 2 * 20, seed=3, initial_memory=module.initial_memory)
    collector.rollout()  # so the second batch starts mid-episode
    batch = collector.rollout()
    data = module.compute_advantages(batch)
    assert data["obs"].shape == (8, 5, 4) and data["advantage"].shape == (8, 5)
    torch.testing.assert_close(data["memory_actor_h"], batch["memory_actor_h"].reshape(8, 5, 1, 8)[:, 0])
    torch.testing.assert_close(data["obs"].reshape(2, 20, 4), module.preprocess(batch["observation"]))
    minibatches = list(module._minibatches(data))
    assert len(minibatches) == 4 and minibatches[-1][1]
    mb = minibatches[0][0]
    assert mb["obs"].shape == (2, 5, 4) and mb["action"].shape == (10,)
    dist, value = module.policy_and_value(mb)
    assert value.shape == (10,)
    # before any update the minibatch's log-probabilities are the collected ones
    torch.testing.assert_close(dist.log_prob(mb["action"]), mb["log_prob"], rtol=1e-4, atol=1e-5)


def test_evaluation_steps_the_policy_with_its_memory():
    module = model()
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3)
    result = evaluate(module, env, 3, seed=5)
    # by hand: one step at a time, memory carried
    obs, _ = env.reset(seed=5)
    memory, lengths, running = None, [0, 0, 0], [True] * 3
    is_init = torch.ones(3, dtype=torch.bool)
    with torch.no_grad():
        while any(running):
            out, memory = module.step_policy(torch.as_tensor(obs), memory, is_init, deterministic=True)
            is_init = torch.zeros(3, dtype=torch.bool)
            obs, _, term, trunc, _ = env.step(out["env_action"].numpy())
            for i in range(3):
                lengths[i] += running[i]
                running[i] = running[i] and not (term[i] or trunc[i])
    assert result["lengths"].tolist() == lengths


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match="model.cell"):
        RecurrentPPO(cell="rnn")
    with pytest.raises(ConfigError, match="model.shared_rnn"):
        RecurrentPPO(share_encoder=True)


def test_fit_with_a_gru_and_chunks_and_a_bad_chunk_length(in_tmp, capsys):
    common = ["--config", str(CONFIGS / "recurrent_ppo.yaml"), "--data.total_frames", "512",
              "--evaluation.every_frames", "256", "--evaluation.episodes", "2", "--checkpoint.every_frames", "512",
              "--progress_bar.refresh_rate", "0", "--model.cell", "gru", "--model.epochs", "2"]
    run_cli("fit", *common, "--model.sequence_length", "8", "--model.shared_rnn", "true", "--experiment", "gru")
    (run,) = (in_tmp / "experiments" / "gru").iterdir()
    assert (run / "checkpoints" / "last.ckpt").exists()
    with pytest.raises(SystemExit):
        run_cli("fit", *common, "--model.sequence_length", "5", "--experiment", "bad")
    assert "model.sequence_length (5) must divide" in capsys.readouterr().err
