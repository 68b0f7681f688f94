"""A ChatModel that answers from a script: for loop tests that need no HTTP at all.

Each entry is a ChatResult, or an exception to raise. The scripted HTTP server
(tests/scripted_server.py) stays the place for what concerns the wire.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from coder.chat import ChatResult, ToolCall


def answer(text: str, finish_reason: str = "stop") -> ChatResult:
    return reply(content=text, finish_reason=finish_reason)


def calls(*named: tuple[str, dict]) -> ChatResult:
    return reply(
        calls=[
            ToolCall(f"call_{i}", name, json.dumps(args)) for i, (name, args) in enumerate(named)
        ]
    )


def reply(
    content: str | None = None,
    calls: list[ToolCall] | None = None,
    finish_reason: str = "stop",
    **extra: object,
) -> ChatResult:
    message: dict = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    return ChatResult(
        message=message,
        tool_calls=calls or [],
        raw_content=content or "",
        finish_reason="tool_calls" if calls else finish_reason,
        usage=usage,
        timings=None,
        logprobs=None,
        request={},
        protocol="native",
        **extra,
    )


@dataclass
class ScriptedModel:
    script: list[ChatResult | Exception]
    n_ctx: int | None = None
    seen: list[list[dict]] = field(default_factory=list)  # the messages of every call

    def chat(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        sampling: object,
        protocol: str = "auto",
        on_text: Callable[[str], None] | None = None,
        logprobs: bool = False,
        cancel: threading.Event | None = None,
        stream: bool = True,
    ) -> ChatResult:
        self.seen.append([dict(m) for m in messages])
        if not self.script:
            raise AssertionError("the loop asked the model more often than scripted")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if on_text is not None and step.message.get("content"):
            on_text(step.message["content"])
        return step

    def context_size(self) -> int | None:
        return self.n_ctx
