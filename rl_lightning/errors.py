"""Errors of user input, reported by the CLI as one ``error:`` line instead of a traceback."""


class ConfigError(ValueError):
    """A config value, environment id, file or checkpoint that cannot be used; the message
    names the key, id or path at fault and what would be valid."""
