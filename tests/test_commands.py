"""``python -m rl_lightning`` itself: the top-level help, commands that do not exist."""

import re
import subprocess
import sys
import time

import pytest

from rl_lightning.cli import RLCLI, main
from rl_lightning.commands import SUMMARIES

EVERY_COMMAND = ("fit", "validate", "test", "play", "sweep", "runs", "plot", "reproduce")


def rl_lightning(*args, importtime=False):
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "rl_lightning", *args], check=False, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["-h"], 0), ([], 2)])
def test_top_level_help_lists_every_command_without_importing_torch(in_tmp, args, code):
    start = time.perf_counter()
    result = rl_lightning(*args, importtime=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == code
    for name in EVERY_COMMAND:  # one line each: the name, then what it does
        assert re.search(rf"^  {name} +\S.*$", result.stdout, re.MULTILINE), name
    assert set(SUMMARIES) == set(EVERY_COMMAND)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "rl_lightning.commands" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "lightning", "jsonargparse")}
    assert elapsed < 10  # well under a second on an idle machine; generous for a loaded test runner


def test_predict_is_not_offered(in_tmp, capsys):
    assert set(RLCLI.subcommands()) == {"fit", "validate", "test"}
    result = rl_lightning("predict", "--config", "configs/ppo.yaml")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "`predict` is not a command" in result.stderr and "play" in result.stderr
    with pytest.raises(SystemExit) as exit_:  # in-process as well
        main(["predict"])
    assert exit_.value.code == 2
    assert "`predict` is not a command" in capsys.readouterr().err


def test_an_unknown_command_names_the_closest(in_tmp):
    result = rl_lightning("fitt", "--config", "configs/ppo.yaml")
    assert result.returncode == 2
    assert "unknown command 'fitt'" in result.stderr and "Did you mean `fit`?" in result.stderr


def test_fit_help_is_the_full_config_help(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "--model.help" in out and "--evaluation.every_frames" in out
    assert "--debug" in out and "--seeds" in out and "--seed_workers" in out
