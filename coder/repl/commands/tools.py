"""What the model may call and what asks first: /tools, /mode, /mcp."""

from __future__ import annotations

from rich.text import Text

from coder import modes
from coder.tools import MODES
from coder.tools.permissions import DESCRIPTIONS


class ToolCommands:
    """The tool and permission-mode commands of `Commands`."""

    def cmd_tools(self, arg: str) -> None:
        """/tools
        list the tools the model can call"""
        asking = modes.asking(self.agent)
        rows = []
        for schema in self.agent.tools:
            name = schema["function"]["name"]
            desc = schema["function"].get("description") or ""  # short; cutting hits "e.g."
            rows.append((name, desc + (" [asks first]" if name in asking else "")))
        self._table(rows)
        self.say(f"{self.agent.tool_ctx.mode} mode (/mode shows what it offers and asks)", "dim")

    def cmd_mode(self, arg: str) -> None:
        """/mode [NAME]
        show the permission mode; NAME (read-only, ask, auto-edit, yes) switches this session to it"""
        if arg.strip():
            self._switch_mode(modes.check_mode(arg.strip()))
            return
        mode = self.agent.tool_ctx.mode
        asking = modes.asking(self.agent)
        self._table(
            [
                ("mode", f"{mode}: {DESCRIPTIONS[mode]}"),
                ("offered", f"{len(self.agent.tools)} tools (/tools lists them)"),
                ("ask first", ", ".join(asking) or "nothing"),
                ("modes", f"{', '.join(MODES)} (/mode NAME switches this session)"),
            ]
        )

    def complete_mode(self) -> list[str]:
        return list(MODES)

    def _switch_mode(self, mode: str) -> None:
        """/mode NAME, /config tools.mode NAME: switch, say what changed, tell the model."""
        change = modes.switch(self.agent, mode)
        first, *rest = change.lines()
        self.say(first, "green")
        for line in rest:
            self.say(line)
        if change.note:
            self.state.pending_notes.append(change.note)

    def cmd_mcp(self, arg: str) -> None:
        """/mcp
        the MCP servers (mcp.servers): state, process, tools"""
        host = self.rt.mcp
        if host is None:
            self.say("no MCP servers configured (mcp.servers in ~/.config/coder/config.yaml)")
            return
        from coder.mcp.tools import tool_name

        styles = {"ready": "green", "starting": "yellow", "stopped": "dim"}
        for server in host.servers.values():
            state = Text(str(server.state), style=styles.get(server.state, "red"))
            head = Text.assemble(
                (server.name, "bold"),
                "  ",
                state,
                f"  pid {server.pid}" if server.pid else "",
                f"  {'trusted' if server.spec.trusted else 'untrusted'}: "
                + modes.status(self.agent.tool_ctx.mode, "run", server.spec.trusted),
            )
            self.out.print(head)
            command = " ".join([server.spec.command, *server.spec.args])
            rows = [("command", command)]
            if server.error:
                rows.append(("error", server.error))
            if server.log_path:
                rows.append(("log", str(server.log_path)))
            if server.state == "ready":
                names = [tool_name(server.name, t.name) for t in server.tools]
                rows.append(("tools", ", ".join(names) or "none"))
            self._table([(f"  {k}", v) for k, v in rows])
