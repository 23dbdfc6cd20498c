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
    evals = [float(r["eval/return_mean"]) for r in csv.DictReader(open(only_run(in_tmp) / "metrics.csv"))
             if r["eval/return_mean"]]
    assert len(evals) == 2  # every 1024 of 2048 frames
    assert meta["final_eval_return"] == evals[-1] and meta["best_eval_return"] == max(evals)
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


def write_metrics(path, rows):
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


ORIGINAL = [{"frames": str(f), "loss/value": str(f / 1000), "train/lr": "0.001", "time/fps": "900",
             "eval/return_mean": "20.0" if f == 1024 else ""} for f in (256, 512, 768, 1024)]


def test_a_reproduction_missing_rows_is_a_mismatch(tmp_path):
    write_metrics(tmp_path / "a.csv", ORIGINAL)
    write_metrics(tmp_path / "b.csv", ORIGINAL[:2])  # the re-run stopped at 512 frames
    compared, mismatches = compare(tmp_path / "a.csv", tmp_path / "b.csv", 1024)
    assert compared == 6  # the two rows both hold, three values each (timings excluded)
    assert mismatches == ["2 row(s) of the original missing from the reproduction: frames 768, 1024"]
    # rows the original lacks (a re-run past the original's last row) are missing data too
    compared, mismatches = compare(tmp_path / "b.csv", tmp_path / "a.csv", 1024)
    assert mismatches[0] == "2 row(s) of the reproduction missing from the original: frames 768, 1024"


def test_a_reproduction_missing_a_column_is_a_mismatch(tmp_path):
    write_metrics(tmp_path / "a.csv", ORIGINAL)
    write_metrics(tmp_path / "b.csv", [{k: v for k, v in row.items() if k != "loss/value"} for row in ORIGINAL])
    compared, mismatches = compare(tmp_path / "a.csv", tmp_path / "b.csv", 1024)
    assert compared == 9  # frames and train/lr in 4 rows, eval/return_mean in one
    assert len(mismatches) == 4 and all("loss/value: missing from the reproduction" in m for m in mismatches)
    # an empty cell counts as missing, too; timing columns do not count
    write_metrics(tmp_path / "c.csv", [{**row, "eval/return_mean": "", "time/fps": ""} for row in ORIGINAL])
    _, mismatches = compare(tmp_path / "a.csv", tmp_path / "c.csv", 1024)
    assert mismatches == ["frames 1024, eval/return_mean: missing from the reproduction (original 20.0, reproduced -)"]


def test_reproduce_refuses_frames_beyond_the_original_budget(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed_everything: 1\ndata:\n  init_args:\n    total_frames: 1024\n")
    write_metrics(run / "metrics.csv", ORIGINAL)
    with pytest.raises(SystemExit) as exit_:
        run_cli("reproduce", str(run), "--frames", "4096")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --frames 4096 is beyond the run's budget of 1024 frames")
    assert not (run / "reproductions").exists()  # refused before re-running anything
