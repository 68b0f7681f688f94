"""grpo and dpo rows: the turns that answered one prompt, with their rewards.

A turn's prompt is its first request (system prompt, history, the user's message); its
completion is everything after it until the turn ended: every assistant step and the
tool results between them (role "tool": not the model's). A group is the turns whose
prompts (messages + tools) are identical, keyed by the prompt's hash, unless the session
names its rollout's ``group_id``. Groups are gathered across sessions in a temporary
on-disk SQLite table, never in RAM.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from coder.export.canonical import CallView, session_views, with_reasoning
from coder.export.messages import trl_message
from coder.export.output import ExportStats, Options
from coder.export.turns import Turn, session_turns
from coder.log import SessionLog, canonical

ADV_EPS = 1e-4

_SCHEMA = """
CREATE TABLE prompts (key TEXT PRIMARY KEY, prompt BLOB, tools BLOB, task_id TEXT);
CREATE TABLE comps (key TEXT, seq INTEGER, session_id TEXT, turn INTEGER, reward REAL,
                    source TEXT, completion BLOB);
"""


def advantages(rewards: list[float]) -> list[float]:
    """Group-normalised: (r - mean) / (std + 1e-4), population std."""
    n = len(rewards)
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / n)
    return [(r - mean) / (std + ADV_EPS) for r in rewards]


class _PromptKeys:
    """Hash of a prompt's messages and tools. Messages are hashed once each, by
    identity (the reader and the canonical views share dicts across calls)."""

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

    def key(self, prompt: list[dict], tools: list[dict] | None) -> str:
        h = hashlib.blake2b(digest_size=16)
        for m in prompt:
            h.update(self._digest(m))
        h.update(b"|tools|")
        h.update(self._digest(tools))
        return h.hexdigest()


def group_key(keys: _PromptKeys, first: CallView, rollout: Any, turn: int | None) -> str:
    """The one definition of a turn's group: the hash of its prompt (the turn's first
    request, as exported: messages + tools), unless a rollout names its group in
    session_start's ``extra.group_id`` (one turn per rollout)."""
    if rollout:
        return str(rollout) if turn in (None, 1) else f"{rollout}/{turn}"
    return keys.key(first.prompt, first.tools)


def turn_group_ids(s: SessionLog, wire: bool = False) -> dict[int | None, str]:
    """Every turn's group id, as grpo and dpo rows give it."""
    keys = _PromptKeys()
    first: dict[int | None, CallView] = {}
    for view in session_views(s, wire):
        first.setdefault(view.call.turn, view)
    return {t: group_key(keys, v, s.extra.get("group_id"), t) for t, v in first.items()}


def turn_completion(
    turn: Turn, views: list[CallView], s: SessionLog, wire: bool
) -> list[dict] | None:
    """The messages a turn added after its prompt; None if its history changed mid-turn
    (a compaction). A reply cut at max_tokens ends its turn's completion as it was (the
    reward already says so); an errored or interrupted one is not part of it."""
    prompt, last = views[0].prompt, views[-1]
    msgs = list(last.prompt)
    cut = not last.call.interrupted and last.call.finish_reason == "length"
    if last.target or cut:
        msgs.append(last.completion)
        calls = last.completion.get("tool_calls") or []
        if calls:
            ids = {tc.get("id") for tc in calls}
            for r in s.tool_results:
                if (
                    r.get("turn") == turn.number
                    and r.get("step") == last.call.step
                    and r.get("call_id") in ids
                ):
                    msgs.append(_result_message(r, wire and last.call.protocol == "json"))
    n = len(prompt)
    if len(msgs) < n or not all(a is b or a == b for a, b in zip(prompt, msgs[:n], strict=True)):
        return None
    for v in views:  # each step's reasoning, where the step is part of the completion
        i = len(v.prompt)
        if v.target and v.call.reasoning and n <= i < len(msgs) and msgs[i] == v.completion:
            msgs[i] = with_reasoning(msgs[i], v.call)
    return msgs[n:]


def _result_message(r: dict, as_json_wire: bool) -> dict:
    if as_json_wire:
        return {
            "role": "user",
            "content": f"Result of {r.get('name') or 'the tool'}:\n{r.get('output', '')}",
        }
    return {"role": "tool", "tool_call_id": r.get("call_id"), "content": r.get("output", "")}


def group_rows(
    sessions: Iterable[SessionLog], opts: Options, st: ExportStats, fmt: str
) -> Iterator[dict]:
    with tempfile.TemporaryDirectory(prefix="coder-export-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "groups.db"))
        try:
            db.executescript(_SCHEMA)
            _collect(db, sessions, opts, st)
            db.execute("CREATE INDEX comps_key ON comps (key, seq)")
            db.commit()
            emit = _grpo_rows if fmt == "grpo" else _dpo_rows
            for key, prompt, tools, task in db.execute("SELECT * FROM prompts ORDER BY key"):
                comps = db.execute(
                    "SELECT session_id, turn, reward, source, completion FROM comps"
                    " WHERE key=? ORDER BY seq",
                    (key,),
                ).fetchall()
                base: dict[str, Any] = {"group_id": key, "task_id": task or key}
                base["prompt"] = orjson.loads(prompt)
                if t := orjson.loads(tools):
                    base["tools"] = t
                yield from emit(base, comps, opts, st)
        finally:
            db.close()


def _collect(
    db: sqlite3.Connection, sessions: Iterable[SessionLog], opts: Options, st: ExportStats
) -> None:
    seq = 0
    keys = _PromptKeys()
    seen: set[str] = set()  # 32-char keys: small next to the prompts they stand for
    for s in sessions:
        keys.new_session()
        task = s.extra.get("task_id")
        gid = s.extra.get("group_id")
        by_call = {id(v.call): v for v in session_views(s, opts.wire)}
        for t, turn in session_turns(s).items():
            views = [by_call[id(c)] for c in turn.calls if id(c) in by_call]
            if turn.reward is None:
                st.skip("turns without a reward")
                continue
            if not views:
                st.skip("turns whose prompt could not be rebuilt")
                continue
            completion = turn_completion(turn, views, s, opts.wire)
            if completion is None:
                st.skip("turns whose history was compacted mid-turn")
                continue
            if not completion:
                st.skip("turns with nothing to train on (cut, unreadable or failed calls only)")
                continue
            prompt, tools = views[0].prompt, views[0].tools
            key = group_key(keys, views[0], gid, t)
            try:
                comp = orjson.dumps([trl_message(m) for m in completion])
                if key not in seen:
                    db.execute(
                        "INSERT INTO prompts VALUES (?,?,?,?)",
                        (
                            key,
                            orjson.dumps([trl_message(m) for m in prompt]),
                            orjson.dumps(tools),
                            task,
                        ),
                    )
                    seen.add(key)
            except ValueError:
                st.skip("turns with tool-call arguments that are not JSON")
                continue
            if task:  # a task id seen on any rollout names the group
                db.execute(
                    "UPDATE prompts SET task_id=? WHERE key=? AND task_id IS NULL", (task, key)
                )
            db.execute(
                "INSERT INTO comps VALUES (?,?,?,?,?,?,?)",
                (key, seq, s.session_id, t, turn.reward, turn.source, comp),
            )
            seq += 1


def _grpo_rows(base: dict, comps: list, opts: Options, st: ExportStats) -> Iterator[dict]:
    rewards = [c[2] for c in comps]
    if opts.min_reward is not None and max(rewards) < opts.min_reward:
        st.skip("groups whose best reward is below --min-reward")
        return
    flat = len(set(rewards)) == 1
    if flat and opts.skip_flat:
        st.skip("groups with equal rewards (--skip-flat)")
        return
    st.flat += flat
    st.identical += len(comps) - len({c[4] for c in comps})
    yield {
        **base,
        "completions": [orjson.loads(c[4]) for c in comps],
        "rewards": rewards,
        "advantages": advantages(rewards),
        "flat": flat,
        "reward_sources": [c[3] for c in comps],
        "session_ids": [c[0] for c in comps],
        "turns": [c[1] for c in comps],
    }


def _dpo_rows(base: dict, comps: list, opts: Options, st: ExportStats) -> Iterator[dict]:
    seen: set[tuple[bytes, bytes]] = set()
    ranked = sorted(comps, key=lambda c: -c[2])
    pairs = 0
    for i, hi in enumerate(ranked):
        if opts.min_reward is not None and hi[2] < opts.min_reward:
            break
        for lo in ranked[i + 1 :]:
            if lo[2] >= hi[2] or lo[4] == hi[4] or (hi[4], lo[4]) in seen:
                continue
            seen.add((hi[4], lo[4]))
            pairs += 1
            yield {
                "group_id": base["group_id"],
                "task_id": base["task_id"],
                "prompt": base["prompt"],
                "chosen": orjson.loads(hi[4]),
                "rejected": orjson.loads(lo[4]),
                **({"tools": base["tools"]} if "tools" in base else {}),
                "score_chosen": hi[2],
                "score_rejected": lo[2],
                "reward_sources": [hi[3], lo[3]],
            }
    if not pairs:
        why = (
            "single turns (no second completion)"
            if len(comps) < 2
            else "groups without two completions that differ in reward"
        )
        st.skip(f"prompts with {why}" if len(comps) < 2 else why)


def grpo_rows(sessions: Iterable[SessionLog], opts: Options, st: ExportStats) -> Iterator[dict]:
    """One row per prompt: its completions, rewards, advantages, ``flat``."""
    return group_rows(sessions, opts, st, "grpo")


def dpo_rows(sessions: Iterable[SessionLog], opts: Options, st: ExportStats) -> Iterator[dict]:
    """Every pair of completions of one prompt that differ in reward, the better chosen."""
    return group_rows(sessions, opts, st, "dpo")
