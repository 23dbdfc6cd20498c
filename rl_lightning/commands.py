"""The commands of ``python -m rl_lightning`` and the top-level help (kept light: no torch import)."""

from __future__ import annotations

import difflib

#: name -> module whose ``main(argv)`` runs it (``fit``, ``validate`` and ``test`` are LightningCLI's)
COMMANDS = {
    "play": "rl_lightning.runs.play",
    "runs": "rl_lightning.runs.runs_command",
    "plot": "rl_lightning.runs.plot",
    "sweep": "rl_lightning.runs.sweep",
    "reproduce": "rl_lightning.runs.reproduce",
}

#: every command -> its line in ``python -m rl_lightning --help``
SUMMARIES = {
    "fit": "train an agent from YAML configs (--debug: a quick check run; --seeds 1,2,3: one run per seed)",
    "validate": "play evaluation episodes with a checkpoint (--ckpt_path last | best | <file>) and print the metrics",
    "test": "the same as validate, reported as test metrics",
    "play": "watch a trained agent: in a window, or to an mp4 without a display",
    "sweep": "grid, random or Optuna search over a sweep file, several seeds per trial",
    "runs": "list, compare, export and clean up run folders",
    "plot": "learning curves of runs over frames, mean and spread over seeds",
    "reproduce": "re-run a run's config and seed and check that its metrics match",
}

EXAMPLES = """\
examples:
  python -m rl_lightning fit --config configs/ppo.yaml
  python -m rl_lightning fit --config configs/ppo.yaml --debug
  python -m rl_lightning fit --config configs/ppo.yaml --seeds 1-3
  python -m rl_lightning runs list
  python -m rl_lightning plot experiments/ppo-CartPole-v1
"""

#: commands LightningCLI would offer that rl_lightning does not, and what to use instead
NOT_OFFERED = {
    "predict": "there is no dataset to predict on in reinforcement learning; use `play` to watch a trained "
               "agent, or `validate` / `test` to evaluate a checkpoint",
}


def help_text() -> str:
    """The top-level help: usage, one line per command, examples."""
    width = max(map(len, SUMMARIES))
    lines = ["usage: python -m rl_lightning <command> [options]", "",
             "Reinforcement learning on PyTorch Lightning: train, evaluate, watch, sweep and compare agents.", "",
             "commands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, summary in SUMMARIES.items()]
    lines += ["", "`python -m rl_lightning <command> --help` shows the options of a command (fit: every config key).",
              "", EXAMPLES.rstrip()]
    return "\n".join(lines)


def unknown_command(name: str) -> str:
    """The one-line error for a command that does not exist (with the closest one, if any)."""
    if name in NOT_OFFERED:
        return f"error: `{name}` is not a command of rl_lightning: {NOT_OFFERED[name]}."
    close = difflib.get_close_matches(name, SUMMARIES, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return (f"error: unknown command {name!r}; the commands are {', '.join(SUMMARIES)}.{hint} "
            "(python -m rl_lightning --help lists them.)")


def seeds_requested(argv: list[str]) -> bool:
    """Whether ``argv`` (after ``python -m rl_lightning``) is a ``fit`` with ``--seeds`` to run,
    not to show help for."""
    if argv[:1] != ["fit"] or any(a in ("-h", "--help") or a.startswith("--print_config") for a in argv):
        return False
    return any(a == "--seeds" or a.startswith("--seeds=") for a in argv[1:])
