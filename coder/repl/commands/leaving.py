"""/exit and /quit."""

from __future__ import annotations

EXIT = "exit"


class LeavingCommands:
    """The last commands of `Commands`: /exit and /quit."""

    def cmd_exit(self, arg: str) -> str:
        """/exit
        leave coder (Ctrl-D does too)"""
        return EXIT

    def cmd_quit(self, arg: str) -> str:
        """/quit
        leave coder (as /exit)"""
        return self.cmd_exit(arg)
