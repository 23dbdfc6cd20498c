"""Secrets never leave the process: values of secret-looking keys (``api_key``, ``*_token``,
``*_password``, ``secret``, ...) are replaced by ``***`` in everything a run writes or sends
(``config.yaml`` and ``config.resume-*.yaml``, hyperparameters logged to CSV/TensorBoard/W&B,
checkpoints, the command line W&B records), while the objects that need them get the real value.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

#: A key is secret when its lower-cased name contains one of these.
SECRET_KEYS = ("api_key", "apikey", "token", "secret", "password", "passwd")
#: What a secret's value is replaced with.
MASK = "***"


def is_secret_key(key: Any) -> bool:
    """Whether ``key`` names a secret."""
    name = str(key).lower().replace("-", "_")
    return any(word in name for word in SECRET_KEYS)


def scrub_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested mappings, lists, tuples) with the values of secret keys
    replaced by ``***`` (empty values are kept, so an unset secret reads as unset)."""
    if isinstance(value, Mapping) or hasattr(value, "as_dict"):
        items = value.as_dict() if hasattr(value, "as_dict") and not isinstance(value, Mapping) else value
        return {k: MASK if is_secret_key(k) and v not in (None, "") else scrub_secrets(v) for k, v in items.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_secrets(v) for v in value)
    return value


def scrub_argv(argv: list[str]) -> list[str]:
    """A command line with secrets masked: the value of a flag whose last name part is a
    secret key (``--x.api_token V`` or ``--x.api_token=V``) and secret keys inside YAML/JSON
    values such as ``--data.env_kwargs '{api_token: V}'``."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next and not arg.startswith("--"):
            out.append(MASK)
            mask_next = False
            continue
        mask_next = False
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            if is_secret_key(flag.rsplit(".", 1)[-1]):
                out.append(f"{flag}={MASK}" if eq else flag)
                mask_next = not eq
                continue
            out.append(f"{flag}={_scrub_text(value)}" if eq else arg)
        else:
            out.append(_scrub_text(arg))
    return out


def _scrub_text(text: str) -> str:
    """``text`` re-written with secrets masked if it is a YAML/JSON mapping or list holding any."""
    if not any(word in text.lower() for word in SECRET_KEYS):
        return text
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return MASK  # mentions a secret key and cannot be parsed: keep none of it
    if isinstance(data, (Mapping, list)):
        return yaml.safe_dump(scrub_secrets(data), default_flow_style=True).strip()
    return text


@contextlib.contextmanager
def scrubbed_argv() -> Iterator[None]:
    """``sys.argv`` with secrets masked for the duration (W&B records the command line when a
    run starts)."""
    original = sys.argv
    sys.argv = [original[0], *scrub_argv(original[1:])] if original else original
    try:
        yield
    finally:
        sys.argv = original


class ScrubbedHyperparameters:
    """Mixin for LightningModule/LightningDataModule: ``hparams_initial`` (what Lightning logs
    to CSV, TensorBoard and W&B) has secrets masked; ``hparams`` keeps the real values."""

    @property
    def hparams_initial(self) -> Any:
        """The saved hyperparameters with secrets masked."""
        from lightning.fabric.utilities.data import AttributeDict

        return AttributeDict(scrub_secrets(dict(super().hparams_initial)))


def scrub_checkpoint(checkpoint: dict[str, Any]) -> None:
    """Mask secrets in a checkpoint's hyperparameters (of the model and of the data module)."""
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint[key] = scrub_secrets(dict(checkpoint[key]))
