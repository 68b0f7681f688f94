"""Log -> training data: sft | openai | grpo | dpo (JSONL, one row per line).

Reads session by session (constant memory in the log size); grpo/dpo group
completions across sessions through a temporary on-disk SQLite table, so not
even the groups are held in RAM. Output is written to a temp file and renamed.
See docs/log-format.md for the row shapes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from coder.log import (
    ModelCall,
    ReadStats,
    SessionLog,
    canonical,
    decode_logprobs,
    log_files,
    read_sessions,
)

FORMATS = ("sft", "openai", "grpo", "dpo")  # the CLI's --format choices too
PROGRESS_MIN_BYTES = 8 << 20
ADV_EPS = 1e-4
_OPENAI_MSG_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")


@dataclass
class ExportStats:
    rows: int = 0
    skipped_lines: int = 0
    sessions: int = 0
    skipped_rows: int = 0
    broken_calls: int = 0
    out: str | None = None


# ------------------------------------------------------------ message shapes


def _parse_args(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError as e:
            raise ValueError("tool-call arguments are not JSON") from e
    return args


def trl_message(m: dict) -> dict:
    """TRL conversational: tool-call arguments as JSON objects."""
    m = copy.deepcopy(m)
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") or {}
        if "arguments" in fn:
            fn["arguments"] = _parse_args(fn["arguments"])
    return m


def openai_message(m: dict) -> dict:
    """OpenAI fine-tuning: only known keys, tool-call arguments as JSON strings."""
    out = {k: copy.deepcopy(m[k]) for k in _OPENAI_MSG_KEYS if k in m}
    if out.get("role") == "assistant" and out.get("tool_calls"):
        calls = []
        for i, tc in enumerate(out["tool_calls"]):
            fn = dict(tc.get("function") or {})
            a = fn.get("arguments", "")
            fn["arguments"] = a if isinstance(a, str) else orjson.dumps(a).decode()
            calls.append({"id": tc.get("id") or f"call_{i}", "type": "function", "function": fn})
        out["tool_calls"] = calls
    return out


def completion_message(call: ModelCall) -> dict:
    """The assistant turn a call produced, in the form its prompt is in.

    native: the assistant message (tool_calls and all). json protocol: the prompt
    is the rendered wire form (tools in the system text, past calls as JSON text,
    results as user messages), so the turn is the text the model produced: the
    sampled tokens' text when logprobs were recorded (under response_format the
    server strips a fence from the content), else raw_content.
    """
    if call.protocol == "json":
        tokens = call.tokens or {}
        text = tokens["text"] if isinstance(tokens.get("text"), str) else call.raw_content
        return {"role": "assistant", "content": text or ""}
    return call.message


def _with_reasoning(m: dict, call: ModelCall) -> dict:
    # TRL conversational rows carry a thinking model's reasoning as reasoning_content
    # (what reasoning chat templates such as Qwen3's render); OpenAI's format has no field.
    return {**m, "reasoning_content": call.reasoning} if call.reasoning else m


def call_tools(call: ModelCall, session: SessionLog) -> list[dict] | None:
    """Tool schemas for a row's ``tools`` key: the request's. None for the json
    protocol, whose prompt already lists the tools in its system text."""
    if call.protocol == "json":
        return None
    req = call.request or {}
    return req.get("tools") or session.tools or None


class _PromptKeys:
    """Group key of a call: hash of its messages and tools. The reader shares one
    dict per message across a session's calls, so each message is hashed once
    (a per-call hash of the whole prompt would cost turns squared)."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, bytes]] = {}

    def new_session(self) -> None:
        self._memo.clear()

    def _digest(self, obj: Any) -> bytes:
        hit = self._memo.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        d = hashlib.blake2b(canonical(obj), digest_size=16).digest()
        self._memo[id(obj)] = (obj, d)
        return d

    def key(self, call: ModelCall, session: SessionLog) -> str:
        req = call.request or {}
        h = hashlib.blake2b(digest_size=16)
        for m in req.get("messages") or []:
            h.update(self._digest(m))
        h.update(b"|tools|")
        h.update(self._digest(call_tools(call, session)))
        return h.hexdigest()


# ------------------------------------------------------------- conversations


def _conversations(
    s: SessionLog,
) -> Iterator[tuple[ModelCall, list[dict], list[tuple[int, ModelCall]]]]:
    """Maximal conversations of a session: a good call's prompt + its completion,
    unless that list is the start of the next good call's prompt (the usual
    case within a turn and across turns; a compaction starts a new one).
    Yields (last call, messages, [(index of a call's completion, call), ...])."""
    good = [c for c in s.calls if c.ok and c.message]
    own: list[tuple[int, ModelCall]] = []
    for i, c in enumerate(good):
        msgs = [*c.request["messages"], completion_message(c)]
        own.append((len(msgs) - 1, c))
        if i + 1 < len(good):
            nxt = good[i + 1].request["messages"]
            n = len(msgs)
            # the reader shares one dict per logged message: identity first
            if len(nxt) >= n and all(a is b or a == b for a, b in zip(nxt[:n], msgs, strict=True)):
                continue
        yield c, msgs, own
        own = []


def _reward_value(s: SessionLog, turn: int | None) -> tuple[float | None, str | None]:
    r = s.reward_for(turn)
    return (float(r["value"]), r.get("source")) if r else (None, None)


# --------------------------------------------------------------------- export


class _Out:
    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.tmp: str | None = None
        if out is None:
            self.f: IO[bytes] = sys.stdout.buffer
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
            self.f = os.fdopen(fd, "wb")

    def write(self, row: dict) -> None:
        self.f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))

    def commit(self) -> None:
        self.f.flush()
        if self.tmp is not None and self.out is not None:
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.out)
            self.tmp = None

    def abort(self) -> None:
        if self.tmp is not None:
            self.f.close()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


def export(
    paths: list[Path] | None,
    fmt: str,
    out: Path | None,
    since: datetime | None = None,
    min_reward: float | None = None,
    session: str | None = None,
    progress: bool = False,
    log_dir: str | os.PathLike | None = None,
) -> ExportStats:
    """Write training rows from the logs in ``paths`` (files or directories; none
    given: every log of ``log_dir``; neither: coder.log.NoLogs).

    ``out`` None writes to stdout. Corrupt lines are skipped and counted.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    files = log_files(paths, log_dir)
    since_ts = since.timestamp() if since is not None else None
    stats = ExportStats(out=str(out) if out else None)
    rstats = ReadStats()
    total = sum(p.stat().st_size for p in files if p.exists())

    bar = None
    on_bytes = None
    if progress and total >= PROGRESS_MIN_BYTES:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = bar.add_task(f"export {fmt}", total=total)

        def on_bytes(n: int) -> None:
            bar.advance(task, n)

    def sessions() -> Iterator[SessionLog]:
        for s in read_sessions(files, rstats, on_bytes):
            if session is not None and not s.session_id.startswith(session):
                continue
            if since_ts is not None and (s.first_ts or 0) < since_ts:
                continue
            stats.sessions += 1
            yield s

    w = _Out(out)
    try:
        if bar is not None:
            bar.start()
        if fmt in ("sft", "openai"):
            _export_conversations(sessions(), fmt, min_reward, w, stats)
        else:
            _export_groups(sessions(), fmt, min_reward, w, stats)
        w.commit()
    except BaseException:
        w.abort()
        raise
    finally:
        if bar is not None:
            bar.stop()
    stats.skipped_lines = rstats.skipped_lines
    stats.broken_calls = rstats.broken_calls
    return stats


def _export_conversations(
    sessions: Iterator[SessionLog], fmt: str, min_reward: float | None, w: _Out, st: ExportStats
) -> None:
    for s in sessions:
        for call, msgs, own in _conversations(s):
            if min_reward is not None:
                value, _ = _reward_value(s, call.turn)
                if value is None or value < min_reward:
                    continue
            tools = call_tools(call, s)
            try:
                if fmt == "sft":
                    msgs = list(msgs)
                    for i, c in own:
                        msgs[i] = _with_reasoning(msgs[i], c)
                    row: dict[str, Any] = {"messages": [trl_message(m) for m in msgs]}
                    if tools:
                        row["tools"] = tools
                else:
                    om = [openai_message(m) for m in msgs]
                    row = {"messages": om}
                    if tools:
                        row["tools"] = tools
                        par = (call.request or {}).get("parallel_tool_calls")
                        if par is None:
                            par = any(len(m.get("tool_calls") or []) > 1 for m in om)
                        row["parallel_tool_calls"] = bool(par)
            except ValueError:
                st.skipped_rows += 1
                continue
            w.write(row)
            st.rows += 1


_SCHEMA = """
CREATE TABLE prompts (key TEXT PRIMARY KEY, prompt BLOB, tools BLOB, task_id TEXT);
CREATE TABLE comps (key TEXT, seq INTEGER, session_id TEXT, reward REAL, source TEXT,
                    completion BLOB, raw TEXT, token_ids BLOB, logprobs BLOB);
"""


def _export_groups(
    sessions: Iterator[SessionLog], fmt: str, min_reward: float | None, w: _Out, st: ExportStats
) -> None:
    with tempfile.TemporaryDirectory(prefix="coder-export-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "groups.db"))
        try:
            db.executescript(_SCHEMA)
            seq = 0
            keys = _PromptKeys()
            seen: set[str] = set()  # 32-char keys: small next to the prompts they stand for
            for s in sessions:
                task = s.extra.get("task_id")
                keys.new_session()
                for call in s.calls:
                    if not call.ok or not call.message:
                        continue
                    value, source = _reward_value(s, call.turn)
                    if value is None:
                        continue
                    key = keys.key(call, s)
                    try:
                        completion = [trl_message(_with_reasoning(completion_message(call), call))]
                        if key not in seen:
                            prompt = [trl_message(m) for m in call.request["messages"]]
                            tools = call_tools(call, s)
                            db.execute(
                                "INSERT INTO prompts VALUES (?,?,?,?)",
                                (key, orjson.dumps(prompt), orjson.dumps(tools), task),
                            )
                            seen.add(key)
                    except ValueError:
                        st.skipped_rows += 1
                        continue
                    if task:  # a task id seen on any rollout names the group
                        db.execute(
                            "UPDATE prompts SET task_id=? WHERE key=? AND task_id IS NULL",
                            (task, key),
                        )
                    tok = call.tokens or {}
                    db.execute(
                        "INSERT INTO comps VALUES (?,?,?,?,?,?,?,?,?)",
                        (
                            key,
                            seq,
                            s.session_id,
                            value,
                            source,
                            orjson.dumps(completion),
                            call.raw_content,
                            orjson.dumps(tok.get("ids")),
                            orjson.dumps(decode_logprobs(call.tokens)),
                        ),
                    )
                    seq += 1
            db.execute("CREATE INDEX comps_key ON comps (key, seq)")
            db.commit()
            emit = _grpo_rows if fmt == "grpo" else _dpo_rows
            for key, prompt, tools, task in db.execute("SELECT * FROM prompts ORDER BY key"):
                comps = db.execute(
                    "SELECT session_id, reward, source, completion, raw, token_ids, logprobs"
                    " FROM comps WHERE key=? ORDER BY seq",
                    (key,),
                ).fetchall()
                if len(comps) < 2:
                    continue
                base = {"prompt": orjson.loads(prompt), "task_id": task or key}
                if tools := orjson.loads(tools):
                    base["tools"] = tools
                for row in emit(base, comps, min_reward):
                    w.write(row)
                    st.rows += 1
        finally:
            db.close()


def advantages(rewards: list[float]) -> list[float]:
    """Group-normalised: (r - mean) / (std + 1e-4), population std."""
    n = len(rewards)
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / n)
    return [(r - mean) / (std + ADV_EPS) for r in rewards]


def _grpo_rows(base: dict, comps: list, min_reward: float | None) -> Iterator[dict]:
    rewards = [c[1] for c in comps]
    if min_reward is not None and max(rewards) < min_reward:
        return
    yield {
        **base,
        "completions": [orjson.loads(c[3]) for c in comps],
        "raw_completions": [c[4] for c in comps],
        "rewards": rewards,
        "advantages": advantages(rewards),
        "reward_sources": [c[2] for c in comps],
        "session_ids": [c[0] for c in comps],
        "completion_ids": [orjson.loads(c[5]) for c in comps],
        "completion_logprobs": [orjson.loads(c[6]) for c in comps],
    }


def _dpo_rows(base: dict, comps: list, min_reward: float | None) -> Iterator[dict]:
    seen: set[tuple[bytes, bytes]] = set()
    ranked = sorted(comps, key=lambda c: -c[1])
    for i, hi in enumerate(ranked):
        if min_reward is not None and hi[1] < min_reward:
            break
        for lo in ranked[i + 1 :]:
            if lo[1] >= hi[1] or lo[3] == hi[3] or (hi[3], lo[3]) in seen:
                continue
            seen.add((hi[3], lo[3]))
            yield {
                "prompt": base["prompt"],
                "chosen": orjson.loads(hi[3]),
                "rejected": orjson.loads(lo[3]),
                **({"tools": base["tools"]} if "tools" in base else {}),
                "score_chosen": hi[1],
                "score_rejected": lo[1],
                "task_id": base["task_id"],
                "reward_sources": [hi[2], lo[2]],
            }
