"""metadata.json, the FrameLimit callback and ``reproduce``."""

import csv
import json

import pytest

from rl_lightning.runs.reproduce import compare
from tests.test_cli import PPO, TINY, run_cli


def only_run(root):
    (run,) = (root / "experiments" / "ppo-CartPole-v1").iterdir()
    return run


def test_metadata_records_the_run(in_tmp):
    run_cli("fit", "--config", PPO, *TINY)
    meta = json.loads((only_run(in_tmp) / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["algorithm"] == "PPO" and meta["env_id"] == "CartPole-v1"
    assert meta["seed"] == 1 and meta["frames"] == 2048 and meta["resumes"] == 0
    assert meta["final_eval_return"] == meta["best_eval_return"] or meta["best_eval_return"] > meta["final_eval_return"]
    assert meta["versions"]["torch"] and meta["ended"] >= meta["started"]
    assert set(meta["git"]) == {"commit", "dirty"}


def test_failed_run_is_marked_failed(in_tmp):
    with pytest.raises(Exception):
        run_cli("fit", "--config", PPO, *TINY, "--data.env_id", "tests.helpers.envs:Exploding-v0")
    meta = json.loads((in_tmp / "experiments" / "ppo-tests.helpers.envs_Exploding-v0").glob("*/metadata.json").__next__().read_text())
    assert meta["status"] == "failed" and "exploded" in meta["error"]


def test_frame_limit_stops_early_with_the_full_schedule(in_tmp):
    run_cli("fit", "--config", PPO, *TINY, "--trainer.callbacks+=rl_lightning.callbacks.FrameLimit",
            "--trainer.callbacks.frames", "1000")
    rows = list(csv.DictReader(open(only_run(in_tmp) / "metrics.csv")))
    assert float(rows[-1]["frames"]) == 1024
    assert float(rows[0]["train/lr"]) == pytest.approx(1e-3 * (1 - 256 / 2048))  # schedule over 2048 frames


def test_reproduce_matches_exactly_and_detects_a_difference(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    run = only_run(in_tmp)
    capsys.readouterr()
    run_cli("reproduce", str(run), "--frames", "1536")
    out = capsys.readouterr().out
    assert "MATCH: all" in out
    (again,) = (run / "reproductions").iterdir()
    compared, mismatches = compare(run / "metrics.csv", again / "metrics.csv", 1536)
    assert compared > 50 and mismatches == []
    # tamper with one value of the original: the comparison must notice
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    rows[2]["loss/value"] = str(float(rows[2]["loss/value"]) + 1e-6)
    with open(run / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    compared, mismatches = compare(run / "metrics.csv", again / "metrics.csv", 1536)
    assert len(mismatches) == 1 and "loss/value" in mismatches[0]
