"""The streaming reader: log files -> sessions, each call's request rebuilt exactly.

Only open sessions are held in memory; see docs/log-format.md ("Rebuilding a
prompt") for the algorithm.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from coder.log.schema import decode_prompt_ids, from_ranges

_SOURCE_RANK = {"auto": 0, "user": 1, "verifier": 2}


@dataclass
class ModelCall:
    """A logged model call. Fields named as in coder.chat.ChatResult mean the same;
    ``message`` is the record's ``response`` key, ``tokens`` the packed logprobs."""

    turn: int | None
    step: int | None
    ts: float
    request: dict | None  # rebuilt body as POSTed; None if a referenced record is missing
    message: dict
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
    prompt_ids: list[int] | None = None  # unpacked from the record's {"keep", "ids"}
    prompt_ids_note: str | None = None
    tools: list[dict] | None = None  # offered to this call, when not the session's tools

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.interrupted and not self.error

    @classmethod
    def from_record(cls, rec: dict, request: dict | None, model: dict | None) -> ModelCall:
        return cls(
            turn=rec.get("turn"),
            step=rec.get("step"),
            ts=rec.get("ts", 0.0),
            request=request,
            message=rec.get("response") or {},
            raw_content=rec.get("raw_content"),
            finish_reason=rec.get("finish_reason"),
            usage=rec.get("usage"),
            timings=rec.get("timings"),
            tokens=rec.get("tokens"),
            protocol=rec.get("protocol"),
            interrupted=bool(rec.get("interrupted")),
            error=rec.get("error"),
            duration_ms=rec.get("duration_ms"),
            model=model,
            record=rec,
            reasoning=rec.get("reasoning"),
            prompt_ids_note=rec.get("prompt_ids_note"),
        )


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
    attempts: list[dict] = field(default_factory=list)  # rollout outcomes (coder rollout)
    tools: list[dict] | None = None
    first_ts: float | None = None
    broken_calls: int = 0
    # reader state, dropped once the session is yielded
    _messages: dict[int, dict] = field(default_factory=dict, repr=False)
    _blobs: dict[str, Any] = field(default_factory=dict, repr=False)
    _last_prompt_ids: list[int] | None = field(default=None, repr=False)

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
        model = s._blobs.get(rec.get("model_ref") or "")
        call = ModelCall.from_record(rec, req, model)
        if rec.get("tools_ref"):
            call.tools = s._blobs.get(rec["tools_ref"])
        if rec.get("prompt_ids") is not None:
            call.prompt_ids = decode_prompt_ids(rec["prompt_ids"], s._last_prompt_ids)
            if call.prompt_ids is None:
                call.prompt_ids_note = "prompt ids not rebuilt: an earlier call's are missing"
            else:
                s._last_prompt_ids = call.prompt_ids
        s.calls.append(call)
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
    elif t == "attempt":
        s.attempts.append(rec)
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
