"""The frame progress bar, shown (every other CLI test hides it with ``refresh_rate 0``)."""

import re

from tests.test_cli import PPO, TINY, run_cli


def test_progress_bar_counts_frames_and_shows_returns(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY, "--progress_bar.refresh_rate", "1")
    out = capsys.readouterr().out
    updates = out.split("Training:")[1:]  # tqdm redraws the bar in place (on stdout)
    assert len(updates) >= 8  # once per collected batch: 8 batches of 256 frames
    final = updates[-1].splitlines()[0]
    assert "2048/2048" in final and "frames" in final  # the frame budget, not batches or steps
    fps = re.search(r"fps=(\d+)", final)
    assert fps and int(fps.group(1)) > 0
    assert re.search(r"return=-?\d+\.\d", final) and re.search(r"eval=\d+\.\d", final)


def test_refresh_rate_zero_hides_the_bar(in_tmp, capsys):
    run_cli("fit", "--config", PPO, *TINY)
    captured = capsys.readouterr()
    assert "Training" not in captured.out + captured.err
