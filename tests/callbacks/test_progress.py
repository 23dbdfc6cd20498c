"""Progress in frames: a bar in a terminal, timed lines in a log (every other CLI test hides it
with ``refresh_rate 0``)."""

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from rl_lightning.callbacks import progress
from rl_lightning.callbacks.progress import FrameProgressBar
from rl_lightning.errors import ConfigError
from tests.test_cli import CONFIGS, PPO, TINY, run_cli

SHOWN = TINY[:-2]  # without "--progress_bar.refresh_rate 0"
SAC = [sys.executable, "-m", "rl_lightning", "fit", "--config", str(CONFIGS / "sac.yaml"), "--data.total_frames", "300",
       "--data.batch_size", "32", "--evaluation.every_frames", "300", "--evaluation.episodes", "1",
       "--checkpoint.every_frames", "300"]


def test_bar_counts_frames_and_shows_returns(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *SHOWN, "--progress_bar.style", "bar")
    out = capsys.readouterr().out
    updates = out.split("Training:")[1:]  # tqdm redraws the bar in place (on stdout)
    assert updates and "[train]" not in out
    final = updates[-1].splitlines()[0]
    assert "2048/2048" in final and "frames/s" in final  # the frame budget, not batches or steps
    fps = re.search(r"fps=(\d+)", final)
    assert fps and int(fps.group(1)) > 0
    assert re.search(r"return=-?\d+\.\d", final) and re.search(r"eval=\d+\.\d", final)


def test_refresh_rate_zero_hides_bar_and_lines(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    run_cli("fit", "--config", PPO, *TINY, "--progress_bar.style", "lines", "--progress_bar.every_s", "0.001")
    captured = capsys.readouterr()
    assert "Training" not in captured.out + captured.err and "[train]" not in captured.out + captured.err


def test_a_log_gets_a_few_newline_terminated_lines(in_tmp):
    """Output to a pipe (a cluster job's log): no bar, a line at the start and one at the end."""
    result = subprocess.run(SAC, check=False, capture_output=True, text=True, timeout=300)  # SAC: one frame per batch
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "\r" not in log and log.endswith("\n")
    assert len(log.encode()) / 300 < 3  # bytes per frame (a bar redrawn per batch wrote ~80)
    lines = [line for line in result.stdout.splitlines() if line.startswith("[train]")]
    assert lines[0] == "[train] frames 0/300 (0%) | starting"
    assert re.fullmatch(r"\[train\] frames 300/300 \(100%\) \| [\d,]+ frames/s \| return -?[\d.]+ \| "
                        r"eval -?[\d.]+ \| \d+:\d\d elapsed, done", lines[-1]), lines[-1]
    assert len(lines) == 2  # the default interval, 30 s, is longer than this run
    assert result.stdout.index("Run folder: ") < result.stdout.index("[train]")  # where the run lives, first


def test_resumed_run_counts_the_frames_of_the_whole_run(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY, "--data.total_frames", "1024")
    capsys.readouterr()
    resume = [*SHOWN, "--data.total_frames", "2048", "--ckpt_path", "last"]
    run_cli("fit", "--config", PPO, *resume, "--progress_bar.every_s", "0.001")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[train]")]
    assert lines[0] == "[train] frames 1,024/2,048 (50%) | resuming"
    assert "frames 1,280/2,048 (62%)" in lines[1] and lines[-1].startswith("[train] frames 2,048/2,048 (100%)")
    run_cli("fit", "--config", PPO, *resume, "--data.total_frames", "3072", "--progress_bar.style", "bar")
    out = capsys.readouterr().out
    assert "2048/3072" in out and "3072/3072" in out and "it/s" not in out


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fake_run(total=100_000):
    module = SimpleNamespace(frames=0, at_boundary=True)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(total_frames=total), callback_metrics={})
    return trainer, module


def test_lines_come_every_interval(capsys):
    bar, clock = FrameProgressBar(every_s=10, style="lines"), Clock()
    bar.clock = clock
    trainer, module = fake_run()
    bar.on_train_start(trainer, module)
    for second in range(1, 26):  # a batch of 1,000 frames per second for 25 s
        clock.now += 1
        module.frames += 1000
        trainer.callback_metrics = {"train/episode_return": 187.26, "eval/return_mean": 500.0}
        bar.on_train_batch_end(trainer, module, None, None, second)
    bar.on_train_end(trainer, module)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "[train] frames 0/100,000 (0%) | starting",
        "[train] frames 10,000/100,000 (10%) | 1,000 frames/s | return 187.3 | eval 500.0 | 0:10 elapsed, 1:30 left",
        "[train] frames 20,000/100,000 (20%) | 1,000 frames/s | return 187.3 | eval 500.0 | 0:20 elapsed, 1:20 left",
        "[train] frames 25,000/100,000 (25%) | 1,000 frames/s | return 187.3 | eval 500.0 | 0:25 elapsed, stopped",
    ]


def test_bar_redraws_at_most_four_times_a_second(monkeypatch):
    bar, clock = FrameProgressBar(style="bar"), Clock()
    bar.clock = clock
    trainer, module = fake_run(total=1000)
    draws = []
    bar.on_train_start(trainer, module)
    monkeypatch.setattr(bar.train_progress_bar, "refresh", lambda *a, **k: draws.append(bar.train_progress_bar.n))
    for step in range(1, 1001):  # SAC: a batch per frame, 1,000 frames/s
        clock.now += 0.001
        module.frames = step
        bar.on_train_batch_end(trainer, module, None, None, step)
    assert len(draws) <= 5 and draws[-1] == 1000  # 1 s: about 4 redraws, and the last frame
    bar.train_progress_bar.close()


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="progress_bar.every_s"):
        FrameProgressBar(every_s=0)
    with pytest.raises(ConfigError, match="progress_bar.style"):
        FrameProgressBar(style="fancy")
    assert progress._duration(3725) == "1:02:05" and progress._duration(65) == "1:05"


def test_auto_style_is_a_bar_in_a_terminal_or_notebook_and_lines_elsewhere(monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    notebook = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})  # isatty() is False there
    for stream, lines in ((io.StringIO(), True), (Terminal(), False), (notebook(), False)):
        monkeypatch.setattr(sys, "stdout", stream)
        bar = FrameProgressBar()
        assert bar.lines is lines and bar.is_disabled is lines
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert FrameProgressBar(style="lines").lines and not FrameProgressBar(style="bar", refresh_rate=1).is_disabled
    assert FrameProgressBar(style="bar", refresh_rate=0).is_disabled


def test_a_stopped_run_ends_its_log_with_one_line(capsys):
    """Ctrl-C/SIGTERM: GracefulStop ends training with KeyboardInterrupt, maybe before this callback's end."""
    bar, clock = FrameProgressBar(style="lines"), Clock()
    bar.clock = clock
    trainer, module = fake_run()
    bar.on_train_start(trainer, module)
    clock.now += 4
    module.frames = 8000
    bar.on_exception(trainer, module, KeyboardInterrupt())
    bar.on_exception(trainer, module, KeyboardInterrupt())
    assert capsys.readouterr().out.splitlines()[1:] == [
        "[train] frames 8,000/100,000 (8%) | 2,000 frames/s | 0:04 elapsed, stopped"]
