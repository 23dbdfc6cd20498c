"""Checkpoints run no code on resume and secrets are written nowhere."""

import pickle
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
