"""Bad input is a clear early error (one ``error:`` line, exit code 2, no traceback, no run
folder where the input can be checked before one exists), and a diverged run fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rl_lightning.algorithms import DQN, PPO, SAC, TD3
from rl_lightning.callbacks import Evaluation, FrameCheckpoint
from rl_lightning.callbacks.nan_guard import DivergedError, NanGuard
from rl_lightning.cli import main
from rl_lightning.data import OnPolicyDataModule, ReplayDataModule
from rl_lightning.envs import EnvSpec, check_env
from rl_lightning.envs.gym import EXTRAS
from rl_lightning.errors import ConfigError
from rl_lightning.preflight import PACKAGE_EXTRAS
from rl_lightning.runs.loggers import LOGGER_PACKAGES
from rl_lightning.runs.sweep_space import check_storage, parser_error

ROOT = Path(__file__).resolve().parent.parent
PPO_CONFIG = str(ROOT / "configs" / "ppo.yaml")
TINY = ["--data.total_frames", "512", "--evaluation.every_frames", "0", "--evaluation.episodes", "1",
        "--progress_bar.refresh_rate", "0"]


def refused(capsys, *args, code=2):
    """Run the CLI in-process; return its one-line error (asserting the exit code)."""
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Seed set to")]
    assert "Traceback" not in err
    assert lines[-1].startswith("error: ") and sum(line.startswith("error:") for line in lines) == 1, err[-2000:]
    return lines[-1]


def statuses(experiment_dir):
    return [json.loads((run / "metadata.json").read_text())["status"] for run in sorted(Path(experiment_dir).iterdir())]


# --- item 13: range checks at construction ----------------------------------------------------
@pytest.mark.parametrize("make, key", [
    (lambda: PPO(clip_range=-0.2), "model.clip_range"),
    (lambda: PPO(learning_rate=0.0), "model.learning_rate"),
    (lambda: PPO(learning_rate=-3e-4), "model.learning_rate"),
    (lambda: PPO(learning_rate=1e9), "model.learning_rate"),
    (lambda: PPO(gamma=0.0), "model.gamma"),
    (lambda: PPO(value_coef=-1.0), "model.value_coef"),
    (lambda: PPO(value_clip=0.0), "model.value_clip"),
    (lambda: PPO(log_std_init=float("nan")), "model.log_std_init"),
    (lambda: DQN(learning_rate=0.0), "model.learning_rate"),
    (lambda: DQN(exploration_final=1.5), "model.exploration_final"),
    (lambda: DQN(tau=0.0), "model.tau"),
    (lambda: DQN(target_update_interval=0), "model.target_update_interval"),
    (lambda: DQN(max_grad_norm=-1.0), "model.max_grad_norm"),
    (lambda: SAC(learning_rate=2.0), "model.learning_rate"),
    (lambda: SAC(init_alpha=0.0), "model.init_alpha"),
    (lambda: SAC(log_std_min=3.0, log_std_max=2.0), "model.log_std_min"),
    (lambda: SAC(adam_eps=0.0), "model.adam_eps"),
    (lambda: TD3(gamma=1.5), "model.gamma"),
    (lambda: TD3(policy_delay=0), "model.policy_delay"),
    (lambda: TD3(target_noise=-0.1), "model.target_noise"),
    (lambda: OnPolicyDataModule(seed=-5), "data.seed"),
    (lambda: ReplayDataModule("CartPole-v1", batch_size=256, buffer_size=100), "data.batch_size"),
    (lambda: ReplayDataModule("CartPole-v1", init_random_frames=1000, total_frames=500), "data.init_random_frames"),
    (lambda: ReplayDataModule("CartPole-v1", beta=1.5), "data.beta"),
    (lambda: ReplayDataModule("CartPole-v1", alpha=-0.5), "data.alpha"),
    (lambda: Evaluation(seed=-1), "evaluation.seed"),
    (lambda: FrameCheckpoint(mode="maximum"), "checkpoint.mode"),
])
def test_nonsense_options_are_refused_at_construction(make, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make()


def test_defaults_and_edges_of_the_ranges_are_accepted():
    PPO(), DQN(), SAC(), TD3(), Evaluation(seed=0), FrameCheckpoint(mode="min")
    PPO(learning_rate=1.0, gamma=1.0, gae_lambda=0.0, clip_range=1.0, entropy_coef=0.0)
    DQN(exploration_fraction=0.0, max_grad_norm=None)
    ReplayDataModule("CartPole-v1", batch_size=100, buffer_size=100, init_random_frames=0, total_frames=1)


def test_cli_refuses_a_negative_clip_range(in_tmp, capsys):
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, "--model.init_args.clip_range", "-0.2")
    assert "model.clip_range must be in (0, 1], got -0.2" in line


def test_cli_refuses_a_learning_rate_of_1e9_before_training(in_tmp, capsys):
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, "--model.init_args.learning_rate", "1e9",
                   "--experiment", "lr")
    assert "model.learning_rate must be in (0, 1], got 1000000000.0" in line
    assert not list((in_tmp / "experiments" / "lr").glob("*/checkpoints/*.ckpt"))  # nothing was trained


def test_minibatch_larger_than_the_collected_batch_is_refused(in_tmp, capsys):
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, "--model.init_args.minibatch_size", "1000")
    assert "model.minibatch_size (1000)" in line and "data.frames_per_batch (256)" in line


# --- item 13: divergence is a failure -----------------------------------------------------------
def test_nan_guard_fails_a_diverged_approx_kl():
    from types import SimpleNamespace

    net = torch.nn.Linear(2, 1)
    net.frames, net.at_boundary = 256, True
    guard = NanGuard()
    guard.on_train_start(None, net)
    trainer = SimpleNamespace(callback_metrics={"train/approx_kl": torch.tensor(0.02)}, checkpoint_callbacks=[],
                              global_step=3)
    guard.on_train_batch_end(trainer, net, None, None, 0)  # a healthy update passes
    trainer.callback_metrics["train/approx_kl"] = torch.tensor(3.6e9)
    with pytest.raises(DivergedError, match=r"train/approx_kl is 3\.6e\+09, beyond its divergence limit 100 at frame 256"):
        guard.on_train_batch_end(trainer, net, None, None, 0)


def test_a_diverging_ppo_run_ends_failed(in_tmp, capsys):
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, "--model.init_args.learning_rate", "1.0",
                   "--model.init_args.lr_schedule", "constant", "--experiment", "diverge", code=1)
    assert "the run diverged: metric train/approx_kl" in line
    assert statuses(in_tmp / "experiments" / "diverge") == ["failed"]


# --- item 14: one error line instead of a traceback ---------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["--torch_threads", "0"], "--torch_threads must be >= 1, got 0"),
    (["--seed_everything", "-5"], "--seed_everything must be in [0, 4294967295]"),
    (["--data.env_kwargs", "{foo: 1}"], "data.env_kwargs {'foo': 1}: 'CartPole-v1' does not accept them"),
])
def test_bad_run_options_are_one_error_line_and_leave_no_run_folder(in_tmp, capsys, args, expected):
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, *args)
    assert expected in line
    assert not (in_tmp / "experiments").exists()


def test_unknown_env_kwarg_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"valid keys: .*max_episode_steps.*sutton_barto_reward"):
        check_env("CartPole-v1", {"foo": 1})
    check_env("CartPole-v1", {"max_episode_steps": 20, "sutton_barto_reward": True})


def test_mujoco_id_without_mujoco_names_the_extra(monkeypatch, in_tmp, capsys):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # as if the package were not installed
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.mujoco")]:
        monkeypatch.delitem(sys.modules, name)
    line = refused(capsys, "fit", "--config", str(ROOT / "configs" / "sac.yaml"), *TINY,
                   "--data.env_id", "HalfCheetah-v5")
    assert "'HalfCheetah-v5'" in line and "pip install 'rl_lightning[mujoco]'" in line
    assert not (in_tmp / "experiments").exists()


def test_atari_id_without_ale_py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)
    if "ALE/Pong-v5" in gym.registry:
        monkeypatch.delitem(gym.registry, "ALE/Pong-v5")
    with pytest.raises(ConfigError, match=r"'ALE/Pong-v5' needs the ale_py package.*rl_lightning\[atari\]"):
        check_env("ALE/Pong-v5")


def test_every_extra_named_in_messages_exists_in_pyproject():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {e for *_, e in EXTRAS} | set(PACKAGE_EXTRAS.values()) | {e for _, e in LOGGER_PACKAGES.values()}
    assert named <= set(extras), named - set(extras)
    assert any(dep.startswith("gymnasium[mujoco]") for dep in extras["mujoco"])
    assert any(dep.startswith("gymnasium[atari]") for dep in extras["atari"])
    assert any(dep.startswith("shimmy[dm-control]") for dep in extras["dmc"])


def test_tensorboard_logger_without_tensorboard_names_the_extra(in_tmp):
    """In a subprocess where importing tensorboard fails (a ``None`` entry in sys.modules)."""
    site = in_tmp / "no_tensorboard"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nfor name in ('tensorboard', 'tensorboardX'):\n    sys.modules[name] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    result = subprocess.run([sys.executable, "-m", "rl_lightning", "fit", "--config", PPO_CONFIG, *TINY,
                             "--trainer.logger+=TensorBoard"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Seed set to")]
    assert lines == ["error: trainer.logger TensorBoard needs the tensorboard package, which is not installed: "
                     "pip install 'rl_lightning[tracking]'."]
    assert not (in_tmp / "experiments").exists()


def test_nan_observations_are_one_error_line_and_the_run_failed(in_tmp, capsys):
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, "--data.env_id",
                   "tests.helpers.envs:NanObservation-v0", "--experiment", "nan-obs")
    assert "'tests.helpers.envs:NanObservation-v0': step() returned a NaN/Inf observation" in line
    assert statuses(in_tmp / "experiments" / "nan-obs") == ["failed"]


def test_changed_num_envs_on_resume_is_refused_and_the_run_kept(in_tmp, capsys):
    main(["fit", "--config", PPO_CONFIG, *TINY, "--experiment", "envs"])
    (run,) = (in_tmp / "experiments" / "envs").iterdir()
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    capsys.readouterr()
    line = refused(capsys, "fit", "--config", PPO_CONFIG, *TINY, "--experiment", "envs", "--data.num_envs", "4",
                   "--data.total_frames", "1024", "--ckpt_path", "last")
    assert "the checkpoint fixes data.num_envs (checkpoint 8, config 4)" in line
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_bad_optuna_storage_is_one_error_line_and_leaves_no_sweep_folder(in_tmp, capsys):
    import yaml

    (in_tmp / "opt.yaml").write_text(yaml.safe_dump({
        "base": [PPO_CONFIG], "search": {"type": "optuna", "n_trials": 2,
                                         "params": {"model.init_args.learning_rate": {"low": 1e-4, "high": 1e-3}}}}))
    line = refused(capsys, "sweep", "--config", "opt.yaml", "--storage", "nonsense://")
    assert "--storage nonsense://: SQLAlchemy has no database type 'nonsense'" in line
    assert not (in_tmp / "experiments").exists()


def test_storage_driver_hint_names_an_installable_package_and_hides_the_password(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    for url, package in (("postgresql+psycopg://me:hunter2@db/optuna", "psycopg[binary]"),
                         ("postgresql+psycopg2://me:hunter2@db/optuna", "psycopg2-binary")):
        with pytest.raises(ConfigError) as err:
            check_storage(url)
        assert f"pip install '{package}'" in str(err.value) and "hunter2" not in str(err.value)
    check_storage("sqlite:///optuna.db")


# --- item 15: messages that say what is wrong -----------------------------------------------------
def test_env_mismatch_on_load_names_checkpoint_and_config_the_right_way_round():
    model = PPO()
    config_env = EnvSpec("CartPole-v1", (4,), True, n_actions=2)
    checkpoint_env = EnvSpec("Countdown-v0", (1,), True, n_actions=2)
    model.connect_spec(config_env)  # what setup does with the config's data module
    checkpoint = {"rl_lightning": {"algorithm": "rl_lightning.algorithms.ppo.PPO", "env_spec": checkpoint_env.to_dict()},
                  "state_dict": {}}
    with pytest.raises(ConfigError) as err:
        model.on_load_checkpoint(checkpoint)
    message = str(err.value)
    assert "trained on Countdown-v0 (observations (1,), 2 discrete actions)" in message
    assert "the config's environment is CartPole-v1 (observations (4,), 2 discrete actions)" in message


def test_yaml_syntax_error_names_the_file_and_line(in_tmp, capsys):
    (in_tmp / "bad.yaml").write_text("model:\n  class_path: rl_lightning.algorithms.PPO\ndata: [\n  a: b\n")
    line = refused(capsys, "fit", "--config", "bad.yaml")
    assert line.startswith("error: --config bad.yaml: not valid YAML at line ") and "<unicode string>" not in line


def test_empty_yaml_says_it_is_empty(in_tmp, capsys):
    (in_tmp / "empty.yaml").write_text("# nothing yet\n")
    line = refused(capsys, "fit", "--config", "empty.yaml")
    assert "--config empty.yaml is empty" in line and "Unexpected config" not in line


def test_bad_sweep_param_path_is_named_without_parser_internals(in_tmp, capsys):
    import yaml

    (in_tmp / "typo.yaml").write_text(yaml.safe_dump({
        "base": [PPO_CONFIG], "overrides": {"data.init_args.total_frames": 512},
        "search": {"type": "grid", "params": {"model.init_args.learnin_rate": [0.001]}}}))
    line = refused(capsys, "sweep", "--config", "typo.yaml")
    assert "typo.yaml: search.params.model.init_args.learnin_rate:" in line
    assert "Option 'learnin_rate' is not accepted" in line and "NestedArg" not in line
    assert not (in_tmp / "experiments").exists()


def test_parser_error_drops_jsonargparse_internals():
    text = ("usage: ...\nerror: Parser key \"model\":\n  Does not validate against any of the Union subtypes\n"
            "  Subtypes: [<class 'RLModule'>, <class 'NoneType'>]\n  Errors:\n"
            "    - Problem with given class_path 'rl_lightning.algorithms.PPO':\n"
            "        Option 'learnin_rate' is not accepted\n    - Expected a <class 'NoneType'>\n"
            "  Given value type: <class 'jsonargparse._util.NestedArg'>\n"
            "  Given value: NestedArg(key='learnin_rate', val='0.001')\n")
    assert parser_error(text) == ("Parser key \"model\": Problem with given class_path 'rl_lightning.algorithms.PPO': "
                                  "Option 'learnin_rate' is not accepted")
    assert parser_error("Traceback ...\nRuntimeError: boom\n") == "RuntimeError: boom"
