"""Secrets (passwords) for the connections, read from where the configuration says: an
environment variable or a file, never the configuration itself (docs/security.md).

One reader for every consumer: the configuration checks that a secret can be read when it is
loaded (``engine.runtime.config``); the Redis sink reads it when it is built, the MQTT feed at
every connection, so a replaced file is picked up on the next reconnection.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_secret"]


def read_secret(env: str | None, file: str | None) -> str | None:
    """A secret from the environment variable named ``env`` or from ``file``.

    Args:
        env: name of an environment variable holding the secret (not the secret).
        file: path of a file holding the secret; line breaks at its end are dropped.

    Returns:
        The secret; None when neither is given (``env`` wins if both are).

    Raises:
        ValueError: the variable is unset or empty, the file cannot be read or is empty. The
            message names the variable or the file, never the secret.
    """
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise ValueError(
                f"environment variable {env} is {'not set' if value is None else 'empty'}"
            )
        return value
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"cannot read {file}: not UTF-8 text") from None
        if not value:
            raise ValueError(f"{file} is empty")
        return value
    return None
