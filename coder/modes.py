"""The permission mode of a running session: `/mode`, `/config tools.mode`, the toolbar.

What each mode allows is coder.tools.permissions (one table, by each tool's declared
access); this module switches a session's mode and says what the switch changed for
the model: the tools its next request offers or no longer offers, and which ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coder.agent import Agent
from coder.config import ConfigError
from coder.tools import MODES, asks, decide
from coder.tools.permissions import DESCRIPTIONS

# what the model is told with the next message after a switch (its tools changed under it)
MODEL_NOTES = {
    "read-only": "only tools that read are offered now; describe a change instead of making it",
    "ask": "file edits and commands now wait for the user's approval",
    "auto-edit": "file edits apply at once now; commands wait for the user's approval",
    "yes": "file edits and commands now run without asking the user",
}


@dataclass
class ModeChange:
    old: str
    new: str
    withdrawn: list[str] = field(default_factory=list)  # offered before, not now
    added: list[str] = field(default_factory=list)  # offered now, not before
    asking: list[str] = field(default_factory=list)  # offered now, and they ask first

    @property
    def note(self) -> str | None:
        """For the model, with the next message; None when nothing changed."""
        if self.old == self.new:
            return None
        return f"the user switched the permission mode to {self.new}: {MODEL_NOTES[self.new]}"

    def lines(self) -> list[str]:
        """What the user is told: the mode, then what changed for the model."""
        if self.old == self.new:
            return [f"already in {self.new} mode: {DESCRIPTIONS[self.new]}"]
        out = [f"mode {self.old} -> {self.new}: {DESCRIPTIONS[self.new]}"]
        if self.withdrawn:
            out.append(f"no longer offered to the model: {', '.join(self.withdrawn)}")
        if self.added:
            out.append(f"offered to the model again: {', '.join(self.added)}")
        if self.asking:
            out.append(f"ask first: {', '.join(self.asking)}")
        return out


def check_mode(name: str, key: str = "/mode") -> str:
    """`name` if it is a mode; else a ConfigError naming `key` and the modes."""
    if name not in MODES:
        raise ConfigError(f"{key}: unknown mode {name!r} (one of {', '.join(MODES)})")
    return name


def switch(agent: Agent, mode: str) -> ModeChange:
    """Put the agent's session in `mode` (its config too): the next request offers what
    the mode allows. Returns what changed."""
    check_mode(mode)
    before = _offered(agent)
    old = agent.tool_ctx.mode
    agent.tool_ctx.mode = mode
    agent.config.tools.mode = mode  # type: ignore[assignment]
    after = _offered(agent)
    return ModeChange(
        old,
        mode,
        withdrawn=[n for n in before if n not in after],
        added=[n for n in after if n not in before],
        asking=asking(agent),
    )


def asking(agent: Agent) -> list[str]:
    """The offered tools that ask before they act in the agent's mode."""
    tools = agent.callable_tools()
    mode = agent.tool_ctx.mode
    return [n for n in _offered(agent) if n in tools and asks(mode, tools[n])]


def status(mode: str, access: str, trusted: bool = False) -> str:
    """A tool of `access` in `mode` (for /mcp): not offered, asks first, or runs at once."""
    decision = decide(mode, access)
    if decision == "refuse":
        return f"its tools are not offered ({mode} mode)"
    if decision == "ask" and not trusted:
        return f"its tools ask first ({mode} mode)"
    return f"its tools run at once ({mode} mode)"


def _offered(agent: Agent) -> list[str]:
    return [t["function"]["name"] for t in agent.tools]
