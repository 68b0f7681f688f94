"""Which prompt a turn answers: the one definition of a GRPO group, shared by exports.

A group is the turns that answer the same prompt: the first request of the turn (system
prompt, history, the user's message, and the tools offered), compared byte for byte
through its hash, unless a rollout names the group (``extra.group_id`` in session_start),
so N attempts at one task form one group even when their prompts differ (a timestamp).
"""

from __future__ import annotations

from coder.log.reader import SessionLog
from coder.log.schema import content_hash


def prompt_hash(messages: list[dict], tools: list[dict] | None = None) -> str:
    """blake2b-128 hex of the canonical JSON of the prompt (messages + tools as sent)."""
    return content_hash({"messages": messages, "tools": tools or None})


def group_id(session: SessionLog, turn: int | None) -> str | None:
    """The group of ``turn``: the rollout's ``extra.group_id`` when given, else the hash
    of the turn's first rebuilt request; None when that request cannot be rebuilt."""
    given = session.extra.get("group_id")
    if isinstance(given, str | int) and not isinstance(given, bool):
        return str(given)
    first = None
    for call in session.calls:
        if call.turn == turn and (first is None or (call.step or 0) < (first.step or 0)):
            first = call
    if first is None or first.request is None:
        return None
    return prompt_hash(first.request.get("messages") or [], first.request.get("tools"))
