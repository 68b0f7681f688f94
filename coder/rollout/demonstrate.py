"""Demonstrations: a client that answers each task with the solution its task line holds,
so `coder rollout --demonstrate` logs a correct trajectory per task through the real
agent loop, tools, worktree and verifier, in coder's own record format.

Those are the successes that rejection sampling needs and a tiny model rarely finds on
its own (SmolLM2-135M passes almost none of the example tasks): `coder train --method sft
--from-rollouts` keeps the attempts the verifier passed, demonstrated or sampled alike.
The verifier still runs, so a demonstration that does not solve its task is not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import orjson

from coder.chat import ChatResult, ToolCall
from coder.config import Sampling
from coder.llm.client import build_body

MODEL = {"alias": "demonstration", "model_file": None, "chat_template_hash": None}


class Demonstrator:
    """Answers the conversation whose first user message is a task's prompt with that
    task's next solution step: the calls of one reply, or the final answer."""

    def __init__(self, solutions: dict[str, list]) -> None:
        self.solutions = solutions  # prompt -> steps

    def chat(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        sampling: Sampling,
        protocol: str = "native",
        on_text: Callable[[str], None] | None = None,
        logprobs: bool = False,
        cancel: threading.Event | None = None,
        stream: bool = True,
    ) -> ChatResult:
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        steps = self.solutions.get(messages[users[0]]["content"]) if users else None
        if steps is None:
            return _reply(messages, tools, sampling, "I do not know this task.")
        done = sum(1 for m in messages[users[-1] :] if m["role"] == "assistant")
        step = steps[min(done, len(steps) - 1)]
        if isinstance(step, str):
            return _reply(messages, tools, sampling, step)
        calls = [
            ToolCall(f"call_{done}_{i}", c["name"], orjson.dumps(c["arguments"]).decode())
            for i, c in enumerate(step)
        ]
        return _reply(messages, tools, sampling, None, calls)

    def context_size(self) -> int | None:
        return None

    def close(self) -> None:
        pass


def _reply(
    messages: list[dict],
    tools: list[dict],
    sampling: Sampling,
    content: str | None,
    calls: list[ToolCall] | None = None,
) -> ChatResult:
    body = build_body(messages, tools, sampling=sampling, protocol="native", stream=False)
    message: dict = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return ChatResult(
        message=message,
        tool_calls=calls or [],
        raw_content=content or "",
        finish_reason="tool_calls" if calls else "stop",
        usage=None,
        timings=None,
        logprobs=None,
        request=orjson.loads(orjson.dumps(body)),
        protocol="native",
    )
