"""``plot``: learning curves of synthetic runs, grouped, aligned over frames, with bands."""

import matplotlib.image
import numpy as np
import pytest

from rl_lightning.errors import ConfigError
from rl_lightning.runs.plot import curves, make_figure, plot_curves
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
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 4  # 2 groups: mean; ±std and min-max bands
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["PPO CartPole-v1 (6 seeds)", "PPO Pendulum-v1 (2 seeds)"]
    assert "no values of eval/return_mean" in capsys.readouterr().err  # the failed run never evaluated
    cart, pend = ax.get_lines()
    assert cart.get_xdata()[-1] == 1024 and pend.get_xdata()[-1] == 2048  # the running run stops at 1024
    min_max, std = ax.collections[2:]  # Pendulum: seeds 1 and 2, min/max = seed 1/2 returns +- nothing
    y = min_max.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(eval_return(512, 1, 0.001))
    assert y.max() == pytest.approx(eval_return(2048, 2, 0.001))
    y = std.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(eval_return(512, 1.5, 0.001) - 5) and y.max() == pytest.approx(
        eval_return(2048, 1.5, 0.001) + 5)


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
