"""/plan and -q --plan: the planning turn, the checklist, update_plan, saving and logging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coder import sessions
from coder import tools as toolbox
from coder.agent import Agent
from coder.config import Config
from coder.plan import Plan, PlanError, Step, parse_steps, plan_from_json, update
from coder.tools import ToolContext
from coder.tools.workspace import Workspace
from tests import cli
from tests.repl_harness import CTRL_D, log_records, repl_config, repl_session
from tests.scripted_model import ScriptedModel
from tests.scripted_server import stream_text, stream_tool_calls


@pytest.mark.parametrize(
    ("reply", "steps"),
    [
        (
            "1. Read README.md\n2. Fix the typo\n3. Answer",
            ["Read README.md", "Fix the typo", "Answer"],
        ),
        ("Plan:\n1) **Read** it\n   details here\n2) Done.", ["Read it", "Done."]),
        ("Step 1: look\nStep 2: fix", ["look", "fix"]),
        ("**1.** look\n**2.** fix", ["look", "fix"]),
        ("- look around\n- fix it", ["look around", "fix it"]),
        ("I will read the file and then fix it.", []),
        ("", []),
    ],
)
def test_parse_steps_reads_numbered_lines_else_bullets(reply, steps):
    assert parse_steps(reply) == steps


def test_parse_steps_keeps_at_most_twelve():
    assert len(parse_steps("\n".join(f"{n}. step {n}" for n in range(1, 30)))) == 12


def test_update_replaces_the_steps_and_says_what_is_next():
    plan = Plan([Step("a"), Step("b"), Step("c")])
    said = update(
        plan,
        [
            {"step": "a", "status": "completed"},
            {"step": "b", "status": "in_progress"},
            {"step": "c", "status": "pending"},
        ],
    )
    assert plan.progress() == "plan 1/3" and plan.open
    assert said == "Plan updated: 1 of 3 steps completed. Next: 2. b"
    assert plan.checklist() == "[x] 1. a\n[~] 2. b\n[ ] 3. c"
    said = update(
        plan, [{"step": "a", "status": "completed"}, {"step": "b", "status": "completed"}]
    )
    assert not plan.open and plan.progress() == "plan 2/2" and "all 2 steps completed" in said
    with pytest.raises(PlanError, match="at least one step"):
        update(plan, [])
    with pytest.raises(PlanError, match="step 1 has no text"):
        update(plan, [{"step": " ", "status": "pending"}])
    assert plan.progress() == "plan 2/2"  # a refused update changes nothing
    assert plan_from_json(plan.to_json()) == plan and plan_from_json(None) is None


def agent_with(plan: Plan | None, tmp_path: Path) -> Agent:
    ctx = ToolContext(workspace=Workspace(tmp_path), plan=plan)
    return Agent(client=ScriptedModel([]), config=Config(), tool_ctx=ctx)


def names(agent: Agent) -> list[str]:
    return [t["function"]["name"] for t in agent.tools]


def test_update_plan_is_offered_only_while_the_plan_has_open_steps(tmp_path):
    agent = agent_with(None, tmp_path)
    default = names(agent)
    assert "update_plan" not in default and "update_plan" not in toolbox.REGISTRY
    agent.tool_ctx.plan = Plan([Step("a", "completed"), Step("b")])
    assert names(agent) == [*default, "update_plan"]
    # the call goes through dispatch like any tool: arguments checked against its schema
    bad = toolbox.dispatch(
        "update_plan",
        {"plan": [{"step": "a", "status": "done"}]},
        agent.tool_ctx,
        agent.callable_tools(),
    )
    assert bad.is_error and "must be one of" in bad.output
    ok = toolbox.dispatch(
        "update_plan",
        {"plan": [{"step": "a", "status": "completed"}, {"step": "b", "status": "completed"}]},
        agent.tool_ctx,
        agent.callable_tools(),
    )
    assert not ok.is_error and "all 2 steps completed" in ok.output
    assert names(agent) == default  # finished: no longer offered
    agent.tool_ctx.plan = Plan([Step("again")])
    agent.clear()  # /clear forgets the plan with the conversation
    assert agent.tool_ctx.plan is None and names(agent) == default


def tools_of(request) -> list[str]:
    return [t["function"]["name"] for t in request.json.get("tools") or []]


PLAN_REPLY = "1. Read README.md\n2. Say its first line"


def plan_update(*statuses: str) -> str:
    steps = ["Read README.md", "Say its first line"]
    return json.dumps(
        {"plan": [{"step": s, "status": x} for s, x in zip(steps, statuses, strict=True)]}
    )


def test_plan_in_the_repl_makes_a_checklist_the_model_updates(tmp_path, srv):
    cfg = repl_config(tmp_path, srv.base_url)
    srv.enqueue(
        stream_text(PLAN_REPLY),
        stream_tool_calls([("update_plan", plan_update("in_progress", "pending"))]),
        stream_tool_calls([("read_file", '{"path": "README.md"}')]),
        stream_tool_calls([("update_plan", plan_update("completed", "completed"))]),
        stream_text("It says hello."),
        stream_text("a later answer"),
    )
    with repl_session(cfg) as s:
        code = s.run("/plan say the first line of README.md\r/plan\rnext\r" + CTRL_D)
        plan = s.repl.rt.agent.tool_ctx.plan
        toolbar = s.repl.toolbar()
        records = log_records(cfg, s.repl.rt)
        session = s.repl.state.session_name
    assert code == 0
    requests = srv.chat_requests()
    assert len(requests) == 6
    # the plan is asked for with no tools offered, so the model writes it
    planning = requests[0].json
    assert tools_of(requests[0]) == [] and "numbered list" in planning["messages"][-1]["content"]
    assert "say the first line of README.md" in planning["messages"][-1]["content"]
    # then the work, with the checklist in the request and update_plan on offer
    work = requests[1].json["messages"][-1]["content"]
    assert "[ ] 1. Read README.md\n[ ] 2. Say its first line" in work
    assert "update_plan" in tools_of(requests[1]) and "read_file" in tools_of(requests[1])
    assert tools_of(requests[3])[-1] == "update_plan"  # still open until the last update
    assert "update_plan" not in tools_of(requests[4])  # every step completed: withdrawn
    assert "update_plan" not in tools_of(requests[5])
    # the model reads the short confirmation
    result = requests[2].json["messages"][-1]
    assert result["role"] == "tool" and result["content"].startswith("Plan updated: 0 of 2")
    assert plan is not None and plan.progress() == "plan 2/2" and "plan 2/2" in toolbar
    out = s.out
    assert "plan 0/2" in out and "[ ] 1. Read README.md" in out  # shown when made
    assert "[~] 1. Read README.md" in out  # after the first update
    assert "[x] 2. Say its first line" in out
    # logged like any tool
    results = [r for r in records if r["type"] == "tool_result" and r["name"] == "update_plan"]
    assert len(results) == 2 and not any(r["is_error"] for r in results)
    assert "all 2 steps completed" in results[1]["output"]
    # saved with the conversation, and back on /load
    data = sessions.load(cfg.repl.sessions_dir, session)
    assert data["plan"] == json.loads(plan_update("completed", "completed"))["plan"]
    with repl_session(cfg) as s2:
        s2.run(f"/load {session}\r/plan\r" + CTRL_D)
        assert s2.repl.rt.agent.tool_ctx.plan == plan
    assert "plan 2/2" in s2.out


def test_a_plan_without_steps_is_shown_and_the_work_goes_on_without_one(tmp_path, srv):
    cfg = repl_config(tmp_path, srv.base_url)
    srv.enqueue(stream_text("I will just read the file."), stream_text("It says hello."))
    with repl_session(cfg) as s:
        s.run("/plan read README.md\r" + CTRL_D)
        assert s.repl.rt.agent.tool_ctx.plan is None
    assert "I will just read the file." in s.out and "without a checklist" in s.out
    second = srv.chat_requests()[1]
    assert "update_plan" not in tools_of(second) and "read_file" in tools_of(second)
    assert "It says hello." in s.out


def test_a_session_with_a_broken_plan_is_refused_whole(tmp_path):
    sessions.save(tmp_path, "s", [{"role": "user", "content": "hi"}], plan=[{"step": "a"}])
    assert sessions.load(tmp_path, "s")["plan"] == [{"step": "a"}]  # status defaults
    path = sessions.save(tmp_path, "t", [{"role": "user", "content": "hi"}])
    data = json.loads(path.read_text())
    data["plan"] = [{"step": "a", "status": "maybe"}]
    path.write_text(json.dumps(data))
    with pytest.raises(sessions.SessionError, match="'plan': step 1: status"):
        sessions.load(tmp_path, "t")


def run_q(tmp_path: Path, base_url: str, *args: str, timeout: float = 60, **env: str):
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "README.md").write_text("first line\n")
    env = {"CODER_BASE_URL": base_url, "CODER_LOG_DIR": str(tmp_path / "logs"), **env}
    return cli.coder(*args, cwd=ws, env=env, timeout=timeout)


def test_q_plan_keeps_the_plan_off_stdout_and_reports_it(tmp_path, srv):
    srv.enqueue(
        stream_text(PLAN_REPLY),
        stream_tool_calls([("update_plan", plan_update("completed", "completed"))]),
        stream_text("first line"),
    )
    done = run_q(
        tmp_path,
        srv.base_url,
        "-q",
        "say the first line",
        "--plan",
        "--json",
        CODER_LLM__AUTO_MANAGE="false",
        CODER_TOOL_PROTOCOL="native",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["answer"] == "first line" and out["stop"] == "answer"
    assert [c["name"] for c in out["tool_calls"]] == ["update_plan"]
    assert out["plan"] == [
        {"step": "Read README.md", "status": "completed"},
        {"step": "Say its first line", "status": "completed"},
    ]
    assert out["usage"]["completion_tokens"] == 3 * 3  # the plan's turn counted too
    assert "[ ] 1. Read README.md" in done.stderr


def test_plan_without_q_is_a_usage_error(tmp_path):
    done = run_q(tmp_path, "http://127.0.0.1:9/v1", "--plan")
    assert done.returncode == 2 and "--plan go with -q TEXT" in done.stderr


def test_q_plan_runs_end_to_end_with_the_real_model(tmp_path, engine_url):
    done = run_q(
        tmp_path,
        engine_url,
        "-q",
        "Read README.md and tell me its first line",
        "--plan",
        "--json",
        timeout=600,
        CODER_LLM__SAMPLING__MAX_TOKENS="128",
        CODER_AGENT__MAX_STEPS="4",
        CODER_LLM__SAMPLING__TEMPERATURE="0",
    )
    assert done.returncode in (0, 1), done.stderr  # 1: the tiny model did not finish
    assert "Traceback" not in done.stderr
    out = json.loads(done.stdout)
    assert out["stop"] != "error", out
    records = [
        json.loads(line)
        for path in (tmp_path / "logs").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    users = [r["content"] for r in records if r["type"] == "user_message"]
    assert len(users) == 2 and "numbered list" in users[0]  # the plan's turn, then the work
    if out["plan"] is not None:  # SmolLM2 wrote numbered steps: the checklist is offered
        assert "plan:" in done.stderr


def test_plan_in_the_repl_runs_end_to_end_with_the_real_model(tmp_path, engine_url):
    cfg = repl_config(tmp_path, engine_url)
    cfg.llm.tool_protocol = "auto"  # SmolLM2's template has no tools: the json protocol
    cfg.llm.sampling.max_tokens = 128
    cfg.llm.sampling.temperature = 0.0
    cfg.agent.max_steps = 3
    with repl_session(cfg) as s:
        code = s.run("/plan Read README.md and tell me its first line\r" + CTRL_D, timeout=600)
        plan = s.repl.rt.agent.tool_ctx.plan
        records = log_records(cfg, s.repl.rt)
    assert code == 0 and "failed:" not in s.out  # a command that raises says "/plan failed"
    users = [r["content"] for r in records if r["type"] == "user_message"]
    assert len(users) == 2 and "numbered list" in users[0]
    calls = [r for r in records if r["type"] == "model_call"]
    assert calls and not any(c["error"] for c in calls), [c["error"] for c in calls]
    if plan is not None:  # the tiny model wrote steps: shown as a checklist
        assert plan.progress() in s.out
    else:
        assert "without a checklist" in s.out
