"""``runs list|compare|export|clean`` on synthetic run folders, and once on a real run."""

import csv
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rl_lightning.errors import ConfigError
from rl_lightning.runs.registry import find_runs
from tests.runs.fixtures import eval_return, make_experiments
from tests.test_cli import PPO, TINY, run_cli


@pytest.fixture
def runs(in_tmp):
    return make_experiments(in_tmp)


def cli(capsys, *args):
    run_cli(*args)
    return capsys.readouterr().out


def cli_error(capsys, *args):
    with pytest.raises(SystemExit) as exit_:
        run_cli(*args)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def rel(path):
    return str(path.relative_to(path.parents[2]))


def listed(out):
    """The run column of a ``runs list`` table, top to bottom."""
    return [line.split()[0] for line in out.strip().splitlines()[1:-1]]


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_find_runs_reads_metadata_and_falls_back_without_it(runs):
    found = {r.path.resolve(): r for r in find_runs()}
    assert set(found) == {p.resolve() for p in runs.values()}
    bare = found[runs["pend-nometa"].resolve()]  # no metadata.json: config.yaml and metrics.csv
    fields = (bare.algorithm, bare.env_id, bare.seed, bare.status, bare.frames)
    assert fields == ("PPO", "Pendulum-v1", 2, "unknown", 2048)
    assert bare.final_eval_return == bare.best_eval_return == pytest.approx(eval_return(2048, 2, 0.001))
    assert abs(bare.started - (time.time() - 3600)) < 120  # from the run id
    assert bare.experiment == "ppo-Pendulum-v1" and bare.config["model"]["init_args"]["learning_rate"] == 0.001
    failed = found[runs["cart-failed"].resolve()]
    assert failed.status == "failed" and failed.final_eval_return is None and failed.frames == 512
    assert failed.series("train/episode_return") == [(256.0, 256 / 20 + 9), (512.0, 512 / 20 + 9)]


def test_find_runs_accepts_experiments_experiment_run_and_file_paths(runs):
    assert len(find_runs(["experiments/ppo-Pendulum-v1"])) == 2
    assert [r.path for r in find_runs([str(runs["cart-failed"])])] == [runs["cart-failed"]]
    assert len(find_runs([str(runs["cart-failed"] / "checkpoints" / "last.ckpt")])) == 1
    assert len(find_runs(["experiments", "experiments/ppo-Pendulum-v1"])) == 9  # no duplicates
    with pytest.raises(ConfigError, match="nowhere: no such folder"):
        find_runs(["nowhere"])


def test_filters_on_fields_and_config_keys(runs):
    def names(filters):
        paths = {r.path.resolve() for r in find_runs(filters=filters)}
        return sorted(name for name, path in runs.items() if path.resolve() in paths)

    assert len(names({"algorithm": "PPO"})) == 9
    assert names({"env": "Pendulum-v1"}) == ["pend-nometa", "pend-s1"]
    assert names({"status": "failed"}) == ["cart-failed"]
    assert names({"model.init_args.learning_rate": "1e-3", "env_id": "CartPole-v1"}) == [
        "cart-failed", "cart-lr1e-3-s1", "cart-lr1e-3-s2", "cart-lr1e-3-s3"]
    assert names({"model.learning_rate": "0.0003"}) == ["cart-lr3e-4-s1", "cart-lr3e-4-s2"]  # init_args implied
    assert names({"seed": "2", "experiment": "ppo-CartPole-v1"}) == ["cart-lr1e-3-s2", "cart-lr3e-4-s2"]
    with pytest.raises(ConfigError, match="'model.init_args.lr'"):
        find_runs(filters={"model.init_args.lr": "0.001"})


def test_list_filters_and_sorts(runs, capsys):
    out = cli(capsys, "runs", "list", "experiments/ppo-CartPole-v1", "--sort", "best_eval_return")
    assert out.splitlines()[0].split()[:4] == ["run", "algorithm", "env", "seed"]
    order = ["cart-lr1e-3-s3", "cart-lr1e-3-s2", "cart-lr1e-3-s1", "cart-running", "cart-lr3e-4-s1",
             "cart-lr3e-4-s2", "cart-failed"]  # best first; no evaluation last
    assert listed(out) == [rel(runs[name]) for name in order]
    assert out.strip().endswith("7 runs")
    out = cli(capsys, "runs", "list", "--filter", "env=CartPole-v1", "--sort", "best_eval_return", "--asc")
    assert listed(out) == [rel(runs[name]) for name in order[-2::-1] + order[-1:]]
    out = cli(capsys, "runs", "list", "--filter", "status=finished", "--sort", "train/episode_return")
    assert out.splitlines()[0].split()[-1] == "train/episode_return"  # the sort metric gets a column
    assert out.splitlines()[1].split()[-1] == f"{2048 / 20 + 3:g}" and listed(out)[0] == rel(runs["cart-lr1e-3-s3"])
    line = next(line for line in cli(capsys, "runs", "list").splitlines() if rel(runs["pend-nometa"]) in line)
    assert line.split()[1:6] == ["PPO", "Pendulum-v1", "2", "unknown", "2048"]


def test_list_reports_bad_input(runs, capsys):
    err = cli_error(capsys, "runs", "list", "--sort", "eval/retrun_mean")
    assert "--sort eval/retrun_mean" in err and "eval/return_mean" in err
    assert "expected KEY=VALUE" in cli_error(capsys, "runs", "list", "--filter", "algorithm")
    assert "missing-folder" in cli_error(capsys, "runs", "list", "missing-folder")


def test_compare_shows_differing_keys_and_results(runs, capsys):
    out = cli(capsys, "runs", "compare", str(runs["cart-lr1e-3-s1"]), str(runs["cart-lr3e-4-s1"]))
    differences, results = out.split("Results:")
    (line,) = [line for line in differences.splitlines() if line.startswith("model.init_args.learning_rate")]
    assert line.split()[1:] == ["0.001", "0.0003"]
    assert "1 key" in differences and "default_root_dir" not in out and "dirpath" not in out
    final = next(line for line in results.splitlines() if line.startswith("final eval return"))
    assert final.split()[3:] == [f"{eval_return(2048, 1, 0.001):g}", f"{eval_return(2048, 1, 0.0003):g}"]
    assert "at least two runs" in cli_error(capsys, "runs", "compare", str(runs["cart-failed"]))


def test_export_csv_markdown_latex(runs, capsys):
    out = cli(capsys, "runs", "export", "--filter", "env=CartPole-v1", "--format", "csv", "-o", "table/runs.csv")
    assert "Wrote table/runs.csv (7 runs)" in out
    with open("table/runs.csv", newline="") as file:
        rows = {row["run"]: row for row in csv.DictReader(file)}
    assert len(rows) == 7
    slow = rows[rel(runs["cart-lr3e-4-s1"])]
    assert slow["model.init_args.learning_rate"] == "0.0003" and slow["algorithm"] == "PPO" and slow["seed"] == "1"
    assert float(slow["final_eval_return"]) == pytest.approx(eval_return(2048, 1, 0.0003))
    assert rows[rel(runs["cart-failed"])]["best_eval_return"] == "" and "seed_everything" not in slow

    markdown = cli(capsys, "runs", "export", "--format", "markdown").splitlines()
    assert markdown[0].startswith("| run | experiment |") and set(markdown[1].replace("|", "").split()) == {"---"}
    assert len(markdown) == 2 + 9 and all(line.count("|") == markdown[0].count("|") for line in markdown)

    latex = cli(capsys, "runs", "export", "--format", "latex", "--filter", "status=finished")
    assert latex.startswith(r"\begin{tabular}") and latex.strip().endswith(r"\end{tabular}")
    assert r"model.init\_args.learning\_rate" in latex and latex.count(r"\\") == 1 + 6


def test_clean_dry_run_deletes_nothing(runs, in_tmp, capsys):
    before = files(in_tmp)
    out = cli(capsys, "runs", "clean", "--keep-best", "1", "--keep-recent-days", "7", "--dry-run")
    assert files(in_tmp) == before
    assert f"would remove {rel(runs['cart-lr1e-3-s1'])}/checkpoints/" in out and "would free 20,000 bytes" in out


def test_clean_keeps_best_recent_running_and_the_run_records(runs, capsys):
    out = cli(capsys, "runs", "clean", "--keep-best", "1", "--keep-recent-days", "7", "--yes")
    assert "freed 20,000 bytes" in out and "from 5 runs" in out
    # best of each experiment, running, and pend-nometa: without our metadata.json, not a run to delete
    kept = ("cart-lr1e-3-s3", "cart-running", "pend-s1", "pend-nometa")
    for name, run in runs.items():
        assert (run / "checkpoints" / "best.ckpt").exists() == (name in kept), name
        assert (run / "videos").exists() == (name in kept) and (run / "tensorboard").exists() == (name in kept)
        assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
        meta = json.loads((run / "metadata.json").read_text()) if name != "pend-nometa" else {}
        assert meta.get("cleaned", False) == (name not in kept)
    assert len(find_runs()) == 9 and find_runs([str(runs["cart-lr1e-3-s1"])])[0].final_eval_return == pytest.approx(
        eval_return(2048, 1, 0.001))  # still listed with its results
    assert "freed 0 bytes" in cli(capsys, "runs", "clean", "--keep-best", "1", "--keep-recent-days", "7", "--yes")

    out = cli(capsys, "runs", "clean", "--keep-best", "2", "--keep-recent-days", "0", "--all", "--yes")
    assert not runs["cart-lr1e-3-s1"].exists() and runs["cart-lr1e-3-s2"].exists()  # best 2 kept
    assert runs["cart-running"].exists() and runs["pend-s1"].exists()


def test_clean_all_removes_whole_folders_of_the_filtered_runs(runs, capsys):
    out = cli(capsys, "runs", "clean", "--keep-best", "0", "--keep-recent-days", "7", "--all", "--yes",
              "--filter", "env=CartPole-v1")
    for name, run in runs.items():
        assert run.exists() == (name.startswith("pend") or name == "cart-running"), name
    assert f"removed {rel(runs['cart-failed'])}/" in out and "from 6 runs" in out
    assert "kept    " + rel(runs["cart-running"]) + " (running)" in out


def test_a_real_run_is_listed(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    capsys.readouterr()
    (run,) = find_runs()
    assert (run.algorithm, run.env_id, run.seed, run.status, run.frames) == ("PPO", "CartPole-v1", 1, "finished", 2048)
    assert run.final_eval_return == run.last("eval/return_mean")
    line = cli(capsys, "runs", "list").splitlines()[1]
    assert line.split()[:6] == [rel(run.path.resolve()), "PPO", "CartPole-v1", "1", "finished", "2048"]
    assert cli(capsys, "plot", "-o", "curves.svg").strip() == "curves.svg" and (in_tmp / "curves.svg").is_file()


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_left_running_by_a_dead_process_are_shown_dead(runs, capsys):
    from rl_lightning.runs.lock import RunLock

    def record(name, **fields):
        path = runs[name] / "metadata.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "status": "running", **fields}))

    host = socket.gethostname()
    record("cart-lr1e-3-s1", pid=dead_pid(), host=host)  # killed (or its last metadata write failed)
    record("cart-lr1e-3-s2", pid=os.getpid(), host=host)  # alive
    record("cart-lr1e-3-s3", pid=os.getpid(), host=host)
    (runs["cart-lr1e-3-s3"] / ".lock").write_text(json.dumps({"pid": 12345, "host": host}))  # lock left by kill -9
    record("cart-lr3e-4-s1", pid=dead_pid(), host="another-host")  # cannot be checked from here
    record("cart-lr3e-4-s2", pid=dead_pid(), host=host)
    lock = RunLock(runs["cart-lr3e-4-s2"]).acquire()  # its lock is held: running, whatever the pid says
    try:
        status = {name: r.status for r in find_runs() for name, p in runs.items() if p.resolve() == r.path.resolve()}
        out = cli(capsys, "runs", "list", "--filter", "status=dead")
    finally:
        lock.release()
    assert status["cart-lr1e-3-s1"] == status["cart-lr1e-3-s3"] == "dead"
    assert status["cart-lr1e-3-s2"] == status["cart-lr3e-4-s2"] == status["cart-running"] == "running"
    assert status["cart-lr3e-4-s1"] == "stale"
    assert set(listed(out)) == {rel(runs["cart-lr1e-3-s1"]), rel(runs["cart-lr1e-3-s3"])}
    out = cli(capsys, "runs", "clean", "--keep-best", "0", "--keep-recent-days", "7", "--all", "--yes")
    assert not runs["cart-lr1e-3-s1"].exists() and runs["cart-lr3e-4-s1"].exists()  # dead removed, stale kept
    assert "kept    " + rel(runs["cart-lr3e-4-s1"]) + " (stale)" in out
