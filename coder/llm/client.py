"""Chat client for an OpenAI-compatible server (llama.cpp first).

One call = one streamed chat completion. The caller passes canonical OpenAI
messages and tools and gets back a canonical assistant message, whichever tool
protocol was used on the wire:

- native: OpenAI `tools` in the request, `tool_calls` deltas in the stream.
- json:   for chat templates without tool support (json_protocol.py): one JSON
  object per reply, held to compact JSON by a grammar (llama.cpp) or `response_format`,
  becomes a normal tool call.

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

import re
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from coder.chat import ChatResult, Terminated
from coder.llm.grammar import reply_grammar
from coder.llm.json_protocol import render_json_messages, response_format
from coder.llm.stream import Accumulator, error_detail
from coder.llm.token_ids import append_eos, prompt_ids_note

if TYPE_CHECKING:
    from coder.config import Sampling

RETRY_STATUS = {429, 502, 503, 504}
# llama.cpp answers HTTP 500 when the model's own tool call cannot be parsed (most often
# arguments cut off at max_tokens): the model's failure, which the loop can correct, not
# the server's
UNPARSED_CALL = "Failed to parse tool call"
# llama.cpp returns no logprobs at all for top_logprobs=0; 1 keeps the stream small
TOP_LOGPROBS = 1


class LLMError(Exception):
    """The server could not be reached or answered with an HTTP error."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class UnparsedCall(Exception):
    """The server could not parse the tool call the model wrote (llama.cpp's words)."""


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
        prompt_ids: bool = False,
    ) -> None:
        import httpx2
        import openai  # lazy: a few hundred ms of imports

        self.base_url = base_url.rstrip("/")
        self.root = re.sub(r"/v1$", "", self.base_url)
        self.model = model
        self.retries = retries
        self.backoff = backoff
        # after each reply, the prompt's token ids by the server's own tokenizer
        self.prompt_ids = prompt_ids
        self._eos_id: int | None = None
        # httpx writes headers and body separately: without TCP_NODELAY, Nagle + the
        # server's delayed ACK stall each request by up to 40 ms (measured on llama.cpp)
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        http = openai.DefaultHttpxClient(
            transport=httpx2.HTTPTransport(socket_options=nodelay), timeout=timeout
        )
        # a placeholder key keeps the SDK from picking up $OPENAI_API_KEY for a local server
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "no-key",
            timeout=timeout,
            max_retries=0,
            http_client=http,
        )
        self._props: dict | None = None
        self._protocols: dict[str, str] = {}
        # the server's LoRA adapters with this client's scales (load_adapters); sent with
        # every request as llama.cpp's per-request `lora`, so a scale set here changes
        # this session only, never other clients of the same server
        self.adapters: list[dict] | None = None

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

    def forget_server(self) -> None:
        """The server now serves another model: ask /props (and so the tool protocol of
        `auto` and the context size) again."""
        self._props = None
        self._protocols = {}

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

    def load_adapters(self) -> list[dict]:
        """GET {root}/lora-adapters: [{"id", "path", "scale"}] at the scales the server
        started with; [] for a server without adapters or that is not llama.cpp."""
        import httpx2
        import openai

        try:
            resp = self._client.get(
                self.root + "/lora-adapters", cast_to=httpx2.Response, options={"timeout": 10.0}
            )
            data = orjson.loads(resp.read())
        except (openai.APIError, httpx2.HTTPError, orjson.JSONDecodeError):
            data = []
        self.adapters = [
            {"id": a["id"], "path": a.get("path"), "scale": float(a.get("scale", 1.0))}
            for a in (data if isinstance(data, list) else [])
            if isinstance(a, dict) and isinstance(a.get("id"), int)
        ]
        return self.adapters

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
            messages,
            tools,
            sampling=sampling,
            protocol=proto,
            logprobs=logprobs,
            stream=stream,
            model=self.model,
            grammar=bool(self.props()),  # a llama.cpp server: it takes GBNF
            verbose=logprobs or self.prompt_ids,
            lora=self.adapters,
        )
        payload = orjson.dumps(body)
        # parsed back from the bytes: independent of the caller's (mutable) message dicts
        request = orjson.loads(payload)
        acc = Accumulator(proto, on_text)
        started = time.perf_counter()
        try:
            self._exchange(payload, acc, cancel, sampling.max_tokens)
        except Terminated as exc:  # SIGTERM / SIGHUP: what came so far goes up to be logged
            acc.interrupted = True
            exc.reply = acc.result(request, tools)
            exc.reply.duration_ms = (time.perf_counter() - started) * 1000
            raise
        result = acc.result(request, tools)
        result.adapters = [dict(a) for a in self.adapters] if self.adapters is not None else None
        result.duration_ms = (time.perf_counter() - started) * 1000
        if result.logprobs and stream:
            n = (result.usage or {}).get("completion_tokens")
            if result.stop_type == "eos" and isinstance(n, int) and len(result.logprobs) < n:
                result.logprobs = append_eos(result.logprobs, "eos", n, self.eos_id())
        if self.prompt_ids and not (result.interrupted or result.error):
            self._add_prompt_ids(result, (acc.verbose or {}).get("prompt"))
        return result

    def _exchange(
        self, payload: bytes, acc: Accumulator, cancel: threading.Event | None, max_tokens: int
    ) -> None:
        try:
            resp = self._send(payload, cancel)
        except KeyboardInterrupt:
            resp = None
        except UnparsedCall as exc:
            acc.unparsed_call = f"the server could not parse it: {exc}"
            return
        if resp is None:  # cancelled before the response started
            acc.interrupted = True
        else:
            self._read(resp, acc, cancel, max_tokens)

    # -- token ids ----------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """POST {root}/tokenize (llama.cpp): ``text`` as the server tokenizes a prompt
        (special tokens parsed, BOS added if the model wants one)."""
        data = self._post_json("/tokenize", {"content": text, "add_special": True})
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise LLMError(f"{self.root}/tokenize: no token ids in the answer", url=self.root)
        return tokens

    def eos_id(self) -> int | None:
        """The id of the server's end-of-generation token (/props eos_token); None if unknown."""
        if self._eos_id is None:
            text = self.props().get("eos_token")
            if isinstance(text, str) and text:
                try:
                    ids = self._post_json("/tokenize", {"content": text, "add_special": False})
                except (LLMError, ValueError):
                    return None
                tokens = ids.get("tokens") if isinstance(ids, dict) else None
                if isinstance(tokens, list) and len(tokens) == 1 and isinstance(tokens[0], int):
                    self._eos_id = tokens[0]
        return self._eos_id

    def _add_prompt_ids(self, result: ChatResult, prompt: object) -> None:
        # after the reply (the user's first token is never delayed); the prompt is the
        # server's own rendering from `__verbose` (tools and all), so one request suffices
        if not isinstance(prompt, str):
            result.prompt_ids_note = "the server returned no rendered prompt (not llama.cpp?)"
            return
        try:
            result.prompt_ids = self.tokenize(prompt)
        except (LLMError, ValueError) as exc:
            result.prompt_ids_note = f"tokenize failed: {exc}"
            return
        result.prompt_ids_note = prompt_ids_note(result.prompt_ids, result.usage)

    def _post_json(self, path: str, body: dict) -> object:
        import httpx2
        import openai

        url = self.root + path
        stale_errors = (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError)
        for attempt in range(2):
            try:
                resp = self._client.post(
                    url,
                    cast_to=httpx2.Response,
                    content=orjson.dumps(body),
                    options={"headers": {"Content-Type": "application/json"}, "timeout": 30.0},
                )
                return orjson.loads(resp.read())
            except openai.APIStatusError as exc:
                status = exc.status_code
                raise LLMError(f"{url}: HTTP {status}", url=url, status=status) from exc
            except openai.APIConnectionError as exc:
                # the kept-alive connection the server closed after a stream (see _send)
                if attempt == 0 and isinstance(exc.__cause__, stale_errors):
                    continue
                raise LLMError(f"{url}: {_cause(exc)}", url=url) from exc
            except openai.APIError as exc:
                raise LLMError(f"{url}: {_cause(exc)}", url=url) from exc
        raise AssertionError("unreachable")

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
                    "/chat/completions",
                    cast_to=httpx2.Response,
                    content=payload,
                    options=options,
                    stream=True,
                )
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
                detail = error_detail(exc.body) or exc.message
                if status == 500 and UNPARSED_CALL in detail:
                    raise UnparsedCall(detail.split("; last read:")[0][:300]) from exc
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

    def _read(
        self, resp: Any, acc: Accumulator, cancel: threading.Event | None, max_tokens: int
    ) -> None:
        import httpx2

        # max_tokens is the server's promise, not a guarantee: a stream that goes on past
        # it (or one endless line) is cut here instead of filling memory
        max_lines = 2 * (4 * max_tokens + 64)  # about one event (2 lines) per token
        max_line = (16 << 20) + 64 * max_tokens  # the last chunk holds the rendered prompt
        seen = 0
        try:
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                acc.add_completion(orjson.loads(resp.read()))
                return
            buf = b""
            for data in resp.iter_bytes():
                buf += data
                if b"\n" not in data:
                    if len(buf) > max_line:
                        acc.error = f"the server sent a line of over {max_line:,} bytes"
                        return
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    seen += 1
                    if seen > max_lines:  # after [DONE] too: the body must end
                        if not acc.done:
                            acc.error = (
                                f"the server went on streaming past llm.sampling.max_tokens "
                                f"({max_tokens}): stopped after {seen - 1:,} lines"
                            )
                        return
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


def build_body(
    messages: list[dict],
    tools: list[dict],
    *,
    sampling: Sampling,
    protocol: str,
    logprobs: bool = False,
    stream: bool = True,
    model: str | None = None,
    grammar: bool = False,
    verbose: bool = False,
    lora: list[dict] | None = None,
) -> dict:
    """The request as it goes on the wire. `grammar`: the server takes llama.cpp's GBNF,
    so the json protocol's reply is held to compact JSON (see grammar.py); otherwise, or
    for a tool schema the grammar cannot express, `response_format` constrains it."""
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    if protocol == "json":
        body["messages"] = render_json_messages(messages, tools)
        gbnf = reply_grammar(tools) if grammar else None
        if gbnf is not None:
            body["grammar"] = gbnf
        else:
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
    if lora:  # llama.cpp's per-request adapter scales
        body["lora"] = [{"id": a["id"], "scale": a["scale"]} for a in lora]
    if verbose:
        # llama.cpp then adds `__verbose` to the final chunk: the rendered prompt and
        # stop_type (eos | word | limit), which token-exact records need
        body["verbose"] = True
    return body
