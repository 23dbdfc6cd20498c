"""``python -m rl_lightning fit ... --seeds``: one run per seed in parallel, a summary over seeds."""

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rl_lightning.cli import main as cli_main
from rl_lightning.errors import ConfigError
from rl_lightning.runs.seeds import parse_seeds, split_args

ROOT = Path(__file__).resolve().parents[2]
PPO = str(ROOT / "configs" / "ppo.yaml")
TINY = ["--data.total_frames", "512", "--evaluation.every_frames", "512", "--evaluation.episodes", "2",
        "--model.epochs", "1", "--checkpoint.every_frames", "512"]


def fit(*args):
    return subprocess.run([sys.executable, "-m", "rl_lightning", "fit", "--config", PPO, *args],
                          check=False, capture_output=True, text=True, timeout=600)


def test_seed_lists_and_ranges():
    assert parse_seeds("1,2,3") == [1, 2, 3]
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("0-2, 10") == [0, 1, 2, 10]
    for bad, says in (("3-1", "'3-1'"), ("1,a", "'a'"), ("", "''"), ("1,1-2", "seed 1 is given twice"),
                      ("-1", "'-1'"), ("1-9999999999", "[0, ")):
        with pytest.raises(ConfigError, match=re.escape(says)):
            parse_seeds(bad)
    assert split_args(["--config", "a.yaml", "--seeds=1,2", "--seed_workers", "3"]) == (["--config", "a.yaml"], "1,2", 3)


@pytest.mark.parametrize("args, says", [
    (["--seeds", "1,2", "--seed_everything", "3"], "--seed_everything cannot be combined with --seeds"),
    (["--seeds", "1,2", "--ckpt_path=last"], "--ckpt_path cannot be combined with --seeds"),
    (["--seeds", "1,2", "--seed_workers", "0"], "--seed_workers must be a whole number >= 1"),
    (["--seeds"], "--seeds needs a value"),
    (["--seed_workers", "2"], "--seed_workers goes with --seeds"),
])
def test_options_a_seed_group_cannot_take_are_refused(in_tmp, capsys, args, says):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["fit", "--config", PPO, *args])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not (in_tmp / "experiments").exists()


def test_two_seeds_run_in_parallel_into_one_experiment_with_a_summary(in_tmp):
    result = fit("--seeds", "1-2", *TINY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    experiment = in_tmp / "experiments" / "ppo-CartPole-v1"
    (group,) = experiment.glob("seeds-*")
    runs = sorted((p for p in experiment.iterdir() if p != group), key=lambda p: p.name[-3:])
    assert [p.name[-3:] for p in runs] == ["-s1", "-s2"]
    assert [yaml.safe_load((p / "config.yaml").read_text())["seed_everything"] for p in runs] == [1, 2]
    # each seed's output in its log, not on the terminal
    assert "Final evaluation: return" not in result.stdout and "Run folder:" not in result.stdout
    for seed in (1, 2):
        assert "Final evaluation: return" in (group / f"seed-{seed}.log").read_text()
    finals = [json.loads((p / "metadata.json").read_text())["final_eval_return"] for p in runs]
    summary = (group / "summary.md").read_text()
    assert summary in result.stdout
    for seed, run, final in zip((1, 2), runs, finals):
        assert re.search(rf"^{seed} +finished +512 +{final:.6g} +.*{run.name}$", summary, re.MULTILINE), summary
    assert f"over 2 of 2 seeds: {statistics.fmean(finals):.2f} ± {statistics.pstdev(finals):.2f}" in summary


def test_a_failing_seed_is_reported_with_its_log_and_a_nonzero_exit(in_tmp):
    result = fit("--seeds", "4", "--data.env_id", "CartPol-v1", *TINY)  # refused in the run, after parsing
    assert result.returncode == 1
    (log,) = (in_tmp / "experiments" / "ppo-CartPol-v1").glob("seeds-*/seed-4.log")
    assert "'CartPol-v1' is not a registered" in log.read_text()
    assert re.search(rf"Seed 4 failed \(exit code 2\): env_id 'CartPol-v1' .*; log: {re.escape(str(log.relative_to(in_tmp)))}",
                     result.stdout), result.stdout


def test_a_bad_key_is_refused_before_any_seed_runs(in_tmp):
    result = fit("--seeds", "1,2", "--model.learning_rat", "0.1")
    assert result.returncode == 2
    assert "learning_rat" in result.stderr and result.stderr.count("\n") == 1
    assert not (in_tmp / "experiments").exists()
