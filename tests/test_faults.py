"""Interruptions, NaN/Inf and bad checkpoints, through the command line."""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.test_cli import PPO, TINY, run_cli


def test_sigterm_saves_a_checkpoint_and_resume_continues(in_tmp):
    cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", PPO, "--data.total_frames", "200000",
           "--evaluation.every_frames", "100000", "--checkpoint.every_frames", "100000",
           "--progress_bar.refresh_rate", "0", "--experiment", "stop"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = in_tmp / "experiments" / "stop"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training runs (metrics rows appear)
        runs = list(root.glob("*/metrics.csv"))
        if runs and len(runs[0].read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    (run,) = root.iterdir()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "interrupted"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    frames = ckpt["OnPolicyDataModule"]["frames"]
    assert 0 < frames < 200_000 and frames % 256 == 0  # saved at a batch boundary
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[-1]["frames"]) == frames

    run_cli("fit", "--config", PPO, "--data.total_frames", str(frames + 512), "--progress_bar.refresh_rate", "0",
            "--evaluation.every_frames", "100000", "--experiment", "stop", "--ckpt_path", "last")
    rows = [float(r["frames"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    assert rows[-3:] == [frames, frames + 256, frames + 512]
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO, *TINY, "--data.env_id", "tests.helpers.envs:NanAfter-v0",
                "--experiment", "nan")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "non-finite value" in err and "at frame" in err and "last good checkpoint" in err
    (run,) = (in_tmp / "experiments" / "nan").iterdir()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert json.loads((run / "metadata.json").read_text())["status"] == "failed"


def test_bad_checkpoints_are_named(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    (run,) = (in_tmp / "experiments" / "ppo-CartPole-v1").iterdir()
    broken = in_tmp / "broken.ckpt"
    broken.write_bytes((run / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    for path, message in [(broken, "not a readable checkpoint"), (in_tmp / "missing.ckpt", "no such checkpoint")]:
        with pytest.raises(SystemExit) as exit_:
            run_cli("validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(path))
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert str(path) in err and message in err
    other = in_tmp / "other.ckpt"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["rl_lightning"]["algorithm"] = "rl_lightning.algorithms.DQN"
    torch.save(ckpt, other)
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", PPO, "--ckpt_path", str(other))
    assert "holds a DQN model, but the config selects PPO" in capsys.readouterr().err


def test_sigkill_at_random_moments_loses_at_most_one_checkpoint_interval(in_tmp):
    import random

    rng = random.Random(0)
    cmd = [sys.executable, "-m", "rl_lightning", "fit", "--config", PPO, "--data.total_frames", "24576",
           "--checkpoint.every_frames", "512", "--evaluation.every_frames", "4096", "--evaluation.episodes", "2",
           "--progress_bar.refresh_rate", "0", "--experiment", "killed"]
    root = in_tmp / "experiments" / "killed"
    for attempt in range(3):
        proc = subprocess.Popen(cmd + (["--ckpt_path", "last"] if attempt else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.time()
        while not list(root.glob("*/checkpoints/last.ckpt")) and time.time() - start < 120:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()
        (run,) = root.iterdir()  # never a second run folder
        logged = max(float(r["frames"]) for r in csv.DictReader(open(run / "metrics.csv")))
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # never a partial file
        assert logged - ckpt["OnPolicyDataModule"]["frames"] <= 512
    try:
        run_cli(*cmd[3:], "--ckpt_path", "last")
    except SystemExit as exit_:  # a fast machine finished the budget before the last kill
        assert exit_.code == 0
    (run,) = root.iterdir()
    frames = [float(r["frames"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    assert frames == [256.0 * i for i in range(1, 97)]  # complete, no duplicates
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_bf16_mixed_precision_trains(in_tmp, algorithm):
    if algorithm == "ppo":
        run_cli("fit", "--config", PPO, *TINY, "--trainer.precision", "bf16-mixed")
    else:  # SAC's squashed log-probabilities stay finite in bf16 (they are computed in float32)
        run_cli("fit", "--config", PPO.replace("ppo.yaml", "sac.yaml"), "--data.total_frames", "400",
                "--data.frames_per_batch", "4", "--data.updates_per_batch", "4", "--evaluation.every_frames", "400",
                "--evaluation.episodes", "1", "--progress_bar.refresh_rate", "0", "--trainer.precision", "bf16-mixed")
    (run,) = (in_tmp / "experiments" / f"{algorithm}-{'CartPole' if algorithm == 'ppo' else 'Pendulum'}-v1").iterdir()
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_resume_with_other_network_shapes_is_refused(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    (run,) = (in_tmp / "experiments" / "ppo-CartPole-v1").iterdir()
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    wider = "{class_path: rl_lightning.networks.MLP, init_args: {hidden_sizes: [32, 32]}}"
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO, *TINY, "--data.total_frames", "4096", "--model.critic_net", wider,
                "--ckpt_path", "last")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "networks differ" in err and "critic" in err and "(32, 4)" in err
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before  # the run's checkpoint is untouched
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resuming_a_finished_run_does_nothing_and_a_lower_budget_is_refused(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    (run,) = (in_tmp / "experiments" / "ppo-CartPole-v1").iterdir()
    before = _snapshot(run)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # same budget: nothing to train
        run_cli("fit", "--config", PPO, *TINY, "--ckpt_path", "last")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Nothing to do:") and "2048 frames" in out
    assert _snapshot(run) == before  # last.ckpt, best.ckpt, metrics.csv, metadata: byte for byte

    with pytest.raises(SystemExit) as exit_:  # a lower budget than the frames trained
        run_cli("fit", "--config", PPO, *TINY, "--data.total_frames", "1024", "--ckpt_path", "last")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: data.total_frames 1024 is below the 2048 frames") and "last.ckpt" in err
    assert _snapshot(run) == before
    assert list((in_tmp / "experiments" / "ppo-CartPole-v1").iterdir()) == [run]


def test_fitting_from_a_finished_checkpoint_trains_no_batch_past_the_budget(in_tmp):
    import lightning as L

    from rl_lightning.algorithms import PPO as PPOModule
    from rl_lightning.data import OnPolicyDataModule

    run_cli("fit", "--config", PPO, *TINY)
    (last,) = in_tmp.glob("experiments/*/*/checkpoints/last.ckpt")
    data = OnPolicyDataModule("CartPole-v1", num_envs=8, frames_per_batch=256, total_frames=2048)
    trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=in_tmp)
    trainer.fit(PPOModule(), datamodule=data, ckpt_path=str(last))
    assert data.frames == 2048 and trainer.global_step == torch.load(last, weights_only=True)["global_step"]


def temporary_files(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_keeps_the_last_good_checkpoint_and_records_the_failure(in_tmp, capsys):
    from tests.helpers.disk_full import fill_disk

    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exit_:
        fill_disk(after=2, patch=patch.setattr)  # best + last at 1024 frames are written, then the disk is full
        run_cli("fit", "--config", PPO, *TINY, "--experiment", "full")
    assert exit_.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk full" in errors[0] and "No space left on device" in errors[0]
    (run,) = (in_tmp / "experiments" / "full").iterdir()
    assert temporary_files(run) == []
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["OnPolicyDataModule"]["frames"] == 1024
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "failed" and "No space left on device" in meta["error"]
    assert meta["pid"] == os.getpid() and meta["host"] and meta["heartbeat"] >= meta["started"]
    # space freed: the run continues from its last good checkpoint
    run_cli("fit", "--config", PPO, *TINY, "--experiment", "full", "--ckpt_path", "last")
    with open(run / "metrics.csv", newline="") as file:
        rows = [float(r["frames"]) for r in csv.DictReader(file)]
    assert rows == [256.0 * i for i in range(1, 9)]
    assert json.loads((run / "metadata.json").read_text())["status"] == "finished"


def test_disk_full_even_for_metadata_gives_one_error_line_and_the_run_shows_dead(in_tmp, capsys):
    cmd = [sys.executable, "-m", "tests.helpers.disk_full", "fit", "--config", PPO, *TINY, "--experiment", "full"]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DISK_FULL_AFTER": "2", "DISK_FULL_METADATA": "1"})
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk full" in errors[0], result.stderr[-3000:]
    (run,) = (in_tmp / "experiments" / "full").iterdir()
    assert temporary_files(run) == []
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["OnPolicyDataModule"]["frames"] == 1024
    assert json.loads((run / "metadata.json").read_text())["status"] == "running"  # could not be written
    run_cli("runs", "list")
    (line,) = [line for line in capsys.readouterr().out.splitlines() if run.name in line]
    assert line.split()[4] == "dead"


def test_disk_full_during_a_replay_snapshot_keeps_last_and_its_snapshot(in_tmp, capsys, monkeypatch):
    from rl_lightning.data.replay import ReplayDataModule

    real, seen = ReplayDataModule.snapshot, []

    def snapshot(self):
        seen.append(self.frames)
        if len(set(seen)) == 1:
            return real(self)
        partial = self._run_dir() / "checkpoints" / "replay" / f".frames-{self.frames}.tmp"
        partial.mkdir(parents=True)
        (partial / "storage.memmap").write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(partial))

    monkeypatch.setattr(ReplayDataModule, "snapshot", snapshot)
    with pytest.raises(SystemExit) as exit_:
        run_cli("fit", "--config", PPO.replace("ppo.yaml", "dqn.yaml"), "--data.memmap", "true",
                "--data.total_frames", "512", "--data.frames_per_batch", "64", "--data.updates_per_batch", "2",
                "--data.init_random_frames", "64", "--data.buffer_size", "1000", "--evaluation.every_frames", "256",
                "--evaluation.episodes", "1", "--checkpoint.every_frames", "256", "--progress_bar.refresh_rate", "0",
                "--experiment", "memmap")
    assert exit_.value.code == 1 and "disk full" in capsys.readouterr().err
    (run,) = (in_tmp / "experiments" / "memmap").iterdir()
    assert temporary_files(run) == [] and not list((run / "checkpoints" / "replay").glob(".*"))
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["ReplayDataModule"]["frames"] == 256
    assert (run / last["ReplayDataModule"]["buffer_dir"]).is_dir()  # the snapshot last.ckpt names is kept
