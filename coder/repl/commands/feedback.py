"""The session's numbers, its log as training data: /stats, /export, /good, /bad, /reward."""

from __future__ import annotations

import math
from pathlib import Path

from coder.chat import Stop
from coder.context import InUse

# stops where the model produced something worth a /good, /bad or /reward
RATABLE_STOPS = frozenset(
    (
        Stop.ANSWER,
        Stop.TRUNCATED,
        Stop.MAX_STEPS,
        Stop.REPEATED_CALL,
        Stop.INVALID_TOOL_CALL,
        Stop.EMPTY_ANSWER,
    )
)


class FeedbackCommands:
    """The stats, export and rating commands of `Commands`."""

    def cmd_stats(self, arg: str) -> None:
        """/stats
        tokens, context, prompt-cache hit rate, log writer counters"""
        st, b = self.state.stats, self.agent.budget
        rate = st.cache_hit_rate
        log = self.rt.logger.stats()
        self._table(
            [
                ("turns", f"{st.turns} ({st.model_calls} model calls)"),
                ("tokens", f"{st.prompt_tokens} prompt, {st.completion_tokens} completion"),
                ("context", _context_line(b.in_use(self.agent.messages), b.n_ctx)),
                (
                    "prompt cache",
                    f"{rate:.0%} hit ({st.cache_n} cached, {st.prompt_n} evaluated)"
                    if rate is not None
                    else "no data yet",
                ),
                (
                    "log",
                    f"{log['written']} written, {log['queued']} queued, "
                    f"{log['dropped']} dropped, {log['errors']} errors",
                ),
                ("log file", str(log.get("file") or "-")),
                ("session", self.rt.recorder.session_id),
            ]
        )

    def cmd_export(self, arg: str) -> None:
        """/export [FORMAT [FILE]]
        write this session's log as training data (format sft|openai|grpo|dpo|tokens)"""
        from coder import export

        parts = arg.split()
        fmt = parts[0] if parts else "sft"
        if fmt not in export.FORMATS:
            self.say(f"unknown format {fmt!r}; one of {', '.join(export.FORMATS)}", "yellow")
            return
        sid = self.rt.recorder.session_id
        log_dir = Path(self.rt.logger.dir)
        exports = log_dir / "exports"  # not the workspace: the model would list the files
        name = f"coder-{sid[:8]}-{fmt}.jsonl"
        out = exports / name
        if len(parts) > 1:
            if parts[1] == "-":  # the REPL's screen is not a data stream
                self.say("/export writes a file; `coder export -o -` writes to stdout", "yellow")
                return
            out = Path(parts[1]).expanduser()
            if out.is_dir() or parts[1].endswith("/"):
                out = out / name
        self.rt.logger.flush()
        # the log files of log_dir itself: earlier exports kept in exports/ are not read
        stats = export.export(None, fmt, out, session=sid, log_dir=log_dir)
        if stats.rows == 0:  # export writes no file then (and leaves an old one alone)
            self.say(
                f"nothing to export: this session has no {fmt} rows yet (no file written): "
                f"{stats.empty_reason(fmt)}",
                "yellow",
            )
            return
        left = stats.summary()
        self.say(f"exported {stats.rows} {fmt} rows of this session to {out}", "green")
        if left:
            self.say(left, "dim")

    def complete_export(self) -> list[str]:
        from coder.export import FORMATS

        return list(FORMATS)

    def cmd_good(self, arg: str) -> None:
        """/good
        rate the last answer good (reward 1.0)"""
        self._reward(1.0, "/good")

    def cmd_bad(self, arg: str) -> None:
        """/bad
        rate the last answer bad (reward 0.0, like a failed --verify)"""
        self._reward(0.0, "/bad")

    def cmd_reward(self, arg: str) -> None:
        """/reward N
        give the last answer a reward N (e.g. 0.5)"""
        try:
            value = float(arg)
        except ValueError:
            self.say("usage: /reward N, a number such as 1, 0.5 or -1", "yellow")
            return
        if not math.isfinite(value):
            self.say("the reward must be a finite number", "yellow")
            return
        self._reward(value, f"/reward {arg}")

    def _reward(self, value: float, note: str) -> None:
        if self.agent.turn == 0:
            self.say("nothing to rate yet: ask something first", "yellow")
            return
        last = self.state.last_result
        if last is not None and last.stop not in RATABLE_STOPS:
            self.say(f"the last turn has no answer to rate (it ended: {last.stop})", "yellow")
            return
        self.rt.recorder.reward(value, "user", note=note, turn=self.agent.turn)
        self.say(f"reward {value:g} for turn {self.agent.turn}", "green")


def _context_line(used: InUse, n_ctx: int | None) -> str:
    """/stats' context row: the toolbar's figure (Budget.in_use), saying how it was got."""
    how = "in the last prompt" if used.measured else "estimated (no prompt measured yet)"
    return f"{used} of {n_ctx or '?'} tokens {how}"
