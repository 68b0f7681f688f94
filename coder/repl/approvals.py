"""The REPL's approval answers: y, n, a (always, for the session) or a reason to refuse.

"Always" for run_shell covers a command prefix: the program and, for programs like git,
make or npm, its subcommand (`pytest`, `git status`, `make test`; `git push` is not
`git status`). A command with shell
control characters (`;`, `&&`, `|`, `$(`, backquotes, redirections, newlines) is never
covered: `pytest; rm -rf ~` must not pass as `pytest`. For any other tool "always" covers
the tool.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_CONTROL = re.compile(r"[;&|<>`\n\r]|\$\(")
_SUBCOMMAND = re.compile(r"^[a-z][a-z0-9:_-]*$")
# programs whose first argument is a subcommand: "always" covers that subcommand only
_WITH_SUBCOMMANDS = frozenset(
    [
        "git",
        "make",
        "npm",
        "pnpm",
        "yarn",
        "bun",
        "deno",
        "cargo",
        "go",
        "uv",
        "pip",
        "poetry",
        "docker",
        "kubectl",
        "just",
        "npx",
    ]
)


def command_prefix(command: str) -> str | None:
    """What "always" would cover for `command`, or None when it may not be covered."""
    if _CONTROL.search(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or "=" in words[0]:  # VAR=value cmd: the variable changes what runs
        return None
    if words[0] in _WITH_SUBCOMMANDS and len(words) > 1 and _SUBCOMMAND.match(words[1]):
        return f"{words[0]} {words[1]}"
    return words[0]


def covers(prefix: str, command: str) -> bool:
    found = command_prefix(command)
    if found is None:
        return False
    return found == prefix or (" " not in prefix and found.split(" ")[0] == prefix)


@dataclass
class Approvals:
    """What the user allowed for the rest of the session."""

    tools: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)

    def allowed(self, tool: str, what: str) -> bool:
        if tool == "run_shell":
            return any(covers(p, what) for p in self.prefixes)
        return tool in self.tools

    def always_label(self, tool: str, what: str) -> str | None:
        """What [a]lways would allow, for the prompt; None: only y or n for this one."""
        if tool != "run_shell":
            return tool
        prefix = command_prefix(what)
        return f"`{prefix}` commands" if prefix else None

    def remember(self, tool: str, what: str) -> None:
        if tool == "run_shell":
            prefix = command_prefix(what)
            if prefix:
                self.prefixes.add(prefix)
        else:
            self.tools.add(tool)


def read_answer(answer: str) -> tuple[bool | str, bool]:
    """(the approve callback's value, whether to remember it) from what the user typed:
    y / yes, a / always, n / no / nothing; any other text refuses with that reason."""
    text = answer.strip()
    low = text.lower()
    if low in ("y", "yes"):
        return True, False
    if low in ("a", "always"):
        return True, True
    if low in ("", "n", "no"):
        return False, False
    return f"the user said: {text}", False
