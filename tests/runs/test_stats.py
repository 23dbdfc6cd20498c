"""Reliable statistics: IQM, stratified bootstrap intervals and performance profiles, checked
against scipy, hand computations and rliable's numbers; then ``runs compare`` and ``plot``."""

import numpy as np
import pytest
import scipy.stats

from rl_lightning.runs import stats
from rl_lightning.runs.plot import make_figure, profile_figure
from rl_lightning.runs.registry import find_runs
from tests.runs.fixtures import eval_return, make_experiments
from tests.runs.test_registry import cli, cli_error


@pytest.mark.parametrize("shape", [(5, 3), (4, 1), (10, 7), (3, 2), (1, 1)])
def test_iqm_is_scipy_trim_mean_over_runs_and_tasks(shape):
    scores = np.random.default_rng(sum(shape)).normal(size=shape) * 10
    assert stats.iqm(scores) == pytest.approx(scipy.stats.trim_mean(scores, 0.25, axis=None))
    assert stats.mean(scores) == pytest.approx(scores.mean())


def test_iqm_and_mean_by_hand_with_unequal_runs_per_task():
    # 10 scores pooled: int(2.5) = 2 cut from each end -> mean of the middle 6
    tasks = [np.array([1.0, 2, 3, 4, 100]), np.array([-50.0, 5, 6, 7, 8])]
    assert stats.iqm(tasks) == pytest.approx((2 + 3 + 4 + 5 + 6 + 7) / 6)  # -50, 1 and 8, 100 cut
    assert stats.mean([np.array([1.0, 3]), np.array([10.0])]) == pytest.approx((2 + 10) / 2)  # tasks weigh equally


def test_seeded_bootstrap_gives_the_same_interval_twice():
    scores = np.random.default_rng(0).normal(size=(8, 3))
    first = stats.confidence_interval(scores, stats.iqm, reps=2000, seed=7)
    assert stats.confidence_interval(scores, stats.iqm, reps=2000, seed=7) == first
    assert stats.confidence_interval(scores, stats.iqm, reps=2000, seed=8) != first
    assert first[0] < stats.iqm(scores) < first[1]
    assert stats.summarize(scores, seed=7) == stats.summarize(scores, seed=7)


def test_bootstrap_resamples_runs_within_each_task():
    # each task's runs all score alike: a stratified resample keeps the task mix, so the mean
    # never moves (pooled resampling would mix 0s and 10s in any proportion)
    tasks = [np.zeros(4), np.full(4, 10.0)]
    assert stats.confidence_interval(tasks, stats.mean, reps=500) == (5.0, 5.0)
    samples = stats.bootstrap_samples(tasks, reps=50, seed=1)
    assert [s.shape for s in samples] == [(50, 4), (50, 4)]
    assert set(np.unique(samples[0])) == {0.0} and set(np.unique(samples[1])) == {10.0}
    assert stats.confidence_interval([np.array([3.0])], stats.iqm) == (3.0, 3.0)  # one run: nothing to resample


def test_intervals_agree_with_rliable():
    """rliable 1.2.0 (``get_interval_estimates``, 50 000 resamples) on this matrix gave IQM
    1.05468 [0.54422, 1.44176], mean 0.87508 [0.39859, 1.36102], and performance-profile
    point estimates 0.90476, 0.76190, 0.47619, 0.19048, 0.04762."""
    scores = np.random.default_rng(3).normal(size=(7, 3)) + np.arange(3)
    s = stats.summarize(scores, reps=50_000, seed=0)
    assert s["iqm"] == pytest.approx(1.05468, abs=1e-5) and s["mean"] == pytest.approx(0.87508, abs=1e-5)
    assert (s["iqm_low"], s["iqm_high"]) == pytest.approx((0.54422, 1.44176), abs=0.015)
    assert (s["mean_low"], s["mean_high"]) == pytest.approx((0.39859, 1.36102), abs=0.015)
    profile = stats.performance_profile(scores, np.linspace(-1, 3, 5))
    np.testing.assert_allclose(profile, [0.90476, 0.76190, 0.47619, 0.19048, 0.04762], atol=1e-5)


def test_performance_profile_and_normalization_by_hand():
    taus = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(stats.performance_profile([np.array([0.1, 0.5, 0.9])], taus), [1, 1 / 3, 0])
    two = [np.array([0.2, 0.8]), np.array([0.6])]  # tasks weigh equally: (1/2 + 1) / 2 above 0.5
    np.testing.assert_allclose(stats.performance_profile(two, taus), [1, 0.75, 0])
    low, high = stats.profile_interval(two, taus, reps=200)
    assert (low <= stats.performance_profile(two, taus)).all() and (high >= low).all()
    normalized, used = stats.normalize({"a": np.array([0.0, 250, 500]), "b": np.array([-10.0, 0, 10])},
                                       {"a": (0.0, 1000.0)})
    assert used == {"a": (0.0, 1000.0), "b": (-10.0, 10.0)}
    np.testing.assert_allclose(normalized["a"], [0, 0.25, 0.5])
    np.testing.assert_allclose(normalized["b"], [0, 0.5, 1])
    with pytest.raises(ValueError, match="'c'"):
        stats.normalize({"c": np.array([1.0, 1.0])})


@pytest.fixture
def runs(in_tmp):
    return make_experiments(in_tmp)


def table(out, title):
    """The rows (split on 2+ spaces) of the table printed under the line starting with ``title``."""
    lines = out.split(title, 1)[1].split("\n\n")[0].strip().splitlines()[1:]
    return [[cell for cell in line.split("  ") if cell.strip()] for line in lines[1:]]


def test_compare_reports_iqm_and_intervals_per_method_and_env(runs, capsys):
    args = ("runs", "compare", "experiments", "--by", "model.learning_rate", "--reps", "300", "--seed", "3")
    out = cli(capsys, *args)
    rows = {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in table(out, "Over seeds")}
    fast = [eval_return(2048, s, 0.001) for s in (1, 2, 3)]  # 214.8, 224.8, 234.8
    runs_, mean, std, iqm, iqm_ci, _ = rows[("learning_rate=0.001", "CartPole-v1")]
    assert (runs_, mean, std, iqm) == ("3", f"{np.mean(fast):.4g}", f"{np.std(fast):.4g}",
                                       f"{scipy.stats.trim_mean(fast, 0.25):.4g}")
    low, high = (float(v) for v in iqm_ci.strip("[]").split(","))
    assert min(fast) <= low < np.mean(fast) < high <= max(fast)
    assert rows[("learning_rate=0.001", "Pendulum-v1")][0] == "2"
    assert ("learning_rate=0.0003", "CartPole-v1") in rows
    assert "300 resamples, seed 3" in out
    assert cli(capsys, *args) == out  # seeded: the same intervals again
    across = {r[0].strip(): r for r in table(out, "Across environments")}
    assert across["learning_rate=0.001"][1].strip() == "2"  # CartPole and Pendulum
    assert "CartPole-v1 66.08..234.8 (range over runs)" in out


def test_compare_score_range_and_bad_options(runs, capsys):
    out = cli(capsys, "runs", "compare", "experiments", "--score-range", "CartPole-v1=0:500", "--reps", "100")
    assert "CartPole-v1 0..500 (given)" in out
    assert "--score-range 'CartPole-v1=500'" in cli_error(capsys, "runs", "compare", "experiments",
                                                           "--score-range", "CartPole-v1=500")
    assert "--score-range Acrobot-v1" in cli_error(capsys, "runs", "compare", "experiments",
                                                   "--score-range", "Acrobot-v1=0:1")
    assert "--reps must be >= 1" in cli_error(capsys, "runs", "compare", "experiments", "--reps", "0")
    assert "--score nope" in cli_error(capsys, "runs", "compare", "experiments", "--score", "nope")


def test_plot_iqm_curves_and_performance_profiles(runs, in_tmp, capsys):
    finished = find_runs(filters={"env": "CartPole-v1", "status": "finished"})
    fig = make_figure(finished, by="model.learning_rate", stat="iqm", reps=200)
    (ax,) = fig.axes
    _, fast = ax.get_lines()
    frames = fast.get_xdata()
    seeds = np.array([[eval_return(f, s, 0.001) for f in frames] for s in (1, 2, 3)])
    np.testing.assert_allclose(fast.get_ydata(), scipy.stats.trim_mean(seeds, 0.25, axis=0))
    assert ax.get_legend().get_title().get_text().startswith("IQM; bands: 95% bootstrap CI")

    fig = profile_figure(find_runs(), by="model.learning_rate", score_range={"CartPole-v1": (0, 500)}, reps=200)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["learning_rate=0.0001 (1 run, 1 env)", "learning_rate=0.0003 (2 runs, 1 env)",
                      "learning_rate=0.001 (5 runs, 2 envs)"]
    assert "given min/max (CartPole-v1), else min/max over runs" in ax.get_xlabel()
    line = ax.get_lines()[1]  # lr 3e-4 on CartPole: final returns 71.44 and 66.08 of 500
    taus, fraction = line.get_xdata(), line.get_ydata()
    np.testing.assert_allclose(fraction, [np.mean(np.array([71.44, 66.08]) / 500 > t) for t in taus], atol=1e-9)

    cli(capsys, "plot", "experiments", "--profile", "-o", "p.svg", "--reps", "100")
    assert (in_tmp / "p.svg").read_text().startswith("<?xml")
    cli(capsys, "plot", "experiments", "--stat", "iqm", "--reps", "100")
    assert (in_tmp / "curves.png").stat().st_size > 1000
