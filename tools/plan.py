"""update_plan: the model keeps its plan's checklist (coder/plan.py) up to date.

Not registered: the agent offers it only while the conversation has a plan with
unfinished steps (`/plan`, `-q --plan`), because a small model picks worse among more
tools and the default set must stay as it is.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from ..plan import PlanError, update
from .declare import declared
from .output import ToolError
from .registry import ToolContext


class PlanStep(TypedDict):
    step: str
    status: Literal["pending", "in_progress", "completed"]


def update_plan(ctx: ToolContext, plan: list[PlanStep]) -> str:
    """Update your plan's checklist: send every step, in order, each with its status
    (pending, in_progress or completed).

    Args:
      plan: all the steps of the plan, each {"step": TEXT, "status": STATUS}
    """
    if ctx.plan is None:
        raise ToolError("there is no plan to update (the user starts one with /plan)")
    try:
        return update(ctx.plan, plan)
    except PlanError as exc:
        raise ToolError(str(exc)) from None


UPDATE_PLAN = declared(update_plan)
