"""The loop's states against a scripted model: every way a turn ends, and the
whole trajectory it leaves behind."""

from __future__ import annotations

import pytest

from coder.agent import Agent, CallOutcome, run_turn
from coder.chat import Stop
from coder.config import Config
from coder.llm import LLMError
from coder.tools import ToolContext
from coder.tools.workspace import Workspace
from tests.scripted_model import ScriptedModel, answer, calls, reply


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "README.md").write_text("first line\nsecond line\n")
    return Workspace(tmp_path)


def agent_for(model: ScriptedModel, workspace: Workspace, max_steps: int = 4) -> Agent:
    cfg = Config()
    cfg.agent.max_steps = max_steps
    return Agent(client=model, config=cfg, tool_ctx=ToolContext(workspace=workspace))


def roles(messages: list[dict]) -> list[str]:
    return [m["role"] for m in messages]


def test_a_call_then_an_answer_leaves_the_whole_trajectory(workspace):
    model = ScriptedModel([calls(("read_file", {"path": "README.md"})), answer("first line")])
    agent = agent_for(model, workspace)
    result = run_turn(agent, "what is the first line?")
    assert result.stop is Stop.ANSWER and result.ok and result.answer == "first line"
    assert result.steps == 2
    assert result.tool_calls == [CallOutcome("read_file", '{"path": "README.md"}', False)]
    assert roles(agent.messages) == ["system", "user", "assistant", "tool", "assistant"]
    assert "first line" in agent.messages[3]["content"]
    # the second call saw the tool's result
    assert roles(model.seen[1]) == ["system", "user", "assistant", "tool"]


@pytest.mark.parametrize(
    "script, stop",
    [
        ([answer("cut", finish_reason="length")], Stop.TRUNCATED),
        ([answer("  ")], Stop.EMPTY_ANSWER),
        ([reply(content="partial", interrupted=True)], Stop.INTERRUPTED),
        ([reply(content="", error="connection lost")], Stop.ERROR),
        ([LLMError("down")], Stop.ERROR),
        ([reply(content="{oops", parse_error="bad")] * 2, Stop.INVALID_TOOL_CALL),
        ([calls(("list_dir", {}))] * 4, Stop.MAX_STEPS),
    ],
)
def test_every_way_a_turn_ends_has_its_stop(workspace, script, stop):
    result = run_turn(agent_for(ScriptedModel(list(script)), workspace), "go")
    assert result.stop is stop and not result.ok


def test_the_same_call_five_times_is_stuck(workspace):
    model = ScriptedModel([calls(("list_dir", {}))] * 5)
    result = run_turn(agent_for(model, workspace, max_steps=10), "go")
    assert result.stop is Stop.REPEATED_CALL and "5 times" in result.error


def test_one_unreadable_reply_gets_a_reminder_then_the_answer_counts(workspace):
    model = ScriptedModel([reply(content="{oops", parse_error="bad JSON"), answer("done")])
    agent = agent_for(model, workspace)
    result = run_turn(agent, "go")
    assert result.stop is Stop.ANSWER
    assert "could not be read (bad JSON)" in model.seen[1][-1]["content"]


def test_a_message_too_big_for_the_context_never_reaches_the_model(workspace):
    model = ScriptedModel([], n_ctx=512)
    agent = agent_for(model, workspace)
    result = run_turn(agent, "word " * 4000)
    assert result.stop is Stop.TOO_LONG and model.seen == [] and agent.turn == 0


def test_stop_reasons_read_as_their_text():
    assert Stop.ANSWER == "answer" and f"{Stop.MAX_STEPS}" == "max_steps"


def test_a_reply_repeating_one_call_200_times_runs_it_only_up_to_the_limit(workspace):
    model = ScriptedModel([calls(*[("list_dir", {})] * 200)])
    agent = agent_for(model, workspace, max_steps=3)
    result = run_turn(agent, "go")
    assert result.stop is Stop.REPEATED_CALL and len(result.tool_calls) == 5
    # every call of the reply still has a result (the rest: not run)
    results = [m for m in agent.messages if m["role"] == "tool"]
    assert len(results) == 200 and sum("[not run" in m["content"] for m in results) == 195
