"""``FrameCheckpoint``: best-so-far kept across resumes, wherever the run folder now lives."""

import csv
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from tests.test_cli import PPO, run_cli

COUNTDOWN = ["--data.env_id", "tests.helpers.envs:Countdown-v0", "--evaluation.every_frames", "512",
             "--evaluation.episodes", "2", "--checkpoint.every_frames", "512", "--progress_bar.refresh_rate", "0"]


def best_score(path):
    """The best-so-far score stored in a checkpoint by its FrameCheckpoint."""
    ckpt = torch.load(path, weights_only=True)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("FrameCheckpoint")]
    return float(state["best_model_score"])


@pytest.mark.parametrize("how", ["copy", "move"])
def test_resuming_a_moved_or_copied_run_keeps_its_best_checkpoint(in_tmp, how):
    # Countdown's best return is 10, reached within 512 frames: later evaluations can tie it, never beat it
    run_cli("fit", "--config", PPO, *COUNTDOWN, "--data.total_frames", "1024", "--experiment", "first")
    (run,) = (in_tmp / "experiments" / "first").iterdir()
    best_before = (run / "checkpoints" / "best.ckpt").read_bytes()
    assert best_score(run / "checkpoints" / "best.ckpt") == 10.0
    elsewhere = in_tmp / "elsewhere" / run.name
    (shutil.copytree if how == "copy" else shutil.move)(run, elsewhere)

    run_cli("fit", "--config", PPO, *COUNTDOWN, "--data.total_frames", "2048", "--experiment", "first",
            "--ckpt_path", str(elsewhere / "checkpoints" / "last.ckpt"))
    rows = list(csv.DictReader(open(elsewhere / "metrics.csv")))
    resumed_evals = [float(r["eval/return_mean"]) for r in rows if float(r["frames"]) > 1024 and r["eval/return_mean"]]
    assert len(resumed_evals) == 2 and max(resumed_evals) <= 10.0  # nothing beat the earlier best
    assert (elsewhere / "checkpoints" / "best.ckpt").read_bytes() == best_before  # still the earlier best
    assert best_score(elsewhere / "checkpoints" / "last.ckpt") == 10.0
    assert json.loads((elsewhere / "metadata.json").read_text())["best_eval_return"] == 10.0  # Evaluation agrees
    if how == "copy":  # the original run is untouched
        assert (run / "checkpoints" / "best.ckpt").read_bytes() == best_before
        assert max(float(r["frames"]) for r in csv.DictReader(open(run / "metrics.csv"))) == 1024


def test_a_better_model_still_replaces_the_best_after_a_move(tmp_path):
    from rl_lightning.callbacks import FrameCheckpoint

    old, new = tmp_path / "old", tmp_path / "new"
    saved = FrameCheckpoint(dirpath=str(old))
    state = {**saved.state_dict(), "best_model_score": torch.tensor(5.0), "best_model_path": str(old / "best.ckpt"),
             "kth_best_model_path": str(old / "best.ckpt"), "kth_value": torch.tensor(5.0),
             "best_k_models": {str(old / "best.ckpt"): torch.tensor(5.0)}, "last_model_path": str(old / "last.ckpt")}
    new.mkdir()
    (new / "best.ckpt").write_bytes(b"")
    restored = FrameCheckpoint(dirpath=str(new))
    restored.load_state_dict(state)
    assert restored.best_model_score == 5.0 and restored.best_model_path == str(new / "best.ckpt")
    assert restored.best_k_models == {str(new / "best.ckpt"): 5.0}
    trainer = SimpleNamespace(strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, **_: decision))
    assert restored.check_monitor_top_k(trainer, torch.tensor(4.0)) is False  # worse: keep
    assert restored.check_monitor_top_k(trainer, torch.tensor(6.0)) is True  # better: replace
