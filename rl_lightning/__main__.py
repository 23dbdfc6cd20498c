"""``python -m rl_lightning <fit|validate|test|play|sweep|runs|plot|reproduce> ...``."""

import importlib
import sys

from rl_lightning.commands import (
    COMMANDS,
    SUMMARIES,
    help_text,
    seeds_requested,
    unknown_command,
)


def run() -> None:
    """Start the command. The top-level help, unknown commands and the light commands (runs,
    plot, sweep, fit --seeds) answer without importing torch."""
    argv = sys.argv[1:]
    name = argv[0] if argv else ""
    if name in ("", "-h", "--help"):
        print(help_text())
        sys.exit(0 if name else 2)
    if not name.startswith("-") and name not in SUMMARIES:
        print(unknown_command(name), file=sys.stderr)
        sys.exit(2)
    light = "rl_lightning.runs.seeds" if seeds_requested(argv) else (
        COMMANDS[name] if name in COMMANDS and name not in ("play", "reproduce") else None)
    if light is not None:
        from rl_lightning.errors import ConfigError

        try:
            importlib.import_module(light).main(argv[1:])
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        return
    from rl_lightning.cli import main

    main()


if __name__ == "__main__":
    run()
