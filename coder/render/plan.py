"""The plan's checklist as a panel: when /plan makes it, on /plan, and after each
update_plan call (in place of that call's usual tool panel)."""

from __future__ import annotations

from typing import Any

from rich.panel import Panel
from rich.text import Text

from coder.plan import MARKS, Plan, PlanError, steps_from_json
from coder.render.panels import call_args

_STYLES = {"pending": "", "in_progress": "bold yellow", "completed": "green"}


def checklist(plan: Plan) -> Text:
    out = Text()
    for n, step in enumerate(plan.steps, 1):
        if n > 1:
            out.append("\n")
        out.append(f"{MARKS[step.status]} {n}. {step.text}", _STYLES[step.status])
    return out


def plan_panel(plan: Plan, note: str = "") -> Panel:
    """The checklist titled with its progress ("plan 2/5")."""
    title = Text(plan.progress(), style="bold")
    if note:
        title.append(f" · {note}", "dim")
    return Panel(
        checklist(plan),
        title=title,
        title_align="left",
        border_style="green" if not plan.open else "cyan",
        expand=False,
        padding=(0, 1),
    )


def update_panel(call: Any) -> Panel | None:
    """An update_plan call shown as the checklist it sets; None if its arguments are not
    a plan (the usual tool panel shows the error then)."""
    try:
        steps = steps_from_json(call_args(call).get("plan"))
    except PlanError:
        return None
    return plan_panel(Plan(steps), "update_plan")
