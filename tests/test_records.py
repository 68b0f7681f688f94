"""Recorder + read_sessions: exact prompt rebuild, linear growth, no secrets in the log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest

from coder.chat import ChatResult, ToolCall
from coder.log import (
    REDACTED,
    Logger,
    ReadStats,
    Recorder,
    compact_logprobs,
    decode_logprobs,
    from_ranges,
    list_log_files,
    read_sessions,
    to_ranges,
)
from coder.tools import ToolResult

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file inside the workspace and return its text. " * 4,
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "relative path"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "run_shell",
            "description": "Run a shell command in the workspace. " * 4,
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
]
CONFIG = {"llm": {"base_url": "http://127.0.0.1:8080/v1", "api_key": None}, "agent": {}}
MODEL = {"alias": "smol", "path": "/m/smol.gguf", "chat_template": "{{ messages }}"}


def chat_result(**fields) -> ChatResult:
    """A ChatResult as the client returns it, for Recorder.model_call."""
    return ChatResult(**{"tool_calls": [], **fields})


def logprobs_for(text: str) -> list[dict]:
    return [
        {"id": 100 + i, "token": ch, "bytes": list(ch.encode()), "logprob": -0.1 * i}
        for i, ch in enumerate(text[:20])
    ]


def converse(rec: Recorder, steps: int, task: str = "fix the failing test", turn: int = 1):
    """A realistic multi-step turn through the Recorder; returns the requests sent."""
    messages: list[dict] = [
        {"role": "system", "content": "You are coder. " * 40},
        {"role": "user", "content": task},
    ]
    rec.user_message(turn, task)
    sent = []
    for step in range(steps):
        request = {
            "model": "smol",
            "messages": list(messages),
            "tools": TOOLS,
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 512,
            "stream": True,
            "logprobs": True,
        }
        if step == steps - 1:
            reply = {"role": "assistant", "content": f"Done after {steps} steps."}
        else:
            args = json.dumps({"path": f"src/mod{step}.py"})
            reply = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{turn}_{step}",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": args},
                    }
                ],
            }
        raw = reply["content"] or reply["tool_calls"][0]["function"]["arguments"]
        rec.model_call(
            turn=turn,
            step=step,
            reply=chat_result(
                request=request,
                message=reply,
                raw_content=raw,
                finish_reason="stop" if step == steps - 1 else "tool_calls",
                usage={"prompt_tokens": 100 + 50 * step, "completion_tokens": 20},
                timings={"prompt_n": 50, "cache_n": 50 * step, "predicted_n": 20},
                logprobs=logprobs_for(raw),
                protocol="native",
                duration_ms=12.5,
            ),
        )
        sent.append(request)
        messages.append(reply)
        if step < steps - 1:
            out = f"# contents of src/mod{step}.py\n" + "x = 1\n" * 30
            rec.tool_result(
                turn=turn,
                step=step,
                call=ToolCall(f"call_{turn}_{step}", "read_file", {"path": f"src/mod{step}.py"}),
                result=ToolResult(out, False, 0.4),
            )
            messages.append({"role": "tool", "tool_call_id": f"call_{turn}_{step}", "content": out})
    return sent


def record_session(d: Path, steps: int, session_id: str | None = None, **kw) -> list[dict]:
    lg = Logger(d)
    rec = Recorder(lg, session_id)
    rec.session_start(
        config=kw.get("config", CONFIG), model=MODEL, tools=TOOLS, workspace="/w", git_head="abc"
    )
    sent = converse(rec, steps)
    rec.reward(1.0, "verifier", "tests pass")
    rec.session_end("done")
    lg.close()
    return sent


def log_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in list_log_files(d))


def test_ranges_round_trip() -> None:
    ids = [0, 1, 2, 5, 6, 3, 3]
    assert to_ranges(ids) == [[0, 2], [5, 6], [3, 3], [3, 3]]
    assert from_ranges(to_ranges(ids)) == ids


def test_every_prompt_rebuilds_exactly(tmp_path: Path) -> None:
    sent = record_session(tmp_path, 12, "s1")
    sessions = list(read_sessions(list_log_files(tmp_path)))
    assert len(sessions) == 1
    s = sessions[0]
    assert s.session_id == "s1" and s.end["reason"] == "done"
    assert len(s.calls) == 12
    for call, req in zip(s.calls, sent, strict=True):
        assert call.request == orjson.loads(orjson.dumps(req))
        assert list(call.request) == list(req)  # key order too
    assert s.tools == TOOLS
    assert s.calls[0].model["alias"] == "smol"
    assert s.start["chat_template_hash"] and "chat_template" not in s.start["model"]
    tok = s.calls[1].tokens
    assert tok["ids"][:2] == [100, 101] and "text" in tok  # 20 tokens != the raw content
    assert tok["text"] == s.calls[1].raw_content[:20]
    lps = decode_logprobs(tok)
    assert lps == pytest.approx([-0.1 * i for i in range(len(tok["ids"]))], abs=1e-6)
    assert s.calls[0].message["tool_calls"][0]["function"]["name"] == "read_file"


def test_log_grows_linearly_not_quadratically(tmp_path: Path) -> None:
    record_session(tmp_path / "a", 10)
    record_session(tmp_path / "b", 40)
    small, big = log_bytes(tmp_path / "a"), log_bytes(tmp_path / "b")
    # 4x the steps: linear is ~4x, quadratic would be ~16x.
    assert 3.0 < big / small < 5.0, (small, big)
    naive = sum(len(orjson.dumps(r)) for r in converse(Recorder(Logger(tmp_path / "c")), 40))
    assert big < naive / 3  # and far below logging every request whole


def test_no_api_key_in_any_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-local-7f3a9c2e5b1d"
    env_key = "env-key-0123456789"
    monkeypatch.setenv("CODER_API_KEY", env_key)
    config = {"llm": {"api_key": key, "headers": {"Authorization": f"Bearer {key}"}}}
    lg = Logger(tmp_path)
    rec = Recorder(lg)
    rec.session_start(
        config=config,
        model={"alias": "smol", "api_key": key},
        tools=TOOLS,
        workspace="/w",
        git_head=None,
        extra={"Authorization": f"Bearer {key}"},
    )
    rec.user_message(1, f"my key is {key}")
    rec.model_call(
        turn=1,
        step=0,
        reply=chat_result(
            request={
                "model": "smol",
                "messages": [{"role": "user", "content": f"use {key} and {env_key}"}],
                "api_key": key,
                "extra_headers": {"Authorization": f"Bearer {key}"},
            },
            message={"role": "assistant", "content": f"ok {key}"},
            raw_content=f"ok {key}",
            finish_reason="stop",
            usage=None,
            timings=None,
            logprobs=None,
            protocol="json",
        ),
    )
    rec.tool_result(
        turn=1,
        step=0,
        call=ToolCall("c", "run_shell", {"command": "env"}),
        result=ToolResult(f"CODER_API_KEY={env_key}\nOPENAI_API_KEY={key}", False, 1.0),
    )
    rec.session_end("done")
    lg.close()
    data = b"".join(p.read_bytes() for p in list_log_files(tmp_path))
    assert len(data.splitlines()) >= 6
    assert key.encode() not in data
    assert env_key.encode() not in data
    assert b"Bearer" not in data
    s = next(read_sessions(list_log_files(tmp_path)))
    assert s.start["config"]["llm"]["api_key"] == "[REDACTED]"
    assert s.calls[0].tokens is None and "not requested" in s.calls[0].record["tokens_note"]


def test_reader_skips_corrupt_lines_and_handles_interleaving(tmp_path: Path) -> None:
    lg = Logger(tmp_path)
    a, b = Recorder(lg, "A"), Recorder(lg, "B")
    for r in (a, b):
        r.session_start(config=CONFIG, model=MODEL, tools=TOOLS, workspace="/w", git_head=None)
    converse(a, 2, "task a")
    converse(b, 3, "task b")
    a.reward(0.5, "user", turn=1)
    a.session_end("done")  # B never ends (crash)
    lg.close()
    path = list_log_files(tmp_path)[0]
    with open(path, "ab") as f:
        f.write(b"not json at all\n[1, 2]\n")
    st = ReadStats()
    got = {s.session_id: s for s in read_sessions([path], st)}
    assert set(got) == {"A", "B"} and st.skipped_lines == 2 and st.sessions == 2
    assert got["B"].end is None and len(got["B"].calls) == 3
    assert got["A"].reward_for(1)["value"] == 0.5 and got["A"].reward_for(2) is None
    assert got["A"].calls[1].request["messages"][1]["content"] == "task a"


def test_missing_message_marks_call_broken(tmp_path: Path) -> None:
    record_session(tmp_path, 3, "s")
    path = list_log_files(tmp_path)[0]
    lines = [ln for ln in path.read_bytes().splitlines() if b'"id":1,' not in ln]
    path.write_bytes(b"\n".join(lines) + b"\n")
    st = ReadStats()
    s = next(read_sessions([path], st))
    assert st.broken_calls >= 1 and s.calls[-1].request is None


def test_compact_logprobs() -> None:
    entries = [
        {"id": 1, "token": "{", "bytes": [123], "logprob": -0.5},
        {"id": 2, "token": "\ufffd", "bytes": [0xC3], "logprob": -1.25},  # half of "é"
        {"id": 3, "token": "\ufffd", "bytes": [0xA9], "logprob": 0.0},
    ]
    tok = compact_logprobs(entries, "{é")
    assert tok["ids"] == [1, 2, 3] and "text" not in tok  # bytes rebuild the exact text
    assert decode_logprobs(tok) == [-0.5, -1.25, 0.0]
    tok = compact_logprobs([{"token": "a", "logprob": -0.5, "top_logprobs": []}], "b")
    assert tok["tokens"] == ["a"] and tok["text"] == "a" and "ids" not in tok


def test_session_end_reports_logger_stats_and_reward_validation(tmp_path: Path) -> None:
    lg = Logger(tmp_path)
    rec = Recorder(lg)
    with pytest.raises(ValueError):
        rec.reward(1, "oracle")
    rec.compaction(turn=3, dropped_messages=4, tokens_before=3000, tokens_after=900)
    rec.session_end("exit")
    rec.session_end("exit")  # idempotent
    lg.close()
    s = next(read_sessions(list_log_files(tmp_path)))
    assert s.end["dropped"] == 0 and "written" in s.end["logger"]
    assert s.compactions[0]["tokens_after"] == 900
    recs = [orjson.loads(x) for x in list_log_files(tmp_path)[0].read_bytes().splitlines()]
    for r in recs:
        assert {"v", "ts", "type", "session_id", "turn", "step"} <= set(r) and r["v"] == 1


def test_session_end_carries_write_errors_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_logger import FailingDisk

    disk = FailingDisk(tmp_path, fails=2)
    monkeypatch.setattr(os, "write", disk)
    lg = Logger(tmp_path, flush_interval=60)  # writes happen only when asked
    rec = Recorder(lg, "e")
    rec.session_start(config=CONFIG, model=MODEL, tools=TOOLS, workspace="/w", git_head=None)
    sent = converse(rec, 3)
    assert lg.flush() is False  # ENOSPC: kept for the retry, not lost
    rec.session_end("done")
    assert lg.close()
    s = next(read_sessions(list_log_files(tmp_path)))
    assert s.end["errors"] >= 1 and s.end["dropped"] == 0
    assert "No space left" in s.end["logger"]["last_error"]
    assert [c.request for c in s.calls] == [orjson.loads(orjson.dumps(r)) for r in sent]


def test_caller_secrets_are_masked_in_every_record(tmp_path: Path) -> None:
    # The runtime redacts the config before session_start, so the Recorder can only
    # learn the real key from the caller.
    key = "sk-from-config-yaml-42"
    lg = Logger(tmp_path)
    rec = Recorder(lg, "k", secrets=[key, None, ""])
    rec.session_start(
        config={"llm": {"api_key": REDACTED}},
        model={"alias": f"smol {key}"},
        tools=[{**TOOLS[0], "note": key}],
        workspace="/w",
        git_head=None,
        extra={"task_id": key},
    )
    rec.user_message(1, f"here: {key}")
    rec.model_call(
        turn=1,
        step=0,
        reply=chat_result(
            request={"model": "smol", "messages": [{"role": "user", "content": key}], key: 1},
            message={"role": "assistant", "content": key},
            raw_content=key,
            finish_reason="stop",
            usage=None,
            timings=None,
            logprobs=logprobs_for(key + " and more text"),
            protocol="native",
            error=f"HTTP 401: bad key {key}",
        ),
    )
    rec.tool_result(
        turn=1,
        step=0,
        call=ToolCall("c", "run_shell", {"command": f"echo {key}"}),
        result=ToolResult(f"LLM_KEY={key}\n", True, 1.0),
    )
    rec.reward(-0.1, "auto", note=f"tool error: {key}", turn=1)
    rec.compaction(turn=1, dropped_messages=1, tokens_before=9, tokens_after=3, note=key)
    rec.session_end(f"error: {key}")
    lg.close()
    data = b"".join(p.read_bytes() for p in list_log_files(tmp_path))
    assert data.count(b"[REDACTED]") >= 12
    assert key.encode() not in data
    s = next(read_sessions(list_log_files(tmp_path)))
    assert s.tool_results[0]["output"] == "LLM_KEY=[REDACTED]\n"
    assert s.calls[0].request["messages"][0]["content"] == "[REDACTED]"
    # token ids would decode back to the key: not kept
    assert s.calls[0].tokens is None and "secret" in s.calls[0].record["tokens_note"]
