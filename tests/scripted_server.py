"""A scripted OpenAI-compatible HTTP server for tests (no model, real sockets).

    from tests.scripted_server import ScriptedServer, stream_text, stream_tool_calls, Status

    with ScriptedServer() as srv:               # 127.0.0.1, free port
        srv.enqueue(Status(503), stream_text("hello"))
        client = Client(srv.base_url)           # ".../v1"
        ...
        srv.requests[-1].json                   # every request body, parsed
        srv.requests[-1].headers["authorization"]

Replies to POST /v1/chat/completions come from a FIFO queue (`enqueue`); when it is
empty, `srv.default` answers (None: HTTP 500 "script exhausted"). A queue entry is
one of:

    Stream(chunks, disconnect_after=None, delay=0.0, done=True)
        SSE over chunked HTTP/1.1 like llama-server: each chunk (a dict, or a str
        sent as the raw `data:` payload) becomes "data: ...\\n\\n", then
        "data: [DONE]". disconnect_after=N drops the connection after N chunks.
    Status(code, body=None)   an HTTP error with a JSON body (llama.cpp's error shape)
    Json(body)                a non-streamed 200 JSON response (see `completion`)
    Drop()                    close the connection without answering
    a callable(request) -> one of the above, for replies that depend on the request

GET /props, /v1/models, /health answer from `srv.props` (None -> 404), `srv.model`;
`srv.route(method, path, reply)` overrides or adds any route with a fixed reply
(None removes the override). With `api_key=...` every request lacking "Authorization: Bearer KEY" gets 401.

Chunk builders: `chunk`, `text_chunks`, `tool_call_chunks`, `final_chunks`,
and the shortcuts `stream_text`, `stream_tool_calls`, `completion`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted"
TIMINGS = {
    "cache_n": 0,
    "prompt_n": 12,
    "prompt_ms": 10.0,
    "prompt_per_token_ms": 0.83,
    "prompt_per_second": 1200.0,
    "predicted_n": 3,
    "predicted_ms": 6.0,
    "predicted_per_token_ms": 2.0,
    "predicted_per_second": 500.0,
}
PROPS = {
    "default_generation_settings": {"n_ctx": 4096},
    "total_slots": 1,
    "model_alias": MODEL,
    "model_path": "/models/scripted.gguf",
    "chat_template_caps": {"supports_tools": False, "supports_tool_calls": False},
    "build_info": "b0-unknown",
}


@dataclass
class Stream:
    chunks: list[dict | str]
    disconnect_after: int | None = None
    delay: float = 0.0  # seconds before each chunk
    done: bool = True  # send "data: [DONE]" at the end


@dataclass
class Status:
    code: int
    body: dict | None = None  # default: {"error": {"code", "message", "type"}}
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Json:
    body: dict
    code: int = 200


@dataclass
class Drop:
    """Close the connection without sending a response."""


Reply = Stream | Status | Json | Drop


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class ScriptedServer:
    def __init__(
        self, *, props: dict | None = PROPS, model: str = MODEL, api_key: str | None = None
    ):
        self.props = json.loads(json.dumps(props)) if props is not None else None
        self.model = model
        self.api_key = api_key
        self.default: Reply | Callable[[Request], Reply] | None = None
        self.requests: list[Request] = []
        self._queue: deque = deque()
        self._routes: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> ScriptedServer:
        handler = type("Handler", (_Handler,), {"scripted": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    # -- script -------------------------------------------------------------

    def enqueue(self, *replies: Reply | Callable[[Request], Reply]) -> None:
        with self._lock:
            self._queue.extend(replies)

    def route(
        self, method: str, path: str, reply: Reply | Callable[[Request], Reply] | None
    ) -> None:
        """Answer METHOD PATH with `reply` every time (None restores the default)."""
        if reply is None:
            self._routes.pop((method.upper(), path), None)
        else:
            self._routes[(method.upper(), path)] = reply

    @property
    def pending(self) -> int:
        """Queued replies not yet used."""
        return len(self._queue)

    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next_chat_reply(self, req: Request) -> Reply:
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default
        if reply is None:
            return Status(
                500, {"error": {"code": 500, "message": "script exhausted", "type": "server_error"}}
            )
        return reply(req) if callable(reply) else reply

    def _reply_for(self, req: Request) -> Reply:
        if (
            self.api_key is not None
            and req.headers.get("authorization") != f"Bearer {self.api_key}"
        ):
            return Status(
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "Invalid API Key",
                        "type": "authentication_error",
                    }
                },
            )
        path = req.path.split("?", 1)[0]
        fixed = self._routes.get((req.method, path))
        if fixed is not None:
            return fixed(req) if callable(fixed) else fixed
        if req.method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            return self._next_chat_reply(req)
        if req.method == "GET" and path == "/props":
            return Json(self.props) if self.props is not None else Status(404)
        if req.method == "GET" and path in ("/v1/models", "/models"):
            return Json(
                {
                    "object": "list",
                    "data": [{"id": self.model, "object": "model", "owned_by": "llamacpp"}],
                }
            )
        if req.method == "GET" and path == "/health":
            return Json({"status": "ok"})
        return Status(
            404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (cancel, disconnect tests) are expected here


class _Handler(BaseHTTPRequestHandler):
    scripted: ScriptedServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # many small writes per reply: without this, Nagle + delayed ACK add 40 ms stalls
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.scripted._lock:
            self.scripted.requests.append(req)
        reply = self.scripted._reply_for(req)
        if isinstance(reply, Drop):
            self._drop()
        elif isinstance(reply, Stream):
            self._stream(reply)
        elif isinstance(reply, Status):
            body = reply.body
            if body is None:
                body = {
                    "error": {
                        "code": reply.code,
                        "message": _REASONS.get(reply.code, "error"),
                        "type": "error",
                    }
                }
            self._send_json(reply.code, body, reply.headers)
        else:
            self._send_json(reply.code, reply.body)

    def _send_json(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [c if isinstance(c, str) else json.dumps(c) for c in reply.chunks]
        if reply.done:
            events.append("[DONE]")
        try:
            for n, event in enumerate(events):
                if reply.disconnect_after is not None and n >= reply.disconnect_after:
                    self._drop()
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                self._chunk(f"data: {event}\n\n".encode())
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):  # the client went away (cancel)
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _drop(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Loading model",
}


# -- chunk builders -----------------------------------------------------------


def chunk(
    delta: dict | None = None,
    finish_reason: str | None = None,
    *,
    model: str = MODEL,
    id: str = "chatcmpl-scripted",
    **extra: Any,
) -> dict:
    """One chat.completion.chunk with a single choice; `extra` adds top-level keys."""
    out: dict[str, Any] = {
        "choices": [{"finish_reason": finish_reason, "index": 0, "delta": delta or {}}],
        "created": 1700000000,
        "id": id,
        "model": model,
        "system_fingerprint": "b0-unknown",
        "object": "chat.completion.chunk",
    }
    out.update(extra)
    return out


def usage(prompt_tokens: int = 12, completion_tokens: int = 3, cached_tokens: int = 0) -> dict:
    return {
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def final_chunks(
    finish_reason: str = "stop",
    *,
    usage_: dict | None = None,
    timings: dict | None = None,
    include_usage: bool = True,
) -> list[dict]:
    """The finish chunk (llama.cpp puts `timings` on it) and the usage chunk (choices: [])."""
    out = [chunk({}, finish_reason, timings=dict(timings or TIMINGS))]
    if include_usage:
        last = chunk(usage=usage_ or usage(), timings=dict(timings or TIMINGS))
        last["choices"] = []
        out.append(last)
    return out


def text_chunks(text: str | list[str], *, logprobs: bool = False) -> list[dict]:
    """The role chunk then one content delta per piece (a str is split per character
    group of 3). With logprobs each delta carries a llama.cpp-style logprobs entry."""
    pieces = text if isinstance(text, list) else [text[i : i + 3] for i in range(0, len(text), 3)]
    out = [chunk({"role": "assistant", "content": None})]
    for n, piece in enumerate(pieces):
        c = chunk({"content": piece})
        if logprobs:
            tok = {"id": 100 + n, "token": piece, "bytes": list(piece.encode()), "logprob": -0.5}
            c["choices"][0]["logprobs"] = {"content": [{**tok, "top_logprobs": [dict(tok)]}]}
        out.append(c)
    return out


def tool_call_chunks(
    calls: list[tuple[str, str]],
    *,
    pieces: int = 3,
    interleave: bool = False,
    ids: list[str] | None = None,
) -> list[dict]:
    """Streamed tool_calls deltas for [(name, arguments_json), ...].

    Each call's first delta carries index, id, type and name; its arguments then
    arrive in `pieces` fragments (by index only). interleave=True alternates the
    calls' fragments instead of sending one call after the other.
    """
    ids = ids or [f"call_{i}" for i in range(len(calls))]
    per_call = []
    for i, (name, args) in enumerate(calls):
        size = max(1, -(-len(args) // pieces))
        frags = [args[j : j + size] for j in range(0, len(args), size)] or [""]
        deltas = [
            {
                "index": i,
                "id": ids[i],
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
        ]
        deltas += [{"index": i, "function": {"arguments": f}} for f in frags]
        per_call.append(deltas)
    order: list[dict] = []
    if interleave:
        for step in range(max(len(d) for d in per_call)):
            order += [d[step] for d in per_call if step < len(d)]
    else:
        for deltas in per_call:
            order += deltas
    out = [chunk({"role": "assistant", "content": None})]
    out += [chunk({"tool_calls": [d]}) for d in order]
    return out


def stream_text(text: str | list[str], finish_reason: str = "stop", **kw: Any) -> Stream:
    """A whole streamed text reply: role, content deltas, finish + timings, usage."""
    logprobs = kw.pop("logprobs", False)
    return Stream(text_chunks(text, logprobs=logprobs) + final_chunks(finish_reason), **kw)


def stream_tool_calls(
    calls: list[tuple[str, str]], *, interleave: bool = False, pieces: int = 3, **kw: Any
) -> Stream:
    chunks = tool_call_chunks(calls, pieces=pieces, interleave=interleave)
    return Stream(chunks + final_chunks("tool_calls"), **kw)


def completion(
    content: str | None = None,
    tool_calls: list[tuple[str, str]] | None = None,
    finish_reason: str = "stop",
) -> Json:
    """A non-streamed chat.completion response."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(tool_calls)
        ]
    return Json(
        {
            "choices": [{"finish_reason": finish_reason, "index": 0, "message": message}],
            "created": 1700000000,
            "id": "chatcmpl-scripted",
            "model": MODEL,
            "object": "chat.completion",
            "usage": usage(),
            "timings": dict(TIMINGS),
        }
    )
