"""Chat client for an OpenAI-compatible server (llama.cpp first).

One call = one streamed chat completion. The caller passes canonical OpenAI
messages and tools and gets back a canonical assistant message, whichever tool
protocol was used on the wire:

- native: OpenAI `tools` in the request, `tool_calls` deltas in the stream.
- json:   for chat templates without tool support. The tools are described in
  the system message, the reply is constrained by `response_format` to one JSON
  object ({"tool": NAME, "arguments": {...}} or {"answer": TEXT}), and the
  history is re-rendered as the template can show it (past calls as JSON text,
  tool results as user messages). The JSON reply becomes a normal tool call.

The request body is built here, serialised once and posted as raw bytes through
the openai client, so `ChatResult.request` is exactly what went on the wire
(`orjson.dumps(result.request)` gives the same bytes back).

Failure policy:
- connection errors, 429 and 502/503/504 before the response starts are
  retried with exponential backoff; other HTTP errors raise LLMError at once;
  LLMError names the URL and the status.
- a stream cut midway (connection lost, server error event, no end marker)
  does not raise: the result keeps the partial text and has `error` set.
- cancel (Event) or Ctrl-C during the stream: the response is closed and the
  partial result returned with `interrupted=True`.
- an interrupted or broken reply never carries tool calls (a half-received call
  must not run); its text stays in `message["content"]` and `raw_content`.
- a tool call whose arguments are not valid JSON is kept (with `ToolCall.error`)
  and `parse_error` says why, so the loop can answer it with the expected format.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from coder.chat import ChatResult, ToolCall

if TYPE_CHECKING:
    from coder.config import Sampling

RETRY_STATUS = {429, 502, 503, 504}
JSON_SCHEMA_NAME = "tool_call_or_answer"
# llama.cpp returns no logprobs at all for top_logprobs=0; 1 keeps the stream small
TOP_LOGPROBS = 1


class LLMError(Exception):
    """The server could not be reached or answered with an HTTP error."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 600.0,
        retries: int = 4,
        *,
        backoff: float = 0.5,
    ) -> None:
        import httpx2
        import openai  # lazy: a few hundred ms of imports

        self.base_url = base_url.rstrip("/")
        self.root = re.sub(r"/v1$", "", self.base_url)
        self.model = model
        self.retries = retries
        self.backoff = backoff
        # httpx writes headers and body separately: without TCP_NODELAY, Nagle + the
        # server's delayed ACK stall each request by up to 40 ms (measured on llama.cpp)
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        http = openai.DefaultHttpxClient(
            transport=httpx2.HTTPTransport(socket_options=nodelay), timeout=timeout
        )
        # a placeholder key keeps the SDK from picking up $OPENAI_API_KEY for a local server
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "no-key", timeout=timeout, max_retries=0,
            http_client=http,
        )  # fmt: skip
        self._props: dict | None = None
        self._protocols: dict[str, str] = {}

    # -- server facts -------------------------------------------------------

    def props(self) -> dict:
        """GET {root}/props (llama.cpp); {} when unavailable. Cached once answered."""
        if self._props is not None:
            return self._props
        import httpx2
        import openai

        try:
            resp = self._client.get(
                self.root + "/props", cast_to=httpx2.Response, options={"timeout": 10.0}
            )
            data = orjson.loads(resp.read())
            self._props = data if isinstance(data, dict) else {}
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                return {}  # loading (503) or busy: ask again next time
            self._props = {}  # a definite answer: not llama.cpp (or no /props)
        except (openai.APIError, orjson.JSONDecodeError):
            return {}  # not reachable yet: ask again next time
        return self._props

    def resolve_protocol(self, setting: str) -> str:
        """auto|native|json -> native|json (auto asks /props for tool support)."""
        if setting in ("native", "json"):
            return setting
        if setting != "auto":
            raise ValueError(f"tool protocol must be auto, native or json, not {setting!r}")
        if "auto" not in self._protocols:
            props = self.props()
            if not props:
                return "native"  # not llama.cpp (or not up): OpenAI tools; do not cache
            caps = props.get("chat_template_caps") or {}
            self._protocols["auto"] = "native" if caps.get("supports_tools") else "json"
        return self._protocols["auto"]

    def context_size(self) -> int | None:
        props = self.props()
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        return int(n_ctx) if n_ctx else None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- chat ---------------------------------------------------------------

    def chat(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        sampling: Sampling,
        protocol: str = "auto",
        on_text: Callable[[str], None] | None = None,
        logprobs: bool = False,
        cancel: threading.Event | None = None,
        stream: bool = True,
    ) -> ChatResult:
        proto = self.resolve_protocol(protocol)
        body = build_body(
            messages, tools, sampling=sampling, protocol=proto, logprobs=logprobs,
            stream=stream, model=self.model,
        )  # fmt: skip
        payload = orjson.dumps(body)
        # parsed back from the bytes: independent of the caller's (mutable) message dicts
        request = orjson.loads(payload)
        acc = _Accumulator(proto, on_text)
        started = time.perf_counter()
        try:
            resp = self._send(payload, cancel)
        except KeyboardInterrupt:
            resp = None
        if resp is None:  # cancelled before the response started
            acc.interrupted = True
        else:
            self._read(resp, acc, cancel)
        result = acc.result(request, tools)
        result.duration_ms = (time.perf_counter() - started) * 1000
        return result

    def _send(self, payload: bytes, cancel: threading.Event | None) -> Any:
        import httpx2
        import openai

        url = self.base_url + "/chat/completions"
        options = {"headers": {"Content-Type": "application/json"}}
        stale_errors = (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError)
        attempt = 0
        stale_retried = False
        while True:
            if cancel is not None and cancel.is_set():
                return None
            try:
                return self._client.post(
                    "/chat/completions", cast_to=httpx2.Response, content=payload,
                    options=options, stream=True,
                )  # fmt: skip
            except openai.APITimeoutError as exc:
                raise LLMError(f"{url}: timed out waiting for the server", url=url) from exc
            except openai.APIConnectionError as exc:
                if not stale_retried and isinstance(exc.__cause__, stale_errors):
                    # llama-server often closes a kept-alive connection after a stream;
                    # the pool notices only when reusing it: resend at once on a new one
                    stale_retried = True
                    continue
                if attempt >= self.retries:
                    raise LLMError(
                        f"cannot reach {url} after {attempt + 1} attempts: {_cause(exc)}", url=url
                    ) from exc
            except openai.APIStatusError as exc:
                status = exc.status_code
                detail = _error_detail(exc.body) or exc.message
                if status not in RETRY_STATUS or attempt >= self.retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise LLMError(
                        f"{url}: HTTP {status}{tries}: {detail}", url=url, status=status
                    ) from exc
            delay = self.backoff * (2**attempt)
            attempt += 1
            if cancel is not None:
                if cancel.wait(delay):
                    return None
            else:
                time.sleep(delay)

    def _read(self, resp: Any, acc: _Accumulator, cancel: threading.Event | None) -> None:
        import httpx2

        try:
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                acc.add_completion(orjson.loads(resp.read()))
                return
            buf = b""
            for data in resp.iter_bytes():
                buf += data
                if b"\n" not in data:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if acc.done or not line.startswith(b"data:"):
                        continue  # blank separators, comments, event: lines
                    line = line[5:].strip()
                    if line == b"[DONE]":
                        # read on to the end of the body so the connection is kept alive
                        acc.done = True
                        continue
                    acc.add_chunk(orjson.loads(line))
                    if acc.error is not None:
                        return
                if cancel is not None and cancel.is_set() and not acc.done:
                    acc.interrupted = True
                    return
            if not acc.done:
                acc.error = "the stream ended before the reply was complete"
        except KeyboardInterrupt:
            acc.interrupted = True
        except httpx2.HTTPError as exc:
            acc.error = f"connection lost mid-stream: {type(exc).__name__}: {exc}"
        except orjson.JSONDecodeError as exc:
            acc.error = f"malformed data from the server: {exc}"
        finally:
            resp.close()


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner else str(exc)


def _error_detail(body: object) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    return str(body) if body else ""


# -- request bodies ---------------------------------------------------------


def build_body(
    messages: list[dict],
    tools: list[dict],
    *,
    sampling: Sampling,
    protocol: str,
    logprobs: bool = False,
    stream: bool = True,
    model: str | None = None,
) -> dict:
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    if protocol == "json":
        body["messages"] = render_json_messages(messages, tools)
        body["response_format"] = response_format(tools)
    else:
        body["messages"] = messages
        if tools:
            body["tools"] = tools
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    body["temperature"] = sampling.temperature
    body["top_p"] = sampling.top_p
    body["max_tokens"] = sampling.max_tokens
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    # llama.cpp extras (the server ignores what it does not know)
    body["top_k"] = sampling.top_k
    body["min_p"] = sampling.min_p
    body["repeat_penalty"] = sampling.repeat_penalty
    body["repeat_last_n"] = sampling.repeat_last_n
    body["mirostat"] = sampling.mirostat
    # llama.cpp answers HTTP 400 "logprobs is not supported with tools + stream"
    if logprobs and not (stream and body.get("tools")):
        body["logprobs"] = True
        body["top_logprobs"] = TOP_LOGPROBS
    return body


def response_format(tools: list[dict]) -> dict:
    """json_schema: anyOf one branch per tool plus the final-answer branch."""
    branches = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        branches.append({
            "type": "object",
            "properties": {"tool": {"const": fn["name"]}, "arguments": params},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        })  # fmt: skip
    branches.append({
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    })  # fmt: skip
    return {
        "type": "json_schema",
        "json_schema": {"name": JSON_SCHEMA_NAME, "schema": {"anyOf": branches}},
    }


def tools_text(tools: list[dict]) -> str:
    """The tool list in words, for templates that drop `tools`.

    One line per tool: on a 2-core CPU every prompt token costs about 4 ms, and a
    small model picks better from a short list. Argument types need no words: the
    response_format schema enforces them.
    """
    if not tools:
        return 'Every reply is one JSON object: {"answer": "<text for the user>"}'
    lines = [
        "# Tools",
        'Every reply is one JSON object: {"tool": "<name>", "arguments": {...}} to use a tool,',
        'or {"answer": "<text for the user>"} when the task is done.',
    ]
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {}
        required = set(params.get("required") or [])
        args = ", ".join(
            name if name in required else f"{name}?" for name in params.get("properties") or {}
        )
        lines.append(f"- {fn['name']}({args}): {(fn.get('description') or '').strip()}")
    return "\n".join(lines)


def render_json_messages(messages: list[dict], tools: list[dict]) -> list[dict]:
    """Canonical messages -> what a tool-less ChatML template can render.

    SmolLM2's template prints any role name verbatim (`<|im_start|>tool`), a
    role the model never saw, and drops `tool_calls`; so past calls become the
    assistant's JSON text and results become user messages.
    """
    names: dict[str, str] = {}
    out: list[dict] = []
    text = tools_text(tools)
    if messages and messages[0].get("role") == "system":
        out.append({"role": "system", "content": f"{_text(messages[0].get('content'))}\n\n{text}"})
        rest = messages[1:]
    else:
        out.append({"role": "system", "content": text})
        rest = messages
    for msg in rest:
        role = msg.get("role")
        if role == "assistant":
            calls = msg.get("tool_calls") or []
            if calls:
                parts = []
                for call in calls:
                    fn = call.get("function") or {}
                    names[call.get("id", "")] = fn.get("name", "")
                    parts.append(call_json(fn.get("name", ""), fn.get("arguments") or "{}"))
                content = "\n".join(parts)
            else:
                content = json.dumps({"answer": _text(msg.get("content"))}, ensure_ascii=False)
            out.append({"role": "assistant", "content": content})
        elif role == "tool":
            name = names.get(msg.get("tool_call_id", ""), "") or msg.get("name") or "the tool"
            out.append(
                {"role": "user", "content": f"Result of {name}:\n{_text(msg.get('content'))}"}
            )
        else:
            out.append({"role": role, "content": _text(msg.get("content"))})
    return out


def call_json(name: str, arguments: str) -> str:
    """A tool call as the json protocol's reply text."""
    try:
        args: Any = json.loads(arguments)
    except ValueError:
        args = arguments  # keep what the model wrote, even if broken
    return json.dumps({"tool": name, "arguments": args}, ensure_ascii=False)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # typed content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


# -- response assembly ------------------------------------------------------


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class _Accumulator:
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
        self.done = False
        self.interrupted = False
        self.error: str | None = None
        # json protocol: the "answer" string as it streams (what the user sees)
        self.answer = AnswerStream() if protocol == "json" else None

    def add_chunk(self, chunk: dict) -> None:
        if "error" in chunk:
            self.error = f"server error mid-stream: {_error_detail(chunk)}"
            return
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("timings"):
            self.timings = chunk["timings"]
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
            self.logprobs.append({
                "id": item.get("id"), "token": item.get("token"),
                "bytes": item.get("bytes"), "logprob": item.get("logprob"),
            })  # fmt: skip

    def add_completion(self, data: dict) -> None:
        """A non-streamed response (stream=False, or a server that ignored stream)."""
        if "error" in data:
            self.error = f"server error: {_error_detail(data)}"
            return
        self.usage = data.get("usage")
        self.timings = data.get("timings")
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
                parsed = _loads_object(_strip_fence(text))
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
            content, calls, parse_error = _parse_json_reply(raw, self.finish_reason)
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
                    _make_call(slot["id"] or new_call_id(), slot["name"], "".join(slot["args"]))
                )
            content = raw or None
        else:
            content, calls, parse_error = parse_text_calls(raw)
        errors = [f"{c.name}: {c.error}" for c in calls if c.error]
        if errors and parse_error is None:
            parse_error = "; ".join(errors)
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
        )


def _make_call(call_id: str, name: str, arguments: str) -> ToolCall:
    if not arguments.strip():
        arguments = "{}"  # a call without arguments
    error = None
    try:
        if not isinstance(json.loads(arguments), dict):
            error = "arguments must be a JSON object"
    except ValueError as exc:
        error = f"arguments are not valid JSON ({exc})"
    if not name:
        error = "the call has no tool name"
    return ToolCall(call_id, name, arguments, error)


def _dump_args(args: Any) -> str:
    return json.dumps(args, ensure_ascii=False)


def _parse_json_reply(
    raw: str, finish_reason: str | None
) -> tuple[str | None, list[ToolCall], str | None]:
    """The json protocol's reply -> (content, tool calls, parse error)."""
    text = _strip_fence(raw)
    obj = _loads_object(text)
    if isinstance(obj, dict):
        if isinstance(obj.get("tool"), str):
            args = obj.get("arguments", {})
            arguments = args if isinstance(args, str) else _dump_args(args)
            return None, [_make_call(new_call_id(), obj["tool"], arguments)], None
        if isinstance(obj.get("answer"), str):
            return obj["answer"], [], None
    # not the schema (a server without json_schema support, or cut short)
    content, calls, error = parse_text_calls(raw)
    if calls or error:
        return content, calls, error
    if finish_reason == "length":
        return raw, [], "the reply was cut at max_tokens before the JSON was complete"
    if text.lstrip().startswith("{"):
        return (
            raw,
            [],
            (
                'the reply is not a valid JSON object of the form {"tool": NAME, "arguments": {...}} '
                'or {"answer": TEXT}'
            ),
        )
    return raw or None, [], None  # plain prose: take it as the answer


def _loads_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


_FENCE = re.compile(r"^\s*```[\w-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


# -- tool calls written as text ---------------------------------------------

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```(?:json|tool_call)?[ \t]*\n(.*?)\n?```", re.S)
_NAME_KEYS = ("name", "tool")
_ARG_KEYS = ("arguments", "parameters")


def parse_text_calls(text: str) -> tuple[str | None, list[ToolCall], str | None]:
    """Find tool calls the model wrote as text.

    Recognises `<tool_call>{...}</tool_call>` (closing tag optional at the end),
    ```json fenced blocks and bare JSON objects with name/arguments (or
    tool/arguments). Returns (remaining text or None, calls, parse error): the
    error is set when a <tool_call> block was found but could not be read.
    """
    if not text or "{" not in text:
        return text or None, [], None
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    errors: list[str] = []
    if "<tool_call>" in text:
        for m in _TAGGED.finditer(text):
            obj, err = _call_object(m.group(1))
            if obj is None:
                errors.append(f"a <tool_call> block is not valid JSON ({err})")
            else:
                calls.append(obj)
                spans.append(m.span())
    if not calls and "```" in text:
        for m in _FENCED.finditer(text):
            obj, _ = _call_object(m.group(1))
            if obj is not None:
                calls.append(obj)
                spans.append(m.span())
    if not calls and not errors:
        decoder = json.JSONDecoder()
        for m in re.finditer(r"\{\s*\"", text):
            if spans and m.start() < spans[-1][1]:
                continue
            try:
                value, end = decoder.raw_decode(text, m.start())
            except ValueError:
                continue
            call = _as_call(value)
            if call is not None:
                calls.append(call)
                spans.append((m.start(), end))
    if not calls:
        if errors:
            return text, [], "; ".join(errors) + _FORMAT_HINT
        return text, [], None
    rest, last = [], 0
    for start, end in spans:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    remaining = "".join(rest).strip()
    return remaining or None, calls, None


_FORMAT_HINT = '; expected <tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>'


def _call_object(block: str) -> tuple[ToolCall | None, str | None]:
    try:
        value = json.loads(block)
    except ValueError as exc:
        return None, str(exc)
    call = _as_call(value)
    return (call, None) if call else (None, "no name/arguments keys")


def _as_call(value: Any) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is None or not any(k in value for k in _ARG_KEYS):
        return None
    args = next(value[k] for k in _ARG_KEYS if k in value)
    arguments = args if isinstance(args, str) else _dump_args(args)
    return _make_call(new_call_id(), name, arguments)


# -- streaming the json protocol's answer -----------------------------------

_ANSWER_START = re.compile(r'\s*(?:```[\w-]*\s*)?\{\s*"answer"\s*:\s*"')
_NOT_ANSWER = re.compile(r'\s*(?:```[\w-]*\s*)?\{\s*"(?!a|$)|\s*[^\s`{]')


class AnswerStream:
    """Incrementally extracts the "answer" string from a streamed JSON reply."""

    def __init__(self) -> None:
        self.buf = ""
        self.state = "head"  # head -> body -> end (or off: not an answer)
        self.pending = ""
        self.emitted = ""

    def feed(self, text: str) -> str:
        if self.state == "head":
            self.buf += text
            m = _ANSWER_START.match(self.buf)
            if m is None:
                if _NOT_ANSWER.match(self.buf) or len(self.buf) > 200:
                    self.state = "off"
                return ""
            self.state = "body"
            text = self.buf[m.end() :]
        if self.state != "body":
            return ""
        self.pending += text
        raw, closed = _string_prefix(self.pending)
        self.pending = self.pending[len(raw) :]
        if closed:
            self.state = "end"
        if not raw:
            return ""
        try:
            piece = json.loads(f'"{raw}"', strict=False)
        except ValueError:
            piece = raw
        self.emitted += piece
        return piece


def _string_prefix(s: str) -> tuple[str, bool]:
    """The longest prefix of a JSON string body that decodes on its own, and
    whether the closing quote was reached (the prefix then excludes it)."""
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            return s[:i], True
        if ch == "\\":
            if i + 1 >= n:
                break
            if s[i + 1] == "u":
                if i + 6 > n:
                    break
                code = (
                    int(s[i + 2 : i + 6], 16)
                    if re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2 : i + 6])
                    else 0
                )
                if 0xD800 <= code < 0xDC00:  # high surrogate: needs its pair
                    if i + 12 > n:
                        break
                    i += 12
                    continue
                i += 6
                continue
            i += 2
            continue
        i += 1
    return s[:i], False
