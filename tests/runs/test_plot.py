"""``plot``: learning curves of synthetic runs, grouped, aligned over frames, with bands."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from rl_lightning.errors import ConfigError
from rl_lightning.runs.plot import curves, group_runs, make_figure, plot_curves
from rl_lightning.runs.registry import find_runs
from tests.runs.fixtures import eval_return, make_experiments, make_run
from tests.test_cli import run_cli


@pytest.fixture
def runs(in_tmp):
    return make_experiments(in_tmp)


def test_seeds_are_aggregated_on_the_frames_all_of_them_cover(runs):
    slow, fast = curves(find_runs(filters={"env": "CartPole-v1", "status": "finished"}),
                        by="model.init_args.learning_rate")
    assert (slow.label, fast.label) == ("learning_rate=0.0003", "learning_rate=0.001")  # ordered by value
    assert len(slow.runs) == 2 and len(fast.runs) == 3
    assert slow.frames.tolist() == [512, 1024, 1536]  # seed 2 stops at 1536 frames
    np.testing.assert_allclose(slow.mean, [eval_return(f, 1.5, 0.0003) for f in slow.frames])
    np.testing.assert_allclose(slow.std, 5.0)  # seeds 1 and 2: returns 10 apart
    assert fast.frames.tolist() == [512, 1024, 1536, 2048]
    np.testing.assert_allclose(fast.min, [eval_return(f, 1, 0.001) for f in fast.frames])
    np.testing.assert_allclose(fast.max, [eval_return(f, 3, 0.001) for f in fast.frames])


def test_runs_logged_at_different_frames_are_interpolated(in_tmp):
    make_run(in_tmp / "experiments", "interp", "CartPole-v1", 1, 0.001, frames=2048, eval_every=512)
    make_run(in_tmp / "experiments", "interp", "CartPole-v1", 2, 0.001, frames=2304, eval_every=768)
    (curve,) = curves(find_runs())
    assert curve.frames.tolist() == [768, 1024, 1536, 2048]  # union of logged frames both runs cover
    np.testing.assert_allclose(curve.mean, [eval_return(f, 1.5, 0.001) for f in curve.frames])  # linear: exact


def test_figure_has_a_line_and_two_bands_per_group(runs, capsys):
    fig = make_figure(find_runs(), title="Curves")
    (ax,) = fig.axes
    assert ax.get_title() == "Curves" and ax.get_xlabel() == "frames" and ax.get_ylabel() == "eval/return_mean"
    assert len(ax.get_lines()) == 4 and len(ax.collections) == 8  # 4 groups: mean; ±std and min-max bands
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["PPO CartPole-v1, learning_rate=0.0001 (1 seed)", "PPO CartPole-v1, learning_rate=0.0003 (2 seeds)",
                      "PPO CartPole-v1, learning_rate=0.001 (3 seeds)", "PPO Pendulum-v1 (2 seeds)"]
    assert ax.get_legend().get_title().get_text() == "mean; bands: ±std, min-max"  # nothing pooled but seeds
    err = capsys.readouterr().err
    assert "no values of eval/return_mean" in err and "pool" not in err  # the failed run never evaluated
    running, *_, pend = ax.get_lines()
    assert running.get_xdata()[-1] == 1024 and pend.get_xdata()[-1] == 2048  # the running run stops at 1024
    min_max, std = ax.collections[6:]  # Pendulum: seeds 1 and 2, min/max = seed 1/2 returns +- nothing
    y = min_max.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(eval_return(512, 1, 0.001))
    assert y.max() == pytest.approx(eval_return(2048, 2, 0.001))
    y = std.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(eval_return(512, 1.5, 0.001) - 5) and y.max() == pytest.approx(
        eval_return(2048, 1.5, 0.001) + 5)


def legend(fig):
    box = fig.axes[0].get_legend()
    return [t.get_text() for t in box.get_texts()], box.get_title().get_text()


def test_default_groups_by_every_differing_hyperparameter(in_tmp):
    """16 runs of two learning rates x two epoch counts: four groups of 4 seeds, not "16 seeds"."""
    exp = in_tmp / "experiments"
    for lr in (0.001, 0.0003):
        for epochs in (10, 20):
            for seed in (1, 2, 3, 4):
                make_run(exp, "grid", "CartPole-v1", seed, lr, suffix=f"-{lr}-{epochs}",
                         changes={"model.init_args.epochs": epochs})
    labels, title = legend(make_figure(find_runs()))
    assert labels == [f"PPO CartPole-v1, epochs={e}, learning_rate={lr} (4 seeds)"
                      for e in (10, 20) for lr in ("0.0003", "0.001")]
    assert "pooled" not in title
    groups = group_runs(find_runs(), by=["model.learning_rate", "model.init_args.epochs"])  # the same, by name
    assert list(groups) == [f"learning_rate={lr}, epochs={e}" for lr in ("0.0003", "0.001") for e in (10, 20)]
    assert all(len(g) == 4 for g in groups.values())


def test_grouping_by_a_key_names_what_it_pools(runs, capsys):
    labels, title = legend(make_figure(find_runs(filters={"env": "CartPole-v1"}), by="model.learning_rate,seed"))
    assert labels[0] == "learning_rate=0.0001, seed=8 (1 seed)" and "pooled" not in title
    labels, title = legend(make_figure(find_runs(), by="seed"))
    assert labels[:3] == ["seed=1 (1 seed, 3 runs)", "seed=2 (1 seed, 3 runs)", "seed=3 (1 seed)"]
    assert title == "mean; bands: ±std, min-max\npooled: runs differing in env, learning_rate"
    assert "pool runs whose data.init_args.env_id, model.init_args.learning_rate differ" in capsys.readouterr().err


def test_runs_differing_in_output_settings_or_seeds_only_are_one_group(in_tmp):
    exp = in_tmp / "experiments"
    make_run(exp, "quiet", "CartPole-v1", 1, 0.001, changes={"progress_bar.refresh_rate": 1, "torch_threads": 4})
    make_run(exp, "quiet", "CartPole-v1", 2, 0.001, changes={"checkpoint.every_frames": 512})
    make_run(exp, "quiet", "CartPole-v1", 2, 0.001, suffix="-again")  # the same seed again
    make_run(exp, "quiet", "CartPole-v1", 2, 0.001, suffix="-data7", changes={"data.init_args.seed": 7})
    (curve,) = curves(find_runs())
    assert curve.label == "PPO CartPole-v1" and curve.seeds == 3 and len(curve.runs) == 4
    labels, title = legend(make_figure(find_runs()))
    assert labels == ["PPO CartPole-v1 (3 seeds, 4 runs)"] and "pooled" not in title


def test_png_and_svg_files(runs, in_tmp, capsys):
    run_cli("plot", "experiments", "--filter", "env=CartPole-v1", "--by", "model.learning_rate", "-o", "out/curves.png")
    assert capsys.readouterr().out.strip() == "out/curves.png"
    image = matplotlib.image.imread(in_tmp / "out" / "curves.png")
    assert image.shape[:2] == (500, 800)
    assert (image[..., :3] < 0.5).any() and (image[..., :3] > 0.99).any()  # drawn on a white background
    path = plot_curves(find_runs(), metric="train/episode_return", output=in_tmp / "curves.svg")
    text = path.read_text()
    assert path == in_tmp / "curves.svg" and text.lstrip().startswith("<?xml") and "<svg" in text
    assert "PPO Pendulum-v1 (2 seeds)" in text


def test_bad_metric_key_or_file_type_is_named(runs, capsys):
    with pytest.raises(ConfigError, match="eval/return_mea:.*columns available: .*eval/return_mean"):
        plot_curves(find_runs(), metric="eval/return_mea")
    with pytest.raises(ConfigError, match="--by model.init_args.lr:"):
        plot_curves(find_runs(), by="model.init_args.lr")
    with pytest.raises(ConfigError, match="'.jpg'"):
        plot_curves(find_runs(), output="curves.jpg")
    with pytest.raises(SystemExit) as exit_:
        run_cli("plot", "--metric", "loss/nothing")
    assert exit_.value.code == 2 and "loss/nothing" in capsys.readouterr().err


def test_sweep_summary_plot_has_a_curve_per_combination_of_the_swept_parameters(in_tmp, monkeypatch):
    from rl_lightning.runs import plot
    from rl_lightning.runs.sweep import Sweep
    from rl_lightning.runs.sweep_space import load_sweep
    from tests.runs.test_sweep import TINY, write_sweep

    grid = {"model.init_args.learning_rate": [0.001, 0.0003], "model.init_args.epochs": [10, 20]}
    overrides = {k: v for k, v in TINY.items() if k != "model.init_args.epochs"}
    spec = load_sweep(write_sweep("grid.yaml", {"type": "grid", "params": grid}, seeds=(1, 2), overrides=overrides))
    for lr in grid["model.init_args.learning_rate"]:
        for epochs in grid["model.init_args.epochs"]:
            for seed in (1, 2):
                make_run(in_tmp / "experiments", "grid", "CartPole-v1", seed, lr, suffix=f"-{lr}-{epochs}",
                         changes={"model.init_args.epochs": epochs})
    figures = []
    monkeypatch.setattr(plot, "make_figure", lambda *a, **k: figures.append(make_figure(*a, **k)) or figures[-1])
    path = Sweep(spec, "grid", "experiments").plot()
    assert Path(path) == Path("experiments/sweeps/grid/summary.png") and Path(path).is_file()
    labels, title = legend(figures[0])
    assert labels == [f"epochs={e}, learning_rate={lr} (2 seeds)" for e in (10, 20) for lr in ("0.0003", "0.001")]
    assert "pooled" not in title


def test_a_run_without_config_is_not_pooled_with_others(in_tmp):
    exp = in_tmp / "experiments"
    for seed in (1, 2):
        make_run(exp, "noconf", "CartPole-v1", seed, 0.001)
    (make_run(exp, "noconf", "CartPole-v1", 3, 0.001) / "config.yaml").unlink()
    assert {k: len(v) for k, v in group_runs(find_runs()).items()} == {
        "PPO CartPole-v1": 2, "PPO CartPole-v1, config unknown": 1}
