"""What a command may write or delete: no experiment outside the experiments folder, and
``runs clean`` deletes run folders of rl_lightning only, after confirmation, never a live run."""

import io
import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.runs.fixtures import make_experiments
from tests.test_cli import PPO, run_cli


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
