"""The loop against a scripted OpenAI-compatible server (real HTTP, real SSE)."""

from __future__ import annotations

import json

import pytest

from coder.agent import Agent, run_turn
from coder.config import Config
from coder.context import Budget, shed_context
from coder.llm import Client
from coder.log import Recorder
from coder.tools import ToolContext
from coder.tools.workspace import Workspace
from tests.scripted_server import (
    Drop,
    ScriptedServer,
    Status,
    Stream,
    final_chunks,
    stream_text,
    stream_tool_calls,
    text_chunks,
)


class ListLog:
    def __init__(self):
        self.records: list[dict] = []

    def log(self, record: dict) -> None:
        self.records.append(record)

    def types(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["type"] == kind]


class Events:
    """A Sink that remembers what the loop showed."""

    def __init__(self):
        self.texts, self.calls, self.results, self.notices = [], [], [], []

    def text(self, delta):
        self.texts.append(delta)

    def tool_call(self, call):
        self.calls.append(call)

    def tool_result(self, call, result):
        self.results.append(result)

    def notice(self, message):
        self.notices.append(message)

    def usage(self, usage):
        pass


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "README.md").write_text("first line\nsecond line\n")
    return Workspace(tmp_path)


def make_agent(srv, workspace, protocol="native", max_steps=6, log=None) -> Agent:
    cfg = Config()
    cfg.llm.tool_protocol = protocol
    cfg.agent.max_steps = max_steps
    recorder = Recorder(log) if log is not None else None
    if recorder:
        recorder.session_start(
            config={}, model={}, tools=[], workspace=str(workspace.root), git_head=None
        )
    client = Client(srv.base_url, retries=2, backoff=0.01)
    return Agent(
        client=client, config=cfg, tool_ctx=ToolContext(workspace=workspace), recorder=recorder
    )


def tool_messages(request) -> list[dict]:
    return [m for m in request.json["messages"] if m["role"] == "tool"]


def test_native_tool_call_runs_and_result_reaches_the_model(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.enqueue(
            stream_tool_calls([("read_file", '{"path": "README.md"}')]),
            stream_text("The first line is: first line"),
        )
        agent = make_agent(srv, workspace, log=log)
        events = Events()
        result = run_turn(agent, "Read README.md and tell me its first line", events)
        second = srv.chat_requests()[1]
    assert result.ok and result.steps == 2
    assert "first line" in result.answer
    assert [c.name for c in events.calls] == ["read_file"]
    assert "first line" in tool_messages(second)[0]["content"]
    assert [r["name"] for r in log.types("tool_result")] == ["read_file"]
    assert len(log.types("model_call")) == 2 and log.types("user_message")


def test_split_and_interleaved_tool_calls_both_run(workspace):
    (workspace.root / "b.txt").write_text("bee\n")
    with ScriptedServer() as srv:
        srv.enqueue(
            stream_tool_calls(
                [("read_file", '{"path": "README.md"}'), ("read_file", '{"path": "b.txt"}')],
                interleave=True,
                pieces=4,
            ),
            stream_text("done"),
        )
        agent = make_agent(srv, workspace)
        result = run_turn(agent, "read both", Events())
        outputs = [m["content"] for m in tool_messages(srv.chat_requests()[1])]
    assert result.ok
    assert len(outputs) == 2 and "first line" in outputs[0] and "bee" in outputs[1]


def test_json_protocol_call_becomes_a_normal_tool_call(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.enqueue(
            stream_text('{"tool": "read_file", "arguments": {"path": "README.md"}}'),
            stream_text('{"answer": "It says: first line"}'),
        )
        agent = make_agent(srv, workspace, protocol="json", log=log)
        events = Events()
        result = run_turn(agent, "Read README.md", events)
        first = srv.chat_requests()[0].json
        second = srv.chat_requests()[1].json
    assert result.ok and result.answer == "It says: first line"
    assert "grammar" in first and "response_format" not in first and "tools" not in first
    assert "first line" in json.dumps(second["messages"])  # the result reached the model
    assert agent.messages[2]["tool_calls"][0]["function"]["name"] == "read_file"
    assert log.types("model_call")[0]["protocol"] == "json"


def test_malformed_arguments_and_unknown_tool_come_back_as_errors(workspace):
    with ScriptedServer() as srv:
        srv.enqueue(
            stream_tool_calls([("read_file", '{"path": "README.md"')]),  # cut JSON
            stream_tool_calls([("launch_rockets", "{}")]),
            stream_text("sorry"),
        )
        agent = make_agent(srv, workspace)
        events = Events()
        result = run_turn(agent, "go", events)
    assert result.ok
    assert [r.is_error for r in events.results] == [True, True]
    assert "launch_rockets" in events.results[1].output


def test_tools_forever_stops_at_max_steps_with_a_clear_message(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.default = stream_tool_calls([("list_dir", "{}")])
        agent = make_agent(srv, workspace, max_steps=3, log=log)
        events = Events()
        result = run_turn(agent, "loop", events)
        calls = len(srv.chat_requests())
    assert result.stop == "max_steps" and not result.ok
    assert calls == 3
    assert any("agent.max_steps" in n for n in events.notices)
    assert any(r["source"] == "auto" and "max_steps" in r["note"] for r in log.types("reward"))


def test_repeated_identical_calls_get_a_note(workspace):
    with ScriptedServer() as srv:
        srv.enqueue(*[stream_tool_calls([("list_dir", "{}")]) for _ in range(3)], stream_text("ok"))
        agent = make_agent(srv, workspace)
        run_turn(agent, "loop", Events())
        last = tool_messages(srv.chat_requests()[-1])[-1]["content"]
    assert "3 times in a row" in last


def test_unparseable_json_reply_gets_one_format_reminder(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.enqueue(stream_text('{"tool": "read_file", "argu'), stream_text('{"tool": "read_f'))
        agent = make_agent(srv, workspace, protocol="json", log=log)
        events = Events()
        result = run_turn(agent, "read it", events)
        reminder = srv.chat_requests()[1].json["messages"][-1]["content"]
    assert result.stop == "invalid_tool_call"
    assert '"tool"' in reminder and "read_file" in reminder
    assert any("could not be parsed" in n for n in events.notices)
    assert any(r["source"] == "auto" for r in log.types("reward"))


def test_a_call_the_server_could_not_parse_is_corrected_not_an_error(workspace):
    from tests.test_llm import LLAMA_UNPARSED

    unparsed = Status(500, {"error": {"code": 500, "message": LLAMA_UNPARSED}})
    with ScriptedServer() as srv:
        srv.enqueue(unparsed, stream_text("It says hello."))
        agent = make_agent(srv, workspace)
        events = Events()
        result = run_turn(agent, "read it", events)
        reminder = srv.chat_requests()[1].json["messages"][-1]["content"]
    assert result.stop == "answer" and result.answer == "It says hello."
    assert reminder.startswith("Your tool call could not be read (the server could not parse")
    assert any("could not be parsed" in n for n in events.notices)


def test_stream_cut_midway_ends_the_turn_cleanly(workspace):
    with ScriptedServer() as srv:
        srv.enqueue(
            Stream(text_chunks(["Hello ", "wor", "ld"]) + final_chunks(), disconnect_after=2)
        )
        agent = make_agent(srv, workspace)
        result = run_turn(agent, "hi", Events())
    assert result.stop == "error" and result.error
    assert agent.messages[-1]["role"] == "assistant"


def test_503_then_success_is_retried(workspace):
    with ScriptedServer() as srv:
        srv.enqueue(
            Status(503, {"error": {"code": 503, "message": "Loading model"}}), stream_text("ready")
        )
        agent = make_agent(srv, workspace)
        result = run_turn(agent, "hi", Events())
    assert result.ok and result.answer == "ready"


def test_server_gone_is_an_error_result_not_a_crash(workspace):
    with ScriptedServer() as srv:
        srv.default = Drop()
        agent = make_agent(srv, workspace)
        result = run_turn(agent, "hi", Events())
        root = srv.root
    assert result.stop == "error" and root in result.error


def test_old_tool_output_is_shed_to_fit_the_context(workspace):
    (workspace.root / "big.txt").write_text("x" * 6000 + "\n")
    log = ListLog()
    with ScriptedServer() as srv:
        srv.props = {**srv.props, "default_generation_settings": {"n_ctx": 2048}}
        srv.enqueue(
            stream_tool_calls([("read_file", '{"path": "big.txt"}')]),
            stream_text("read it"),
            stream_text("second answer"),
        )
        agent = make_agent(srv, workspace, log=log)
        agent.config.llm.sampling.max_tokens = 256
        run_turn(agent, "read big.txt", Events())
        run_turn(agent, "now something else", Events())
        last = srv.chat_requests()[-1].json["messages"]
    system, latest = last[0], last[-1]
    assert system["role"] == "system" and latest["content"] == "now something else"
    sent = json.dumps(last)
    assert "x" * 6000 not in sent and ("[cut:" in sent or "[elided" in sent)
    assert log.types("compaction")


def test_shedding_keeps_system_and_request_and_fits_the_limit():
    budget = Budget()
    request = {"role": "user", "content": "the current request"}
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]},
        {"role": "tool", "tool_call_id": "a", "content": "o" * 4000},
        {"role": "assistant", "content": "old answer"},
        request,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "b"}]},
        {"role": "tool", "tool_call_id": "b", "content": "n" * 40000},  # this turn's, huge
        {"role": "user", "content": "Your tool call could not be read (a format hint)"},
    ]
    limit = 1500
    shed_context(messages, budget, limit, request)
    assert budget.estimate(messages) <= limit
    assert messages[0]["content"] == "sys" and request in messages
    assert "o" * 4000 not in json.dumps(messages)  # old output went first


def test_the_same_call_over_and_over_ends_the_turn_as_stuck(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.default = stream_tool_calls([("list_dir", "{}")])
        agent = make_agent(srv, workspace, max_steps=20, log=log)
        events = Events()
        result = run_turn(agent, "loop", events)
        calls = len(srv.chat_requests())
    assert result.stop == "repeated_call" and calls == 5
    assert any("5 times in a row" in n for n in events.notices)
    assert any("repeated" in r["note"] for r in log.types("reward"))


class CtrlCAtFirstTool(Events):
    def tool_call(self, call):
        super().tool_call(call)
        raise KeyboardInterrupt


def test_ctrl_c_mid_turn_leaves_every_call_answered(workspace):
    with ScriptedServer() as srv:
        srv.enqueue(
            stream_tool_calls([("list_dir", "{}"), ("read_file", '{"path": "README.md"}')]),
            stream_text("next turn works"),
        )
        agent = make_agent(srv, workspace)
        result = run_turn(agent, "two calls", CtrlCAtFirstTool())
        assert result.stop == "interrupted"
        calls = agent.messages[-3]["tool_calls"]
        results = agent.messages[-2:]
        assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
        assert all("not run" in r["content"] for r in results)
        # the history is valid: the next turn goes through
        assert run_turn(agent, "go on", Events()).ok


def test_a_message_too_long_for_the_context_is_refused_before_it_is_kept(workspace):
    with ScriptedServer() as srv:
        srv.props = {**srv.props, "default_generation_settings": {"n_ctx": 1024}}
        agent = make_agent(srv, workspace)
        before = list(agent.messages)
        result = run_turn(agent, "x " * 20000, Events())
        assert result.stop == "too_long" and "too long" in result.error
        assert agent.messages == before and srv.chat_requests() == []


def test_turn_result_carries_each_calls_usage_and_timings(workspace):
    with ScriptedServer() as srv:
        srv.enqueue(stream_tool_calls([("list_dir", "{}")]), stream_text("done"))
        result = run_turn(make_agent(srv, workspace), "go", Events())
    assert len(result.calls) == 2
    assert all(c["timings"]["prompt_n"] and c["usage"]["prompt_tokens"] for c in result.calls)


def test_json_answer_cut_at_max_tokens_is_shown_once_as_a_truncated_answer(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.enqueue(
            Stream(
                text_chunks(['{"answer": "Hello, this is a lo', "ng answer"])
                + final_chunks("length")
            )
        )
        agent = make_agent(srv, workspace, protocol="json", log=log)
        events = Events()
        result = run_turn(agent, "hi", events)
        requests = len(srv.chat_requests())
    assert requests == 1  # no retry: it was an answer, not a broken call
    assert result.stop == "truncated" and result.answer == "Hello, this is a long answer"
    assert "".join(events.texts) == result.answer  # streamed once
    assert any("max_tokens" in n for n in events.notices)
    assert [r["value"] for r in log.types("reward")] == [-0.5]


def test_empty_answer_is_not_a_clean_success(workspace):
    log = ListLog()
    with ScriptedServer() as srv:
        srv.enqueue(stream_text('{"answer": ""}'))
        result = run_turn(make_agent(srv, workspace, protocol="json", log=log), "1+1?", Events())
    assert result.stop == "empty_answer" and not result.ok
    assert [r["value"] for r in log.types("reward")] == [-1.0]


def test_an_interrupted_json_reply_leaves_no_invented_turn(workspace):
    cancel_after_first = Events()
    with ScriptedServer() as srv:
        # a half-written tool call, then the user presses Ctrl-C
        srv.enqueue(
            Stream(
                text_chunks(['{"tool": "write_file", "argu', 'ments": {"pa']) + final_chunks(),
                disconnect_after=1,
            )
        )
        srv.enqueue(stream_text('{"answer": "fresh"}'))
        agent = make_agent(srv, workspace, protocol="json")
        first = run_turn(agent, "write it", cancel_after_first)
        assert first.stop == "error"
        assert agent.messages[-1] == {"role": "user", "content": "write it"}  # nothing invented
        run_turn(agent, "again", Events())
        wire = srv.chat_requests()[-1].json["messages"]
    assert [m["role"] for m in wire] == ["system", "user", "user"]  # no assistant turn


def test_git_tools_are_offered_only_inside_a_repository(tmp_path):
    import subprocess

    from coder.runtime import offered_tools

    cfg = Config()
    outside = offered_tools(cfg, tmp_path)
    assert "read_file" in outside and not any(n.startswith("git_") for n in outside)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert offered_tools(cfg, tmp_path) is None  # everything
    cfg.agent.tools = ["git_status"]
    assert offered_tools(cfg, tmp_path / "nowhere") == ["git_status"]  # the user's choice stands


def test_server_warnings_for_forced_native_and_a_different_context():
    from coder.runtime import server_warnings

    cfg = Config()
    props = {
        "chat_template_caps": {"supports_tools": False},
        "default_generation_settings": {"n_ctx": 8192},
    }
    assert server_warnings(cfg, props, 8192) == []  # auto: json covers the missing tool support
    cfg.llm.tool_protocol = "native"
    props["default_generation_settings"]["n_ctx"] = 2048
    warnings = server_warnings(cfg, props, 2048)
    assert len(warnings) == 2 and "drops tools" in warnings[0] and "2048" in warnings[1]
