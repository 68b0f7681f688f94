"""export(): each format's row shape, filters, corrupt input, atomic output."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from coder import export as export_mod
from coder.chat import ChatResult
from coder.export import advantages, export
from coder.log import Logger, Recorder, list_log_files

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file in the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]
SYSTEM = {"role": "system", "content": "You are coder, a coding agent. " * 10}


def chat_result(**fields) -> ChatResult:
    """A ChatResult as the client returns it, for Recorder.model_call."""
    return ChatResult(**{"tool_calls": [], **fields})


def call(rec: Recorder, turn: int, step: int, messages: list, reply: dict, **kw) -> None:
    rec.model_call(
        turn=turn,
        step=step,
        reply=chat_result(
            request={
                "model": "smol",
                "messages": list(messages),
                "tools": TOOLS,
                "temperature": 0.7,
            },
            message=reply,
            raw_content=reply.get("content") or json.dumps(reply.get("tool_calls")),
            finish_reason="stop",
            usage={"prompt_tokens": 10, "completion_tokens": 5},
            timings=None,
            logprobs=[{"id": 7, "token": "x", "logprob": -0.5}],
            protocol="native",
            **kw,
        ),
    )


def tool_call(path: str, cid: str = "call_0") -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": cid,
                "type": "function",
                "function": {"name": "read_file", "arguments": json.dumps({"path": path})},
            }
        ],
    }


def rollout(
    lg: Logger,
    sid: str,
    task: str,
    path: str,
    reward: float | None,
    source: str = "verifier",
    verdict: float | None = None,
    **extra,
) -> None:
    """One agent session: read a file, answer; a reward for turn 1 (or, from a
    verifier, for the session) at the end, then an optional session verdict."""
    rec = Recorder(lg, sid)
    rec.session_start(
        config={}, model={"alias": "smol"}, tools=TOOLS, workspace="/w", git_head=None, extra=extra
    )
    msgs = [SYSTEM, {"role": "user", "content": task}]
    rec.user_message(1, task)
    tc = tool_call(path)
    call(rec, 1, 0, msgs, tc)
    msgs += [tc, {"role": "tool", "tool_call_id": "call_0", "content": f"text of {path}"}]
    call(rec, 1, 1, msgs, {"role": "assistant", "content": f"I read {path}."})
    if reward is not None:
        rec.reward(reward, source, turn=None if source == "verifier" else 1)
    if verdict is not None:
        rec.reward(verdict, "verifier")
    rec.session_end("done")


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    lg = Logger(d)
    for i, (path, r) in enumerate([("a.py", 1.0), ("b.py", 0.0), ("c.py", 0.5)]):
        rollout(lg, f"roll{i}", "fix the bug", path, r, task_id="bug-1")
    rollout(lg, "solo", "write docs", "README.md", None)
    lg.close()
    return d


def trl(m: dict) -> dict:
    from coder.export import trl_message

    return trl_message(m)


def rows(p: Path) -> list[dict]:
    return [orjson.loads(x) for x in p.read_bytes().splitlines()]


def test_sft_rows_are_trl_conversations(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft.jsonl"
    st = export([logs], "sft", out, None, None, None, False)
    assert (st.rows, st.skipped_lines, st.sessions) == (4, 0, 4)
    r = rows(out)[0]
    assert set(r) == {"messages", "tools"} and r["tools"] == TOOLS
    roles = [m["role"] for m in r["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    args = r["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert args == {"path": "a.py"}  # an object, as TRL's templates expect


def test_openai_rows_have_string_arguments(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "oai.jsonl"
    export([logs], "openai", out, None, None, None, False)
    r = rows(out)[0]
    assert set(r) == {"messages", "tools", "parallel_tool_calls"}
    assert r["parallel_tool_calls"] is False
    tc = r["messages"][2]["tool_calls"][0]
    assert tc["type"] == "function" and tc["id"] == "call_0"
    assert json.loads(tc["function"]["arguments"]) == {"path": "a.py"}
    # kept exactly as sent: the exported prompt is what the server received
    assert "content" in r["messages"][2] and r["messages"][2]["content"] is None
    assert r["messages"][3] == {"role": "tool", "tool_call_id": "call_0", "content": "text of a.py"}


def test_grpo_groups_identical_prompts(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "grpo.jsonl"
    st = export([logs], "grpo", out, None, None, None, False)
    assert st.rows == 1  # only the first call's prompt is shared by the 3 rollouts
    r = rows(out)[0]
    assert r["task_id"] == "bug-1"
    assert [m["role"] for m in r["prompt"]] == ["system", "user"]
    assert r["rewards"] == [1.0, 0.0, 0.5]
    assert r["reward_sources"] == ["verifier"] * 3
    assert r["session_ids"] == ["roll0", "roll1", "roll2"]
    assert len(r["completions"]) == 3 and r["completions"][1][0]["role"] == "assistant"
    assert r["completions"][1][0]["tool_calls"][0]["function"]["arguments"] == {"path": "b.py"}
    assert sum(r["advantages"]) == pytest.approx(0.0, abs=1e-9)
    assert r["advantages"][0] > r["advantages"][2] > r["advantages"][1]
    assert r["tools"] == TOOLS and r["flat"] is False and r["group_id"]
    # a completion is the whole turn: each step and the tool results between them
    assert [m["role"] for m in r["completions"][0]] == ["assistant", "tool", "assistant"]
    assert r["completions"][0][-1] == {"role": "assistant", "content": "I read a.py."}
    assert advantages([2.0, 2.0]) == [0.0, 0.0]


def test_dpo_pairs_by_reward(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo.jsonl"
    st = export([logs], "dpo", out, None, None, None, False)
    got = rows(out)
    assert st.rows == 3 == len(got)  # (1,0) (1,.5) (.5,0)
    for r in got:
        assert {"prompt", "chosen", "rejected", "score_chosen", "score_rejected"} <= set(r)
        assert r["score_chosen"] > r["score_rejected"]
        assert r["chosen"][0]["role"] == "assistant" and r["rejected"] != r["chosen"]
    st = export([logs], "dpo", out, None, 0.9, None, False)
    assert st.rows == 2  # chosen must reach min_reward


def test_filters(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    assert export([logs], "sft", out, None, 0.5, None, False).rows == 2
    assert export([logs], "sft", out, None, None, "roll1", False).rows == 1
    future = datetime.now() + timedelta(days=1)
    assert export([logs], "sft", out, future, None, None, False).rows == 0
    past = datetime.now() - timedelta(hours=1)
    assert export([logs], "sft", out, past, None, None, False).rows == 4


def test_turn_reward_applies_to_its_turn(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    lg = Logger(d)
    rec = Recorder(lg, "t")
    rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
    msgs = [SYSTEM, {"role": "user", "content": "one"}]
    call(rec, 1, 0, msgs, {"role": "assistant", "content": "first"})
    rec.reward(1.0, "user", turn=1)
    msgs += [{"role": "assistant", "content": "first"}, {"role": "user", "content": "two"}]
    call(rec, 2, 0, msgs, {"role": "assistant", "content": "second"})
    rec.reward(-1.0, "user", turn=2)
    rec.session_end("exit")
    lg.close()
    out = tmp_path / "o.jsonl"
    # turn 2's reward is -1: the conversation's row ends with turn 1
    assert export([d], "sft", out, None, 0.0, None, False).rows == 1
    assert len(rows(out)[0]["messages"]) == 3
    assert export([d], "sft", out).rows == 1  # a user's reward below 0 fails the turn
    assert len(rows(out)[0]["messages"]) == 3
    assert export([d], "sft", out, None, -1.0, None, False, keep_all=True).rows == 1
    assert len(rows(out)[0]["messages"]) == 5


def test_corrupt_lines_are_skipped_and_counted(logs: Path, tmp_path: Path) -> None:
    path = list_log_files(logs)[0]
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    garbage = b"\x00\xffgarbage{{{\n"
    # a garbage line in the middle, and a truncated last line (crash mid-write)
    path.write_bytes(b"".join(lines[:5]) + garbage + b"".join(lines[5:]) + lines[3][:25])
    out = tmp_path / "sft.jsonl"
    st = export([logs], "sft", out, None, None, None, False)
    assert st.skipped_lines == 2 and st.rows == 4


def test_atomic_output_default_dir_and_progress(
    logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "x" / "sft.jsonl"
    out.parent.mkdir()
    out.write_text("old\n")
    with pytest.raises(ValueError):
        export([logs], "bogus", out, None, None, None, False)
    assert out.read_text() == "old\n"
    monkeypatch.setattr(export_mod, "PROGRESS_MIN_BYTES", 0)  # draw the bar on tiny input
    st = export([], "sft", out, None, None, None, True, log_dir=logs)
    assert st.rows == 4 and len(rows(out)) == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["sft.jsonl"]  # no temp left


def test_sessions_spanning_rotated_files(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    lg = Logger(d, rotate_mib=1 / 1024, flush_interval=0.01)
    for i in range(6):
        rollout(lg, f"r{i}", "same task", f"f{i}.py", float(i))
        lg.flush()
        time.sleep(0.001)
    lg.close()
    assert len(list_log_files(d)) > 2
    out = tmp_path / "g.jsonl"
    st = export([d], "grpo", out, None, None, None, False)
    assert st.sessions == 6 and st.rows == 1 and len(rows(out)[0]["completions"]) == 6


def test_reward_precedence_verifier_user_auto(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    lg = Logger(d)
    rec = Recorder(lg, "p")
    rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
    call(
        rec,
        1,
        0,
        [SYSTEM, {"role": "user", "content": "go"}],
        {"role": "assistant", "content": "ok"},
    )
    rec.reward(1.0, "verifier", turn=None)  # session-level, most trusted
    rec.reward(-0.1, "auto", turn=1)  # a later tool-error penalty does not override it
    rec.reward(0.0, "user", turn=1)
    rec.session_end("done")
    lg.close()
    out = tmp_path / "o.jsonl"
    assert export([d], "sft", out, None, 1.0, None, False).rows == 1


def test_json_protocol_call_blobs_response_format(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    lg = Logger(d)
    rec = Recorder(lg, "j")
    rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
    call_branch = {
        "properties": {
            "tool": {"const": "read_file"},
            "arguments": TOOLS[0]["function"]["parameters"],
        }
    }
    answer_branch = {"properties": {"final": {"type": "string"}}}
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "step", "schema": {"anyOf": [call_branch, answer_branch]}},
    }
    request = {
        "model": "smol",
        "messages": [SYSTEM, {"role": "user", "content": "read a.py"}],
        "response_format": schema,
        "logprobs": True,
    }
    reply = tool_call("a.py")
    rec.model_call(
        turn=1,
        step=0,
        reply=chat_result(
            request=request,
            message=reply,
            raw_content='{"tool":"read_file","arguments":{"path":"a.py"}}',
            finish_reason="stop",
            usage=None,
            timings=None,
            logprobs=None,
            protocol="json",
        ),
    )
    rec.session_end("done")
    lg.close()
    raw = [orjson.loads(x) for x in list_log_files(d)[0].read_bytes().splitlines()]
    mc = next(r for r in raw if r["type"] == "model_call")
    assert "response_format" not in mc["request"] and "response_format" in mc["request_blobs"]
    assert mc["tokens_note"] == "requested but the server returned none"
    out = tmp_path / "o.jsonl"
    st = export([d], "sft", out, None, None, None, False)
    assert st.rows == 0 and not out.exists()  # the turn never answered: not a target
    assert "failed turns" in st.empty_reason("sft")
    export([d], "sft", out, None, None, None, False, wire=True, keep_all=True)
    r = rows(out)[0]
    assert "tools" not in r  # the prompt describes them in its own (wire) form
    assert r["messages"][-1] == {"role": "assistant", "content": mc["raw_content"]}
    export([d], "sft", out, keep_all=True)  # canonical: a call, and the tools offered
    r = rows(out)[0]
    assert r["tools"] == TOOLS and r["messages"][-1]["tool_calls"][0]["function"] == {
        "name": "read_file",
        "arguments": {"path": "a.py"},
    }


def test_export_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    import tracemalloc

    d = tmp_path / "logs"
    lg = Logger(d, buffer_size=100_000)
    for i in range(150):
        rollout(lg, f"m{i}", f"task {i % 5}", f"file{i}.py" + "p" * 2000, float(i % 3))
    lg.close()
    size = sum(p.stat().st_size for p in list_log_files(d))
    tracemalloc.start()
    st = export([d], "sft", tmp_path / "o.jsonl", None, None, None, False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert st.rows == 150 and size > 2_000_000
    assert peak < size / 8, (peak, size)  # one session at a time, not the file


def thinking_logs(tmp_path: Path) -> Path:
    """Two rollouts of a thinking model: reasoning on every call."""
    d = tmp_path / "logs"
    lg = Logger(d)
    for i, (path, r) in enumerate([("a.py", 1.0), ("b.py", 0.0)]):
        rec = Recorder(lg, f"think{i}")
        rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
        msgs = [SYSTEM, {"role": "user", "content": "fix it"}]
        tc = tool_call(path)
        call(rec, 1, 0, msgs, tc, reasoning=f"I should read {path}.")
        msgs += [tc, {"role": "tool", "tool_call_id": "call_0", "content": "x"}]
        call(rec, 1, 1, msgs, {"role": "assistant", "content": "done"}, reasoning="It is fine.")
        rec.reward(r, "verifier")
        rec.session_end("done")
    lg.close()
    return d


def test_reasoning_is_logged_and_exported_where_the_format_allows(tmp_path: Path) -> None:
    from coder.log import read_sessions

    d = thinking_logs(tmp_path)
    s = next(read_sessions(list_log_files(d)))
    assert [c.reasoning for c in s.calls] == ["I should read a.py.", "It is fine."]
    out = tmp_path / "o.jsonl"
    assert export([d], "sft", out).rows == 2  # still one chained row per session
    msgs = rows(out)[0]["messages"]
    assert msgs[2]["reasoning_content"] == "I should read a.py." and "tool_calls" in msgs[2]
    assert msgs[4] == {"role": "assistant", "content": "done", "reasoning_content": "It is fine."}
    assert "reasoning_content" not in msgs[1]
    export([d], "openai", out)  # OpenAI's fine-tuning format has no field for it
    assert all("reasoning_content" not in m for m in rows(out)[0]["messages"])
    export([d], "grpo", out)
    [g] = rows(out)
    got = [c[0]["reasoning_content"] for c in g["completions"]]
    assert got == ["I should read a.py.", "I should read b.py."]
    export([d], "dpo", out)
    [p] = rows(out)
    assert p["chosen"][0]["reasoning_content"] == "I should read a.py."
    assert p["rejected"][0]["reasoning_content"] == "I should read b.py."


# ------------------------------------------------------------ json protocol


def json_rollout(lg: Logger, srv, sid: str, turns: list[list[str]], reward: float, **kw) -> list:
    """A json-protocol session through the real Client (so prompts are coder.llm's wire
    form), recorded the way the agent records it. Returns the ChatResults."""
    from coder.config import Sampling
    from coder.llm import Client
    from tests.scripted_server import stream_text

    rec = Recorder(lg, sid)
    rec.session_start(
        config={}, model={}, tools=TOOLS, workspace="/w", git_head=None, extra={"task_id": "j"}
    )
    client = Client(srv.base_url)
    msgs = [SYSTEM]
    results = []
    for turn, replies in enumerate(turns, 1):
        msgs.append({"role": "user", "content": "fix the bug" if turn == 1 else f"turn {turn}"})
        srv.enqueue(*[stream_text(r, logprobs=kw.get("logprobs", False)) for r in replies])
        for step in range(len(replies)):
            r = client.chat(msgs, TOOLS, sampling=Sampling(), protocol="json", **kw)
            rec.model_call(
                turn=turn,
                step=step,
                reply=chat_result(
                    request=r.request,
                    message=r.message,
                    raw_content=r.raw_content,
                    finish_reason=r.finish_reason,
                    usage=r.usage,
                    timings=r.timings,
                    logprobs=r.logprobs,
                    protocol=r.protocol,
                ),
            )
            results.append(r)
            msgs.append(r.message)
            for tc in r.tool_calls:
                msgs.append({"role": "tool", "tool_call_id": tc.id, "content": f"{tc.name} out"})
    rec.reward(reward, "verifier")
    rec.session_end("done")
    client.close()
    return results


READ_A = '{"tool": "read_file", "arguments": {"path": "a.py"}}'  # json.dumps spacing


def test_json_protocol_rows_are_the_wire_form_and_chain(tmp_path: Path) -> None:
    from tests.scripted_server import ScriptedServer

    d = tmp_path / "logs"
    lg = Logger(d)
    with ScriptedServer() as srv:
        turns = [[READ_A, '{"answer": "fixed"}'], ['{"answer": "you are welcome"}']]
        results = json_rollout(lg, srv, "j", turns, 1.0, logprobs=True)
    lg.close()
    assert results[0].tool_calls and results[0].message["tool_calls"]  # canonical: native form
    out = tmp_path / "o.jsonl"
    # canonical (the default): what the agent held, the tools as a key of their own
    assert export([d], "sft", out).rows == 1
    [row] = rows(out)
    call_msg = results[0].message
    assert row == {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "fix the bug"},
            trl(call_msg),
            {
                "role": "tool",
                "tool_call_id": call_msg["tool_calls"][0]["id"],
                "content": "read_file out",
            },
            {"role": "assistant", "content": "fixed"},
            {"role": "user", "content": "turn 2"},
            {"role": "assistant", "content": "you are welcome"},
        ],
        "tools": TOOLS,
    }
    assert export([d], "openai", out).rows == 1
    [orow] = rows(out)
    assert orow["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"path":"a.py"}'
    assert orow["tools"] == TOOLS and orow != row
    # --wire: the three steps as the server received them
    assert export([d], "sft", out, wire=True).rows == 1
    [row] = rows(out)
    assert set(row) == {"messages"}  # the tools are in the system text, not a tools key
    last = results[-1]
    assert row["messages"] == [
        *last.request["messages"],
        {"role": "assistant", "content": '{"answer": "you are welcome"}'},
    ]
    assert "# Tools" in row["messages"][0]["content"]
    assistant = [m for m in row["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in assistant] == [r.raw_content for r in results]
    assert not any("tool_calls" in m for m in row["messages"])
    assert export([d], "openai", out, wire=True).rows == 1
    [orow] = rows(out)
    assert orow == {"messages": row["messages"]}  # no tools, no parallel_tool_calls


def test_json_protocol_groups_are_raw_text_completions(tmp_path: Path) -> None:
    from tests.scripted_server import ScriptedServer

    d = tmp_path / "logs"
    lg = Logger(d)
    firsts = [READ_A, '{"tool": "read_file", "arguments": {"path": "b.py"}}', '{"answer": "no"}']
    with ScriptedServer() as srv:
        prompts = []
        for i, (first, reward) in enumerate(zip(firsts, [1.0, 0.0, 0.5], strict=True)):
            turn = [first, '{"answer": "done"}'] if "tool" in first else [first]
            prompts.append(json_rollout(lg, srv, f"r{i}", [turn], reward)[0].request["messages"])
    lg.close()
    out = tmp_path / "g.jsonl"
    assert export([d], "grpo", out, wire=True).rows == 1
    [g] = rows(out)
    assert "tools" not in g and g["prompt"] == prompts[0] == prompts[2]
    assert [c[0] for c in g["completions"]] == [{"role": "assistant", "content": f} for f in firsts]
    assert g["completions"][2] == [{"role": "assistant", "content": '{"answer": "no"}'}]
    assert g["rewards"] == [1.0, 0.0, 0.5]
    assert export([d], "dpo", out, wire=True).rows == 3
    for p in rows(out):
        assert "tools" not in p and p["prompt"] == prompts[0]
        assert p["chosen"][0]["content"] in firsts and p["rejected"][0]["content"] in firsts
        assert not any("tool_calls" in m for m in p["chosen"] + p["rejected"])
    # canonical: the system prompt without the tool list, calls as tool_calls, plain answers
    assert export([d], "grpo", out).rows == 1
    [g] = rows(out)
    assert g["tools"] == TOOLS and g["prompt"] == [
        SYSTEM,
        {"role": "user", "content": "fix the bug"},
    ]
    assert g["completions"][0][0]["tool_calls"][0]["function"]["arguments"] == {"path": "a.py"}
    assert g["completions"][2] == [{"role": "assistant", "content": "no"}]


def test_json_protocol_completion_is_the_sampled_text_and_chains_only_on_a_match(
    tmp_path: Path,
) -> None:
    d = tmp_path / "logs"
    lg = Logger(d)
    rec = Recorder(lg, "f")
    rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
    sampled = "```json\n" + READ_A  # the server strips the fence from the content
    wire = [SYSTEM, {"role": "user", "content": "go"}]
    for step, (raw, tokens) in enumerate([(READ_A, sampled), ('{"answer": "ok"}', None)]):
        rec.model_call(
            turn=1,
            step=step,
            reply=chat_result(
                request={"model": "smol", "messages": list(wire), "response_format": {"type": "x"}},
                message=tool_call("a.py") if step == 0 else {"role": "assistant"},
                raw_content=raw,
                finish_reason="stop",
                usage=None,
                timings=None,
                logprobs=[
                    {"id": 1, "token": tokens, "bytes": list(tokens.encode()), "logprob": -1.0}
                ]
                if tokens
                else None,
                protocol="json",
            ),
        )
        # coder.llm's wire form of the past call: raw_content, not the sampled text
        wire += [{"role": "assistant", "content": raw}, {"role": "user", "content": "Result"}]
    rec.reward(1.0, "verifier")
    rec.session_end("done")
    lg.close()
    out = tmp_path / "o.jsonl"
    # the turn's last reply has no content (an empty answer): a target only with --all
    assert export([d], "sft", out, wire=True).rows == 0
    # step 1's prompt does not hold the sampled text
    assert export([d], "sft", out, wire=True, keep_all=True).rows == 2
    first, second = rows(out)
    assert first["messages"][-1] == {"role": "assistant", "content": sampled}
    assert second["messages"][-1] == {"role": "assistant", "content": '{"answer": "ok"}'}
    assert second["messages"][2] == {"role": "assistant", "content": READ_A}  # as sent


def test_one_auto_reward_per_turn_puts_clean_successes_in_groups(tmp_path: Path) -> None:
    """The agent's auto reward: exactly one per turn (0.0 clean, -1.0 failed, -0.1
    per tool error). Clean answers join groups; a verifier or user still wins."""
    from coder.log import read_sessions

    d = tmp_path / "logs"
    lg = Logger(d)
    for sid, path, auto in [("clean", "a.py", 0.0), ("err", "b.py", -0.1), ("fail", "c.py", -1.0)]:
        rollout(lg, sid, "fix the bug", path, auto, source="auto", task_id="t")
    rollout(lg, "verified", "other task", "d.py", -1.0, source="auto", verdict=1.0)

    def two_turns(sid: str, user: float | None) -> None:
        rec = Recorder(lg, sid)
        rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
        msgs = [SYSTEM, {"role": "user", "content": "one"}]
        call(rec, 1, 0, msgs, {"role": "assistant", "content": "first"})
        rec.reward(0.0, "auto", turn=1)
        msgs += [{"role": "assistant", "content": "first"}, {"role": "user", "content": "two"}]
        call(rec, 2, 0, msgs, {"role": "assistant", "content": "second"})
        rec.reward(-1.0, "auto", turn=2)
        if user is not None:
            rec.reward(user, "user", turn=2)
        rec.session_end("exit")

    two_turns("multi", None)
    two_turns("judged", 0.5)
    lg.close()

    s = {x.session_id: x for x in read_sessions(list_log_files(d))}
    assert s["multi"].reward_for(1)["value"] == 0.0 and s["multi"].reward_for(2)["value"] == -1.0
    # a user verdict outranks the auto reward of its turn only; a verifier that of every turn
    assert s["judged"].reward_for(1)["value"] == 0.0 and s["judged"].reward_for(2)["value"] == 0.5
    assert s["verified"].reward_for(1)["source"] == "verifier"
    out = tmp_path / "o.jsonl"
    export([d], "grpo", out)
    [g] = [r for r in rows(out) if r["task_id"] == "t"]
    assert g["session_ids"] == ["clean", "err", "fail"] and g["rewards"] == [0.0, -0.1, -1.0]
    assert g["reward_sources"] == ["auto"] * 3
    export([d], "dpo", out)
    assert sum(r["task_id"] == "t" for r in rows(out)) == 3
    export([d], "sft", out, min_reward=0.0)
    # a conversation ends at its last turn that reaches the reward: "multi" at turn 1
    assert [r["messages"][-1]["content"] for r in rows(out)] == [
        "I read a.py.",
        "I read d.py.",
        "first",
        "second",
    ]


def test_no_paths_and_no_log_dir_is_an_error_not_a_guess(tmp_path: Path, monkeypatch) -> None:
    from coder.log import NoLogs

    cwd_logs = tmp_path / "logs"  # what export() used to fall back to
    lg = Logger(cwd_logs)
    rollout(lg, "s1", "fix", "a.py", 1.0)
    lg.close()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o.jsonl"
    with pytest.raises(NoLogs, match="no logs to read"):
        export([], "sft", out)
    with pytest.raises(NoLogs):
        export(None, "sft", out)
    assert not out.exists()
    assert export([], "sft", out, log_dir=cwd_logs).rows == 1  # named: read
