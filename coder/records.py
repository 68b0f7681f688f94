"""Log record schema (v1), the Recorder the agent calls, and the streaming reader.

Every record: ``{"v": 1, "ts": <unix seconds>, "type": ..., "session_id": ...,
"turn": int|None, "step": int|None, ...}``. A model_call does not repeat its
prompt: each distinct message is logged once as a ``message`` record with a
per-session integer id, and the call lists its prompt as inclusive id ranges
(``"prompt": [[0, 12], [14, 15]]``). Large constant request parts (tool
schemas, response_format) are ``blob`` records keyed by hash. So the log grows
with total tokens, and ``read_sessions`` rebuilds each request exactly.
See docs/log-format.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

SCHEMA_VERSION = 1
REWARD_SOURCES = ("user", "verifier", "auto")
REDACTED = "[REDACTED]"
_SOURCE_RANK = {"auto": 0, "user": 1, "verifier": 2}
# Request fields logged once per session as a blob: these always, others when large.
BLOB_FIELDS = frozenset({"tools", "response_format", "json_schema", "grammar", "functions"})
BLOB_MIN_BYTES = 256
_SECRET_KEY_PARTS = ("api_key", "apikey", "api-key", "authorization", "password", "secret")
_SECRET_KEYS = {"access_token", "refresh_token", "bearer", "x-api-key", "proxy-authorization"}
_SECRET_ENV = ("CODER_API_KEY", "OPENAI_API_KEY", "LLAMA_API_KEY")


class _Sink(Protocol):
    def log(self, record: dict) -> None: ...


def canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)


def content_hash(obj: Any) -> str:
    return hashlib.blake2b(canonical(obj), digest_size=16).hexdigest()


def to_ranges(ids: Iterable[int]) -> list[list[int]]:
    """[0,1,2,5,6,3] -> [[0,2],[5,6],[3,3]] (inclusive, order kept)."""
    out: list[list[int]] = []
    for i in ids:
        if out and out[-1][1] + 1 == i:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def from_ranges(ranges: Iterable[Iterable[int]]) -> list[int]:
    out: list[int] = []
    for a, b in ranges:
        out.extend(range(a, b + 1))
    return out


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in _SECRET_KEYS or any(p in k for p in _SECRET_KEY_PARTS)


def scrub(obj: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Copy of ``obj`` with secret-named keys redacted and known secret values
    masked (in strings and in dict keys)."""
    if isinstance(obj, dict):
        return {
            scrub(k, secrets): (
                REDACTED if v and isinstance(k, str) and _is_secret_key(k) else scrub(v, secrets)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [scrub(v, secrets) for v in obj]
    if isinstance(obj, str) and secrets:
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, REDACTED)
    return obj


def _usable_secrets(values: Iterable[Any]) -> tuple[str, ...]:
    """Strings worth masking, longest first (so a key containing another is masked whole).
    A short value would mask innocent text everywhere; keys are long."""
    found = {v for v in values if isinstance(v, str) and len(v) >= 6 and v != REDACTED}
    return tuple(sorted(found, key=len, reverse=True))


def _env_secrets() -> tuple[str, ...]:
    return _usable_secrets(os.environ.get(name) for name in _SECRET_ENV)


def _find_secrets(config: dict) -> tuple[str, ...]:
    found: set[str] = set()

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                if isinstance(k, str) and _is_secret_key(k) and isinstance(v, str):
                    found.add(v)
                else:
                    walk(v)
        elif isinstance(o, list | tuple):
            for v in o:
                walk(v)

    walk(config)
    return _usable_secrets(found)


def decode_logprobs(tokens: dict | None) -> list[float] | None:
    """The per-token logprobs of a model_call's ``tokens`` column."""
    if not tokens:
        return None
    if "logprobs_f32" in tokens:
        a = array("f")
        a.frombytes(base64.b64decode(tokens["logprobs_f32"]))
        if sys.byteorder == "big":
            a.byteswap()
        return a.tolist()
    return tokens.get("logprobs")


def compact_logprobs(entries: list | None, raw_content: str | None = None) -> dict | None:
    """OpenAI ``logprobs.content`` entries -> compact columns.

    ``ids`` (sampled token ids), ``logprobs_f32`` (base64 little-endian float32),
    ``text`` (the tokens' concatenated text, only when it differs from
    raw_content, e.g. a fence the server stripped under response_format),
    ``tokens`` (per-token strings, only when the server gave no ids) and
    ``top`` (top_logprobs as [id, token, logprob] triples, when requested).
    """
    if not entries:
        return None
    ids, lps, chunks = [], [], []
    exact = True
    top: list | None = None
    for n, e in enumerate(entries):
        ids.append(e.get("id"))
        lps.append(e.get("logprob"))
        b = e.get("bytes")
        if b is not None:
            chunks.append(bytes(b))
        else:
            exact = False
            chunks.append(str(e.get("token", "")).encode("utf-8", "surrogatepass"))
        tl = e.get("top_logprobs")
        if tl:
            if top is None:
                top = [None] * n
            top.append([[t.get("id"), t.get("token"), t.get("logprob")] for t in tl])
        elif top is not None:
            top.append(None)
    out: dict[str, Any] = {}
    if all(isinstance(i, int) for i in ids):
        out["ids"] = ids
    else:
        out["tokens"] = [e.get("token", "") for e in entries]
    if all(isinstance(x, float | int) for x in lps):
        # llama.cpp computes logprobs as float32, so this is lossless, and 4x
        # smaller and faster to write than decimal text.
        a = array("f", lps)
        if sys.byteorder == "big":
            a.byteswap()  # stored little-endian
        out["logprobs_f32"] = base64.b64encode(a.tobytes()).decode()
    else:
        out["logprobs"] = lps
    text = b"".join(chunks).decode("utf-8", "replace" if exact else "surrogatepass")
    if text != raw_content:
        out["text"] = text
    if top is not None:
        out["top"] = top
    return out


class Recorder:
    """Turns agent events into v1 records and hands them to a logger.

    ``secrets``: values to mask in every record (the real api key: the config the
    Recorder sees at session_start is already redacted). $CODER_API_KEY,
    $OPENAI_API_KEY and $LLAMA_API_KEY are always masked. Values shorter than 6
    characters are not (they would mask innocent text everywhere).
    """

    def __init__(
        self,
        logger: _Sink,
        session_id: str | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.logger = logger
        self.session_id = session_id or uuid.uuid4().hex
        self._lock = threading.Lock()
        self._msg_ids: dict[bytes, int] = {}
        self._blobs: set[str] = set()
        self._secrets: tuple[str, ...] = ()
        self._secret_needles: tuple[bytes, ...] = ()
        self._add_secrets([*secrets, *_env_secrets()])
        self._model_ref: str | None = None
        self._tools_ref: str | None = None
        self.counts = {"model_calls": 0, "tool_results": 0, "messages": 0, "rewards": 0}
        self._ended = False

    # -------------------------------------------------------------- plumbing

    def _add_secrets(self, values: Iterable[Any]) -> None:
        self._secrets = _usable_secrets([*self._secrets, *values])
        # as they appear in serialised JSON (a quote or backslash in a key is escaped)
        self._secret_needles = tuple(orjson.dumps(s)[1:-1] for s in self._secrets)

    def _has_secret(self, obj: Any) -> bool:
        if not self._secrets:
            return False
        blob = orjson.dumps(obj, default=str)
        return any(n in blob for n in self._secret_needles)

    def _emit(self, type_: str, turn: int | None, step: int | None, **fields: Any) -> None:
        rec = {
            "v": SCHEMA_VERSION,
            "ts": time.time(),
            "type": type_,
            "session_id": self.session_id,
            "turn": turn,
            "step": step,
        }
        rec.update(fields)
        if self._has_secret(rec):
            rec = scrub(rec, self._secrets)
        self.logger.log(rec)

    def _blob(self, data: Any, turn: int | None = None, step: int | None = None) -> str:
        if self._has_secret(data):
            data = scrub(data, self._secrets)  # so the hash is that of the stored data
        h = content_hash(data)
        if h not in self._blobs:
            self._blobs.add(h)
            self._emit("blob", turn, step, hash=h, data=data)
        return h

    def _message_id(self, msg: dict, turn: int | None, step: int | None) -> int:
        key = hashlib.blake2b(canonical(msg), digest_size=16).digest()
        mid = self._msg_ids.get(key)
        if mid is None:
            mid = len(self._msg_ids)
            self._msg_ids[key] = mid
            self.counts["messages"] += 1
            self._emit("message", turn, step, id=mid, message=msg)
        return mid

    # ------------------------------------------------------------ interface

    def session_start(
        self,
        *,
        config: dict,
        model: dict,
        tools: list[dict],
        workspace: str,
        git_head: str | None,
        extra: dict | None = None,
    ) -> None:
        from coder import __version__

        with self._lock:
            self._add_secrets(_find_secrets(config))
            model = scrub(dict(model), self._secrets)
            template = model.pop("chat_template", None)
            template_hash = model.get("chat_template_hash")
            template_ref = None
            if isinstance(template, str):
                template_hash = hashlib.sha256(template.encode()).hexdigest()
                template_ref = self._blob(template, 0, None)
            self._model_ref = self._blob(model, 0, None)
            self._tools_ref = self._blob(list(tools), 0, None)
            self._emit(
                "session_start",
                0,
                None,
                config=scrub(config, self._secrets),
                model=model,
                model_ref=self._model_ref,
                chat_template_hash=template_hash,
                chat_template_ref=template_ref,
                tools_ref=self._tools_ref,
                tool_names=[(t.get("function") or t).get("name") for t in tools],
                workspace=workspace,
                git_head=git_head,
                extra=scrub(extra, self._secrets) if extra else None,
                coder_version=__version__,
                pid=os.getpid(),
            )

    def user_message(self, turn: int, content: str) -> None:
        with self._lock:
            self._emit("user_message", turn, None, content=content)

    def model_call(
        self,
        *,
        turn: int,
        step: int,
        request: dict,
        response_message: dict,
        raw_content: str,
        finish_reason: str | None,
        usage: dict | None,
        timings: dict | None,
        logprobs: list | None,
        protocol: str,
        interrupted: bool = False,
        error: str | None = None,
        duration_ms: float | None = None,
        reasoning: str | None = None,
    ) -> None:
        """``reasoning``: a thinking model's reasoning text (reasoning_content),
        which the server sends apart from the content."""
        with self._lock:
            ids = [self._message_id(m, turn, step) for m in request.get("messages") or []]
            rest: dict[str, Any] = {}
            blobs: dict[str, str] = {}
            for k, v in request.items():
                if k == "messages":
                    continue
                if isinstance(k, str) and _is_secret_key(k):
                    continue  # never log credentials, even if someone put them in the body
                if k in BLOB_FIELDS or (
                    isinstance(v, dict | list) and len(canonical(v)) >= BLOB_MIN_BYTES
                ):
                    blobs[k] = self._blob(scrub(v, self._secrets), turn, step)
                else:
                    rest[k] = scrub(v, self._secrets) if isinstance(v, dict | list) else v
            tokens = compact_logprobs(logprobs, raw_content)
            note = None
            if tokens is not None and self._has_secret([raw_content, reasoning, tokens]):
                # token ids cannot be masked: they would decode back to the secret
                tokens, note = None, "dropped: the completion contains a secret"
            elif tokens is None:
                if not request.get("logprobs") and request.get("tools") and request.get("stream"):
                    note = "not requested: llama.cpp gives no logprobs with tools + stream"
                elif not request.get("logprobs"):
                    note = "not requested (logging.logprobs is off)"
                elif interrupted:
                    note = "interrupted before the server sent logprobs"
                elif error:
                    note = "request failed"
                else:
                    note = "requested but the server returned none"
            self.counts["model_calls"] += 1
            self._emit(
                "model_call",
                turn,
                step,
                request=rest,
                prompt=to_ranges(ids),
                request_blobs=blobs,
                request_keys=list(request.keys()),
                model_ref=self._model_ref,
                protocol=protocol,
                response=response_message,
                raw_content=raw_content,
                reasoning=reasoning,
                finish_reason=finish_reason,
                usage=usage,
                timings=timings,
                tokens=tokens,
                tokens_note=note,
                interrupted=interrupted,
                error=error,
                duration_ms=duration_ms,
            )

    def tool_result(
        self,
        *,
        turn: int,
        step: int,
        call_id: str,
        name: str,
        arguments: str | dict,
        output: str,
        is_error: bool,
        duration_ms: float,
    ) -> None:
        with self._lock:
            self.counts["tool_results"] += 1
            self._emit(
                "tool_result",
                turn,
                step,
                call_id=call_id,
                name=name,
                arguments=arguments,
                output=output,
                is_error=is_error,
                duration_ms=duration_ms,
            )

    def reward(
        self, value: float, source: str, note: str | None = None, turn: int | None = None
    ) -> None:
        if source not in REWARD_SOURCES:
            raise ValueError(f"reward source must be one of {REWARD_SOURCES}, not {source!r}")
        with self._lock:
            self.counts["rewards"] += 1
            self._emit("reward", turn, None, value=float(value), source=source, note=note)

    def compaction(
        self,
        *,
        turn: int,
        dropped_messages: int,
        tokens_before: int | None,
        tokens_after: int | None,
        note: str = "",
    ) -> None:
        with self._lock:
            self._emit(
                "compaction",
                turn,
                None,
                dropped_messages=dropped_messages,
                tokens_before=tokens_before,
                tokens_after=tokens_after,
                note=note,
            )

    def session_end(self, reason: str) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            stats_fn = getattr(self.logger, "stats", None)
            logger_stats = stats_fn() if callable(stats_fn) else None
            self._emit(
                "session_end",
                None,
                None,
                reason=reason,
                dropped=(logger_stats or {}).get("dropped", 0),
                errors=(logger_stats or {}).get("errors", 0),
                logger=logger_stats,
                counts=dict(self.counts),
            )


# ------------------------------------------------------------------- reading


@dataclass
class ModelCall:
    turn: int | None
    step: int | None
    ts: float
    request: dict | None  # rebuilt body as POSTed; None if a referenced record is missing
    response: dict
    raw_content: str | None
    finish_reason: str | None
    usage: dict | None
    timings: dict | None
    tokens: dict | None
    protocol: str | None
    interrupted: bool
    error: str | None
    duration_ms: float | None
    model: dict | None
    record: dict = field(repr=False)
    reasoning: str | None = None

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.interrupted and not self.error


@dataclass
class SessionLog:
    session_id: str
    start: dict | None = None
    end: dict | None = None
    calls: list[ModelCall] = field(default_factory=list)
    user_messages: list[dict] = field(default_factory=list)
    tool_results: list[dict] = field(default_factory=list)
    rewards: list[dict] = field(default_factory=list)
    compactions: list[dict] = field(default_factory=list)
    tools: list[dict] | None = None
    first_ts: float | None = None
    broken_calls: int = 0
    # reader state, dropped once the session is yielded
    _messages: dict[int, dict] = field(default_factory=dict, repr=False)
    _blobs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def extra(self) -> dict:
        return ((self.start or {}).get("extra")) or {}

    def reward_for(self, turn: int | None) -> dict | None:
        """The reward record that applies to ``turn``: among rewards given for that
        turn or for the whole session (turn None), the most trusted source
        (verifier > user > auto), then the latest."""
        best = None
        best_key = (-1, -1)
        for i, r in enumerate(self.rewards):
            t = r.get("turn")
            if t is None or (turn is not None and t == turn):
                key = (_SOURCE_RANK.get(r.get("source"), 0), i)
                if key > best_key:
                    best, best_key = r, key
        return best


@dataclass
class ReadStats:
    lines: int = 0
    skipped_lines: int = 0
    sessions: int = 0
    broken_calls: int = 0
    bytes_read: int = 0


def _rebuild(rec: dict, s: SessionLog) -> dict | None:
    try:
        messages = [s._messages[i] for i in from_ranges(rec.get("prompt") or [])]
        blobs = {k: s._blobs[h] for k, h in (rec.get("request_blobs") or {}).items()}
    except (KeyError, TypeError, ValueError):
        return None
    rest = rec.get("request") or {}
    req: dict[str, Any] = {}
    for k in rec.get("request_keys") or ["messages", *rest, *blobs]:
        if k == "messages":
            req["messages"] = messages
        elif k in blobs:
            req[k] = blobs[k]
        elif k in rest:
            req[k] = rest[k]
    return req


def _apply(rec: dict, s: SessionLog, stats: ReadStats) -> None:
    t = rec.get("type")
    if s.first_ts is None:
        s.first_ts = rec.get("ts")
    if t == "message":
        s._messages[rec["id"]] = rec["message"]
    elif t == "blob":
        s._blobs[rec["hash"]] = rec["data"]
    elif t == "model_call":
        req = _rebuild(rec, s)
        if req is None:
            s.broken_calls += 1
            stats.broken_calls += 1
        s.calls.append(
            ModelCall(
                turn=rec.get("turn"),
                step=rec.get("step"),
                ts=rec.get("ts", 0.0),
                request=req,
                response=rec.get("response") or {},
                raw_content=rec.get("raw_content"),
                finish_reason=rec.get("finish_reason"),
                usage=rec.get("usage"),
                timings=rec.get("timings"),
                tokens=rec.get("tokens"),
                protocol=rec.get("protocol"),
                interrupted=bool(rec.get("interrupted")),
                error=rec.get("error"),
                duration_ms=rec.get("duration_ms"),
                model=s._blobs.get(rec.get("model_ref") or ""),
                record=rec,
                reasoning=rec.get("reasoning"),
            )
        )
    elif t == "session_start":
        s.start = rec
        s.tools = s._blobs.get(rec.get("tools_ref") or "")
    elif t == "session_end":
        s.end = rec
    elif t == "user_message":
        s.user_messages.append(rec)
    elif t == "tool_result":
        s.tool_results.append(rec)
    elif t == "reward":
        s.rewards.append(rec)
    elif t == "compaction":
        s.compactions.append(rec)
    # unknown types from a newer writer: ignored, not corrupt


def iter_records(
    paths: Iterable[str | os.PathLike],
    stats: ReadStats | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """Valid v1 records of all files in order; corrupt lines are skipped and counted."""
    stats = stats if stats is not None else ReadStats()
    for p in paths:
        with open(p, "rb") as f:
            pending = 0
            for line in f:
                stats.bytes_read += len(line)
                pending += len(line)
                if on_bytes is not None and pending >= 1 << 20:
                    on_bytes(pending)
                    pending = 0
                if not line.strip():
                    continue
                stats.lines += 1
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    stats.skipped_lines += 1
                    continue
                if (
                    not isinstance(rec, dict)
                    or not isinstance(rec.get("type"), str)
                    or not isinstance(rec.get("session_id"), str)
                ):
                    stats.skipped_lines += 1
                    continue
                yield rec
            if on_bytes is not None and pending:
                on_bytes(pending)


def read_sessions(
    paths: Iterable[str | os.PathLike],
    stats: ReadStats | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[SessionLog]:
    """Stream sessions out of log files, each with its model calls' full requests.

    Only open sessions are held in memory: a session is yielded at its
    session_end (or at the end of input if it never ended). Interleaved
    sessions in one file are fine. Rebuilt requests share message dicts:
    copy before mutating.
    """
    stats = stats if stats is not None else ReadStats()
    open_: dict[str, SessionLog] = {}
    for rec in iter_records((Path(p) for p in paths), stats, on_bytes):
        sid = rec["session_id"]
        s = open_.get(sid)
        if s is None:
            s = open_[sid] = SessionLog(sid)
        try:
            _apply(rec, s, stats)
        except (KeyError, TypeError):
            stats.skipped_lines += 1
            continue
        if rec["type"] == "session_end":
            del open_[sid]
            yield _finish(s, stats)
    for s in open_.values():
        yield _finish(s, stats)


def _finish(s: SessionLog, stats: ReadStats) -> SessionLog:
    stats.sessions += 1
    s._messages = {}
    s._blobs = {}
    return s
