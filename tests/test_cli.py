"""The command line, run in-process through ``rl_lightning.cli.main`` as a user would."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rl_lightning.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PPO = str(CONFIGS / "ppo.yaml")
TINY = ["--data.total_frames", "2048", "--evaluation.every_frames", "1024", "--evaluation.episodes", "2",
        "--checkpoint.every_frames", "1024", "--progress_bar.refresh_rate", "0"]


def run_cli(*args):
    main(list(args))


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def config_sets():
    """Every config file, composed the way the README composes it."""
    for path in sorted(CONFIGS.rglob("*.yaml")):
        if "sweeps" in path.relative_to(CONFIGS).parts:
            continue  # sweep files, not fit configs: tests/runs/test_sweep.py checks them
        if "zoo" in path.relative_to(CONFIGS).parts:
            continue  # RL Zoo overlays: tests/test_zoo.py checks them
        if path.parent.name == "env":  # overlays compose with the algorithm their header names
            named = re.search(r"--config configs/(\w+\.yaml)", path.read_text())
            assert named, f"{path.name}: the header names no algorithm config to compose with"
            yield [str(CONFIGS / named.group(1)), str(path)]
        elif path.stem.endswith("_atari"):  # an algorithm's Atari settings, before the environment overlay
            yield [str(path), str(CONFIGS / "env" / "atari.yaml")]
        else:
            yield [str(path)]


@pytest.mark.parametrize("configs", list(config_sets()), ids=lambda c: Path(c[-1]).name)
def test_every_config_parses(configs, capsys):
    args = ["fit"] + [a for c in configs for a in ("--config", c)] + ["--print_config"]
    with pytest.raises(SystemExit) as exit_:
        run_cli(*args)
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("rl_lightning.algorithms.")
    assert printed["data"]["init_args"]["env_id"]


def test_help_shows_docstrings(capsys):
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", PPO, "--help")
    out = capsys.readouterr().out
    assert "--evaluation.every_frames" in out and "frames between evaluations" in out
    with pytest.raises(SystemExit):
        run_cli("fit", "--data.help", "OnPolicyDataModule")
    assert "Gymnasium environment id" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run_cli("fit", "--model.help", "PPO")
    assert "clipping of the probability ratio" in capsys.readouterr().out


def test_unknown_key_is_named(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO, "--model.learning_rat", "0.1")
    assert exit_.value.code != 0
    assert "learning_rat" in capsys.readouterr().err


def test_unknown_env_id_fails_before_training(in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO, "--data.env_id", "CartPol-v1")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'CartPol-v1'" in err and "CartPole-v1" in err
    assert not (in_tmp / "experiments").exists()  # no run folder was created


def test_fit_makes_a_run_folder_and_resume_continues_it(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    out = capsys.readouterr().out
    assert "Final evaluation: return" in out
    (run,) = (in_tmp / "experiments" / "ppo-CartPole-v1").iterdir()
    assert f"Run folder: {Path('experiments') / 'ppo-CartPole-v1' / run.name}" in out
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["total_frames"] == 2048 and saved["model"]["init_args"]["epochs"] == 20
    first = rows(run / "metrics.csv")
    assert [float(r["frames"]) for r in first] == [256.0 * i for i in range(1, 9)]
    for key in ("train/episode_return", "loss/policy", "time/fps", "eval/return_mean", "train/lr"):
        assert key in first[0]

    original_config = (run / "config.yaml").read_text()
    run_cli("fit", "--config", PPO, *TINY[:-2], "--data.total_frames", "4096", "--ckpt_path", "last")
    assert list((in_tmp / "experiments" / "ppo-CartPole-v1").iterdir()) == [run]
    frames = [float(r["frames"]) for r in rows(run / "metrics.csv")]
    assert frames == [256.0 * i for i in range(1, 17)]  # continued: no gap, no duplicate
    assert (run / "config.yaml").read_text() == original_config  # the run's config is kept
    (resumed,) = run.glob("config.resume-*.yaml")
    assert yaml.safe_load(resumed.read_text())["data"]["init_args"]["total_frames"] == 4096


def test_resume_without_a_run_is_a_clear_error(in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO, "--ckpt_path", "last")
    assert exit_.value.code == 2
    assert "no run of experiment 'ppo-CartPole-v1'" in capsys.readouterr().err


def test_env_id_from_an_importable_module(in_tmp):
    run_cli("fit", "--config", PPO, *TINY, "--data.env_id", "tests.helpers.envs:Countdown-v0",
            "--experiment", "countdown")
    (run,) = (in_tmp / "experiments" / "countdown").iterdir()
    assert rows(run / "metrics.csv")[-1]["eval/return_mean"]


def test_module_entry_point_runs(in_tmp):
    """``python -m rl_lightning`` as a subprocess, continuous actions via the env overlay."""
    result = subprocess.run(
        [sys.executable, "-m", "rl_lightning", "fit", "--config", PPO, "--config", str(CONFIGS / "env" / "pendulum.yaml"),
         "--data.total_frames", "1024", "--data.frames_per_batch", "512", "--evaluation.episodes", "1",
         "--progress_bar.refresh_rate", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Run folder: experiments/ppo-Pendulum-v1/" in result.stdout


@pytest.mark.parametrize("model, data, expected", [
    ("rl_lightning.algorithms.A2C", None, {"learning_rate": 0.0007, "gae_lambda": 1.0, "normalize_advantage": False}),
    ("rl_lightning.algorithms.DQN", "rl_lightning.data.ReplayDataModule", {"learning_rate": 0.0001}),
])
def test_a_chosen_class_takes_its_own_defaults_not_the_default_algorithms(capsys, model, data, expected):
    """Options a class shares with PPO / OnPolicyDataModule keep the chosen class's defaults;
    what the user sets still wins."""
    args = ["fit", "--model", model, *(["--data", data] if data else []), "--model.gamma", "0.5", "--print_config"]
    with pytest.raises(SystemExit):
        run_cli(*args)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"] == model
    assert config["model"]["init_args"] | expected == config["model"]["init_args"]
    assert config["model"]["init_args"]["gamma"] == 0.5
    if data:  # ReplayDataModule's own defaults, e.g. one environment
        assert config["data"]["init_args"]["num_envs"] == 1


def test_debug_is_a_quick_marked_run(in_tmp, capsys):
    run_cli("fit", "--config", PPO, "--debug", "--progress_bar.refresh_rate", "0")
    out = capsys.readouterr().out
    assert "Debug mode: 4096 frames (data.total_frames 100000)" in out
    (run,) = (in_tmp / "experiments" / "ppo-CartPole-v1-debug").iterdir()  # apart from the real runs
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["debug"] is True and saved["experiment"] == "ppo-CartPole-v1-debug"
    assert saved["data"]["init_args"]["total_frames"] == 4096
    assert saved["evaluation"] == {**saved["evaluation"], "every_frames": 2048, "episodes": 3}
    assert saved["trainer"]["detect_anomaly"] is True
    evaluated = [float(r["frames"]) for r in rows(run / "metrics.csv") if r["eval/return_mean"]]
    assert evaluated == [2048.0, 4096.0]
    assert not torch.is_anomaly_enabled()  # anomaly detection was scoped to the fit

    run_cli("fit", "--config", PPO, "--debug", "--data.total_frames", "1024", "--experiment", "mine",
            "--progress_bar.refresh_rate", "0")  # never more than the config's budget
    (small,) = (in_tmp / "experiments" / "mine-debug").iterdir()
    assert float(rows(small / "metrics.csv")[-1]["frames"]) == 1024.0


def test_debug_caps_what_a_tiny_budget_needs_and_applies_once():
    from jsonargparse import Namespace

    from rl_lightning.cli import _apply_debug

    cfg = Namespace(experiment=None, log_every_frames=200, trainer=Namespace(detect_anomaly=False),
                    model=Namespace(class_path="rl_lightning.algorithms.SAC"),
                    data=Namespace(class_path="rl_lightning.data.ReplayDataModule", init_args=Namespace(
                        env_id="Pendulum-v1", frames_per_batch=1, total_frames=20000, init_random_frames=3000)),
                    evaluation=Namespace(every_frames=2000, episodes=10), checkpoint=Namespace(every_frames=2000))
    _apply_debug(cfg, "fit")
    once = cfg.clone()
    assert cfg.experiment == "sac-Pendulum-v1-debug" and cfg.data.init_args.total_frames == 4096
    assert cfg.data.init_args.init_random_frames == 1024  # updates start within the budget
    assert cfg.log_every_frames == 200 and cfg.checkpoint.every_frames == 2000 and cfg.evaluation.episodes == 3
    _apply_debug(cfg, "fit")  # a debug run's config.yaml, run again (reproduce)
    assert cfg == once
