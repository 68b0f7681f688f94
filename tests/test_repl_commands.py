"""The slash commands: on a bare runtime, and typed into a REPL on a pipe."""

from __future__ import annotations

import io
import json
import os
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console

from coder import server as srv_mod
from coder import sessions
from coder.agent import Agent
from coder.config import Config
from coder.llm import Client
from coder.log import Logger, Recorder
from coder.repl import Commands
from coder.runtime import Notifier, Runtime
from coder.tools import ToolContext
from coder.tools.workspace import Workspace
from tests.repl_harness import CTRL_C, log_records, repl_config, repl_session, user_texts
from tests.scripted_server import (
    TIMINGS,
    Stream,
    final_chunks,
    stream_text,
    stream_tool_calls,
    text_chunks,
)


@pytest.fixture
def cfg(tmp_path, srv) -> Config:
    return repl_config(tmp_path, srv.base_url)


# -- slash commands ---------------------------------------------------------------------


def test_commands_need_no_server_and_no_prompt(tmp_path):
    cfg = Config()
    cfg.repl.sessions_dir = str(tmp_path / "sessions")
    (tmp_path / "ws").mkdir()
    url = "http://127.0.0.1:9/v1"  # nothing listens there; none of these commands asks it
    logger = Logger(tmp_path / "logs")
    recorder = Recorder(logger)
    client = Client(url)
    tool_ctx = ToolContext(workspace=Workspace(tmp_path / "ws"))
    agent = Agent(client=client, config=cfg, tool_ctx=tool_ctx, recorder=recorder)
    server = srv_mod.Server(srv_mod.Endpoint("127.0.0.1", 9, url), managed=False)
    rt = Runtime(cfg, logger, recorder, server, client, agent, threading.Event(), Notifier(print))
    console = Console(file=io.StringIO(), width=100, color_system=None)
    commands = Commands(rt, console)
    agent.messages.append({"role": "user", "content": "remember this"})
    try:
        for line in (
            "help",
            "save s1",
            "clear",
            "load s1",
            "sessions",
            "tools",
            "stats",
            "context",
            "undo",
            "good",
            "config llm.sampling.top_k 5",
            "config agent.tools [nope]",
            "lod",
        ):
            name, _, arg = line.partition(" ")
            assert commands.run(name, arg) is None
        assert commands.run("exit", "") == "exit"
    finally:
        client.close()
        logger.close()
    out = console.file.getvalue()
    assert "saved s1 (1 messages)" in out and "cleared (1 messages)" in out
    assert "loaded s1: 1 messages, 1 from you; last: remember this" in out
    assert commands.state.session_name == "s1" and agent.messages[1]["content"] == "remember this"
    assert "read_file" in out and "nothing to undo" in out and "nothing to rate yet" in out
    assert "llm.sampling.top_k = 5" in out and cfg.llm.sampling.top_k == 5
    assert "unknown tool 'nope'" in out and cfg.agent.tools is None
    assert "unknown command /lod; did you mean /load" in out
    # each command declares its usage, help line and completions in one place
    assert commands.choices("load") == ["s1"] and "llm.sampling.top_k" in commands.choices("config")
    for name in commands.names():
        assert commands.usage(name).split()[0] == "/" + name and commands.help_line(name)


def test_save_masks_the_configured_key_in_the_messages(tmp_path):
    """/save hands the config's key to the session file's masking: a key the user
    pasted into the conversation is not written to disk."""
    key = "sk-pasted-into-the-chat-777"
    cfg = Config()
    cfg.llm.api_key = key
    cfg.repl.sessions_dir = str(tmp_path / "sessions")
    (tmp_path / "ws").mkdir()
    url = "http://127.0.0.1:9/v1"
    logger = Logger(tmp_path / "logs")
    client = Client(url)
    agent = Agent(client, cfg, ToolContext(workspace=Workspace(tmp_path / "ws")), Recorder(logger))
    server = srv_mod.Server(srv_mod.Endpoint("127.0.0.1", 9, url), managed=False)
    rt = Runtime(
        cfg, logger, agent.recorder, server, client, agent, threading.Event(), Notifier(print)
    )
    agent.messages.append({"role": "user", "content": f"use the key {key}"})
    try:
        Commands(rt, Console(file=io.StringIO(), color_system=None)).run("save", "s1")
    finally:
        client.close()
        logger.close()
    text = (tmp_path / "sessions" / "s1.json").read_text()
    assert key not in text and "use the key [REDACTED]" in text


def test_unknown_command_suggests_the_closest(cfg):
    with repl_session(cfg) as s:
        s.run("/lod s1\r/xyzzy\r/exit\r")
        assert "unknown command /lod; did you mean /load" in s.out
        assert "unknown command /xyzzy (/help" in s.out


def test_help_lists_every_command_from_its_docstring(cfg):
    with repl_session(cfg) as s:
        s.run("/help\r/exit\r")
        names = "help save load sessions delete clear config model tools stats export good bad"
        for name in (names + " reward undo exit").split():
            assert f"/{name}" in s.out
        assert "load a saved conversation" in s.out


def test_save_clear_load_restores_the_history(cfg, srv):
    srv.enqueue(stream_text("first answer"))
    with repl_session(cfg) as s:
        s.run("remember this\r/save s1\r/exit\r")
        saved = [dict(m) for m in s.messages]
        assert len(saved) == 3
        s.run("/clear\r/exit\r")
        assert len(s.messages) == 1 and s.messages[0]["role"] == "system"
        s.run("/sessions\r/load s1\r/exit\r")
        assert s.messages == saved
        assert "loaded s1: 2 messages" in s.out and "remember this" in s.out
        notes = [r["note"] for r in log_records(cfg, s.repl.rt) if r["type"] == "compaction"]
        assert notes == ["clear", "load s1"]
        assert "s1" in s.repl.toolbar()
        s.run("/delete s1\r/load s1\r/exit\r")
        assert "deleted s1" in s.out and "no session named 's1'" in s.out


@pytest.mark.parametrize("width", [80, 120])
def test_sessions_keeps_names_and_dates_whole(cfg, width):
    name = "refactor-the-logger-and-the-export-pipeline"
    long_first = "please fix the flaky tests in the repl module and then the renderer " * 3
    sessions.save(cfg.repl.sessions_dir, name, [{"role": "user", "content": long_first}])
    sessions.save(cfg.repl.sessions_dir, "s2", [{"role": "user", "content": "short"}])
    with repl_session(cfg, width=width) as s:
        s.run("/sessions\r/exit\r")
        rows = [ln for ln in s.out.splitlines() if ln.startswith(name)]
    assert len(rows) == 1 and len(rows[0]) <= width
    assert re.search(r"\b\d{4}-\d\d-\d\d \d\d:\d\d\b", rows[0])
    if width == 120:  # at 80 no room is left for it
        assert "please fix" in rows[0] and rows[0].rstrip().endswith("…")


def test_load_of_a_corrupt_or_newer_file_changes_nothing(cfg, srv):
    srv.enqueue(stream_text("answer"))
    d = Path(cfg.repl.sessions_dir)
    d.mkdir(parents=True)
    (d / "torn.json").write_text('{"version": 1, "messages": [{"role": "user", "cont')
    (d / "future.json").write_text('{"version": 7, "messages": [{"role": "user"}]}')
    with repl_session(cfg) as s:
        s.run("hello\r/load torn\r/load future\r/load ../etc/passwd\r/exit\r")
        assert "corrupt or truncated" in s.out and "newer coder" in s.out
        assert "no path separators" in s.out
        assert [m["role"] for m in s.messages] == ["system", "user", "assistant"]


def test_save_into_an_unwritable_place_loses_nothing(cfg, srv, tmp_path):
    srv.enqueue(stream_text("answer"))
    (tmp_path / "blocker").write_text("a file, not a directory")
    cfg.repl.sessions_dir = str(tmp_path / "blocker" / "sessions")
    other = tmp_path / "elsewhere"
    with repl_session(cfg) as s:
        s.run(f"hello\r/save s1\r/config repl.sessions_dir {other}\r/save s1\r/exit\r")
        assert "cannot save session 's1'" in s.out and "Nothing was lost" in s.out
        assert len(s.messages) == 3
    assert len(sessions.load(other, "s1")["messages"]) == 3


def test_config_show_get_set(cfg, srv):
    srv.enqueue(stream_text("ok"))
    cfg.llm.api_key = "sk-secret-value-1234"
    with repl_session(cfg) as s:
        s.run(
            "/config\r/config llm.sampling.top_k\r/config llm.sampling.temperature 0.7\r"
            "/config tools.mode ask\r/config llm.nope 1\r/config llm.api_key\r"
            "hi\r/exit\r"
        )
        assert "sk-secret-value-1234" not in s.out
        assert "llm.sampling.temperature = 0.7" in s.out and "unknown key" in s.out
        assert s.repl.rt.agent.tool_ctx.mode == "ask" and "mode auto-edit -> ask" in s.out
    assert srv.chat_requests()[-1].json["temperature"] == 0.7


def test_config_values_are_yaml_and_agent_tools_are_checked(cfg, srv):
    srv.enqueue(stream_text("ok"))
    with repl_session(cfg) as s:
        s.run(
            "/config agent.tools [read_file]\r/config agent.tools read_file,list_dir\r"
            "/config agent.tools [read_file, nope]\r/config llm.sampling.top_p 5\r"
            "/config llm.server.alias 123\r/config agent.system_prompt null\rhi\r/exit\r"
        )
        assert "unknown tool 'nope' (known: " in s.out and "'llm.sampling.top_p' must be" in s.out
        assert cfg.agent.tools == ["read_file", "list_dir"]  # the bad values changed nothing
        assert s.repl.rt.agent.tool_names == ["read_file", "list_dir"]
        assert cfg.llm.sampling.top_p == 0.95 and cfg.llm.server.alias == "123"
        assert cfg.agent.system_prompt is None
        s.run("/config agent.tools [read_file]\r/exit\r")
        assert cfg.agent.tools == ["read_file"]
        lines = [ln for ln in s.out.splitlines() if ln.startswith("agent.tools = ")]
        assert len(lines) == 3 and not any("next start" in ln for ln in lines)  # applied now
        s.run("/config agent.tools null\r/config agent.max_steps 5\r/exit\r")
        names = s.repl.rt.agent.tool_names  # the default again: no git tools outside a repo
        assert "read_file" in names and "run_shell" in names and "git_status" not in names
    offered = [t["function"]["name"] for t in srv.chat_requests()[-1].json["tools"]]
    assert offered == ["read_file", "list_dir"]


def test_rewards_go_to_the_log(cfg, srv):
    srv.enqueue(stream_text("answer"))
    with repl_session(cfg) as s:
        s.run("/good\rquestion\r/good\r/bad\r/reward 0.5\r/reward lots\r/exit\r")
        assert "nothing to rate yet" in s.out and "usage: /reward N" in s.out
        records = log_records(cfg, s.repl.rt)
        rewards = [r for r in records if r["type"] == "reward" and r["source"] == "user"]
    got = [(r["value"], r["source"], r["turn"]) for r in rewards]
    assert got == [(1.0, "user", 1), (0.0, "user", 1), (0.5, "user", 1)]


def test_an_interrupted_turn_cannot_be_rated(cfg, srv):
    # Ctrl-C at the approval ends the turn; the model is not asked again, "x" answers "next"
    srv.enqueue(stream_tool_calls([("run_shell", '{"command": "echo no"}')]), stream_text("x"))
    with repl_session(cfg) as s:
        s.run(f"run it\r{CTRL_C}/good\r/bad\r/reward 0.5\rnext\r/good\r/exit\r")
        assert s.out.count("the last turn has no answer to rate") == 3
        records = log_records(cfg, s.repl.rt)
        rewards = [r for r in records if r["type"] == "reward" and r["source"] == "user"]
        assert s.repl.state.last_result.stop == "answer"
    assert [(r["value"], r["turn"]) for r in rewards] == [(1.0, 2)]


def test_empty_and_truncated_answers_are_marked(cfg, srv, monkeypatch):
    srv.enqueue(
        stream_text(""),
        stream_text("a long answer that was", finish_reason="length"),
        stream_text("cut again", finish_reason="length"),
    )
    with repl_session(cfg) as s:
        s.run("one\rtwo\r/exit\r")
        assert s.repl.state.last_result.stop == "truncated"
        assert "(empty answer)" in s.out and "a long answer that was" in s.out
        assert s.out.count("max_tokens") == 1  # one note, whoever writes it
        # without the agent's notice the REPL still says so
        monkeypatch.setattr(s.repl.sink, "notice", lambda message: None)
        s.run("three\r/exit\r")
        assert "cut again" in s.out and "(cut at llm.sampling.max_tokens)" in s.out


def test_stats_model_tools_and_toolbar_cache_rate(cfg, srv):
    timings = {**TIMINGS, "cache_n": 30, "prompt_n": 10}
    srv.enqueue(Stream(text_chunks("hi") + final_chunks(timings=timings)))
    with repl_session(cfg) as s:
        s.run("hello\r/stats\r/model\r/tools\r/exit\r")
        assert "75% hit (30 cached, 10 evaluated)" in s.out
        assert "dropped" in s.out and "read_file" in s.out and "4096" in s.out
        assert "cache 75%" in s.repl.toolbar()
        assert "seed null" in s.out and "None" not in s.out
        # whole descriptions: no cut at "e.g."
        assert 'ext filters files, e.g. "py"' in " ".join(s.out.split())
    with repl_session(cfg) as s:
        s.run(
            "/config llm.sampling.seed null\r/config logging.logprobs false\r"
            "/config agent.tools [read_file]\r/config llm.sampling.seed\r/exit\r"
        )
        assert "llm.sampling.seed = null" in s.out and "logging.logprobs = false" in s.out
        assert "agent.tools = [read_file]" in s.out and "None" not in s.out


def test_export_writes_this_session(cfg, srv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    srv.enqueue(stream_text("an answer"))
    with repl_session(cfg) as s:
        s.run("a question\r/export sft out.jsonl\r/export nope\r/export sft -\r/exit\r")
        assert "exported 1 sft rows" in s.out and "unknown format" in s.out
        assert "coder export -o -" in s.out
    assert not (tmp_path / "-").exists()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[0]["messages"][-1]["content"] == "an answer"


def test_export_defaults_to_the_log_dir_skips_empty_files_and_takes_a_directory(
    cfg, srv, tmp_path, monkeypatch
):
    monkeypatch.chdir(cfg.tools.workspace)
    srv.enqueue(stream_text("an answer"))
    (tmp_path / "outdir").mkdir()
    with repl_session(cfg) as s:
        outdir = tmp_path / "outdir"
        s.run(f"/export\ra question\r/export\r/export dpo\r/export sft {outdir}\r/export\r/exit\r")
        sid = s.repl.rt.recorder.session_id
        assert s.out.count("nothing to export") == 2 and "failed" not in s.out
    assert sorted(os.listdir(cfg.tools.workspace)) == ["README.md"]
    name = f"coder-{sid[:8]}-sft.jsonl"
    exported = Path(cfg.logging.dir) / "exports" / name
    assert sorted(os.listdir(exported.parent)) == [name]  # no empty dpo file
    assert len(exported.read_text().splitlines()) == 1
    assert len((tmp_path / "outdir" / name).read_text().splitlines()) == 1


def test_undo_reverts_the_edit_and_tells_the_model(cfg, srv):
    edit = json.dumps({"path": "README.md", "old_text": "world", "new_text": "there"})
    srv.enqueue(
        stream_tool_calls([("replace_in_file", edit)]), stream_text("edited"), stream_text("ok")
    )
    readme = Path(cfg.tools.workspace) / "README.md"
    with repl_session(cfg) as s:
        s.run("edit it\r/undo\r/undo\rnext\r/exit\r")
        assert "-world" in s.out and "+there" in s.out  # the diff panel
        assert "restored README.md" in s.out and "nothing to undo" in s.out
    assert readme.read_text() == "hello\nworld\n"
    assert user_texts(srv)[-1].startswith("[note: the user undid your last file edit")
