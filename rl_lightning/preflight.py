"""Checks of a command line made before the parser and the stack see it, so that mistakes
they would report without naming the file (YAML syntax, an empty config) or with a traceback
(an optional package that is not installed) are one ``error:`` line."""

from __future__ import annotations

from pathlib import Path

import yaml

from rl_lightning.envs.gym import install_hint
from rl_lightning.errors import ConfigError


def check_config_files(argv: list[str]) -> None:
    """Refuse a ``--config`` file that is not valid YAML (naming the file, line and column),
    empty, or not a mapping of options, before the parser reports it without the file name."""
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            continue
        if not Path(path).is_file():
            continue  # not a file (e.g. inline YAML): the parser reports it
        try:
            content = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"--config {path}: not valid YAML{where}: {problem}.") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--config {path}: cannot be read ({err}).") from err
        if content is None:
            raise ConfigError(f"--config {path} is empty: a config file is a YAML mapping of options "
                              "such as model:, data:, trainer: (see configs/ppo.yaml).")
        if not isinstance(content, dict):
            raise ConfigError(f"--config {path}: a config file is a YAML mapping of options such as model:, "
                              f"data:, trainer:, not a {type(content).__name__}.")


#: Optional packages -> the extra of rl_lightning that installs them.
PACKAGE_EXTRAS = {"tensorboard": "tracking", "tensorboardX": "tracking", "wandb": "tracking", "mujoco": "mujoco",
                  "ale_py": "atari", "shimmy": "dmc", "dm_control": "dmc", "Box2D": "box2d"}


def missing_package_error(err: BaseException | None) -> ConfigError | None:
    """A ConfigError naming the extra to install when ``err`` comes from a missing optional package."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ImportError) and (err.name or "").split(".")[0] in PACKAGE_EXTRAS:
            package = err.name.split(".")[0]
            return ConfigError(f"the {package} package is not installed: {install_hint(PACKAGE_EXTRAS[package])}.")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
