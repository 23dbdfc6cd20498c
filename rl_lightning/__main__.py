"""``python -m rl_lightning <fit|validate|test|play|runs|plot|sweep|reproduce> ...``."""

import importlib
import sys

from rl_lightning.commands import COMMANDS


def run() -> None:
    """Start the command: the light ones (runs, plot, ...) without importing torch first."""
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name in COMMANDS and name not in ("play", "reproduce"):
        from rl_lightning.errors import ConfigError

        try:
            importlib.import_module(COMMANDS[name]).main(sys.argv[2:])
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        return
    from rl_lightning.cli import main

    main()


if __name__ == "__main__":
    run()
