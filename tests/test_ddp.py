"""Two CPU processes with DDP (gloo), through the command line as a user runs it."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_cli import CONFIGS, PPO


def test_ddp_on_two_cpu_processes_shares_one_run_and_reduces_episode_stats(in_tmp):
    cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", PPO,
           "--data.env_id", "tests.helpers.envs:Countdown-v0", "--data.env_kwargs", "{length: 5}",
           "--data.total_frames", "4096", "--evaluation.every_frames", "2048", "--evaluation.episodes", "2",
           "--progress_bar.refresh_rate", "0", "--experiment", "ddp",
           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (in_tmp / "experiments" / "ddp").iterdir()  # rank 1 reuses rank 0's run folder
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    # each of the 2 ranks collects 256 frames per batch: frames count both
    assert [float(r["frames"]) for r in rows] == [512.0 * i for i in range(1, 9)]
    # 8 envs x 256 steps per rank, episodes of 5 steps: 51 per env, 408 per rank, 816 in all
    assert float(rows[-1]["train/episodes"]) == 816
    assert float(rows[-1]["train/episode_length"]) == 5.0
    assert [r["frames"] for r in rows if r["eval/return_mean"]] == ["2048.0", "4096.0"]  # once each
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["world_size"] == 2 and meta["status"] == "finished"
    assert Path(run / "checkpoints" / "last.ckpt").is_file()


def test_two_nodes_as_local_processes(in_tmp):
    """``--trainer.num_nodes 2``: one process per "node", joined through MASTER_ADDR/PORT."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", PPO, "--data.total_frames", "2048",
           "--evaluation.every_frames", "2048", "--evaluation.episodes", "2", "--progress_bar.refresh_rate", "0",
           "--experiment", "nodes", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
           "--trainer.num_nodes", "2", "--trainer.strategy", "ddp"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                              "NODE_RANK": str(rank), "WORLD_SIZE": "2"})
        for rank in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    (run,) = (in_tmp / "experiments" / "nodes").iterdir()  # node 1 wrote nothing
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [float(r["frames"]) for r in rows] == [512.0 * i for i in range(1, 5)]
    assert json.loads((run / "metadata.json").read_text())["world_size"] == 2


def test_ddp_off_policy_run_resumes_from_its_checkpoint(in_tmp):
    """DQN on two CPU processes (a replay buffer per rank), stopped at its budget, continued
    with a larger one from ``--ckpt_path last``: one run folder, no repeated or missing rows."""
    root = Path(__file__).resolve().parent.parent
    base = [sys.executable, "-m", "rl_lightning", "fit", "--config", str(root / "configs" / "dqn.yaml"),
            "--data.frames_per_batch", "128", "--data.updates_per_batch", "8", "--data.init_random_frames", "256",
            "--evaluation.every_frames", "512", "--evaluation.episodes", "2", "--progress_bar.refresh_rate", "0",
            "--experiment", "ddp-dqn", "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    for extra in (["--data.total_frames", "1024"], ["--data.total_frames", "2048", "--ckpt_path", "last"]):
        result = subprocess.run(base + extra, capture_output=True, text=True, timeout=300, env={**os.environ})
        assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (in_tmp / "experiments" / "ddp-dqn").iterdir()
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [float(r["frames"]) for r in rows] == [256.0 * i for i in range(1, 9)]  # 128 per rank per row
    assert [r["frames"] for r in rows if r["eval/return_mean"]] == ["512.0", "1024.0", "1536.0", "2048.0"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ReplayDataModule"]["frames"] == 1024  # per rank: 2048 over both
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("config, extra", [
    ("ppo.yaml", ["--data.total_frames", "512"]),
    ("dqn.yaml", ["--data.total_frames", "512", "--data.frames_per_batch", "128", "--data.init_random_frames", "128",
                  "--data.updates_per_batch", "4"]),
    # batched torch environments: each rank steps its own, seeded apart
    ("ppo_torch_cartpole.yaml", ["--data.total_frames", "1024", "--data.num_envs", "16", "--data.frames_per_batch",
                                 "512", "--model.minibatch_size", "256"]),
])
def test_ddp_gradients_are_synchronised_across_ranks(in_tmp, config, extra):
    """Each rank collects its own data (a different loss), yet after the first update both
    ranks hold the same, changed, parameters: gradients were averaged across the ranks."""
    cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", str(CONFIGS / config), *extra,
           "--evaluation.every_frames", "0", "--evaluation.episodes", "1", "--progress_bar.refresh_rate", "0",
           "--experiment", "sync", "--trainer.callbacks+=tests.helpers.ddp.RecordFirstUpdate",
           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(in_tmp / f"ddp-rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["loss"] != rank1["loss"]  # different data on each rank
    assert rank0["before"].keys() == rank1["after"].keys() and rank0["before"]
    for name, before in rank0["before"].items():
        assert torch.equal(before, rank1["before"][name])  # same start (DDP broadcasts rank 0's)
        assert torch.equal(rank0["after"][name], rank1["after"][name]), name
    assert any(not torch.equal(rank0["before"][n], rank0["after"][n]) for n in rank0["before"])


def test_ddp_normalization_statistics_count_every_rank_and_agree(in_tmp):
    """Observation and return statistics sum the batch moments of both ranks: each rank ends
    with the same statistics, counting the frames of both."""
    cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", PPO, "--data.total_frames", "2048",
           "--data.normalize_observation", "true", "--data.normalize_reward", "true",
           "--evaluation.every_frames", "2048", "--evaluation.episodes", "2", "--progress_bar.refresh_rate", "0",
           "--experiment", "ddp-norm", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
           "--trainer.strategy", "ddp", "--trainer.callbacks+=tests.helpers.ddp.RecordNormalizer"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(in_tmp / f"norm-rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key in ("obs_rms.mean", "obs_rms.var", "obs_rms.count", "return_rms.var", "return_rms.count"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert float(ranks[0]["obs_rms.count"]) == pytest.approx(2048, abs=1e-3)  # both ranks' frames
    assert not torch.equal(ranks[0]["_extra_state"], ranks[1]["_extra_state"])  # each rank's own episodes
