import json

import lightning as L
import pytest
import torch

from rl_lightning.algorithms import DQN, SAC, TD3
from rl_lightning.algorithms.offpolicy import soft_update
from rl_lightning.data import ReplayDataModule
from rl_lightning.envs import EnvSpec
from rl_lightning.errors import ConfigError
from tests.test_cli import CONFIGS, run_cli


def trainer(tmp_path, callbacks=(), **kwargs):
    return L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, callbacks=list(callbacks), **kwargs)


def test_soft_update_is_polyak_averaging():
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = target.weight.detach().clone()
    soft_update(target, source, 0.1)
    assert torch.allclose(target.weight, 0.9 * before + 0.1 * source.weight)


def test_dqn_hard_target_copies_every_interval_of_frames(tmp_path):
    L.seed_everything(0)
    data = ReplayDataModule("CartPole-v1", frames_per_batch=16, updates_per_batch=4, batch_size=16,
                            init_random_frames=32, total_frames=96)
    model = DQN(target_update_interval=32, learning_rate=1e-2)
    rounds = []

    class Spy(L.Callback):  # one training step = one collection and its 4 updates
        def on_train_batch_start(self, trainer, pl_module, *args):
            self.before = [p.detach().clone() for p in pl_module.q.parameters()]

        def on_train_batch_end(self, trainer, pl_module, *args):
            copied = all(torch.equal(a, b) for a, b in zip(self.before, pl_module.q_target.parameters()))
            rounds.append((pl_module.frames, int(pl_module.updates), copied))

    trainer(tmp_path, [Spy()]).fit(model, datamodule=data)
    # updates start once 32 random frames are in; at the start of a round, the target becomes
    # the online network when 32 frames have passed since the last copy: at 32, 64 and 96
    assert [(f, n) for f, n, _ in rounds] == [(32, 4), (48, 8), (64, 12), (80, 16), (96, 20)]
    assert [f for f, _, copied in rounds if copied] == [32, 64, 96]
    assert not all(torch.equal(a, b) for a, b in zip(model.q.parameters(), model.q_target.parameters()))


@pytest.mark.parametrize("algorithm, env_id, message", [
    (DQN, "Pendulum-v1", "DQN needs discrete actions"),
    (SAC, "CartPole-v1", "SAC needs continuous actions"),
    (TD3, "CartPole-v1", "TD3 needs continuous actions"),
])
def test_action_space_pairing_errors(tmp_path, algorithm, env_id, message):
    with pytest.raises(ConfigError, match=message):
        trainer(tmp_path).fit(algorithm(), datamodule=ReplayDataModule(env_id, total_frames=10, init_random_frames=0))


@pytest.mark.parametrize("options", [{}, {"dueling": True}, {"target_update": "soft", "tau": 0.05}, {"loss": "mse"}],
                         ids=["default", "dueling", "soft-target", "mse"])
def test_dqn_learns_the_better_action(tmp_path, options):
    """Countdown pays 2 for action 1 and 1 for action 0: a few hundred frames suffice."""
    L.seed_everything(0)
    data = ReplayDataModule("tests.helpers.envs:Countdown-v0", frames_per_batch=32, updates_per_batch=16,
                            batch_size=32, init_random_frames=64, total_frames=640, prioritized=True, n_step=2)
    model = DQN(learning_rate=3e-3, gamma=0.5, target_update_interval=20, exploration_fraction=0.3, **options)
    fit = trainer(tmp_path)
    fit.fit(model, datamodule=data)
    q = model.q_values(torch.tensor([[0.0], [2.0], [4.0]]))
    assert (q[:, 1] > q[:, 0]).all()
    # a round of 16 updates after each collection from frame 64 to 640: 19 rounds; Lightning
    # counts each optimizer step
    assert int(model.updates) == fit.global_step == 19 * 16


@pytest.mark.parametrize("algorithm", [SAC, TD3])
def test_continuous_algorithms_learn_a_target_action(tmp_path, algorithm):
    """Slider rewards -(a - 1)^2: the deterministic action moves to about 1."""
    L.seed_everything(0)
    data = ReplayDataModule("tests.helpers.envs:Slider-v0", batch_size=64, init_random_frames=100, total_frames=700)
    model = algorithm(learning_rate=1e-3, gamma=0.5)
    trainer(tmp_path).fit(model, datamodule=data)
    action = model.act(torch.zeros(1, 2), deterministic=True)["env_action"].item()
    assert abs(action - 1.0) < 0.3


@pytest.mark.parametrize("config", ["dqn.yaml", "sac.yaml", "td3.yaml"])
def test_shipped_configs_run_through_the_cli(in_tmp, config):
    run_cli("fit", "--config", str(CONFIGS / config), "--data.total_frames", "512", "--data.init_random_frames", "256",
            "--evaluation.every_frames", "512", "--evaluation.episodes", "1", "--progress_bar.refresh_rate", "0",
            "--experiment", "smoke")
    (run,) = (in_tmp / "experiments" / "smoke").iterdir()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["frames"] >= 512
    assert (run / "checkpoints" / "last.ckpt").is_file()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert "buffer" in ckpt["ReplayDataModule"]  # the replay buffer is part of the checkpoint


def test_replay_spec_helpers():
    spec = EnvSpec("x", (3,), False, action_shape=(2,), action_low=(-2.0, 0.0), action_high=(2.0, 1.0))
    assert spec.scale_action(torch.tensor([[-1.0, 1.0]])).tolist() == [[-2.0, 1.0]]
    random = spec.random_actions(5)
    assert random["action"].shape == (5, 2) and (random["action"].abs() <= 1).all()


def test_dqn_batched_round_targets_equal_per_update_targets(tmp_path):
    """Without double Q, the targets of a round come from one forward pass; they must be the
    per-minibatch targets."""
    L.seed_everything(0)
    data = ReplayDataModule("CartPole-v1", frames_per_batch=64, updates_per_batch=8, batch_size=16,
                            init_random_frames=64, total_frames=128)
    model = DQN(double_q=False, target_update_interval=1)
    checked = []

    class Check(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            stacked = pl_module._last_round.stacked
            for u in range(8):
                with torch.no_grad():
                    expected = pl_module.q_values(stacked["next_observation"][u], target=True).max(-1).values
                assert torch.allclose(stacked["next_q"][u], expected, atol=1e-5)
            checked.append(True)

    original = model.start_round

    def keep(round_):
        original(round_)
        model._last_round = round_
    model.start_round = keep
    trainer(tmp_path, [Check()]).fit(model, datamodule=data)
    assert checked == [True, True]


@pytest.mark.parametrize("algorithm", [DQN, SAC])
def test_linear_learning_rate_schedule_decays_over_the_frame_budget(tmp_path, algorithm):
    env_id = "CartPole-v1" if algorithm is DQN else "Pendulum-v1"
    data = ReplayDataModule(env_id, frames_per_batch=16, updates_per_batch=2, batch_size=16,
                            init_random_frames=32, total_frames=160)
    model = algorithm(learning_rate=1e-3, lr_schedule="linear")
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            seen.append((pl_module.frames, [g["lr"] for opt in trainer.optimizers for g in opt.param_groups]))

    trainer(tmp_path, callbacks=[Spy()]).fit(model, datamodule=data)
    assert [frames for frames, _ in seen] == list(range(32, 161, 16))
    for frames, lrs in seen:  # every optimizer (SAC: critic, actor, temperature) follows it
        assert lrs == pytest.approx([1e-3 * (1 - frames / 160)] * len(lrs))


def test_log_every_frames_writes_a_row_per_multiple_and_keeps_every_episode(in_tmp):
    import csv

    run_cli("fit", "--config", str(CONFIGS / "sac.yaml"), "--data.total_frames", "600", "--data.init_random_frames", "100",
            "--data.frames_per_batch", "4", "--log_every_frames", "250", "--evaluation.every_frames", "0",
            "--progress_bar.refresh_rate", "0", "--experiment", "sparse")
    (run,) = (in_tmp / "experiments" / "sparse").iterdir()
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("time/fps")]
    # rounds at frames 100, 104, ...: rows where a multiple of 250 is reached, and at the end
    assert [float(r["frames"]) for r in rows] == [252.0, 500.0, 600.0]
    # Pendulum's 200-frame episodes end at 200, 400 and 600: each counted once, in the next row
    assert [float(r["train/episodes"]) for r in rows] == [1.0, 2.0, 3.0]
    assert [r["train/episode_return"] != "" for r in rows] == [True, True, True]


class Fixed(torch.nn.Module):
    """A network whose output is the same for every observation (and has a gradient)."""

    def __init__(self, row):
        super().__init__()
        self.row = torch.nn.Parameter(torch.tensor(row))

    def forward(self, obs):
        return self.row.expand(obs.shape[0], -1)


def test_dueling_q_is_value_plus_centred_advantage():
    model = DQN(dueling=True)
    model.connect_spec(EnvSpec("x", (3,), True, n_actions=2))
    assert model.q(torch.zeros(1, 3)).shape == (1, 3)  # V(s) and one advantage per action
    model.q = Fixed([[10.0, 1.0, 3.0]])  # V, A(0), A(1)
    assert model.q_values(torch.zeros(1, 3)).tolist() == [[9.0, 11.0]]  # V + A - mean(A)


def test_dqn_soft_target_is_polyak_averaged_after_every_update(tmp_path):
    L.seed_everything(0)
    data = ReplayDataModule("CartPole-v1", frames_per_batch=16, updates_per_batch=1, batch_size=16,
                            init_random_frames=32, total_frames=80)
    model = DQN(target_update="soft", tau=0.25, target_update_interval=1, learning_rate=1e-2)
    checked = []

    class Spy(L.Callback):  # one update per round: after it, target = 0.75 target + 0.25 online
        def on_train_batch_start(self, trainer, pl_module, *args):
            self.before = [p.detach().clone() for p in pl_module.q_target.parameters()]

        def on_train_batch_end(self, trainer, pl_module, *args):
            for old, online, new in zip(self.before, pl_module.q.parameters(), pl_module.q_target.parameters()):
                assert torch.allclose(new, 0.75 * old + 0.25 * online, atol=1e-6)
            assert not all(torch.equal(a, b) for a, b in zip(pl_module.q.parameters(), pl_module.q_target.parameters()))
            checked.append(pl_module.frames)

    trainer(tmp_path, [Spy()]).fit(model, datamodule=data)
    assert checked == [32, 48, 64, 80]


@pytest.mark.parametrize("loss, expected", [("mse", [4.0, 0.25]), ("huber", [1.5, 0.125])])
def test_dqn_loss_option_sets_the_td_loss(loss, expected):
    """TD errors 2 and 0.5 (terminal transitions: the target is the reward)."""
    from types import SimpleNamespace

    model = DQN(loss=loss, dueling=False)
    model.connect_spec(EnvSpec("x", (1,), True, n_actions=2))
    model.q = Fixed([[0.0, 0.0]])
    model.trainer = SimpleNamespace(datamodule=SimpleNamespace(update_priorities=lambda index, error: None))
    losses = []
    model.optimize = lambda optimizer, value, max_grad_norm=None: losses.append(value.item())
    for reward, per_sample in zip((2.0, 0.5), expected):
        batch = {"observation": torch.zeros(1, 1), "action": torch.zeros(1, dtype=torch.int64),
                 "reward": torch.tensor([reward]), "next_observation": torch.zeros(1, 1),
                 "terminated": torch.ones(1), "discount": torch.full((1,), 0.99), "weight": torch.ones(1),
                 "index": torch.zeros(1, dtype=torch.int64)}
        model.update(batch, [None])
    assert losses == pytest.approx(expected)


@pytest.mark.parametrize("config, optimizer, options, state_key, extra", [
    ("ppo.yaml", "torch.optim.RMSprop", {"alpha": 0.9}, "square_avg", []),
    ("dqn.yaml", "torch.optim.SGD", {"momentum": 0.5}, "momentum_buffer", ["--data.init_random_frames", "256"]),
])
def test_an_optimizer_chosen_in_yaml_trains_the_model(in_tmp, config, optimizer, options, state_key, extra):
    """``model.init_args.optimizer`` in a YAML file: the run trains with that optimizer, its
    options, and the model's learning rate (PPO's config decays it: its start is checked)."""
    import yaml

    (in_tmp / "optimizer.yaml").write_text(yaml.safe_dump(
        {"model": {"init_args": {"learning_rate": 0.002, "optimizer": {"class_path": optimizer, "init_args": options}}}}))
    run_cli("fit", "--config", str(CONFIGS / config), "--config", "optimizer.yaml", "--data.total_frames", "512", *extra,
            "--evaluation.every_frames", "512", "--evaluation.episodes", "1", "--progress_bar.refresh_rate", "0",
            "--experiment", "opt")
    (run,) = (in_tmp / "experiments" / "opt").iterdir()
    (state,) = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"]
    (group,) = state["param_groups"]
    assert group.get("initial_lr", group["lr"]) == pytest.approx(0.002) and all(group[k] == v for k, v in options.items())
    assert state["state"] and all(state_key in s for s in state["state"].values())
