"""The REPL in a real terminal (tmux) against the scripted server: what the terminal
shows while a turn runs. The reply waits until the test releases it, so typing happens
during the turn without racing a real model."""

from __future__ import annotations

import shutil
import threading

import pytest

from tests.scripted_server import stream_text, stream_tool_calls
from tests.test_tmux_e2e import Tmux, coder_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def held_reply(release: threading.Event, text: str):
    def reply(request):
        release.wait(120)
        return stream_text(text)

    return reply


def test_text_typed_during_a_turn_is_not_echoed_and_becomes_the_next_prompt(tmp_path, srv):
    release = threading.Event()
    srv.enqueue(held_reply(release, "the answer"))
    env = coder_env(
        tmp_path,
        CODER_BASE_URL=srv.base_url,
        CODER_LLM__AUTO_MANAGE="false",
        CODER_TOOL_PROTOCOL="native",
    )
    t = Tmux(tmp_path, env)
    try:
        t.wait_for(r"^>\s*$.*\| ctx")
        t.type("first question")
        shown = int(t.wait_for(r"thinking · (\d+)s").group(1))
        t.tmux("send-keys", "-t", "e2e", "-l", "typed ahead")
        t.tmux("send-keys", "-t", "e2e", "Enter")
        t.tmux("send-keys", "-t", "e2e", "-l", "and more")
        t.wait_for(rf"thinking · {shown + 2}s")  # redrawn since the keys reached the terminal
        during = t.screen()
        release.set()
        t.wait_for(r"the answer")
        t.wait_for(r"^> typed ahead\n\. and more\s*$")  # kept as the next prompt's text
        after = t.screen()
        assert len(srv.chat_requests()) == 1  # the Enter typed ahead sent nothing
        t.tmux("send-keys", "-t", "e2e", "C-c")  # drops the kept text
        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
    finally:
        release.set()
        t.close()
    assert "typed ahead" not in during and "and more" not in during
    turn = after.split("> first question", 1)[1].split("> typed ahead", 1)[0]
    assert "typed" not in turn and "more" not in turn and "thinking" not in turn


def test_a_y_typed_ahead_does_not_answer_the_approval_that_follows(tmp_path, srv):
    release = threading.Event()

    def held_call(request):
        release.wait(120)
        return stream_tool_calls([("run_shell", '{"command": "touch ran.txt"}')])

    srv.enqueue(held_call, stream_text("not run, then"))
    env = coder_env(
        tmp_path,
        CODER_BASE_URL=srv.base_url,
        CODER_LLM__AUTO_MANAGE="false",
        CODER_TOOL_PROTOCOL="native",
    )
    t = Tmux(tmp_path, env)
    try:
        t.wait_for(r"^>\s*$.*\| ctx")
        t.type("make a file")
        shown = int(t.wait_for(r"thinking · (\d+)s").group(1))
        t.type("y")  # meant as the next message
        t.wait_for(rf"thinking · {shown + 2}s")
        release.set()
        t.wait_for(r"run_shell wants to run.*^allow\?\s*$")  # asked, and waiting for an answer
        assert not (tmp_path / "ws" / "ran.txt").exists()
        t.type("n")
        t.wait_for(r"not run, then")
        t.wait_for(r"^> y\s*$")  # the typed-ahead text is the next prompt's
        t.tmux("send-keys", "-t", "e2e", "C-c")
        t.type("/exit")
        t.wait_for(r"^EXITED:0$", timeout=60)
    finally:
        release.set()
        t.close()
    assert not (tmp_path / "ws" / "ran.txt").exists()
    refused = srv.chat_requests()[1].json["messages"][-1]["content"]
    assert "not approved" in refused
