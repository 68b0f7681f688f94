"""The model reworks the conversation: /compact summarises it, /plan plans a request."""

from __future__ import annotations

import dataclasses
from typing import Any

from coder.context import shed_context

COMPACT_PROMPT = (
    "Summarise our conversation so far for yourself, to go on with the work: what I asked, "
    "what you found and changed (files, functions, commands and their results), what is "
    "left to do. Be brief and concrete; no preamble."
)


class ConversationCommands:
    """The /compact and /plan commands of `Commands`."""

    def cmd_compact(self, arg: str) -> None:
        """/compact [FOCUS]
        summarise the conversation so far with the model; the system prompt and your last request stay"""
        agent = self.agent
        msgs = agent.messages
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        if len(users) < 2:
            self.say("nothing to compact: there is only one request so far", "dim")
            return
        last = users[-1]
        before = agent.budget.estimate(msgs)
        self.say("summarising the conversation...", "dim")
        summary = self._summary(msgs[:last], arg)
        if summary:
            kept = [
                msgs[0],
                {"role": "user", "content": f"[summary of our conversation so far]\n{summary}"},
                {"role": "assistant", "content": "Understood: I will go on from this summary."},
                *msgs[last:],
            ]
            dropped = len(msgs) - len(kept)
            note = f"compact: a {len(summary):,}-character summary"
        else:
            kept = list(msgs)
            shed_context(kept, agent.budget, max(1, before // 2), msgs[last])
            dropped = len(msgs) - len(kept)
            note = "compact: the summary failed, older output shed instead"
        msgs[:] = kept
        agent.budget.last_prompt_tokens = None
        after = agent.budget.estimate(msgs)
        self.rt.recorder.compaction(
            turn=agent.turn,
            dropped_messages=dropped,
            tokens_before=before,
            tokens_after=after,
            note=note,
        )
        self.say(f"{note}: ~{before:,} -> ~{after:,} tokens", "green" if summary else "yellow")

    def _summary(self, history: list[dict], focus: str) -> str | None:
        """The model's summary of `history`, or None when it gave none."""
        ask = COMPACT_PROMPT + (f" Focus on: {focus}" if focus else "")
        try:
            reply = self.rt.client.chat(
                [*history, {"role": "user", "content": ask}],
                [],
                sampling=dataclasses.replace(self.cfg.llm.sampling, temperature=0.2),
                protocol=self.cfg.llm.tool_protocol,
                cancel=self.rt.cancel,
            )
        except Exception as exc:  # LLMError, or anything the server did: shed instead
            self.say(f"the summary failed: {exc}", "yellow")
            return None
        text = (reply.message.get("content") or "").strip()
        if reply.error or reply.interrupted or not text:
            self.say(f"the summary failed: {reply.error or 'no text'}", "yellow")
            return None
        return text

    def cmd_plan(self, arg: str) -> None:
        """/plan [TEXT | --drop]
        plan TEXT first: numbered steps, then worked through as a checklist (no TEXT: show it)"""
        from coder import plan as plan_mod
        from coder.render import plan_panel

        if arg.strip() == "--drop":
            self.agent.tool_ctx.plan = None
            self.say("plan dropped (update_plan is no longer offered)", "green")
        elif arg.strip():
            plan_mod.run_planned(self.agent, arg.strip(), self.run_turn, self._show_plan)
        elif self.agent.tool_ctx.plan is None:
            self.say("no plan: /plan TEXT asks the model for one, then works through it", "dim")
        else:
            self.out.print(plan_panel(self.agent.tool_ctx.plan))

    def _show_plan(self, plan: Any, reply: str) -> None:
        from coder.render import plan_panel

        if plan is None:  # its text was shown as the turn's answer
            self.say("the reply has no numbered steps: going on without a checklist", "yellow")
        else:
            self.out.print(plan_panel(plan))
