"""One streamed (or whole) completion, assembled into a ChatResult."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coder.chat import ChatResult, ToolCall
from coder.llm.json_protocol import AnswerStream, loads_object, parse_json_reply, strip_fence
from coder.llm.text_calls import make_call, new_call_id, parse_text_calls

_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "usage": dict,
    "timings": dict,
    "finish_reason": str,
    "content": str,
    "reasoning_content": str,
    "id": str,
    "name": str,
    "arguments": str,
    "index": int,
}


def shape_problem(data: Any, part: str) -> str | None:
    """Why `data` is not a chat completion chunk (`part` "delta") or response ("message")
    of the OpenAI shape, or None. A server sending garbage is a server error, not a crash."""

    def check(obj: Any, where: str, keys: tuple[str, ...]) -> str | None:
        if not isinstance(obj, dict):
            return f"{where} is {type(obj).__name__}, not an object"
        for key in keys:
            value = obj.get(key)
            if value is not None and not isinstance(value, _OPTIONAL[key]):
                return f"{where}.{key} is {type(value).__name__}"
        return None

    if problem := check(data, "the reply", ("usage", "timings")):
        return problem
    choices = data.get("choices")
    if choices is None or "error" in data:
        return None
    if not isinstance(choices, list):
        return f"choices is {type(choices).__name__}, not a list"
    for choice in choices:
        if problem := check(choice, "a choice", ("finish_reason",)):
            return problem
        body = choice.get(part)
        if body is None:
            continue
        if problem := check(body, part, ("content", "reasoning_content")):
            return problem
        calls = body.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            return f"{part}.tool_calls is {type(calls).__name__}, not a list"
        for call in calls or ():
            if problem := check(call, "a tool call", ("id", "index")):
                return problem
            fn = call.get("function")
            if fn is not None and (
                problem := check(fn, "a tool call's function", ("name", "arguments"))
            ):
                return problem
        logprobs = choice.get("logprobs")
        if logprobs is not None and (
            not isinstance(logprobs, dict)
            or not isinstance(logprobs.get("content") or [], list)
            or not all(isinstance(t, dict) for t in logprobs.get("content") or [])
        ):
            return "a choice's logprobs are not a list of objects"
    return None


class Accumulator:
    """Collects one streamed (or whole) completion and turns it into a ChatResult."""

    def __init__(self, protocol: str, on_text: Callable[[str], None] | None) -> None:
        self.protocol = protocol
        self.on_text = on_text
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.timings: dict | None = None
        self.logprobs: list[dict] | None = None
        # llama.cpp's `__verbose` (asked with "verbose": true): the rendered prompt, stop_type
        self.verbose: dict | None = None
        self.done = False
        self.interrupted = False
        self.error: str | None = None
        # the server rejected the model's tool call as unparseable: the reply has none
        self.unparsed_call: str | None = None
        # json protocol: the "answer" string as it streams (what the user sees)
        self.answer = AnswerStream() if protocol == "json" else None

    def add_chunk(self, chunk: Any) -> None:
        if problem := shape_problem(chunk, "delta"):
            self.error = f"malformed data from the server: {problem}"
            return
        if "error" in chunk:
            self.error = f"server error mid-stream: {error_detail(chunk)}"
            return
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("timings"):
            self.timings = chunk["timings"]
        if isinstance(chunk.get("__verbose"), dict):
            self.verbose = chunk["__verbose"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.content.append(text)
                piece = text if self.answer is None else self.answer.feed(text)
                if piece and self.on_text is not None:
                    self.on_text(piece)
            if delta.get("reasoning_content"):
                self.reasoning.append(delta["reasoning_content"])
            for pos, tc in enumerate(delta.get("tool_calls") or ()):
                self._add_call_delta(pos, tc)
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                self._add_logprobs(lp["content"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _add_call_delta(self, pos: int, tc: dict) -> None:
        index = tc.get("index", pos)
        slot = self.calls.get(index)
        if slot is None:
            slot = self.calls[index] = {"id": "", "name": "", "args": []}
        if tc.get("id"):
            slot["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name") and not slot["name"]:
            slot["name"] = fn["name"]
        if fn.get("arguments"):
            slot["args"].append(fn["arguments"])

    def _add_logprobs(self, items: list[dict]) -> None:
        if self.logprobs is None:
            self.logprobs = []
        for item in items:
            self.logprobs.append(
                {
                    "id": item.get("id"),
                    "token": item.get("token"),
                    "bytes": item.get("bytes"),
                    "logprob": item.get("logprob"),
                }
            )

    def add_completion(self, data: Any) -> None:
        """A non-streamed response (stream=False, or a server that ignored stream)."""
        if problem := shape_problem(data, "message"):
            self.error = f"malformed data from the server: {problem}"
            return
        if "error" in data:
            self.error = f"server error: {error_detail(data)}"
            return
        self.usage = data.get("usage")
        self.timings = data.get("timings")
        if isinstance(data.get("__verbose"), dict):
            self.verbose = data["__verbose"]
        for choice in data.get("choices") or ():
            msg = choice.get("message") or {}
            if msg.get("content"):
                self.content.append(msg["content"])
            if msg.get("reasoning_content"):
                self.reasoning.append(msg["reasoning_content"])
            for pos, tc in enumerate(msg.get("tool_calls") or ()):
                self._add_call_delta(pos, tc)
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                self._add_logprobs(lp["content"])
            self.finish_reason = choice.get("finish_reason")
        self.done = True
        if self.on_text is not None:
            text = "".join(self.content)
            if self.protocol == "json":
                parsed = loads_object(strip_fence(text))
                text = parsed.get("answer", "") if isinstance(parsed, dict) else ""
            if text:
                self.on_text(text)

    def result(self, request: dict, tools: list[dict]) -> ChatResult:
        raw = "".join(self.content)
        calls: list[ToolCall] = []
        content: str | None = raw
        parse_error = None
        broken = self.interrupted or self.error is not None
        if broken:
            # never hand out a half-received call; keep the text the user saw
            if self.answer is not None:
                content = self.answer.emitted
        elif self.protocol == "json" and self.finish_reason == "length" and self.answer.emitted:
            content = self.answer.emitted  # an answer cut at max_tokens is still an answer
        elif self.protocol == "json":
            content, calls, parse_error = parse_json_reply(raw, self.finish_reason)
            if self.on_text is not None and content and not calls and parse_error is None:
                # emit what the incremental extraction missed (all of it for plain prose)
                done = self.answer.emitted
                rest = (
                    content[len(done) :] if content.startswith(done) else ("" if done else content)
                )
                if rest and self.on_text is not None:
                    self.on_text(rest)
        elif self.calls:
            for index in sorted(self.calls):
                slot = self.calls[index]
                calls.append(
                    make_call(slot["id"] or new_call_id(), slot["name"], "".join(slot["args"]))
                )
            content = raw or None
        else:
            content, calls, parse_error = parse_text_calls(raw)
        errors = [f"{c.name}: {c.error}" for c in calls if c.error]
        if errors and parse_error is None:
            parse_error = "; ".join(errors)
        if self.unparsed_call:
            parse_error = self.unparsed_call
        message: dict[str, Any] = {"role": "assistant", "content": content if content else None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in calls
            ]
        elif message["content"] is None:
            message["content"] = ""
        return ChatResult(
            message=message,
            tool_calls=calls,
            raw_content=raw,
            finish_reason=self.finish_reason,
            usage=self.usage,
            timings=self.timings,
            logprobs=self.logprobs,
            request=request,
            protocol=self.protocol,
            interrupted=self.interrupted,
            error=self.error,
            parse_error=parse_error,
            reasoning="".join(self.reasoning) or None,
            stop_type=(self.verbose or {}).get("stop_type"),
            tools=list(tools),
        )


def error_detail(body: object) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    return str(body) if body else ""
