"""Secrets out of everything coder writes down: one marker, one notion of a secret.

Used by the log Recorder, config's ``as_dict``, saved sessions and the server's
command line. A key named like a credential has its value replaced by
``REDACTED``; known secret values are masked wherever they appear in a string.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
SECRET_ENV = ("CODER_API_KEY", "OPENAI_API_KEY", "LLAMA_API_KEY")
MIN_SECRET_LEN = 6  # a shorter value would mask innocent text everywhere; keys are long
_SECRET_KEY_PARTS = ("api_key", "apikey", "api-key", "authorization", "password", "secret")
_SECRET_KEYS = {"access_token", "refresh_token", "bearer", "x-api-key", "proxy-authorization"}


def is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in _SECRET_KEYS or any(p in k for p in _SECRET_KEY_PARTS)


def scrub(obj: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Copy of ``obj`` with secret-named keys redacted and known secret values
    masked (in strings and in dict keys)."""
    if isinstance(obj, dict):
        return {scrub(k, secrets): _scrub_value(k, v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v, secrets) for v in obj]
    if isinstance(obj, str) and secrets:
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, REDACTED)
    return obj


def _scrub_value(key: Any, value: Any, secrets: tuple[str, ...]) -> Any:
    if value and isinstance(key, str) and is_secret_key(key):
        return REDACTED
    return scrub(value, secrets)


def usable_secrets(values: Iterable[Any]) -> tuple[str, ...]:
    """Strings worth masking, longest first (so a key containing another is masked whole)."""
    found = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN}
    found.discard(REDACTED)
    return tuple(sorted(found, key=len, reverse=True))


def is_coder_secret_env(name: str) -> bool:
    """coder's own credentials in the environment, in every form it reads them:
    CODER_API_KEY, CODER_LLM__API_KEY (any CODER_ key named like a secret), and the
    server-side names it passes on (LLAMA_API_KEY, OPENAI_API_KEY)."""
    return name in SECRET_ENV or (name.startswith("CODER_") and is_secret_key(name))


def env_secrets() -> tuple[str, ...]:
    return usable_secrets(v for k, v in os.environ.items() if is_coder_secret_env(k))


def find_secrets(config: Any) -> tuple[str, ...]:
    """The values of secret-named keys anywhere in ``config``."""
    found: list[str] = []
    _collect_secrets(config, found)
    return usable_secrets(found)


def _collect_secrets(obj: Any, found: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and is_secret_key(k) and isinstance(v, str):
                found.append(v)
            else:
                _collect_secrets(v, found)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _collect_secrets(v, found)
