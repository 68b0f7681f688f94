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

from coder.export.groups import turn_group_ids
from coder.export.output import ExportStats, Options
from coder.export.turns import session_turns
from coder.log import SessionLog, decode_logprobs
from coder.log.reader import ModelCall


def tokens_rows(
    sessions: Iterable[SessionLog], opts: Options | None = None, st: ExportStats | None = None
) -> Iterator[dict]:
    """One row per completed model call (no error, not interrupted, prompt rebuilt) of a
    turn that may be a training target: a failed turn's calls only with ``--all``
    (``opts.keep_all``), and none below ``--min-reward``. A call cut at max_tokens is
    kept as sampled (its finish_reason says so); an errored or unreadable one is not."""
    opts = opts or Options()
    st = st or ExportStats()
    for session in sessions:
        turns = session_turns(session)
        groups = turn_group_ids(session, opts.wire)  # the same ids as grpo and dpo rows
        for call in session.calls:
            turn = turns.get(call.turn)
            if not call.ok:
                st.skip("calls that failed or were interrupted")
                continue
            if turn is not None and turn.failed and not opts.keep_all:
                st.skip("calls of failed turns (--all keeps them)")
                continue
            reward = session.reward_for(call.turn)
            value = reward.get("value") if reward else None
            if opts.min_reward is not None and (value is None or value < opts.min_reward):
                st.skip("calls below --min-reward")
                continue
            row = {
                "session_id": session.session_id,
                "turn": call.turn,
                "step": call.step,
                "group_id": groups.get(call.turn),
                **call_ids(call),
                "reward": value,
                "finish_reason": call.finish_reason,
            }
            if not row["complete"]:
                st.incomplete += 1
            yield row


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
