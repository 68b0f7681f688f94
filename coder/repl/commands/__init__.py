"""The slash commands. Each is one `cmd_<name>(arg)` method of `Commands`: its
docstring's first line is its usage, the second its /help line, and the
`complete_<name>()` beside it (if any) lists what its argument may be.

`Commands` (here: dispatch, /help) composes one class per group of commands, and
/help lists them in the order of its bases:

- saved_sessions.py  /save /load /sessions /delete /clear
- settings.py        /config
- model.py           /model /context /project /lora
- tools.py           /tools /mode /mcp
- feedback.py        /stats /export /good /bad /reward
- files.py           /undo /diff /add /drop /init
- conversation.py    /compact /plan
- leaving.py         /exit /quit
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from coder import agent as agent_mod
from coder import config as config_mod
from coder import sessions
from coder.agent import Agent
from coder.repl.commands.conversation import ConversationCommands
from coder.repl.commands.feedback import FeedbackCommands
from coder.repl.commands.files import FileCommands, session_diff
from coder.repl.commands.leaving import EXIT, LeavingCommands
from coder.repl.commands.model import ModelCommands, model_name
from coder.repl.commands.saved_sessions import SessionCommands
from coder.repl.commands.settings import SettingsCommands, config_keys
from coder.repl.commands.tools import ToolCommands
from coder.repl.state import ReplState
from coder.runtime import Runtime

__all__ = ["EXIT", "Commands", "config_keys", "model_name", "session_diff"]


class Commands(
    SessionCommands,
    SettingsCommands,
    ModelCommands,
    ToolCommands,
    FeedbackCommands,
    FileCommands,
    ConversationCommands,
    LeavingCommands,
):
    """Every slash command, on a runtime and a console (no prompt needed)."""

    def __init__(self, rt: Runtime, console: Console, state: ReplState | None = None) -> None:
        self.rt = rt
        self.cfg = rt.config
        self.out = console
        self.state = state if state is not None else ReplState()
        # how /plan runs a turn: the REPL sets its own (sink, Ctrl-C, autosave)
        self.run_turn: Callable[[str], agent_mod.TurnResult | None] = lambda text: (
            agent_mod.run_turn(self.agent, text, cancel=rt.cancel)
        )

    @classmethod
    def names(cls) -> list[str]:
        # this class's first, then each group's in the order of the bases: the /help order
        return [n[4:] for klass in cls.__mro__ for n in vars(klass) if n.startswith("cmd_")]

    def get(self, name: str) -> Callable[[str], Any] | None:
        return getattr(self, "cmd_" + name, None) if name in self.names() else None

    def usage(self, name: str) -> str:
        return inspect.cleandoc(getattr(self, "cmd_" + name).__doc__ or "").splitlines()[0]

    def help_line(self, name: str) -> str:
        lines = inspect.cleandoc(getattr(self, "cmd_" + name).__doc__ or "").splitlines()
        return lines[1] if len(lines) > 1 else ""

    def choices(self, name: str) -> list[str]:
        """What the argument of /name may be, for completion ([] when anything goes)."""
        complete = getattr(self, "complete_" + name, None) if name in self.names() else None
        return complete() if complete else []

    def run(self, name: str, arg: str) -> str | None:
        """Run /name arg; errors are reported, never raised. EXIT when the REPL should end."""
        fn = self.get(name.lower())
        if fn is None:
            close = difflib.get_close_matches(name.lower(), self.names(), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join('/' + c for c in close)}?" if close else ""
            self.say(f"unknown command /{name}{hint} (/help lists them)", "yellow")
            return None
        try:
            return fn(arg)
        except (sessions.SessionError, config_mod.ConfigError) as exc:
            self.say(str(exc), "red")
        except KeyboardInterrupt:
            self.say(f"/{name} interrupted", "yellow")
        except Exception as exc:  # a command must never take the REPL down
            self.say(f"/{name} failed: {type(exc).__name__}: {exc}", "red")
        return None

    # shorthands
    @property
    def agent(self) -> Agent:
        return self.rt.agent

    @property
    def sessions_dir(self) -> str:
        return self.cfg.repl.sessions_dir

    @property
    def workspace(self) -> str:
        return str(self.agent.tool_ctx.workspace.root)

    def say(self, message: str, style: str = "") -> None:
        self.out.print(Text(message, style=style), soft_wrap=True)

    def _table(self, rows: list[tuple[str, str]]) -> None:
        table = Table.grid(padding=(0, 2))
        for k, v in rows:
            table.add_row(Text(k, style="bold"), Text(v))
        self.out.print(table)

    # -- the commands, in /help order: this one, then the groups' ------------------

    def cmd_help(self, arg: str) -> None:
        """/help
        show the commands and keys"""
        self._table([(self.usage(name), self.help_line(name)) for name in self.names()])
        self.say(
            "Enter sends; Alt+Enter (or Esc then Enter) starts a new line; Tab completes "
            "commands and paths. Ctrl-C stops the answer or tool; Ctrl-C twice or Ctrl-D exits.",
            "dim",
        )
