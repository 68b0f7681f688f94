"""Turns: which calls a turn made, how it ended, whether it may be a training target."""

from __future__ import annotations

from dataclasses import dataclass

from coder.log import ModelCall, SessionLog


@dataclass
class Turn:
    number: int | None
    calls: list[ModelCall]
    stop: str  # a coder.chat.Stop value, or "unknown"
    reward: float | None
    source: str | None

    @property
    def failed(self) -> bool:
        """Not an answer, or judged below 0 by a verifier or the user. A tool error on
        the way to a good answer is not a failure (the auto reward only dips). /bad and a
        failing --verify score 0, which is not below 0: `--min-reward` leaves them out."""
        if self.stop != "answer":
            return True
        return self.source in ("user", "verifier") and (self.reward or 0.0) < 0


def session_turns(s: SessionLog) -> dict[int | None, Turn]:
    """The session's turns by number, each with its stop reason and reward."""
    by_turn: dict[int | None, list[ModelCall]] = {}
    for c in s.calls:
        by_turn.setdefault(c.turn, []).append(c)
    notes: dict[int | None, str] = {}
    for r in s.rewards:  # the agent's auto reward note starts with the turn's stop reason
        if r.get("source") == "auto" and isinstance(r.get("note"), str):
            notes[r.get("turn")] = r["note"].split(";", 1)[0].strip()
    out = {}
    for t, calls in by_turn.items():
        r = s.reward_for(t)
        value = float(r["value"]) if r else None
        out[t] = Turn(
            t, calls, notes.get(t) or _derived_stop(calls), value, (r or {}).get("source")
        )
    return out


def _derived_stop(calls: list[ModelCall]) -> str:
    """A turn's end read from its last call, for logs without the agent's auto reward."""
    last = calls[-1]
    if last.interrupted:
        return "interrupted"
    if not last.ok:
        return "error"
    if last.message.get("tool_calls"):
        return "unknown"  # ended after a call: max_steps, a repeat, or the log stops here
    if not (last.message.get("content") or "").strip():
        return "empty_answer"
    return "truncated" if last.finish_reason == "length" else "answer"
