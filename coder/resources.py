"""Files shipped beside the code: prompts/ and config.yaml.

In a checkout they sit at the repo root (users edit them there); in an installed
wheel they live under coder/_data (see pyproject's force-include).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def path(name: str) -> Path:
    for candidate in (_HERE / "_data" / name, _HERE.parent / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"coder resource missing: {name} (a broken install?)")


def read_text(name: str) -> str:
    return path(name).read_text(encoding="utf-8")
