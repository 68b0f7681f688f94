"""Secrets out of everything coder writes down: one marker, one notion of a secret.

Used by the log Recorder, config's ``as_dict``, saved sessions and the server's
command line. A key named like a credential has its value replaced by
``REDACTED``; known secret values are masked wherever they appear in a string.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
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


_TAKEN: set[str] = set()  # secrets coder read from its environment and then removed


def env_secrets() -> tuple[str, ...]:
    """coder's credentials from its environment: those still there and those taken out."""
    current = (v for k, v in os.environ.items() if is_coder_secret_env(k))
    return usable_secrets([*current, *_TAKEN])


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` for a process coder starts: coder's keys left out in every form, and any
    other variable holding one of their values."""
    secrets = set(env_secrets())
    return {k: v for k, v in environ.items() if not is_coder_secret_env(k) and v not in secrets}


def take_env_secrets() -> tuple[str, ...]:
    """Remove coder's credentials (and copies of them under other names) from its
    environment once the config has them, so no process coder starts inherits them, and
    remember them for masking (`env_secrets`).

    The kernel's copy of the initial environment (/proc/PID/environ, readable by the
    same user and root) is not changed by unsetenv; coder blanks the values there too,
    in place. What stays: the key was readable there from exec until this call, and the
    shell that started coder keeps its own copy."""
    names = [k for k in os.environ if is_coder_secret_env(k)]
    values = usable_secrets(os.environ[k] for k in names)
    names += [k for k, v in os.environ.items() if v in values and k not in names]  # copies
    for name in names:
        _TAKEN.add(os.environ.pop(name))
    if names:
        _blank_initial_environ(set(names))
    return usable_secrets(_TAKEN)


def _blank_initial_environ(names: set[str]) -> None:
    """Overwrite NAME=VALUE's value with '*' in the block /proc/self/environ shows
    (Linux: its bounds are fields 50 and 51 of /proc/self/stat). After unsetenv nothing
    points into that block any more; Python's os.environ holds copies."""
    import ctypes

    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])
    except (OSError, ValueError, IndexError):
        return
    if not 0 < start < end:
        return
    block = ctypes.string_at(start, end - start)
    offset = 0
    for entry in block.split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and value and name.decode(errors="replace") in names:
            ctypes.memset(start + offset + len(name) + 1, ord("*"), len(value))
        offset += len(entry) + 1


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
