"""Exact resume: 2N frames in one go == N frames, stop, resume, N more frames."""

import csv

import torch

from tests.test_cli import PPO, run_cli

COMMON = ["--config", PPO, "--data.total_frames", "3072", "--evaluation.every_frames", "1024",
          "--evaluation.episodes", "2", "--checkpoint.every_frames", "1024", "--progress_bar.refresh_rate", "0"]


def metric_rows(run):
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_resumed_ppo_run_equals_the_uninterrupted_one(in_tmp):
    run_cli("fit", *COMMON, "--experiment", "straight")
    run_cli("fit", *COMMON, "--experiment", "resumed", "--trainer.callbacks+=rl_lightning.callbacks.FrameLimit",
            "--trainer.callbacks.frames", "2048")  # an evaluation point of both runs
    run_cli("fit", *COMMON, "--experiment", "resumed", "--ckpt_path", "last")
    (straight,) = (in_tmp / "experiments" / "straight").iterdir()
    (resumed,) = (in_tmp / "experiments" / "resumed").iterdir()
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["OnPolicyDataModule"]["frames"] == b["OnPolicyDataModule"]["frames"] == 3072
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    rows_a, rows_b = metric_rows(straight), metric_rows(resumed)
    assert [r["frames"] for r in rows_a] == [r["frames"] for r in rows_b]
    assert rows_a == rows_b  # every logged value, evaluations included
