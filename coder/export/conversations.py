"""sft and openai rows: one whole conversation each, ending at its last good turn.

A conversation is a chain of calls where each call's prompt plus completion starts the
next call's prompt (normally a whole session; a compaction starts a new one). The row
ends with the last turn that may be trained on; earlier assistant messages that are not
targets (failed turns, cut answers, calls that errored) stay as context, and openai rows
mark them ``"weight": 0``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from coder.export.canonical import CallView, is_unreadable, session_views, with_reasoning
from coder.export.messages import has_broken_args, openai_message, trl_message
from coder.export.output import ExportStats, Options
from coder.export.turns import Turn, session_turns
from coder.log import SessionLog


def conversations(
    s: SessionLog, wire: bool = False
) -> Iterator[tuple[list[dict], list[tuple[int, CallView]]]]:
    """Maximal chains of a session: (messages, [(index of a call's completion, view)])."""
    views = [v for v in session_views(s, wire) if v.call.ok and v.call.message]
    own: list[tuple[int, CallView]] = []
    for i, v in enumerate(views):
        msgs = [*v.prompt, v.completion]
        own.append((len(msgs) - 1, v))
        if i + 1 < len(views):
            nxt = views[i + 1].prompt
            n = len(msgs)
            # the reader shares one dict per logged message: identity first
            if len(nxt) >= n and all(a is b or a == b for a, b in zip(nxt[:n], msgs, strict=True)):
                continue
        yield msgs, own
        own = []


def _keep(turn: Turn, opts: Options) -> str | None:
    """None if the turn may be a target, else why not."""
    if not opts.keep_all and turn.failed:
        why = turn.stop if turn.stop != "answer" else f"{turn.source} reward below 0"
        return f"failed turns ({why}; --all keeps them)"
    if opts.min_reward is not None:
        if turn.reward is None:
            return "turns without a reward (--min-reward)"
        if turn.reward < opts.min_reward:
            return "turns below --min-reward"
    return None


def _not_target(v: CallView) -> str | None:
    c = v.call
    if c.finish_reason == "length":
        return "calls cut at max_tokens (kept as context)"
    if has_broken_args(v.completion):
        return "calls whose arguments are not JSON (kept as context in openai rows)"
    return None


def conversation_rows(
    sessions: Iterable[SessionLog], opts: Options, st: ExportStats, fmt: str
) -> Iterator[dict]:
    for s in sessions:
        turns = session_turns(s)
        for c in s.calls:
            if c.request is None:
                continue
            if c.interrupted:
                st.skip("interrupted calls (kept as context when shown)")
            elif is_unreadable(c):
                st.skip("unreadable calls (left out with the format reminder)")
            elif c.error:
                st.skip("calls that errored (kept as context)")
        for msgs, own in conversations(s, opts.wire):
            targets: set[int] = set()
            end = -1
            for idx, v in own:
                turn = turns[v.call.turn]
                if why := _not_target(v):
                    st.skip(why)
                    continue
                if why := _keep(turn, opts):
                    if turn.calls[-1] is v.call:
                        st.skip(why)
                    continue
                targets.add(idx)
                end = max(end, idx)
            if fmt == "sft":
                end = _sft_end(own, targets, end, st)
            if end < 0:
                st.skip("conversations with no turn to train on")
                continue
            try:
                yield _row(msgs[: end + 1], own, targets, fmt, opts)
            except ValueError:
                st.skip("conversations with tool-call arguments that are not JSON")


def _sft_end(own: list[tuple[int, CallView]], targets: set[int], end: int, st: ExportStats) -> int:
    """TRL trains on every assistant message of a row: an sft row ends before the first
    one that is not a target (a failed turn, a cut answer), at the last target before it."""
    bad = [i for i, _ in own if i not in targets and i < end]
    if not bad:
        return end
    kept = [i for i in targets if i < bad[0]]
    lost = len(targets) - len(kept)
    if lost:
        st.skip(
            "sft targets after a failed or cut reply in their conversation (openai keeps them)",
            lost,
        )
    return max(kept, default=-1)


def _row(
    msgs: list[dict], own: list[tuple[int, CallView]], targets: set[int], fmt: str, opts: Options
) -> dict:
    last = next(v for i, v in reversed(own) if i < len(msgs))
    tools = last.tools
    if fmt == "sft":
        msgs = list(msgs)
        for i, v in own:
            if i < len(msgs):
                msgs[i] = with_reasoning(msgs[i], v.call)
        row: dict[str, Any] = {"messages": [trl_message(m) for m in msgs]}
        if tools:
            row["tools"] = tools
        return row
    om = []
    for i, m in enumerate(msgs):
        o = openai_message(m, compact=not opts.wire)
        if o.get("role") == "assistant" and i not in targets:
            o["weight"] = 0
        om.append(o)
    row = {"messages": om}
    if tools:
        row["tools"] = tools
        par = (last.call.request or {}).get("parallel_tool_calls")
        if par is None:
            par = any(len(m.get("tool_calls") or []) > 1 for m in om)
        row["parallel_tool_calls"] = bool(par)
    return row


def sft_rows(sessions: Iterable[SessionLog], opts: Options, st: ExportStats) -> Iterator[dict]:
    """TRL conversational rows: {messages, tools}, tool-call arguments as objects."""
    return conversation_rows(sessions, opts, st, "sft")


def openai_rows(sessions: Iterable[SessionLog], opts: Options, st: ExportStats) -> Iterator[dict]:
    """OpenAI chat fine-tuning rows: arguments as strings, non-targets at weight 0."""
    return conversation_rows(sessions, opts, st, "openai")
