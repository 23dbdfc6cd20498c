"""The RL Zoo overlays (configs/zoo/<algorithm>/<env>.yaml): each is one complete fit command."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.test_cli import rows, run_cli
from tests.test_resume import CASES

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "configs" / "zoo"
OVERLAYS = sorted(ZOO.glob("*/*.yaml"))
ALGORITHMS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "sac": "SAC", "td3": "TD3"}


def load_zoo_check():
    spec = importlib.util.spec_from_file_location("benchmarks_zoo_check", ROOT / "benchmarks" / "zoo_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_overlay_per_tuned_pair():
    assert {path.parent.name for path in OVERLAYS} == set(ALGORITHMS)
    assert len(OVERLAYS) == 28  # the pairs rl-baselines3-zoo tunes among the classic-control and Box2D tasks


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_overlay_parses_alone_into_its_algorithm_env_and_budget(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", str(path), "--print_config")
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == f"rl_lightning.algorithms.{ALGORITHMS[path.parent.name]}"
    expected_data = "OnPolicyDataModule" if path.parent.name in ("ppo", "a2c") else "ReplayDataModule"
    assert printed["data"]["class_path"] == f"rl_lightning.data.{expected_data}"
    data = printed["data"]["init_args"]
    assert data["env_id"] == path.stem
    assert printed["evaluation"]["every_frames"] > 0 and data["total_frames"] > 0
    header = " ".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
    assert f"hyperparams/{path.parent.name}.yml" in header  # names the RL Zoo file its values come from
    assert f"{data['total_frames']} frames" in header  # states its budget (RL Zoo's n_timesteps)


def test_zoo_check_has_a_reference_score_for_every_overlay():
    zoo_check = load_zoo_check()
    assert set(zoo_check.REFERENCE) == {f"{p.parent.name}/{p.stem}" for p in OVERLAYS}
    tasks = zoo_check.tasks()
    assert tasks["ppo/CartPole-v1"]["frames"] == 100_000 and tasks["ppo/CartPole-v1"]["target"] == 500.0


def test_overlays_use_only_classes_with_an_exact_resume_case():
    """The overlays change hyperparameters only; their model and data classes are the ones
    tests/test_resume.py resumes exactly (configs/*.yaml, one case per algorithm at least)."""
    covered = set()
    for args, _, datamodule in CASES.values():
        config = yaml.safe_load(Path(args[args.index("--config") + 1]).read_text())
        covered.add((config["model"]["class_path"], datamodule))
    for path in OVERLAYS:
        config = yaml.safe_load(path.read_text())
        used = (config["model"]["class_path"], config["data"]["class_path"].rsplit(".", 1)[-1])
        assert used in covered, (path, used)


@pytest.mark.parametrize("overlay, frames", [("dqn/Acrobot-v1", 64), ("sac/MountainCarContinuous-v0", 96),
                                             ("ppo/MountainCarContinuous-v0", 64)])
def test_overlays_with_edge_settings_train(in_tmp, overlay, frames):
    """No random warm-up frames (updates from the first batch), a fixed entropy temperature,
    a one-environment batch smaller than RL Zoo's minibatch: each trains from its file alone."""
    run_cli("fit", "--config", str(ZOO / f"{overlay}.yaml"), "--data.total_frames", str(frames),
            "--evaluation.every_frames", "0", "--evaluation.episodes", "1", "--checkpoint.every_frames", str(frames),
            "--log_every_frames", "0", "--progress_bar.refresh_rate", "0")
    (metrics,) = (in_tmp / "experiments").glob("*/*/metrics.csv")
    logged = rows(metrics)
    assert float(logged[-1]["frames"]) == frames
    assert any(row.get("eval/return_mean") for row in logged)
