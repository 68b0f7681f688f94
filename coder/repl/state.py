"""What the REPL keeps besides the agent's conversation: session totals and turn state."""

from __future__ import annotations

from dataclasses import dataclass, field

from coder.agent import TurnResult
from coder.repl.approvals import Approvals
from coder.repl.context_files import Pinned


@dataclass
class Stats:
    """Session totals for the toolbar and /stats, fed by every model call."""

    model_calls: int = 0
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_n: int = 0  # prompt tokens the server took from its cache
    prompt_n: int = 0  # prompt tokens it had to evaluate

    @property
    def cache_hit_rate(self) -> float | None:
        total = self.cache_n + self.prompt_n
        return self.cache_n / total if total else None

    def observe_call(self, usage: dict | None, timings: dict | None) -> None:
        self.model_calls += 1
        usage = usage or {}
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)
        if timings:
            self.cache_n += int(timings.get("cache_n") or 0)
            self.prompt_n += int(timings.get("prompt_n") or 0)


@dataclass
class ReplState:
    """Shared by the REPL's turns and its commands."""

    session_name: str | None = None  # saved as or loaded from; the toolbar shows it
    stats: Stats = field(default_factory=Stats)
    last_result: TurnResult | None = None  # of the last turn run
    pending_notes: list[str] = field(default_factory=list)  # go before the next request
    approvals: Approvals = field(default_factory=Approvals)  # "always" answers
    pinned: Pinned = field(default_factory=Pinned)  # /add: files the model sees as they are
