"""A small stdio MCP server for the tests and the benchmark (the SDK's MCPServer, ex-FastMCP).

    python tests/mcp_server.py [--fail] [--pidfile FILE] [--linger]

`--fail` exits before speaking MCP (a server that does not start); `--pidfile` writes
its pid (and with `--linger`, on a second line, the pid of a child it leaves sleeping in
its process group, which ignores stdin: only a group kill stops it).
"""

from __future__ import annotations

import os
import subprocess
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("coder-test")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason."""
    raise ToolError(reason)


def option(name: str) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


if __name__ == "__main__":
    if "--fail" in sys.argv:
        print("cannot start: --fail given", file=sys.stderr)
        sys.exit(3)
    pids = [os.getpid()]
    if "--linger" in sys.argv:
        child = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
        pids.append(child.pid)
    pidfile = option("--pidfile")
    if pidfile:
        with open(pidfile + ".tmp", "w") as f:
            f.write("\n".join(map(str, pids)) + "\n")
        os.replace(pidfile + ".tmp", pidfile)
    server.run("stdio")
