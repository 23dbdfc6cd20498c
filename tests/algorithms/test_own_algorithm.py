"""An algorithm written outside the package the ordinary Lightning way
(``training_step(self, batch, batch_idx)`` returning the loss, ``examples/reinforce.py``) gets
what the shipped algorithms get: fresh batches, the frame budget, logging against frames,
evaluation, checkpoints, signals."""

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from examples.reinforce import Reinforce
from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
REINFORCE = ["--config", str(ROOT / "examples" / "reinforce.yaml"), "--data.total_frames", "4096",
             "--data.frames_per_batch", "1024", "--evaluation.every_frames", "2048", "--evaluation.episodes", "2",
             "--checkpoint.every_frames", "2048", "--progress_bar.refresh_rate", "0"]


class Tagged(Reinforce):
    """Records, at each update, how many of the batch's actions came from older weights."""

    stale: list[int] = []

    def on_fit_start(self) -> None:
        self.version = 0
        Tagged.stale = []

    def act(self, obs, deterministic=False):
        out = super().act(obs, deterministic)
        return {**out, "version": torch.full_like(out["action"], self.version)}

    def training_step(self, batch, batch_idx):
        Tagged.stale.append(int((batch["version"] != self.version).sum()))
        self.version += 1
        return super().training_step(batch, batch_idx)


class SignalsItself(Reinforce):
    """Sends itself SIGTERM during its second update."""

    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().training_step(batch, batch_idx)


def only_run(root: Path) -> Path:
    (run,) = [p for p in root.glob("experiments/*/*") if p.is_dir()]
    return run


def test_an_ordinary_training_step_stops_at_the_budget_and_logs_evaluates_and_checkpoints_by_frames(in_tmp):
    run_cli("fit", *REINFORCE)
    run = only_run(in_tmp)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [float(r["frames"]) for r in rows] == [1024, 2048, 3072, 4096]  # and not one batch more
    assert all(r["loss/train"] and r["train/return_to_go"] and r["train/episode_return"] for r in rows)
    assert [r["frames"] for r in rows if r["eval/return_mean"]] == ["2048.0", "4096.0"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["OnPolicyDataModule"]["frames"] == 4096
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"


def test_an_ordinary_training_step_gets_batches_collected_with_the_current_weights(in_tmp):
    run_cli("fit", *REINFORCE, "--model", "tests.algorithms.test_own_algorithm.Tagged")
    assert Tagged.stale == [0, 0, 0, 0]  # Lightning's prefetch would give the previous weights' batch


def test_an_ordinary_training_step_honours_sigterm_at_a_batch_boundary(in_tmp):
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", *REINFORCE, "--model", "tests.algorithms.test_own_algorithm.SignalsItself")
    assert exit_.value.code == 1
    run = only_run(in_tmp)
    assert json.loads((run / "metadata.json").read_text())["status"] == "interrupted"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["OnPolicyDataModule"]["frames"] == 2048  # the batch in progress finished, then it stopped


def test_an_environment_whose_constructor_takes_no_render_mode_trains(in_tmp):
    run_cli("fit", *REINFORCE, "--data.env_id", "tests.helpers.envs:NoRenderMode-v0", "--data.total_frames", "2048")
    rows = list(csv.DictReader(open(only_run(in_tmp) / "metrics.csv")))
    assert float(rows[-1]["frames"]) == 2048 and rows[-1]["eval/return_mean"]
