"""Rows for ``--format tokens``: one per model call, in token ids (TRL's rollout_func,
verl's agent loop and SkyRL take prompt/completion ids plus logprobs and a reward).

A row is ``complete`` only when its ids are the whole of what the model saw and
sampled: ``len(prompt_ids) == usage.prompt_tokens`` and ``len(completion_ids) ==
usage.completion_tokens``; otherwise ``note`` says what is missing, so a trainer never
takes a silently shortened sequence. See docs/log-format.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from coder.log import SessionLog, decode_logprobs, group_id
from coder.log.reader import ModelCall


def tokens_rows(sessions: Iterable[SessionLog]) -> Iterator[dict]:
    """One row per completed model call (no error, not interrupted, prompt rebuilt)."""
    for session in sessions:
        groups: dict[int | None, str | None] = {}
        for call in session.calls:
            if not call.ok:
                continue
            if call.turn not in groups:
                groups[call.turn] = group_id(session, call.turn)
            reward = session.reward_for(call.turn)
            yield {
                "session_id": session.session_id,
                "turn": call.turn,
                "step": call.step,
                "group_id": groups[call.turn],
                **call_ids(call),
                "reward": reward.get("value") if reward else None,
                "finish_reason": call.finish_reason,
            }


def call_ids(call: ModelCall) -> dict:
    """``prompt_ids``, ``completion_ids``, ``completion_logprobs`` (null where unknown,
    e.g. the end token the client appended), ``complete`` and ``note``."""
    notes: list[str] = []
    usage = call.usage or {}
    prompt_ids = call.prompt_ids
    if prompt_ids is None:
        notes.append(f"no prompt ids: {call.prompt_ids_note or 'logging.prompt_ids was off'}")
    elif len(prompt_ids) != usage.get("prompt_tokens"):
        notes.append(
            f"prompt: {len(prompt_ids)} ids, usage.prompt_tokens {usage.get('prompt_tokens')}"
        )
    tokens = call.tokens or {}
    ids = tokens.get("ids")
    logprobs = None
    if not isinstance(ids, list):
        ids = None
        note = call.record.get("tokens_note") or "the server returned no token ids"
        notes.append(f"no completion ids: {note}")
    else:
        logprobs = [
            None if x is None or math.isnan(x) else x for x in decode_logprobs(tokens) or []
        ]
        n = usage.get("completion_tokens")
        if len(ids) != n:
            why = call.record.get("tokens_note") or "the server sent fewer than it sampled"
            notes.append(f"completion: {len(ids)} ids, usage.completion_tokens {n}: {why}")
    return {
        "prompt_ids": prompt_ids,
        "completion_ids": ids,
        "completion_logprobs": logprobs,
        "complete": not notes,
        "note": "; ".join(notes) or None,
    }
