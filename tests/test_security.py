"""Checkpoints run no code on resume and secrets are written nowhere."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_cli import run_cli

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
