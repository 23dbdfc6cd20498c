"""Security: resume runs no code from a checkpoint or snapshot, secrets are written nowhere,
no command writes outside the experiments folder, and ``runs clean`` deletes run folders of
rl_lightning only, after confirmation, never a live run."""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.runs.fixtures import make_experiments
from tests.test_cli import PPO, run_cli

ROOT = Path(__file__).resolve().parent.parent
DQN = ["--config", str(ROOT / "configs" / "dqn.yaml"), "--data.frames_per_batch", "64", "--data.init_random_frames",
       "64", "--data.batch_size", "16", "--data.updates_per_batch", "2", "--evaluation.every_frames", "128",
       "--evaluation.episodes", "1", "--checkpoint.every_frames", "128", "--progress_bar.refresh_rate", "0"]


class Payload:
    """Unpickling it creates ``marker``: proof that code from a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_payload(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload(marker)))


def only_run(root: Path) -> Path:
    (run,) = (root / "experiments" / "dqn").iterdir()
    return run


def edit_checkpoint(run: Path, edit) -> None:
    path = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt["ReplayDataModule"])
    torch.save(ckpt, path)


def resume(*extra):
    run_cli("fit", *DQN, "--data.total_frames", "256", "--experiment", "dqn", "--ckpt_path", "last", *extra)


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_a_crafted_checkpoint_cannot_make_resume_unpickle_a_file(in_tmp, capsys, where):
    """An in-memory DQN run's last.ckpt (which passes the weights_only check) edited to name
    a replay snapshot folder outside the run that holds a pickle payload."""
    run_cli("fit", *DQN, "--data.total_frames", "128", "--experiment", "dqn")
    run = only_run(in_tmp)
    evil = in_tmp / "evil"
    marker = in_tmp / "pwned"
    write_payload(evil / "prefetch.pkl", marker)
    folder = str(evil) if where == "absolute" else "checkpoints/../../../../evil"

    def point_to_evil(state):
        state.pop("buffer")
        state["buffer_dir"] = folder

    edit_checkpoint(run, point_to_evil)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(SystemExit) as exit_:
        resume()
    assert exit_.value.code == 2
    assert not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "data.memmap (checkpoint True, config False)" in err
    assert sorted(p.name for p in run.iterdir()) == before
    # with memmap on, the folder must still be one of the run's own snapshots
    with pytest.raises(SystemExit) as exit_:
        resume("--data.memmap", "true")
    assert exit_.value.code == 2 and not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "not a folder inside" in err and str(run / "checkpoints" / "replay") in err


def test_a_payload_planted_in_a_memmap_snapshot_never_runs(in_tmp):
    """A pickle payload written into a real snapshot folder (as ``prefetch.pkl``, which
    TorchRL's ``ReplayBuffer.loads`` unpickles) is never read: the resume still works."""
    run_cli("fit", *DQN, "--data.total_frames", "128", "--data.memmap", "true", "--experiment", "dqn")
    run = only_run(in_tmp)
    buffer_dir = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["ReplayDataModule"]["buffer_dir"]
    marker = in_tmp / "pwned"
    write_payload(run / buffer_dir / "prefetch.pkl", marker)
    for name in ("sampler", "writer", "storage"):
        write_payload(run / buffer_dir / name / "payload.pkl", marker)
    resume("--data.memmap", "true")
    assert not marker.exists()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ReplayDataModule"]["frames"] == 256


def test_a_pickled_array_in_a_snapshot_is_refused(in_tmp, capsys):
    run_cli("fit", *DQN, "--data.total_frames", "128", "--data.memmap", "true", "--experiment", "dqn")
    run = only_run(in_tmp)
    buffer_dir = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["ReplayDataModule"]["buffer_dir"]
    marker = in_tmp / "pwned"
    rows = np.empty(1, dtype=object)
    rows[0] = Payload(marker)
    np.save(run / buffer_dir / "observation.npy", rows, allow_pickle=True)
    with pytest.raises(SystemExit) as exit_:
        resume("--data.memmap", "true")
    assert exit_.value.code == 2 and not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "unreadable" in err and buffer_dir in err


SECRET = "tok-REAL-5f3a9c"  # tests.helpers.envs.Vault.TOKEN


def all_files(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_secret_in_env_kwargs_reaches_the_env_and_nothing_written_or_sent(in_tmp, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = in_tmp / "vault.yaml"
    config.write_text(f"data:\n  init_args:\n    env_kwargs:\n      api_token: {SECRET}\n")
    common = [*DQN, "--data.env_id", "tests.helpers.envs:Vault-v0", "--experiment", "vault",
              "--trainer.logger+=WandbLogger", "--trainer.logger+=TensorBoard"]
    run_cli("fit", *common, "--config", str(config), "--data.total_frames", "128")
    # resumed with the secret on the command line this time (W&B records the command line)
    argv = ["fit", *common, "--data.env_kwargs", f"{{api_token: {SECRET}}}", "--data.total_frames", "256",
            "--ckpt_path", "last"]
    monkeypatch.setattr(sys, "argv", ["rl_lightning", *argv])  # what W&B records, as from a shell
    run_cli(*argv)
    (run,) = (in_tmp / "experiments" / "vault").iterdir()
    files = all_files(run)
    names = {p.name for p in files}
    assert {"config.yaml", "hparams.yaml", "last.ckpt", "best.ckpt"} <= names  # the files that used to leak
    assert any(n.startswith("config.resume-") for n in names) and any(n.endswith(".wandb") for n in names)
    assert any("tfevents" in n for n in names)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["datamodule_hyper_parameters"]["env_kwargs"] == {"api_token": "***"}
    assert ckpt["ReplayDataModule"]["frames"] == 256  # the resumed run trained on the real token


def test_secret_model_arguments_are_masked_where_logged_and_kept_for_the_module():
    from rl_lightning.algorithms import DQN as DQNModule

    class RemoteDQN(DQNModule):
        def __init__(self, service_password: str = "", **kwargs):
            super().__init__(**kwargs)
            self.save_hyperparameters()

    module = RemoteDQN(service_password=SECRET)
    assert module.hparams.service_password == SECRET  # the module still has it at runtime
    assert module.hparams_initial["service_password"] == "***"  # what Lightning logs
    checkpoint = {"hyper_parameters": dict(module.hparams), "datamodule_hyper_parameters": {"x_api_key": SECRET}}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["hyper_parameters"]["service_password"] == "***"
    assert checkpoint["datamodule_hyper_parameters"]["x_api_key"] == "***"


def test_secrets_on_the_command_line_are_masked():
    from rl_lightning.secrets import scrub_argv

    argv = ["fit", "--data.env_kwargs", "{api_token: abc, size: 3}", "--wandb_api_key", "k1",
            "--model.init_args.db_password=p2", "--data.total_frames", "5"]
    assert scrub_argv(argv) == ["fit", "--data.env_kwargs", "{api_token: '***', size: 3}", "--wandb_api_key", "***",
                                "--model.init_args.db_password=***", "--data.total_frames", "5"]


# --- what commands may write or delete ---
def tree(root):
    """Every file and folder under ``root`` with the bytes of the files."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def refused(capsys, *args):
    with pytest.raises(SystemExit) as exit_:
        run_cli(*args)
    assert exit_.value.code == 2
    return capsys.readouterr().err


# --- path traversal ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../escape", "a/../../..", "/ABSOLUTE/escape", "a/b", "..", ".hidden", "sweeps"])
def test_experiment_names_that_would_write_elsewhere_are_refused(in_tmp, capsys, name):
    work = in_tmp / "work" / "inner"
    work.mkdir(parents=True)
    os.chdir(work)
    name = name.replace("/ABSOLUTE", str(in_tmp))
    before = tree(in_tmp)
    err = refused(capsys, "fit", "--config", PPO, "--experiment", name, "--data.total_frames", "256")
    assert f"--experiment {name!r}" in err and "letters, digits" in err and "--experiments_dir" in err
    assert tree(in_tmp) == before  # nothing created, inside or outside the experiments folder


def test_resume_and_validate_refuse_them_too(in_tmp, capsys):
    err = refused(capsys, "fit", "--config", PPO, "--experiment", "../x", "--ckpt_path", "last")
    assert "--experiment '../x'" in err
    err = refused(capsys, "validate", "--config", PPO, "--experiment", "../x", "--ckpt_path", "last")
    assert "--experiment '../x'" in err
    assert list(in_tmp.iterdir()) == []


# --- runs clean --------------------------------------------------------------------------
def old(path, days=30):
    stamp = time.time() - days * 86400
    for p in [path, *path.rglob("*")]:
        os.utime(p, (stamp, stamp))


def make_project(folder):
    """A user's project that happens to hold a config.yaml and a metrics.csv."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "main.py").write_text("print('my work')\n")
    (folder / "config.yaml").write_text("model: {lr: 0.1}\n")
    (folder / "metrics.csv").write_text("step,loss\n1,0.5\n")
    (folder / "metadata.json").write_text(json.dumps({"status": "finished", "author": "me"}))
    old(folder)
    return folder


def test_clean_never_deletes_folders_that_are_not_runs(in_tmp, capsys):
    projects = in_tmp / "projects"
    make_project(projects / "mine")
    make_project(in_tmp / "experiments" / "notes" / "draft")  # inside the experiments folder too
    runs = make_experiments(in_tmp)
    before = tree(projects)
    notes = tree(in_tmp / "experiments" / "notes")
    run_cli("runs", "clean", str(projects), "--keep-best", "0", "--keep-recent-days", "7", "--all", "--yes")
    run_cli("runs", "clean", str(projects / "mine"), "--keep-best", "0", "--keep-recent-days", "7", "--all", "--yes")
    run_cli("runs", "clean", "--keep-best", "0", "--keep-recent-days", "7", "--all", "--yes")
    out = capsys.readouterr().out
    assert tree(projects) == before and tree(in_tmp / "experiments" / "notes") == notes
    assert "skipped projects/mine (not a run folder of rl_lightning" in out
    assert not runs["cart-lr1e-3-s1"].exists()  # a real run folder of the same age is removed


def test_clean_asks_before_deleting(in_tmp, capsys, monkeypatch):
    runs = make_experiments(in_tmp)
    args = ["runs", "clean", "--keep-best", "1", "--keep-recent-days", "7", "--all"]
    before = tree(in_tmp)
    dry = (run_cli(*args, "--dry-run"), capsys.readouterr().out)[1]
    would = sorted(line.split()[2] for line in dry.splitlines() if line.startswith("would remove"))
    assert len(would) == 5 and tree(in_tmp) == before

    err = refused(capsys, *args)  # pytest's stdin is not a terminal: nobody can confirm
    assert "stdin is not a terminal" in err and "--yes" in err and tree(in_tmp) == before

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    run_cli(*args)
    out = capsys.readouterr().out
    listed = sorted(line.split()[2] for line in out.splitlines() if line.startswith("will remove"))
    assert listed == would and "Delete these 5 items" in out and "Nothing deleted." in out
    assert tree(in_tmp) == before

    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    run_cli(*args)
    out = capsys.readouterr().out
    assert sorted(re.findall(r"\bremoved (\S+)", out)) == would
    assert sorted(str(p.relative_to(in_tmp)) + "/" for p in runs.values() if not p.exists()) == would


HOLD = """
import sys, time
from rl_lightning.runs.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_clean_never_touches_a_run_whose_process_is_alive(in_tmp, capsys):
    """A run recorded as finished that a live process resumes (its memory-mapped replay
    buffer under <run>/replay in use) is kept, with or without --all."""
    runs = make_experiments(in_tmp)
    live = runs["cart-lr1e-3-s1"]
    (live / "replay" / "live-rank0").mkdir(parents=True)
    (live / "replay" / "live-rank0" / "storage.memmap").write_bytes(b"\0" * 4096)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(live)
        run_cli("runs", "clean", "--keep-best", "0", "--keep-recent-days", "0", "--yes")
        run_cli("runs", "clean", "--keep-best", "0", "--keep-recent-days", "0", "--all", "--yes")
        out = capsys.readouterr().out
        assert tree(live) == before
        assert f"(in use by process {holder.pid} on " in out
        assert not runs["cart-lr1e-3-s2"].exists()  # the others of that age are cleaned
    finally:
        holder.kill()
        holder.wait()
    run_cli("runs", "clean", "--keep-best", "0", "--keep-recent-days", "0", "--all", "--yes")
    assert not live.exists()  # its process is gone: the lock it left behind does not protect it


def test_clean_keeps_a_run_being_created_in_this_process(in_tmp, capsys):
    from rl_lightning.runs.lock import RunLock

    runs = make_experiments(in_tmp)
    lock = RunLock(runs["cart-failed"]).acquire()
    try:
        run_cli("runs", "clean", "--keep-best", "0", "--keep-recent-days", "0", "--all", "--yes")
        assert runs["cart-failed"].is_dir() and f"in use by process {os.getpid()}" in capsys.readouterr().out
    finally:
        lock.release()
