"""card.json: how an adapter was made, written beside it, and read back by the server
side (an adapter coder trained is served with the template it was trained with)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

CARD = "card.json"
CARD_VERSION = 1
MAKER = "coder train"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(adapter: Path) -> dict | None:
    """The card of an adapter file (card.json in its directory), or None."""
    path = Path(adapter).expanduser().resolve().parent / CARD
    try:
        card = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return card if isinstance(card, dict) else None


def trained_by_coder(adapter: Path) -> bool:
    card = read_card(adapter)
    return bool(card) and card.get("made_by") == MAKER


def card_template(adapter: Path) -> str | None:
    """The chat template an adapter coder trained was trained with."""
    card = read_card(adapter)
    if not card or card.get("made_by") != MAKER:
        return None
    return card.get("chat_template")


def card_tools(adapter: Path) -> list[str] | None:
    """The tools an adapter coder trained was trained with: offered with it when
    agent.tools is not set, since a small model learns the tool set it saw."""
    card = read_card(adapter)
    tools = card.get("tools") if card and card.get("made_by") == MAKER else None
    if isinstance(tools, list) and tools and all(isinstance(t, str) for t in tools):
        return tools
    return None
