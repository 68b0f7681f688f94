"""A plan: the model's numbered steps kept as a checklist (`/plan TEXT`, `-q --plan`).

The model is asked first for a short numbered plan (a turn without tools, so it writes
one instead of starting the work); `parse_steps` reads its reply into steps. The `Plan`
then lives in the conversation's `ToolContext`, where the update_plan tool
(tools/plan.py) replaces its steps and statuses, the agent offers that tool only while
the plan has unfinished steps, and sessions save it. Nothing of coder's is imported
at run time but `chat`, a leaf: the tools package imports this module.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coder.chat import Stop

if TYPE_CHECKING:
    from coder.agent import Agent, TurnResult

STATUSES = ("pending", "in_progress", "completed")
MAX_STEPS = 12
MAX_STEP_CHARS = 200
MARKS = {"pending": "[ ]", "in_progress": "[~]", "completed": "[x]"}

# The instruction after the task: SmolLM2-135M did the task instead when it came first,
# and wrote a numbered list this way (2 of 2 tasks at temperature 0; 1 of 2 before).
PLAN_PROMPT = (
    "Task: {task}\n\nDo not do the task yet. First write a plan for it: a numbered list "
    "(1., 2., ...) of at most 6 short steps, one line each, and nothing else."
)
WORK_PROMPT = (
    "Now do the task, following your plan:\n{checklist}\n\n"
    "When you start a step and when you finish one, call update_plan with every step and "
    "its status (pending, in_progress or completed). When all are completed, give your "
    "final answer.\n\nTask: {task}"
)
NO_PLAN_PROMPT = "Now do the task.\n\nTask: {task}"


class PlanError(Exception):
    """Steps that cannot make a plan; the message says what is wrong (the model reads it)."""


@dataclass
class Step:
    text: str
    status: str = "pending"


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(s.status == "completed" for s in self.steps)

    @property
    def open(self) -> bool:
        """Unfinished steps are left: update_plan is offered while this holds."""
        return any(s.status != "completed" for s in self.steps)

    def progress(self) -> str:
        """ "plan 2/5": completed steps of all (the REPL's toolbar)."""
        return f"plan {self.done}/{len(self.steps)}"

    def next_step(self) -> tuple[int, Step] | None:
        """The step in progress, else the first pending one (1-based number), or None."""
        for wanted in ("in_progress", "pending"):
            for n, step in enumerate(self.steps, 1):
                if step.status == wanted:
                    return n, step
        return None

    def checklist(self) -> str:
        """One line per step: `[x] 1. Read the tests` ([ ] pending, [~] in progress)."""
        return "\n".join(f"{MARKS[s.status]} {n}. {s.text}" for n, s in enumerate(self.steps, 1))

    def to_json(self) -> list[dict]:
        """The steps as update_plan takes them (and sessions save them)."""
        return [{"step": s.text, "status": s.status} for s in self.steps]


def steps_from_json(items: Any) -> list[Step]:
    """update_plan's `plan` argument (or a saved plan) -> steps; PlanError says what is wrong."""
    if not isinstance(items, list) or not items:
        raise PlanError("the plan needs at least one step")
    if len(items) > MAX_STEPS:
        raise PlanError(f"a plan has at most {MAX_STEPS} steps, got {len(items)}")
    steps = []
    for n, item in enumerate(items, 1):
        text = item.get("step") if isinstance(item, dict) else None
        status = item.get("status", "pending") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise PlanError(f"step {n} has no text (each step: {{'step': TEXT, 'status': ...}})")
        if status not in STATUSES:
            raise PlanError(f"step {n}: status must be one of {', '.join(STATUSES)}")
        steps.append(Step(" ".join(text.split())[:MAX_STEP_CHARS], status))
    return steps


def plan_from_json(items: Any) -> Plan | None:
    """A saved plan (None when there was none); PlanError when it is malformed."""
    return None if items is None else Plan(steps_from_json(items))


def update(plan: Plan, items: Any) -> str:
    """Replace the plan's steps with `items` (update_plan); the confirmation for the model."""
    plan.steps[:] = steps_from_json(items)
    if not plan.open:
        return f"Plan updated: all {len(plan.steps)} steps completed. Give your final answer."
    following = plan.next_step()
    nxt = f" Next: {following[0]}. {following[1].text}" if following else ""
    return f"Plan updated: {plan.done} of {len(plan.steps)} steps completed.{nxt}"


_NUMBERED = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?(?:step\s*)?(\d{1,2})\s*[.):]\**\s+(.+)$", re.I)
_BULLET = re.compile(r"^\s*[-*•]\s+(.+)$")


def parse_steps(text: str) -> list[str]:
    """The steps of a planning reply: its numbered lines (`1. ...`, `2) ...`, `Step 3: ...`),
    else its bullet lines; [] when it has neither. Markdown emphasis is taken off."""
    lines = (text or "").splitlines()
    found = [m.group(2) for m in map(_NUMBERED.match, lines) if m]
    if not found:
        found = [m.group(1) for m in map(_BULLET.match, lines) if m]
    steps = [" ".join(s.replace("**", "").replace("__", "").split()) for s in found]
    return [s[:MAX_STEP_CHARS] for s in steps if s][:MAX_STEPS]


@contextlib.contextmanager
def tools_withheld(agent: Agent) -> Iterator[None]:
    """No tools offered while inside (the planning request: a small model offered tools
    calls one instead of writing the plan)."""
    names, extra = agent.tool_names, agent.extra_tools
    agent.tool_names, agent.extra_tools = [], _none
    try:
        yield
    finally:
        agent.tool_names, agent.extra_tools = names, extra


def _none() -> list:
    return []


Run = Callable[[str], "TurnResult | None"]


def run_planned(
    agent: Agent,
    task: str,
    run: Run,
    show: Callable[[Plan | None, str], None],
    run_planning: Run | None = None,
) -> list[TurnResult]:
    """`/plan TASK`: ask for the plan (a turn without tools), keep it as the agent's
    checklist, `show(plan, reply)` it (plan None: the reply had no steps; the work goes on
    without a checklist), then run the work as a second turn with update_plan offered.

    `run(text)` runs one turn the caller's way (its sink, Ctrl-C, autosave); None means
    the text was not sent. `run_planning` runs the first one, if it must differ (-q keeps
    the plan's text off stdout). Returns the turns run, in order."""
    agent.tool_ctx.plan = None
    with tools_withheld(agent):
        first = (run_planning or run)(PLAN_PROMPT.format(task=task))
    if first is None:
        return []
    if first.stop not in (Stop.ANSWER, Stop.TRUNCATED):  # a plan cut short still has steps
        return [first]
    steps = parse_steps(first.answer)
    plan = Plan([Step(s) for s in steps]) if steps else None
    agent.tool_ctx.plan = plan
    show(plan, first.answer)
    if plan is None:
        work = run(NO_PLAN_PROMPT.format(task=task))
    else:
        work = run(WORK_PROMPT.format(checklist=plan.checklist(), task=task))
    return [first] if work is None else [first, work]
