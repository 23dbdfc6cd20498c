"""``python -m rl_lightning sweep``: sweep files, grid/random expansion, real tiny sweeps
(resume, failures, Ctrl-C), Optuna pruning and workers sharing one study."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml

from rl_lightning.cli import main as cli_main
from rl_lightning.errors import ConfigError
from rl_lightning.runs.sweep import Sweep
from rl_lightning.runs.sweep_space import load_sweep, parse_sweep, sample_random

ROOT = Path(__file__).resolve().parents[2]
PPO = str(ROOT / "configs" / "ppo.yaml")
TINY = {"data.init_args.total_frames": 512, "data.init_args.frames_per_batch": 256, "evaluation.every_frames": 512,
        "evaluation.episodes": 2, "model.init_args.epochs": 1, "checkpoint.every_frames": 512}


SWEEP = [sys.executable, "-m", "rl_lightning", "sweep"]  # starts without importing torch


def write_sweep(path, search, seeds=(1,), overrides=TINY, **extra):
    path = Path(path)
    path.write_text(yaml.safe_dump({"base": [PPO], "overrides": dict(overrides), "seeds": list(seeds),
                                    "search": search, **extra}))
    return str(path)


def sweep(*args):
    """``python -m rl_lightning sweep ...`` in-process; returns the exit code."""
    try:
        cli_main(["sweep", *args])
    except SystemExit as exit_:
        return exit_.code or 0
    return 0


def records(folder):
    return [json.loads(line) for line in (Path(folder) / "trials.jsonl").read_text().splitlines()]


def run_dirs(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []


# --- sweep files --------------------------------------------------------------------------
def test_grid_is_the_cartesian_product():
    spec = parse_sweep({"base": [PPO], "search": {"type": "grid", "params": {
        "model.init_args.learning_rate": [0.001, 0.0003], "model.init_args.epochs": [10, 20, 30]}}})
    trials = spec.trials()
    assert len(trials) == 6 and len({json.dumps(t, sort_keys=True) for t in trials}) == 6
    assert trials[0] == {"model.init_args.learning_rate": 0.001, "model.init_args.epochs": 10}
    assert trials[-1] == {"model.init_args.learning_rate": 0.0003, "model.init_args.epochs": 30}
    assert spec.seeds == [1] and spec.metric == "eval/return_mean"


def test_random_search_is_reproducible_and_in_range():
    params = {"lr": {"low": 1e-5, "high": 1e-1, "log": True}, "clip": {"low": 0.1, "high": 0.3},
              "epochs": {"low": 1, "high": 4, "int": True}, "gamma": {"choices": [0.98, 0.99]}, "act": ["relu", "tanh"]}
    spec = parse_sweep({"base": [PPO], "search": {"type": "random", "n_trials": 200, "seed": 3, "params": params}})
    trials = spec.trials()
    assert trials == spec.trials() == sample_random(spec.params, 200, 3)
    assert trials != sample_random(spec.params, 200, 4)
    assert len(trials) == 200
    lrs = [t["lr"] for t in trials]
    assert all(1e-5 <= v <= 1e-1 for v in lrs)
    # log-uniform: about as many draws in each decade (uniform would put ~90% in the top one)
    decades = [sum(1 for v in lrs if 10 ** k <= v < 10 ** (k + 1)) for k in range(-5, -1)]
    assert all(30 <= n <= 70 for n in decades), decades
    assert all(0.1 <= t["clip"] <= 0.3 for t in trials)
    assert {t["epochs"] for t in trials} == {1, 2, 3, 4}
    assert {t["gamma"] for t in trials} == {0.98, 0.99} and {t["act"] for t in trials} == {"relu", "tanh"}


@pytest.mark.parametrize("change, named", [
    ({"search": {"type": "bayes", "params": {"a": [1]}}}, "search.type: unknown search type 'bayes'"),
    ({"search": {"type": "grid", "params": {}}}, "search.params: at least one"),
    ({"search": {"type": "random", "n_trials": 4, "params": {"a": {"low": 1, "high": 0.1}}}},
     "search.params.a: bad range: low (1) must be below high (0.1)"),
    ({"search": {"type": "optuna", "n_trials": 4, "params": {"a": {"low": 0, "high": 1, "log": True}}}},
     "search.params.a: bad range: a log range needs low > 0"),
    ({"search": {"type": "random", "params": {"a": [1]}}}, "search.n_trials: a positive integer"),
    ({"search": {"type": "grid", "params": {"a": {"low": 1, "high": 2}}}}, "search.params.a: a non-empty list"),
    ({"base": ["configs/nope.yaml"]}, "base: configs/nope.yaml does not exist"),
    ({"seed": [1]}, "seed: unknown key"),
    ({"seeds": []}, "seeds: a non-empty list"),
])
def test_bad_sweep_files_name_the_key(in_tmp, change, named):
    raw = {"base": [PPO], "search": {"type": "grid", "params": {"a": [1]}}, **change}
    with pytest.raises(ConfigError) as error:
        parse_sweep(raw, "bad.yaml")
    assert named in str(error.value)


def test_bad_sweep_file_is_one_error_line(in_tmp, capsys):
    path = write_sweep("bad.yaml", {"type": "grid", "params": {"a": [1]}}, metric="eval/return_mean", bogus=1)
    assert sweep("--config", path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad.yaml: bogus: unknown key") and err.count("\n") == 1


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_files_parse_through_the_real_cli(path, monkeypatch, capsys):
    """The sweep file validates, and its base + overrides + one value per param are a valid
    fit config (so no key is misspelt)."""
    monkeypatch.chdir(ROOT)  # base paths are relative to the repository root
    spec = load_sweep(path.relative_to(ROOT))
    params = spec.trials()[0] if spec.search != "optuna" else {
        p.key: p.choices[0] if p.choices else p.low for p in spec.params}
    command = Sweep(spec, path.stem, "experiments").command(params, spec.seeds[0])
    with pytest.raises(SystemExit) as exit_:
        cli_main([*command[3:], "--print_config"])
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    for key, value in {**spec.overrides, **params}.items():
        node = printed
        for part in key.split("."):
            node = node[part]
        assert node == value, key


# --- real sweeps --------------------------------------------------------------------------
def test_grid_sweep_runs_each_trial_and_a_rerun_skips_finished(in_tmp, capsys):
    path = write_sweep("lr.yaml", {"type": "grid", "params": {"model.init_args.learning_rate": [0.001, 0.0003]}})
    assert sweep("--config", path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count("rl_lightning fit") == 2 and "--model.init_args.learning_rate=0.0003" in out
    assert not (in_tmp / "experiments").exists()

    assert sweep("--config", path, "--workers", "2") == 0
    out = capsys.readouterr().out
    folder, runs = in_tmp / "experiments" / "sweeps" / "lr", in_tmp / "experiments" / "lr"
    recs = records(folder)
    assert sorted(r["params"]["model.init_args.learning_rate"] for r in recs) == [0.0003, 0.001]
    assert [r["status"] for r in recs] == ["finished", "finished"]
    assert len(run_dirs(runs)) == 2 and {Path(r["run"]).name for r in recs} == set(run_dirs(runs))
    for rec in recs:
        config = yaml.safe_load((Path(rec["run"]) / "config.yaml").read_text())
        assert config["model"]["init_args"]["learning_rate"] == rec["params"]["model.init_args.learning_rate"]
        assert config["seed_everything"] == 1 and config["data"]["init_args"]["total_frames"] == 512
        assert math.isfinite(rec["value"]) and rec["value"] > 0
    summary = (folder / "summary.md").read_text()
    assert summary in out and "| model.learning_rate | seed 1 | mean ± std | status |" in summary
    table = [line for line in summary.splitlines() if line.startswith("| ") and "finished" in line]
    means = [float(line.split("|")[5].split("±")[0]) for line in table]
    assert len(table) == 2 and means == sorted(means, reverse=True)  # best first
    assert (folder / "sweep.yaml").read_text() == Path(path).read_text()

    assert sweep("--config", path, "--workers", "2") == 0  # resume: nothing left to do
    assert "2 runs (2 already finished)" in capsys.readouterr().out
    assert len(run_dirs(runs)) == 2 and len(records(folder)) == 2


def test_a_failed_run_is_recorded_and_the_others_finish(in_tmp, capsys):
    envs = {"data.init_args.env_id": ["CartPole-v1", "NoSuchEnv-v0"]}
    path = write_sweep("envs.yaml", {"type": "grid", "params": envs})
    assert sweep("--config", path, "--workers", "2") == 0
    folder = in_tmp / "experiments" / "sweeps" / "envs"
    status = {r["params"]["data.init_args.env_id"]: r for r in records(folder)}
    assert status["CartPole-v1"]["status"] == "finished" and status["CartPole-v1"]["value"] > 0
    failed = status["NoSuchEnv-v0"]
    assert failed["status"] == "failed" and failed["returncode"] == 2 and "NoSuchEnv-v0" in failed["error"]
    assert Path(failed["log"]).is_file()
    summary = (folder / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert "CartPole-v1" in rows[0] and "finished" in rows[0] and rows[1].endswith("| failed |")
    assert "Failed runs:" in summary and "not a registered Gymnasium environment" in summary


def test_ctrl_c_stops_the_runs_and_records_them_interrupted(in_tmp):
    path = write_sweep("stop.yaml", {"type": "grid", "params": {"model.init_args.learning_rate": [0.001, 0.0003]}},
                       overrides={**TINY, "data.init_args.total_frames": 10**6})
    proc = subprocess.Popen([*SWEEP, "--config", path, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = in_tmp / "experiments" / "sweeps" / "stop" / "logs"
    deadline = time.time() + 120
    while len(list(logs.glob("*.log"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Resume with: python -m rl_lightning sweep --config stop.yaml --workers 2" in out
    recs = records(logs.parent)
    assert len(recs) == 2 and {r["status"] for r in recs} == {"interrupted"}
    assert not _runs_in(in_tmp)  # no run left behind


def _runs_in(folder):
    """Ids of ``rl_lightning`` processes working in ``folder`` (Linux /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")) == Path(folder) and b"rl_lightning" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


# --- Optuna -------------------------------------------------------------------------------
LR = "model.init_args.learning_rate"
OPTUNA = {"type": "optuna", "n_trials": 2, "params": {LR: {"low": 1e-4, "high": 1e-2, "log": True}}}


def _study_with_a_strong_trial(storage, name, steps=(512, 1024)):
    """A study (maximize) holding one completed trial whose evaluations were all 1e6."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={LR: 1e-3}, distributions={LR: optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)},
        value=1e6, intermediate_values={s: 1e6 for s in steps}))
    return study


def test_pruning_callback_stops_a_trial_below_the_median(tmp_path):
    from rl_lightning.callbacks.pruning import STEP_STRIDE, OptunaPruning

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = _study_with_a_strong_trial(storage, "s", steps=(512, STEP_STRIDE + 512))
    distributions = {LR: optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    weak, strong = study.ask(distributions), study.ask(distributions)

    def evaluate(callback, value, frames):
        trainer = SimpleNamespace(is_global_zero=True, should_stop=False,
                                  strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj))
        evaluation = SimpleNamespace(last={"eval/return_mean": value}, every_frames=512)
        callback.on_evaluation_end(trainer, SimpleNamespace(frames=frames), evaluation)
        return trainer.should_stop

    def callback(trial, **kwargs):
        return OptunaPruning(storage=storage, study_name="s", trial_number=trial.number, n_startup_trials=1, **kwargs)

    assert evaluate(callback(strong), 2e6, 512) is False  # above the median: go on
    assert evaluate(callback(weak, n_warmup_frames=1024), 10.0, 512) is False  # below, but warming up
    marker = tmp_path / "pruned.json"
    # the second seed's run reports at STEP_STRIDE + the evaluation frame (rounded down to 512)
    assert evaluate(callback(weak, step_offset=STEP_STRIDE, marker=str(marker)), 10.0, 600) is True
    assert json.loads(marker.read_text()) == {"step": STEP_STRIDE + 512, "frames": 600, "value": 10.0}
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert trials[weak.number].intermediate_values == {512: 10.0, STEP_STRIDE + 512: 10.0}
    assert trials[strong.number].intermediate_values == {512: 2e6}


def test_optuna_sweep_prunes_a_trial_behind_the_median(in_tmp, capsys):
    folder = in_tmp / "experiments" / "sweeps" / "opt"
    folder.mkdir(parents=True)
    storage = f"sqlite:///{folder / 'optuna.db'}"  # the default storage of the sweep
    _study_with_a_strong_trial(storage, "opt")
    search = {**OPTUNA, "pruner": {"type": "median", "n_startup_trials": 1}}
    path = write_sweep("opt.yaml", search, overrides={**TINY, "data.init_args.total_frames": 2048})
    assert sweep("--config", path) == 0
    trials = optuna.load_study(study_name="opt", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert list(trials[1].intermediate_values) == [512]
    (rec,) = records(folder)
    assert rec["status"] == "pruned" and rec["trial"] == 1 and rec["params"][LR] == trials[1].params[LR]
    frames = [row.split(",") for row in (Path(rec["run"]) / "metrics.csv").read_text().splitlines()]
    column = frames[0].index("frames")
    assert max(float(r[column]) for r in frames[1:]) == 512  # stopped at the first evaluation, not 2048
    summary = (folder / "summary.md").read_text()
    assert "| pruned |" in summary and "1 complete, 1 pruned" in summary


def test_two_sweep_processes_share_one_study(in_tmp):
    path = write_sweep("shared.yaml", {**OPTUNA, "pruner": {"type": "none"}})
    command = [*SWEEP, "--config", path, "--workers", "1"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folder = in_tmp / "experiments" / "sweeps" / "shared"
    trials = optuna.load_study(study_name="shared", storage=f"sqlite:///{folder / 'optuna.db'}").trials
    assert sorted(t.number for t in trials) == [0, 1] and {t.state.name for t in trials} == {"COMPLETE"}
    assert trials[0].params[LR] != trials[1].params[LR]  # no worker repeats another's draw
    recs = records(folder)
    assert sorted(r["trial"] for r in recs) == [0, 1] and {r["status"] for r in recs} == {"finished"}
    assert {t.number: t.value for t in trials} == {r["trial"]: r["value"] for r in recs}
    assert len(run_dirs(in_tmp / "experiments" / "shared")) == 2


@pytest.mark.parametrize("search", [
    {"type": "grid", "params": {LR: [0.001]}},
    {"type": "optuna", "n_trials": 1, "pruner": {"type": "none"}, "params": {LR: {"low": 1e-4, "high": 1e-2, "log": True}}},
], ids=["grid", "optuna"])
def test_ctrl_c_in_a_terminal_checkpoints_the_trial_at_the_stop_and_a_rerun_continues_it(in_tmp, search):
    import csv

    import torch

    path = write_sweep("ctrlc.yaml", search, overrides={**TINY, "data.init_args.total_frames": 12800,
                                                        "checkpoint.every_frames": 10**6, "evaluation.every_frames": 10**6})
    # a shell job: the sweep leads its own process group, and Ctrl-C signals that whole group
    proc = subprocess.Popen([*SWEEP, "--config", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    runs = in_tmp / "experiments" / "ctrlc"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        metrics = list(runs.glob("*/metrics.csv"))
        if metrics and len(metrics[0].read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    fits = [pid for pid in _runs_in(in_tmp) if pid != proc.pid]
    assert fits and all(os.getpgid(pid) != proc.pid for pid in fits)  # the terminal's Ctrl-C reaches the sweep only
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    (rec,) = records(in_tmp / "experiments" / "sweeps" / "ctrlc")
    assert rec["status"] == "interrupted" and rec["run"]
    run = Path(rec["run"])
    frames = [float(r["frames"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    stopped_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["OnPolicyDataModule"]["frames"]
    assert 0 < stopped_at < 12800 and stopped_at == frames[-1]  # saved at the stop, not before it
    assert json.loads((run / "metadata.json").read_text())["status"] == "interrupted"

    assert sweep("--config", path) == 0  # the rerun continues the trial from its checkpoint
    first, *_, rec = records(in_tmp / "experiments" / "sweeps" / "ctrlc")
    assert rec["params"] == first["params"]  # the same trial (Optuna: re-enqueued with its params)
    assert rec["status"] == "finished" and Path(rec["run"]).resolve() == run.resolve() and run_dirs(runs) == [run.name]
    frames = [float(r["frames"]) for r in csv.DictReader(open(run / "metrics.csv"))]
    assert frames == [256.0 * i for i in range(1, 51)]  # no restart from frame 0, no gap
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["resumes"] == 1


def test_a_rerun_records_an_interrupted_run_whose_budget_was_spent_as_finished(in_tmp):
    path = write_sweep("spent.yaml", {"type": "grid", "params": {"model.init_args.learning_rate": [0.001]}})
    assert sweep("--config", path) == 0
    folder = in_tmp / "experiments" / "sweeps" / "spent"
    (rec,) = records(folder)
    run = Path(rec["run"])
    # as if Ctrl-C had come with the last batch: the checkpoint holds the whole budget, the run says interrupted
    meta = json.loads((run / "metadata.json").read_text())
    (run / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    with open(folder / "trials.jsonl", "a") as file:
        file.write(json.dumps({**rec, "status": "interrupted", "value": None}) + "\n")
    last = (run / "checkpoints" / "last.ckpt").read_bytes()

    assert sweep("--config", path) == 0
    rec = records(folder)[-1]
    assert rec["status"] == "finished" and rec["value"] is not None
    assert Path(rec["run"]).resolve() == run.resolve() and run_dirs(in_tmp / "experiments" / "spent") == [run.name]
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == last  # nothing was trained again
