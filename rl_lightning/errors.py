"""Errors of user input, reported by the CLI as one ``error:`` line instead of a traceback."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A config value, environment id, file or checkpoint that cannot be used; the message
    names the key, id or path at fault and what would be valid."""


def check_range(
    key: str,
    value: float | int | None,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is a finite number in the
    interval from ``low`` to ``high`` (``None``: unbounded; ``*_open``: that end excluded).

    Args:
        key: the option as the user writes it, e.g. ``model.learning_rate``.
        value: the value given.
        low: lower bound, or ``None``.
        high: upper bound, or ``None``.
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        optional: ``None`` is a valid value (the option is off).
    """
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return
    show = lambda bound: str(bound) if isinstance(bound, int) else f"{bound:g}"  # noqa: E731
    if low is not None and high is not None:
        valid = f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    elif low is not None:
        valid = f"{'>' if low_open else '>='} {show(low)}"
    elif high is not None:
        valid = f"{'<' if high_open else '<='} {show(high)}"
    else:
        valid = "a finite number"
    none = " (or null)" if optional else ""
    raise ConfigError(f"{key} must be {valid}{none}, got {value!r}.")


#: Largest learning rate accepted: beyond it every algorithm here diverges at once.
MAX_LEARNING_RATE = 1.0
#: Largest seed NumPy (and so ``seed_everything`` and the environments) accepts.
MAX_SEED = 2**32 - 1
