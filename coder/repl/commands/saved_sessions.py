"""/save, /load, /sessions, /delete: saved conversations; /clear: start over."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text

from coder import sessions
from coder.plan import plan_from_json


class SessionCommands:
    """The saved-conversation commands of `Commands`."""

    def cmd_save(self, arg: str) -> None:
        """/save [NAME]
        save the conversation (default name: the current one, else a timestamp)"""
        path = self.rt.save_conversation(arg or self.state.session_name)
        self.state.session_name = path.stem
        n = _counted(self.agent.messages)
        self.say(f"saved {path.stem} ({n} messages) to {path}", "green")

    def complete_save(self) -> list[str]:
        return [s.name for s in sessions.list_sessions(self.sessions_dir)]

    def cmd_load(self, arg: str) -> None:
        """/load NAME
        load a saved conversation in place of this one"""
        if not arg:
            self.say("usage: /load NAME (/sessions lists them)", "yellow")
            return
        data = sessions.load(self.sessions_dir, arg)  # raises before anything changes
        messages = sessions.conversation(data, self.agent.messages[0])
        dropped = len(self.agent.messages) - 1
        before = self.agent.budget.last_prompt_tokens
        self.agent.messages[:] = messages
        self.agent.tool_ctx.plan = plan_from_json(data.get("plan"))  # checked by load
        self.agent.budget.last_prompt_tokens = None
        name = self.state.session_name = data.get("name") or arg
        self._record_reset(dropped, before, f"load {name}")
        users = [m for m in messages if m.get("role") == "user"]
        last = users[-1].get("content") if users else ""
        last = last.strip().splitlines()[0][:80] if isinstance(last, str) and last.strip() else ""
        self.say(
            f"loaded {name}: {_counted(messages)} messages, {len(users)} from you"
            + (f"; last: {last}" if last else ""),
            "green",
        )
        saved = {t.get("function", {}).get("name") for t in data.get("tools") or []}
        now = {t["function"]["name"] for t in self.agent.tools}
        if saved and saved != now:
            self.say("note: it was saved with a different tool set", "yellow")

    complete_load = complete_save

    def cmd_sessions(self, arg: str) -> None:
        """/sessions
        list saved conversations"""
        found = sessions.list_sessions(self.sessions_dir, self.workspace)
        if not found:
            self.say(f"no saved sessions in {self.sessions_dir}", "dim")
            return
        # name and date stay whole (/load takes the name); the first message gets the rest
        name_w = max(4, *(len(s.name) for s in found))
        first_w = self.out.width - name_w - len("2025-01-01 00:00") - len("messages") - 3 * 4
        table = Table(box=None, padding=(0, 2), show_edge=False, pad_edge=False)
        table.add_column("name", style="bold", no_wrap=True, min_width=name_w)
        table.add_column("saved", no_wrap=True, min_width=16)
        table.add_column("messages", no_wrap=True, justify="right")
        if first_w >= 12:
            table.add_column("first message", no_wrap=True, overflow="ellipsis", max_width=first_w)
        for s in found:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated)) if s.updated else "?"
            first = Text(f"({s.error})", style="red") if s.error else Text(s.first_user[:500])
            if s.workspace and s.workspace != self.workspace and not s.error:
                first = Text.assemble((f"[{Path(s.workspace).name}] ", "dim"), first)
            cells = [s.name, when, str(s.messages) if not s.error else "-", first]
            table.add_row(*cells[: len(table.columns)])
        self.out.print(table)

    def cmd_delete(self, arg: str) -> None:
        """/delete NAME
        delete a saved conversation"""
        if not arg:
            self.say("usage: /delete NAME", "yellow")
            return
        path = sessions.delete(self.sessions_dir, arg)
        if self.state.session_name == path.stem:
            self.state.session_name = None
        self.say(f"deleted {path.stem}", "green")

    complete_delete = complete_save

    def cmd_clear(self, arg: str) -> None:
        """/clear
        start over: forget the conversation (the system prompt stays)"""
        dropped = len(self.agent.messages) - 1
        before = self.agent.budget.last_prompt_tokens
        self.agent.clear()
        self.agent.budget.last_prompt_tokens = None
        self.state.session_name = None
        self._record_reset(dropped, before, "clear")
        self.say(f"cleared ({dropped} messages)", "green")

    def _record_reset(self, dropped: int, tokens_before: int | None, note: str) -> None:
        self.rt.recorder.compaction(
            turn=self.agent.turn,
            dropped_messages=dropped,
            tokens_before=tokens_before,
            tokens_after=self.agent.budget.estimate(self.agent.messages),
            note=note,
        )


def _counted(messages: list[dict]) -> int:
    """Messages as /save, /load, /clear and /sessions count them: the system prompt not."""
    return sum(m.get("role") != "system" for m in messages)
