"""Each logged call as (prompt, completion, tools) in the form a row is built from.

Canonical (the default): OpenAI-shaped messages whatever the wire protocol was. For
the json protocol the wire prompt is undone exactly as coder/llm/json_protocol.py
rendered it: the tool list leaves the system text, a past call's JSON text becomes the
logged assistant message it was rendered from (``tool_calls`` with their ids), and
"Result of NAME:" user messages become the ``tool`` messages they stand for. In both
protocols a reply that could not be read, and the format reminder the agent answered it
with, leave the history: neither is a thing to learn.

Wire (``--wire``): the messages exactly as the server received them, and the text the
model produced as the completion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from coder.llm.json_protocol import render_json_messages, tools_text
from coder.log import ModelCall, SessionLog

# coder/agent.py's FORMAT_HINT up to its first field (test_export_golden.py checks)
HINT_PREFIX = "Your tool call could not be read ("
_FAILED: dict = {"role": "assistant", "failed": True}  # marker, never exported


@dataclass
class CallView:
    call: ModelCall
    prompt: list[dict]
    completion: dict  # the assistant message the call produced (reasoning: with_reasoning)
    tools: list[dict] | None

    @property
    def target(self) -> bool:
        """Whether the completion may be trained on: complete, readable, not cut."""
        return self.call.ok and bool(self.call.message) and self.call.finish_reason != "length"


def is_unreadable(call: ModelCall) -> bool:
    """A reply the agent kept as plain text because its call could not be read."""
    return bool(call.error) and not call.interrupted and not call.message.get("tool_calls")


def completion_text(call: ModelCall) -> str:
    """What the model produced: the sampled tokens' text when logged (under
    response_format the server strips a fence from the content), else raw_content."""
    tokens = call.tokens or {}
    text = tokens["text"] if isinstance(tokens.get("text"), str) else call.raw_content
    return text or ""


def with_reasoning(m: dict, call: ModelCall) -> dict:
    # TRL rows carry a thinking model's reasoning as reasoning_content (what reasoning
    # chat templates such as Qwen3's render); OpenAI's format has no field for it.
    return {**m, "reasoning_content": call.reasoning} if call.reasoning else m


def session_views(s: SessionLog, wire: bool = False) -> Iterator[CallView]:
    """A view of every call whose request was rebuilt, in log order."""
    if wire:
        for c in s.calls:
            if c.request is not None:
                yield _wire_view(c, s)
        return
    undo = _Canonical(s)
    for c in s.calls:
        if c.request is None:
            continue
        if c.tools is not None:  # another set than the session's (e.g. after /mode)
            tools = c.tools
        elif c.protocol == "json":
            tools = s.tools
        else:
            tools = c.request.get("tools") or s.tools
        yield CallView(c, undo.prompt(c), _clean(c.message), tools or None)


def _wire_view(c: ModelCall, s: SessionLog) -> CallView:
    msgs = c.request["messages"]
    if c.protocol == "json":
        # the tools are in the system text; the model produced text
        return CallView(c, msgs, {"role": "assistant", "content": completion_text(c)}, None)
    return CallView(c, msgs, c.message, c.request.get("tools") or s.tools)


def _clean(m: dict) -> dict:
    """A logged assistant message as a training message: content None for a call."""
    out = {"role": "assistant", "content": m.get("content")}
    if m.get("tool_calls"):
        out["tool_calls"] = m["tool_calls"]
        out["content"] = m.get("content") or None
    else:
        out["content"] = m.get("content") or ""
    return out


class _Canonical:
    """Undoes one session's wire prompts. Messages are memoised by identity (the reader
    shares one dict per logged message across calls), so each is converted once."""

    def __init__(self, s: SessionLog) -> None:
        self.s = s
        self.alone = tools_text(s.tools or [])
        self.memo: dict[int, tuple[dict, Any]] = {}
        self.results: dict[tuple[int, str], tuple[dict, dict]] = {}
        self.assistants: dict[tuple[int, int], tuple[dict, dict]] = {}
        # the text each assistant message was sent as -> the messages, in log order (a
        # repeated call is the same text each time, with another call id)
        self.json_text: dict[str, list[dict]] = {}
        self.failed: set[str] = set()
        for c in s.calls:
            if is_unreadable(c):
                self.failed.add(c.raw_content or "")
                self.json_text.setdefault(_render(_text_reply(c)), []).append(_FAILED)
            elif c.message:
                self.json_text.setdefault(_render(c.message), []).append(_clean(c.message))

    def prompt(self, c: ModelCall) -> list[dict]:
        wire = c.protocol == "json"
        out: list[dict] = []
        pending: list[tuple[str, str]] = []  # (call id, tool name) awaiting a result
        drop_hint = False
        seen: dict[int, int] = {}  # occurrences of one logged message in this prompt
        for i, m in enumerate(c.request["messages"]):
            role = m.get("role")
            content = m.get("content")
            if drop_hint:
                drop_hint = False
                if role == "user" and isinstance(content, str) and content.startswith(HINT_PREFIX):
                    continue
            if role == "system" and i == 0 and wire:
                sys_msg = self._system(m, c.tools)
                if sys_msg is not None:
                    out.append(sys_msg)
                continue
            if role == "assistant":
                k = seen[id(m)] = seen.get(id(m), -1) + 1
                canon = self._assistant(m, wire, k)
                if canon is _FAILED:
                    drop_hint, pending = True, []
                    continue
                out.append(canon)
                pending = [
                    (tc.get("id", ""), (tc.get("function") or {}).get("name") or "the tool")
                    for tc in canon.get("tool_calls") or []
                ]
                continue
            if wire and role == "user" and pending and isinstance(content, str):
                head = f"Result of {pending[0][1]}:\n"
                if content.startswith(head):
                    out.append(self._result(m, pending.pop(0)[0], len(head)))
                    continue
            if role != "tool":
                pending = []
            out.append(m)
        return out

    def _result(self, m: dict, cid: str, cut: int) -> dict:
        hit = self.results.get((id(m), cid))
        if hit is not None and hit[0] is m:
            return hit[1]
        res = {"role": "tool", "tool_call_id": cid, "content": m["content"][cut:]}
        self.results[(id(m), cid)] = (m, res)
        return res

    def _system(self, m: dict, tools: list[dict] | None) -> dict | None:
        hit = self.memo.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        text = m.get("content") or ""
        alone = self.alone if tools is None else tools_text(tools)  # the call's own tools
        res: dict | None
        if text == alone:
            res = None  # there was no system prompt, only the tool list
        elif text.endswith("\n\n" + alone):
            res = {"role": "system", "content": text[: -len(alone) - 2]}
        else:  # a tool set the log does not name: cut at the heading
            cut = text.rfind("\n\n# Tools\n")
            res = {"role": "system", "content": text[:cut] if cut >= 0 else text}
        self.memo[id(m)] = (m, res)
        return res

    def _assistant(self, m: dict, wire: bool, k: int) -> dict:
        """The k-th occurrence of wire message ``m`` in a prompt, as the agent held it."""
        content = m.get("content")
        if not wire:
            if not m.get("tool_calls") and isinstance(content, str) and content in self.failed:
                return _FAILED
            return m
        hit = self.assistants.get((id(m), k))
        if hit is not None and hit[0] is m:
            return hit[1]
        found = self.json_text.get(content) if isinstance(content, str) else None
        res = found[min(k, len(found) - 1)] if found else _parse_wire(content)
        self.assistants[(id(m), k)] = (m, res)
        return res


def _text_reply(c: ModelCall) -> dict:
    return {"role": "assistant", "content": c.raw_content}


def _render(m: dict) -> str:
    return render_json_messages([m], [])[-1]["content"]


def _parse_wire(content: Any) -> dict:
    """An assistant wire text no logged reply accounts for (a history loaded from
    elsewhere): read the protocol's JSON back, else keep the text."""
    text = content if isinstance(content, str) else ""
    calls = []
    for k, line in enumerate(text.split("\n")):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            calls = []
            break
        if not (isinstance(obj, dict) and isinstance(obj.get("tool"), str)):
            if k == 0 and isinstance(obj, dict) and isinstance(obj.get("answer"), str):
                return {"role": "assistant", "content": obj["answer"]}
            calls = []
            break
        args = obj.get("arguments", {})
        calls.append(
            {
                "id": f"call_{k}",
                "type": "function",
                "function": {
                    "name": obj["tool"],
                    "arguments": args if isinstance(args, str) else orjson.dumps(args).decode(),
                },
            }
        )
    if calls:
        return {"role": "assistant", "content": None, "tool_calls": calls}
    return {"role": "assistant", "content": text}
