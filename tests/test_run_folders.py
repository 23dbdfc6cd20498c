"""One training process per run folder, and refused commands leave nothing behind."""

import csv
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from tests.test_cli import PPO, TINY, run_cli
from tests.test_security import tree

SAC = PPO.replace("ppo.yaml", "sac.yaml")


def frames(run):
    with open(run / "metrics.csv", newline="") as file:
        return [float(row["frames"]) for row in csv.DictReader(file)]


def refused(capsys, *args):
    with pytest.raises(SystemExit) as exit_:
        run_cli(*args)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_a_second_process_on_a_run_is_refused_and_a_dead_ones_lock_is_taken_over(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY, "--experiment", "shared")
    (run,) = (in_tmp / "experiments" / "shared").iterdir()
    assert not (run / ".lock").exists()  # released at exit
    resume = ["fit", "--config", PPO, "--progress_bar.refresh_rate", "0", "--evaluation.every_frames", "100000",
              "--checkpoint.every_frames", "100000", "--experiment", "shared", "--ckpt_path", "last"]
    first = subprocess.Popen([sys.executable, "-m", "rl_lightning", *resume, "--data.total_frames", "200000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while len(frames(run)) <= 9 and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)  # the first process trains (it continues metrics.csv)
        assert first.poll() is None and len(frames(run)) > 9
        err = refused(capsys, *resume, "--data.total_frames", "4096")
        assert f"run {run.relative_to(in_tmp)} is in use by process {first.pid} on host {socket.gethostname()}" in err
        assert len(list(run.glob("config.resume-*.yaml"))) == 1  # the first process's only
    finally:
        first.kill()  # kill -9: its lock file stays behind, unlocked
        first.wait()
    assert (run / ".lock").is_file()
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["OnPolicyDataModule"]["frames"]
    run_cli(*resume, "--data.total_frames", str(saved + 512))  # takes the dead process's lock over
    assert frames(run) == [256.0 * i for i in range(1, saved // 256 + 3)]  # one history, no duplicated rows
    assert not (run / ".lock").exists()


def test_refused_commands_leave_nothing_behind(in_tmp, capsys):
    broken = in_tmp / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    new_run_refusals = [
        (["--config", PPO, "--checkpoint.every_frames", "0"], "checkpoint.every_frames must be >= 1"),  # instantiation
        (["--config", SAC, "--data.env_id", "CartPole-v1"], "SAC needs continuous actions"),  # setup
        (["--config", PPO, "--ckpt_path", str(broken)], "not a readable checkpoint"),
    ]
    for args, message in new_run_refusals:
        assert message in refused(capsys, "fit", *args, "--progress_bar.refresh_rate", "0")
        assert sorted(p.name for p in in_tmp.iterdir()) == ["broken.ckpt"]  # no experiments/ folder at all

    run_cli("fit", "--config", PPO, *TINY)
    experiments = in_tmp / "experiments"
    (run,) = (experiments / "ppo-CartPole-v1").iterdir()
    before = tree(experiments)
    wider = "{class_path: rl_lightning.networks.MLP, init_args: {hidden_sizes: [32, 32]}}"
    resume_refusals = [
        (["--model.critic_net", wider], "networks differ"),
        (["--checkpoint.every_frames", "0"], "checkpoint.every_frames must be >= 1"),
    ]
    for args, message in resume_refusals:
        err = refused(capsys, "fit", "--config", PPO, *TINY, "--data.total_frames", "4096", *args, "--ckpt_path", "last")
        assert message in err
        assert tree(experiments) == before, message
    for args, message in new_run_refusals[:2]:  # beside an existing run: the experiment folder stays as it was
        assert message in refused(capsys, "fit", *args, "--progress_bar.refresh_rate", "0")
        assert tree(experiments) == before, message

    from rl_lightning.runs.lock import RunLock

    lock = RunLock(run).acquire()  # another process trains in it
    try:
        held = tree(experiments)
        err = refused(capsys, "fit", "--config", PPO, *TINY, "--data.total_frames", "4096", "--ckpt_path", "last")
        assert f"is in use by process {os.getpid()}" in err and tree(experiments) == held
    finally:
        lock.release()
    assert tree(experiments) == before
