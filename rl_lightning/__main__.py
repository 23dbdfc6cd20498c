"""``python -m rl_lightning <fit|validate|...>``."""

from rl_lightning.cli import main

if __name__ == "__main__":
    main()
