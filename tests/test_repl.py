"""The REPL driven through prompt-toolkit's pipe input, against the scripted server:
input, turns, approval and cancellation, completion. The slash commands are in
test_repl_commands.py."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory

from coder import sessions
from coder.agent import NOT_RUN, answer_unanswered_calls
from coder.config import Config
from coder.repl import ReplCompleter, open_history
from tests.repl_harness import (
    ALT_ENTER,
    CTRL_C,
    CTRL_D,
    PASTE_END,
    PASTE_START,
    repl_config,
    repl_session,
    user_texts,
)
from tests.scripted_server import (
    Stream,
    final_chunks,
    stream_text,
    stream_tool_calls,
    text_chunks,
)


@pytest.fixture
def cfg(tmp_path, srv) -> Config:
    return repl_config(tmp_path, srv.base_url)


# -- input ------------------------------------------------------------------------------


def test_a_question_streams_the_answer_and_exit_leaves(cfg, srv):
    srv.enqueue(stream_text("The answer is **42**."))
    with repl_session(cfg) as s:
        assert s.run("what is it?\r/exit\r") == 0
        assert "The answer is 42." in s.out
        assert user_texts(srv) == ["what is it?"]
        assert s.messages[-1] == {"role": "assistant", "content": "The answer is **42**."}
        assert "smollm" not in s.repl.toolbar() and "ctx 12/4096" in s.repl.toolbar()


def test_multiline_input_and_a_paste_arrive_whole(cfg, srv):
    srv.enqueue(stream_text("one"), stream_text("two"))
    pasted = "line 1\nline 2\r\nline 3"
    with repl_session(cfg) as s:
        keys = f"first{ALT_ENTER}second\r{PASTE_START}{pasted}{PASTE_END}\r{CTRL_D}"
        assert s.run(keys) == 0
    assert user_texts(srv) == ["first\nsecond", "line 1\nline 2\nline 3"]


def test_ctrl_d_ctrl_c_twice_and_ctrl_c_on_a_line(cfg, srv):
    with repl_session(cfg) as s:
        assert s.run(CTRL_D) == 0
        assert s.run(CTRL_C + CTRL_C) == 0
        assert "Ctrl-C again" in s.out
        # Ctrl-C drops a typed line (nothing sent); a command in between disarms the exit
        assert s.run("typed text" + CTRL_C + CTRL_C + "/help\r" + CTRL_C + "/exit\r") == 0
    assert srv.chat_requests() == []


def test_a_one_megabyte_paste_is_kept_not_sent_and_the_repl_goes_on(cfg, srv):
    srv.enqueue(stream_text("small answer"))
    big = ("x" * 99 + "\n") * 10_500  # about 1 MB
    with repl_session(cfg, history=open_history(cfg.repl.history_file, print)) as s:
        keys = f"{PASTE_START}{big}{PASTE_END}\rsmall question\r/exit\r"
        assert s.run(keys, timeout=60) == 0
        assert "not sent" in s.out and "small answer" in s.out
    assert user_texts(srv) == ["small question"]
    kept = list((Path(cfg.repl.history_file).parent / "unsent").iterdir())
    assert len(kept) == 1 and kept[0].read_text() == big
    history = Path(cfg.repl.history_file).read_text()
    assert "small question" in history and "x" * 99 not in history


def test_history_persists_between_runs(cfg, srv):
    srv.enqueue(stream_text("a"), stream_text("b"))
    for keys in ("first question\r/exit\r", "/help\r/exit\r"):
        with repl_session(cfg, history=open_history(cfg.repl.history_file, print)) as s:
            s.run(keys)
    strings = list(open_history(cfg.repl.history_file, print).load_history_strings())
    assert strings == ["/exit", "/help", "/exit", "first question"]  # newest first


def test_unwritable_history_falls_back_to_memory(tmp_path):
    (tmp_path / "file").write_text("x")
    notes = []
    history = open_history(str(tmp_path / "file" / "history"), notes.append)
    assert isinstance(history, InMemoryHistory) and "in memory" in notes[0]


# -- approval and cancellation ----------------------------------------------------------


@pytest.mark.parametrize("answer, ran", [("y", True), ("n", False)])
def test_shell_needs_a_yes(cfg, srv, answer, ran):
    shell = stream_tool_calls([("run_shell", '{"command": "echo hi-there"}')])
    srv.enqueue(shell, stream_text("done"))
    with repl_session(cfg) as s:
        s.run(f"run it\r{answer}\r/exit\r")
        assert "run_shell wants to run" in s.out and "echo hi-there" in s.out
    tool_msg = srv.chat_requests()[-1].json["messages"][-1]
    assert tool_msg["role"] == "tool"
    assert ("hi-there\n[exit code 0]" in tool_msg["content"]) is ran
    assert ("not approved" in tool_msg["content"]) is not ran


def test_ctrl_c_at_the_approval_refuses_and_ends_the_turn(cfg, srv):
    srv.enqueue(stream_tool_calls([("run_shell", '{"command": "echo no"}')]), stream_text("x"))
    with repl_session(cfg) as s:
        s.run(f"run it\r{CTRL_C}/exit\r")
        assert "interrupted" in s.out
        assert "not approved" in s.messages[-1]["content"]
        assert not s.repl.rt.cancel.is_set()
    assert len(srv.chat_requests()) == 1  # the model was not asked again


def test_a_notice_from_another_thread_shows_while_the_prompt_waits(cfg):
    with repl_session(cfg) as s:

        def later():
            time.sleep(0.3)
            s.repl.notify("llama-server is back")
            time.sleep(0.3)
            s.pipe.send_text("/exit\r")

        threading.Thread(target=later, daemon=True).start()
        assert s.repl.run() == 0
        assert "llama-server is back" in s.out


def _interrupt_when(condition, timeout: float = 20) -> threading.Thread:
    def run():
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_ctrl_c_stops_the_generation_and_the_next_turn_works(cfg, srv):
    slow = Stream(text_chunks(["word "] * 300) + final_chunks(), delay=0.02)  # 6 s in all
    srv.enqueue(slow, stream_text("second answer"))
    with repl_session(cfg) as s:
        _interrupt_when(lambda: s.repl.sink.streamed)
        start = time.monotonic()
        s.run("long one\rnext one\r/exit\r")
        assert time.monotonic() - start < 5
        assert "interrupted" in s.out and "second answer" in s.out
        partial = s.messages[2]["content"]
        assert partial.startswith("word") and len(partial) < 1500
        assert not s.repl.rt.cancel.is_set()
    assert user_texts(srv) == ["long one", "next one"]


def test_after_an_interrupted_reply_stats_and_the_toolbar_show_one_context_figure(cfg, srv):
    # no usage comes with an interrupted reply: both show the estimate, not 0 and ~N
    srv.enqueue(Stream(text_chunks(["word "] * 300) + final_chunks(), delay=0.02))
    with repl_session(cfg) as s:
        _interrupt_when(lambda: s.repl.sink.streamed)
        s.run("long one\r/stats\r/exit\r")
        assert "interrupted" in s.out
        shown = re.search(r"ctx (~\d+)/4096", s.repl.toolbar()).group(1)
        assert int(shown[1:]) > 0
        assert f"context {shown} of 4096 tokens estimated" in " ".join(s.out.split())


def test_ctrl_c_stops_a_running_tool(cfg, srv):
    cfg.tools.mode = "yes"
    calls = [("run_shell", '{"command": "sleep 30"}'), ("read_file", '{"path": "README.md"}')]
    srv.enqueue(stream_tool_calls(calls), stream_text("after"))
    with repl_session(cfg) as s:
        _interrupt_when(lambda: s.repl.sink.phase == "tool" and time.sleep(0.3) is None)
        start = time.monotonic()
        s.run("sleep\r/exit\r")
        assert time.monotonic() - start < 10
        assert "interrupted" in s.out
        tools = [m for m in s.messages if m["role"] == "tool"]
        assert "cancelled by the user" in tools[0]["content"]
        assert tools[1]["content"] == NOT_RUN  # the call that never ran is answered


def test_answer_unanswered_calls_fills_dangling_calls():
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}, {"id": "b"}]},
        {"role": "tool", "tool_call_id": "a", "content": "ok"},
        {"role": "user", "content": "next"},
    ]
    assert answer_unanswered_calls(msgs) == 1
    assert [m.get("tool_call_id") for m in msgs] == [None, None, "a", "b", None]
    assert answer_unanswered_calls(msgs) == 0


# -- completion -------------------------------------------------------------------------


def test_completion_of_commands_sessions_config_keys_and_paths(cfg):
    (Path(cfg.tools.workspace) / "src").mkdir()
    (Path(cfg.tools.workspace) / "src" / "main.py").write_text("")
    sessions.save(cfg.repl.sessions_dir, "alpha", [{"role": "user", "content": "x"}])
    with repl_session(cfg) as s:
        comp = ReplCompleter(s.repl.commands, s.repl.root)

        def texts(text: str) -> list[str]:
            event = CompleteEvent(completion_requested=True)
            return [c.text for c in comp.get_completions(Document(text), event)]

        assert texts("/he") == ["/help"]
        assert "/save" in texts("/s") and "/sessions" in texts("/s")
        assert texts("/load al") == ["alpha"]
        assert "llm.sampling.temperature" in texts("/config llm.sampling.t")
        assert texts("look at REA") == ["README.md"]
        assert texts("open src/m") == ["src/main.py"]
        assert texts("see ../") == []  # nothing outside the workspace


# -- conversations that survive /exit ----------------------------------------------------


def test_every_turn_is_saved_and_a_new_repl_continues_it(cfg, srv):
    srv.enqueue(stream_text("hello Ada"), stream_text("you are Ada"))
    with repl_session(cfg) as s:
        assert s.run("I am Ada\r/quit\r") == 0  # /quit is /exit
        name = s.repl.state.session_name
    [saved] = sessions.list_sessions(cfg.repl.sessions_dir)
    assert saved.name == name and name.startswith("ws-") and saved.messages == 2
    with repl_session(cfg) as s:
        s.repl.resume(None)  # coder -c
        assert f"loaded {name}: 2 messages" in s.out
        assert s.run("who am I?\r/exit\r") == 0
    assert user_texts(srv)[-1] == "who am I?"
    assert [
        m["content"] for m in srv.chat_requests()[-1].json["messages"] if m["role"] == "user"
    ] == [
        "I am Ada",
        "who am I?",
    ]
    [saved] = sessions.list_sessions(cfg.repl.sessions_dir)  # the same file, grown
    assert saved.name == name and saved.messages == 4


def test_resume_without_a_name_offers_this_workspaces_conversations(cfg, srv):
    ws = cfg.tools.workspace
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "older one"}]
    sessions.save(cfg.repl.sessions_dir, "a-old", msgs, workspace=str(Path(ws).resolve()))
    sessions.save(cfg.repl.sessions_dir, "b-elsewhere", msgs, workspace="/somewhere/else")
    with repl_session(cfg) as s:
        sender = threading.Thread(target=s.pipe.send_text, args=("\r",), daemon=True)
        sender.start()
        s.repl.resume("")  # --resume: Enter takes the first, this workspace's
        sender.join(10)
        assert "1. " in s.out and "a-old" in s.out and "[else]" in s.out
        assert "loaded a-old: 1 messages" in s.out


def test_bang_runs_the_users_command_and_the_model_sees_its_output(cfg, srv):
    srv.enqueue(stream_text("seen"))
    with repl_session(cfg) as s:
        assert s.run("!echo from-the-user; exit 3\rwhat did I run?\r/exit\r") == 0
        assert "from-the-user" in s.out and "exit code 3" in s.out
    sent = srv.chat_requests()[-1].json["messages"][-1]["content"]
    assert "the user ran `echo from-the-user; exit 3`" in sent and "from-the-user" in sent
    assert sent.endswith("what did I run?")


def test_diff_shows_what_the_agents_edits_changed_this_session(cfg, srv):
    new = '{"path": "README.md", "content": "hello\\nthere\\n"}'
    created = '{"path": "notes/new.txt", "content": "fresh\\n"}'
    srv.enqueue(
        stream_tool_calls([("write_file", new)]),
        stream_tool_calls([("write_file", created)]),
        stream_text("done"),
    )
    with repl_session(cfg) as s:
        assert s.run("/diff\redit it\r/diff\r/exit\r") == 0
        assert "the agent has changed no file this session" in s.out
        out = s.out.split("the agent has changed no file this session", 1)[1]
        assert "--- a/README.md" in out and "-world" in out and "+there" in out
        assert "--- /dev/null" in out and "+++ b/notes/new.txt" in out and "+fresh" in out


def test_always_allows_that_command_prefix_for_the_session_and_a_reason_reaches_the_model(cfg, srv):
    srv.enqueue(
        stream_tool_calls([("run_shell", '{"command": "echo one"}')]),
        stream_tool_calls([("run_shell", '{"command": "echo two"}')]),
        stream_tool_calls([("run_shell", '{"command": "echo three; echo four"}')]),
        stream_tool_calls([("run_shell", '{"command": "ls -la"}')]),
        stream_text("done"),
    )
    with repl_session(cfg) as s:
        s.run("go\ra\ry\rnot now, use read_file\r/exit\r")
        assert "[a]lways `echo` commands this session" in s.out
        results = [m["content"] for m in s.messages if m.get("role") == "tool"]
    assert "one" in results[0] and "two" in results[1]  # the second was not asked
    assert "three" in results[2]  # control characters: asked again (answered y)
    assert "not approved" in results[3] and "the user said: not now, use read_file" in results[3]
    assert s.out.count("wants to run") == 3


@pytest.mark.parametrize(
    "command, prefix",
    [
        ("pytest -q tests", "pytest"),
        ("git status", "git status"),
        ("make test", "make test"),
        ("echo one", "echo"),
        ("pytest; rm -rf ~", None),
        ("echo $(id)", None),
        ("cat x > y", None),
        ("FOO=1 make", None),
        ("a && b", None),
    ],
)
def test_what_always_covers(command, prefix):
    from coder.repl.approvals import command_prefix, covers

    assert command_prefix(command) == prefix
    assert not covers("pytest", "pytest -q | sh")
    assert covers("pytest", "pytest tests/x.py -k y")
    assert not covers("git status", "git push")


# -- context: @path, /add, /drop, /init, /compact --------------------------------------


def test_at_path_attaches_the_file_and_a_non_file_stays_text(cfg, srv):
    srv.enqueue(stream_text("seen"))
    with repl_session(cfg) as s:
        assert s.run("what is in @README.md? mail me@example.com\r/exit\r") == 0
    sent = srv.chat_requests()[-1].json["messages"][-1]["content"]
    assert sent.startswith("what is in @README.md? mail me@example.com")
    assert "[attached file: README.md]\n```\nhello\nworld\n```" in sent


def test_a_pinned_file_is_sent_again_only_when_it_changes(cfg, srv):
    srv.enqueue(stream_text("a"), stream_text("b"), stream_text("c"), stream_text("d"))
    readme = Path(cfg.tools.workspace) / "README.md"
    with repl_session(cfg) as s:
        s.run("/add README.md\rone\rtwo\r/exit\r")
        readme.write_text("hello\nchanged\n")
        s.run("three\r/drop\rfour\r/exit\r")
        assert "pinned README.md" in s.out and "unpinned README.md" in s.out
    sent = [r.json["messages"][-1]["content"] for r in srv.chat_requests()]
    assert "[pinned file, current content: README.md]" in sent[0] and "world" in sent[0]
    assert "pinned file" not in sent[1]  # unchanged: the history already has it
    assert "[pinned file, current content, changed: README.md]" in sent[2] and "changed" in sent[2]
    assert "pinned file" not in sent[3]
    # the earlier requests are a prefix of the later ones: the server's cache stays valid
    first, last = srv.chat_requests()[0].json["messages"], srv.chat_requests()[-1].json["messages"]
    assert last[: len(first)] == first


def test_add_refuses_a_path_outside_the_workspace(cfg, srv):
    with repl_session(cfg) as s:
        s.run("/add ../../etc/passwd\r/exit\r")
        assert "not pinned" in s.out and "outside" in s.out


def test_init_writes_agents_md_that_reaches_the_next_request(cfg, srv):
    ws = Path(cfg.tools.workspace)
    (ws / "pyproject.toml").write_text('[project]\nname = "demo"\n[tool.pytest.ini_options]\n')
    (ws / "tests").mkdir()
    srv.enqueue(stream_text("ok"))
    with repl_session(cfg) as s:
        s.run("/init\r/init\rhi\r/exit\r")
        assert "wrote" in s.out and "exists: edit it" in s.out
    text = (ws / "AGENTS.md").read_text()
    assert "## Commands" in text and "pytest" in text and "`tests/`" in text
    system = srv.chat_requests()[-1].json["messages"][0]["content"]
    assert "## Commands" in system and "From AGENTS.md" in system


def test_compact_replaces_the_history_with_the_models_summary(cfg, srv):
    srv.enqueue(
        stream_text("first answer " * 50),
        stream_text("second answer " * 50),
        stream_text("You asked two things; both answered."),
        stream_text("third"),
    )
    with repl_session(cfg) as s:
        s.run("first question\rsecond question\r/compact\rthird question\r/exit\r")
        assert "compact: a 36-character summary" in s.out
    ask = srv.chat_requests()[2].json
    assert ask["messages"][-1]["content"].startswith("Summarise our conversation")
    users = [m["content"] for m in srv.chat_requests()[-1].json["messages"] if m["role"] == "user"]
    assert users[0].startswith("[summary of our conversation so far]\nYou asked two things")
    assert users[1:] == ["second question", "third question"]


def test_compact_falls_back_to_shedding_when_the_summary_fails(cfg, srv):
    from tests.scripted_server import Status

    srv.enqueue(stream_text("a " * 300), stream_text("b"), Status(500))
    with repl_session(cfg) as s:
        s.run("one\rtwo\r/compact\r/exit\r")
        assert "the summary failed" in s.out and "older output shed instead" in s.out
