"""Eval reports: pass@1, pass@k, mean reward, steps, tokens and time, per task and
overall, for one or more variants (the base model, each adapter), side by side.

pass@k is the unbiased estimate 1 - C(n-c, k) / C(n, k) over a task's n scored
attempts with c passes (Chen et al. 2021), averaged over tasks. Attempts that could
not run (status error or interrupted) are counted, never scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from coder.rollout.runner import Outcome

REPORT_VERSION = 1


def pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    """The k of pass@k to report for n samples: 1, then 2, 5, 10, ... up to n."""
    return [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= n]


@dataclass
class TaskStats:
    task_id: str
    attempts: int  # scored ones
    passes: int
    errors: int
    pass_at: dict[int, float]
    mean_reward: float | None
    mean_steps: float
    mean_tokens: float
    mean_seconds: float

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["pass_at"] = {str(k): v for k, v in self.pass_at.items()}
        return d


def task_stats(task_id: str, outcomes: list[Outcome], samples: int) -> TaskStats:
    scored = [o for o in outcomes if o.complete]
    n, c = len(scored), sum(o.status == "passed" for o in scored)
    rewards = [o.reward for o in scored if o.reward is not None]
    return TaskStats(
        task_id=task_id,
        attempts=n,
        passes=c,
        errors=len(outcomes) - n,
        pass_at={k: pass_at_k(n, c, k) for k in ks_for(samples) if n >= k},
        mean_reward=_mean(rewards),
        mean_steps=_mean([o.steps for o in scored]) or 0.0,
        mean_tokens=_mean([o.completion_tokens for o in scored]) or 0.0,
        mean_seconds=_mean([o.duration_s for o in scored]) or 0.0,
    )


def variant_report(
    name: str, task_ids: list[str], outcomes: Iterable[Outcome], samples: int
) -> dict:
    by_task: dict[str, list[Outcome]] = {t: [] for t in task_ids}
    for o in outcomes:
        by_task.setdefault(o.task_id, []).append(o)
    tasks = [task_stats(t, by_task[t], samples) for t in task_ids]
    setup = [o for ts in by_task.values() for o in ts]
    scored = [t for t in tasks if t.attempts]
    overall = {
        "tasks": len(tasks),
        "scored_tasks": len(scored),
        "attempts": sum(t.attempts for t in tasks),
        "passes": sum(t.passes for t in tasks),
        "errors": sum(t.errors for t in tasks),
        "pass_at": {
            str(k): _mean([t.pass_at[k] for t in scored if k in t.pass_at]) for k in ks_for(samples)
        },
        "mean_reward": _mean([t.mean_reward for t in scored if t.mean_reward is not None]),
        "mean_steps": _mean([t.mean_steps for t in scored]),
        "mean_tokens": _mean([t.mean_tokens for t in scored]),
        "mean_seconds": _mean([t.mean_seconds for t in scored]),
    }
    return {
        "name": name,
        # how the model was asked: an arm is its weights, its template and its protocol
        "protocol": _one({o.protocol for o in setup if o.protocol}),
        "chat_template_hash": _one({o.chat_template_hash for o in setup if o.chat_template_hash}),
        "overall": overall,
        "tasks": {t.task_id: t.as_dict() for t in tasks},
    }


def _one(values: set) -> str | None:
    """The one value of a setting across attempts; several are listed, joined by commas."""
    return ",".join(sorted(values)) or None


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def render(reports: list[dict]) -> str:
    """Variants side by side: one column each, overall first, then per task pass@1."""
    names = [r["name"] for r in reports]
    rows: list[list[str]] = [["", *names]]
    ks = sorted({k for r in reports for k in r["overall"]["pass_at"]}, key=int)
    for k in ks:
        rows.append([f"pass@{k}", *(_pct(r["overall"]["pass_at"].get(k)) for r in reports)])
    rows.append(["protocol", *(r.get("protocol") or "-" for r in reports)])
    rows.append(["template", *((r.get("chat_template_hash") or "-")[:12] for r in reports)])
    for key, label, fmt in (
        ("mean_reward", "mean reward", "{:.3f}"),
        ("mean_steps", "steps", "{:.1f}"),
        ("mean_tokens", "tokens", "{:.0f}"),
        ("mean_seconds", "seconds", "{:.1f}"),
    ):
        rows.append([label, *(_fmt(r["overall"].get(key), fmt) for r in reports)])
    rows.append(
        [
            "attempts",
            *(f"{r['overall']['attempts']} (+{r['overall']['errors']} errors)" for r in reports),
        ]
    )
    task_ids = list(dict.fromkeys(t for r in reports for t in r["tasks"]))
    if task_ids:
        rows.append(["per task: pass@1", *([""] * len(reports))])
    for t in task_ids:
        cells = []
        for r in reports:
            s = r["tasks"].get(t)
            if not s or not s["attempts"]:
                cells.append("-" if not s or not s["errors"] else f"{s['errors']} errors")
            else:
                cells.append(f"{_pct(s['pass_at'].get('1'))} ({s['passes']}/{s['attempts']})")
        rows.append([f"  {t}", *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _fmt(v: float | None, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)
