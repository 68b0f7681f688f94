"""Every export format from scripted sessions, against files in tests/golden/.

A change of row shape shows as a diff of those files. After a change on purpose:
CODER_UPDATE_GOLDEN=1 pytest tests/test_export_golden.py, and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from coder.export import FORMATS, export, trl_message
from coder.log import Logger, Recorder
from tests.export_session import HINT, TOOLS, ScriptedAgent, realistic_session

GOLDEN = Path(__file__).parent / "golden"


def rollouts(lg: Logger) -> None:
    """Three json-protocol attempts at one task: two answers, one after a tool call."""
    for i, (path, value) in enumerate([("a.py", 1.0), (None, 0.0), (None, 0.0)]):
        rec = Recorder(lg, f"{i:032x}")
        rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
        a = ScriptedAgent(rec, "json")
        a.user("Fix the bug in a.py")
        if path:
            a.call("call_1", path, "print(1/0)")
        a.answer("Done." if path else "I cannot.")
        a.end_turn("answer", 0.0)
        rec.reward(value, "verifier")
        rec.session_end("exit")


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("golden") / "logs"
    lg = Logger(d)
    realistic_session(Recorder(lg, "a" * 32), "json")
    realistic_session(Recorder(lg, "b" * 32), "native")
    rollouts(lg)
    lg.close()
    return d


def read(p: Path) -> list[dict]:
    return [orjson.loads(x) for x in p.read_bytes().splitlines()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_matches_its_golden_file(logs: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"{fmt}.jsonl"
    export([logs], fmt, out)
    golden = GOLDEN / f"export_{fmt}.txt"  # rows indented, for readable diffs
    text = b"".join(
        orjson.dumps(r, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE) for r in read(out)
    )
    if os.environ.get("CODER_UPDATE_GOLDEN"):
        golden.write_bytes(text)
    assert text.decode() == golden.read_text()


def test_canonical_rows_hold_the_agents_conversation_whatever_the_protocol(
    logs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sft.jsonl"
    st = export([logs], "sft", out, session="a")
    (json_row,) = read(out)
    export([logs], "sft", out, session="b")
    (native_row,) = read(out)
    assert json_row == native_row  # the wire protocol leaves no trace
    assert json_row["tools"] == TOOLS
    # turn 2 failed (a repeated call): TRL would train on its calls if they stayed as
    # context, so the sft row ends at turn 1, the last good turn before it (openai keeps
    # turn 3 with the failed turn at weight 0); the unreadable reply and its format
    # reminder are gone
    msgs = json_row["messages"]
    assert msgs[0] == {"role": "system", "content": "You are coder, a coding agent."}
    assert msgs[-1] == {"role": "assistant", "content": "It prints hi."}
    skipped = "sft targets after a failed or cut reply in their conversation (openai keeps them)"
    assert st.skipped[skipped] == 1
    assert not any(m["content"] == HINT for m in msgs)
    assert not any("```" in (m.get("content") or "") for m in msgs)
    for m in msgs:
        if m["role"] == "assistant" and m.get("content"):
            assert (
                not m["content"].lstrip().startswith("{") and m["content"] == m["content"].strip()
            )
    assert st.skipped["unreadable calls (left out with the format reminder)"] == 1
    assert st.skipped["failed turns (repeated_call; --all keeps them)"] == 1
    export([logs], "openai", out, session="a")
    (orow,) = read(out)
    assert orow != json_row and orow["tools"] == TOOLS
    calls = [m for m in orow["messages"] if m.get("tool_calls")]
    assert all(isinstance(m["tool_calls"][0]["function"]["arguments"], str) for m in calls)
    # the failed turn's calls stay as context, not trained on
    weights = [m.get("weight", 1) for m in orow["messages"] if m["role"] == "assistant"]
    assert weights == [1, 1, 1, 0, 0, 0, 1]
    assert orow["messages"][-1] == {"role": "assistant", "content": "You are welcome."}


def test_rows_equal_the_conversation_the_agent_held(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    lg = Logger(d)
    agent = realistic_session(Recorder(lg, "c" * 32), "json")
    lg.close()
    out = tmp_path / "o.jsonl"
    export([d], "sft", out, keep_all=True)
    (row,) = read(out)
    held = [m for m in agent.messages if m["content"] != HINT and "```" not in (m["content"] or "")]
    assert row["messages"] == [trl_message(m) for m in held]


def test_grpo_keeps_single_prompts_and_marks_flat_groups(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.jsonl"
    st = export([logs], "grpo", out)
    rows = read(out)
    task = [r for r in rows if r["prompt"][-1]["content"] == "Fix the bug in a.py"]
    assert len(task) == 1 and task[0]["rewards"] == [1.0, 0.0, 0.0] and not task[0]["flat"]
    # the json and the native session hold the same canonical turns: groups of two
    # identical completions, three of them, plus the two "I cannot." attempts
    assert st.identical == 4 and st.flat == 3
    flat = [r for r in rows if r["flat"]]
    assert len(flat) == 3 and all(r["advantages"] == [0.0, 0.0] for r in flat)
    assert export([logs], "grpo", out, skip_flat=True).rows == len(rows) - 3 == 1
    solo = tmp_path / "solo.jsonl"  # one session alone: every turn is a prompt of its own
    assert export([logs], "grpo", solo, session="a").rows == 3
    assert all(len(r["completions"]) == 1 and r["flat"] for r in read(solo))
    st = export([logs], "dpo", out)
    assert st.rows == 1  # the two 0.0 completions are the same: one pair
    (p,) = read(out)
    assert p["chosen"][-1]["content"] == "Done." and p["rejected"] == [
        {"role": "assistant", "content": "I cannot."}
    ]


def test_format_hint_prefix_is_the_agents() -> None:
    from coder.agent import FORMAT_HINT
    from coder.export.canonical import HINT_PREFIX

    assert FORMAT_HINT.startswith(HINT_PREFIX) and HINT.startswith(HINT_PREFIX)


def test_tokens_rows_leave_out_failed_turns_unless_all(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "tokens.jsonl"
    st = export([logs], "tokens", out)
    rows = read(out)
    assert st.rows == len(rows) > 0
    assert {"prompt_ids", "completion_ids", "completion_logprobs", "complete", "note"} <= set(
        rows[0]
    )
    assert all(r["complete"] or r["note"] for r in rows)  # never silently short
    assert "calls of failed turns (--all keeps them)" in st.skipped
    every = read(out) if export([logs], "tokens", out, keep_all=True) else []
    assert len(every) > len(rows)


def test_a_cut_last_reply_stays_in_its_grpo_completion(tmp_path: Path) -> None:
    """The low reward of an attempt cut at max_tokens is grpo's signal: the attempt stays."""
    d = tmp_path / "logs"
    lg = Logger(d)
    for i, (cut, value) in enumerate([(False, 1.0), (True, 0.0)]):
        rec = Recorder(lg, f"{i:032x}")
        rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
        a = ScriptedAgent(rec, "native")
        a.user("Explain a.py")
        a.answer("It divides by zero and then" if cut else "It divides by zero.", cut=cut)
        a.end_turn("truncated" if cut else "answer", -0.5 if cut else 0.0)
        rec.reward(value, "verifier")
        rec.session_end("exit")
    lg.close()
    out = tmp_path / "g.jsonl"
    export([d], "grpo", out)
    (row,) = read(out)
    assert row["rewards"] == [1.0, 0.0] and not row["flat"]
    assert row["completions"][1] == [
        {"role": "assistant", "content": "It divides by zero and then"}
    ]


def test_a_call_with_broken_arguments_is_context_not_a_reason_to_drop_the_session(
    tmp_path: Path,
) -> None:
    from coder.chat import ToolCall
    from coder.tools import ToolResult

    d = tmp_path / "logs"
    lg = Logger(d)
    rec = Recorder(lg, "d" * 32)
    rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
    a = ScriptedAgent(rec, "native")
    a.user("Read a.py")
    broken = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "read_file", "arguments": '{"path": '},
            }
        ],
    }
    a.reply(broken, broken["tool_calls"][0]["function"]["arguments"], error="read_file: not JSON")
    a.messages.append(broken)
    err = "error: arguments are not valid JSON"
    rec.tool_result(
        a.turn, a.step, ToolCall("c1", "read_file", '{"path": '), ToolResult(err, True, 0)
    )
    a.messages.append({"role": "tool", "tool_call_id": "c1", "content": err})
    a.call("c2", "a.py", "print(1)")
    a.answer("It prints 1.")
    a.end_turn("answer", -0.1, errors=1)
    rec.session_end("exit")
    lg.close()
    out = tmp_path / "o.jsonl"
    export([d], "openai", out)
    (row,) = read(out)
    kept = [m for m in row["messages"] if m.get("tool_calls")]
    assert kept[0]["tool_calls"][0]["function"]["arguments"] == '{"path": '  # as written
    assert kept[0]["weight"] == 0 and "weight" not in kept[1]
    assert row["messages"][-1] == {"role": "assistant", "content": "It prints 1."}
