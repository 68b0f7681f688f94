"""MCP servers' tools for the model (`mcp.servers` in the config): `host` runs the servers
and their sessions on a loop of its own, `transport` is the stdio process, `tools` turns
their tools into coder tools. Nothing here is imported unless servers are configured: the
SDK alone takes over a second to import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coder.config.schema import Config
from coder.mcp.host import McpCallError, McpHost, RemoteTool, Server, State

__all__ = ["McpCallError", "McpHost", "RemoteTool", "Server", "State", "start_servers"]


def start_servers(
    cfg: Config, workspace: Path, log_dir: Path | None, notify: Callable[[str], None]
) -> McpHost | None:
    """Start every configured server in the background (None when there are none);
    `wait_started()` on the result waits for them."""
    if not cfg.mcp.servers:
        return None
    host = McpHost(cfg.mcp.servers, cwd=workspace, log_dir=log_dir, notify=notify)
    host.start()
    return host
