"""The benchmark scripts time the shipped code (a tiny budget: figures are not checked)."""

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

from rl_lightning.algorithms import DQN, SAC, RLModule

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(autouse=True)
def keep_log_levels():
    """The scripts quiet Lightning's and TorchRL's loggers for their own output; later tests
    (e.g. the profiler report, logged at INFO) need them back."""
    loggers = [logging.getLogger(name) for name in ("torchrl", "lightning.pytorch")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def load(name):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("algorithm, config, batch", [(DQN, "dqn.yaml", 64), (SAC, "sac.yaml", 256)])
def test_offpolicy_loss_benchmark_times_the_shipped_update(monkeypatch, algorithm, config, batch):
    bench = load("offpolicy_loss_speed")
    calls = []
    shipped = algorithm.update

    def counted(self, minibatch, optimizers):
        calls.append(len(minibatch["reward"]))
        return shipped(self, minibatch, optimizers)

    monkeypatch.setattr(algorithm, "update", counted)
    torchrl = bench.dqn_torchrl if algorithm is DQN else bench.sac_torchrl
    ms = bench.compare(config, torchrl, repeats=1, rounds=1)
    assert set(ms) == {"rl_lightning", "through Lightning", "torchrl"} and all(v > 0 for v in ms.values())
    assert calls and set(calls) == {batch}  # the config's minibatches went through the module's update


def test_log_benchmark_times_the_shipped_log_metrics(monkeypatch, capsys):
    bench = load("log_speed")
    calls = []
    shipped = RLModule.log_metrics
    monkeypatch.setattr(RLModule, "log_metrics",
                        lambda self, metrics: calls.append(sorted(metrics)[0]) or shipped(self, metrics))
    monkeypatch.setattr(sys, "argv", ["log_speed.py", "--calls", "3", "--repeats", "1"])
    bench.main()
    assert calls.count("bench/m0") == 3  # the timed calls (15 scalars), beside the module's own
    assert "ratio self.log_dict / log_metrics" in capsys.readouterr().out


def test_pixel_benchmark_quick_mode_runs_both_sides_and_measures_replay_memory(capsys):
    """rl_lightning (the shipped CLI with the Nature CNN on uint8 frames) and SB3's CnnPolicy
    for PPO and DQN; replay bytes per transition of both layouts against SB3's buffers."""
    pytest.importorskip("stable_baselines3")
    bench = load("pixel_pipeline_speed")
    out = bench.main(["--quick"])
    assert set(out["speed"]) == {f"{a} {m}" for a in ("ppo", "dqn") for m in ("rl_lightning", "sb3")}
    assert all(v > 0 for row in out["speed"].values() for v in row.values())
    memory = out["memory"]
    frame = 4 * 84 * 84
    assert memory["rl_lightning plain"] == pytest.approx(2 * frame, rel=0.02)
    assert memory["sb3 plain"] == pytest.approx(2 * frame, rel=0.02)
    assert memory["sb3 optimize_memory_usage"] == pytest.approx(frame, rel=0.02)
    assert memory["rl_lightning compact"] < 0.6 * memory["rl_lightning plain"]
    printed = capsys.readouterr().out
    assert "ratio rl/sb3" in printed and "Replay memory per stored transition" in printed


def test_mujoco_benchmark_quick_mode_times_both_sides(capsys):
    """rl_lightning's shipped MuJoCo overlays and SB3 with the same settings, SAC and PPO."""
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("mujoco")
    out = load("mujoco_speed").main(["--quick"])
    assert set(out) == {"sac", "ppo"} and all(v > 0 for row in out.values() for v in row.values())
    assert "ratio" in capsys.readouterr().out


def test_torch_envs_benchmark_steps_the_shipped_environments_and_their_torchrl_view(monkeypatch):
    bench = load("torch_envs_speed")
    from rl_lightning.envs.batched import TorchVectorEnv

    steps = []
    shipped = TorchVectorEnv.step
    monkeypatch.setattr(TorchVectorEnv, "step", lambda self, action: steps.append(self.num_envs) or shipped(self, action))
    assert bench.torch_steps_per_s("Pendulum-v1", 64, seconds=0.05) > 0
    assert bench.torch_steps_per_s("CartPole-v1", 32, seconds=0.05, torchrl=True) > 0
    assert set(steps) == {64, 32}  # both timed the batched class, directly and through TorchRL's EnvBase
    assert bench.gym_steps_per_s("CartPole-v1", 4, seconds=0.05) > 0


def test_onpolicy_benchmark_measures_ours_and_the_peer_alike():
    """Both sides end with an evaluation, report frames/s, and the peer's frames are its budget."""
    bench = load("onpolicy_learning")
    ours = bench.run_any("recurrent-ppo-cartpole-novel", 1, 256)
    theirs = bench.run_any("sb3-recurrent-ppo-cartpole-novel", 1, 256)
    for result in (ours, theirs):
        assert result["fps"] > 0 and result["curve"] and result["curve"][-1][0] >= 256
        assert result["final"] == result["curve"][-1][1]
