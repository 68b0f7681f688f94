"""The MCP servers of one coder: one asyncio loop in a background thread owns every
session (the SDK is async), and plain methods let the agent's threads use them.

Each server is one task on that loop: spawn, handshake, list its tools, then watch the
process until coder stops it or it dies. A server that fails to start or dies is reported
through `notify` and offers no tools from then on; the session goes on without it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from coder.config.schema import McpServerConfig
from coder.procs import group_alive, signal_group

CLOSE_TIMEOUT = 6.0  # the servers' own shutdown (stdin EOF, SIGTERM, SIGKILL) takes at most ~5 s


class State(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"  # never became ready
    DIED = "died"  # was ready, then exited or broke the connection
    STOPPED = "stopped"  # coder stopped it


@dataclass(frozen=True)
class RemoteTool:
    """A tool as its server lists it."""

    name: str
    description: str
    input_schema: dict


class McpCallError(Exception):
    """A call that got no result: the server is not ready, died, or took too long."""


@dataclass
class Server:
    """One configured server and what coder knows of it now."""

    name: str
    spec: McpServerConfig
    state: State = State.STARTING
    tools: list[RemoteTool] = field(default_factory=list)
    pid: int | None = None
    error: str | None = None
    log_path: Path | None = None
    log_start: int = 0  # where this session's lines begin in the (appended) log
    client: Any = None  # mcp.Client while ready
    process: Any = None  # anyio Process
    stop: asyncio.Event | None = None
    done: concurrent.futures.Future | None = None


class McpHost:
    """Start with `start()`, wait with `wait_started()`, call tools with `call()`, end
    with `close()` (idempotent; every server's process group is gone afterwards)."""

    def __init__(
        self,
        specs: dict[str, McpServerConfig],
        cwd: Path,
        log_dir: Path | None,
        notify: Callable[[str], None],
    ) -> None:
        self.servers = {name: Server(name, spec) for name, spec in specs.items()}
        self.cwd = cwd
        self.log_dir = log_dir
        self.notify = notify
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="mcp", daemon=True)
        self._closed = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the agent's side

    def start(self) -> None:
        self._thread.start()
        for server in self.servers.values():
            server.done = asyncio.run_coroutine_threadsafe(self._serve(server), self._loop)

    def wait_started(self, timeout: float | None = None) -> None:
        """Until no server is starting (each has its own startup_timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(s.state == State.STARTING for s in self.servers.values()):
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def ready(self) -> list[Server]:
        return [s for s in self.servers.values() if s.state == State.READY]

    def call(
        self,
        server: str,
        tool: str,
        arguments: dict,
        cancel: threading.Event | None = None,
    ) -> Any:
        """The server's CallToolResult; McpCallError when there is none. Ctrl-C (or
        `cancel`) abandons the call."""
        srv = self.servers[server]
        if srv.state != State.READY or srv.client is None:
            raise McpCallError(_unavailable(srv))
        future = asyncio.run_coroutine_threadsafe(self._call(srv, tool, arguments), self._loop)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    future.cancel()
                    raise McpCallError(f"{tool} on MCP server '{server}' was interrupted")
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    return future.result(0.05)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop every server and the loop. Whatever does not stop in time is killed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._thread.is_alive():
            return
        for server in self.servers.values():
            if server.state == State.STARTING and server.done is not None:
                server.done.cancel()  # a handshake need not finish to be abandoned
            elif server.stop is not None:
                self._loop.call_soon_threadsafe(server.stop.set)
        futures = [s.done for s in self.servers.values() if s.done is not None]
        concurrent.futures.wait(futures, timeout=CLOSE_TIMEOUT)
        for server in self.servers.values():  # a wedged loop must not leave orphans
            if server.pid is not None and group_alive(server.pid):
                signal_group(server.pid, 9)
            _forget(server.pid)
        for future in futures:
            future.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2.0)

    # ------------------------------------------------------------ the loop's side

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        with contextlib.suppress(Exception):  # tasks cancelled by close(); let them unwind
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _serve(self, srv: Server) -> None:
        srv.stop = asyncio.Event()
        if self._closed:
            srv.state = State.STOPPED
            return
        stderr = self._stderr(srv)
        try:
            await self._session(srv, stderr)
        except Exception as exc:  # the session goes on without this server
            self._lost(srv, _describe(exc))
        finally:
            srv.client = None
            if srv.state in (State.STARTING, State.READY):
                srv.state = State.STOPPED
            _forget(srv.pid)
            if stderr is not None:
                stderr.close()

    async def _session(self, srv: Server, stderr: IO[Any] | None) -> None:
        import anyio
        from mcp import Client
        from mcp.client.stdio import get_default_environment

        from coder.mcp.transport import stdio_transport

        def started(process: Any) -> None:
            srv.process, srv.pid = process, process.pid
            _watch(process.pid)

        transport = stdio_transport(
            [srv.spec.command, *srv.spec.args],
            # the SDK's minimal environment (HOME, PATH, USER, ...): none of coder's keys
            env=get_default_environment() | srv.spec.env,
            cwd=self.cwd,
            stderr=stderr if stderr is not None else _devnull(),
            started=started,
        )
        client = Client(transport, read_timeout_seconds=srv.spec.timeout)
        # the deadline covers the handshake and the tool list, and is lifted once ready (a
        # scope around the whole `async with`: the client's own scopes must nest in it)
        with anyio.CancelScope(deadline=anyio.current_time() + srv.spec.startup_timeout) as scope:
            async with client:
                srv.tools = await _list_tools(client)
                scope.deadline = math.inf
                srv.client = client
                srv.state = State.READY
                try:
                    assert srv.stop is not None
                    while not srv.stop.is_set() and srv.process.returncode is None:
                        with anyio.move_on_after(0.1):
                            await srv.stop.wait()
                finally:
                    srv.client = None
                if not srv.stop.is_set():
                    self._lost(srv, f"exited with code {srv.process.returncode}")
        if scope.cancelled_caught and srv.state == State.STARTING:
            raise TimeoutError(
                f"not ready after {srv.spec.startup_timeout:g} s "
                f"(mcp.servers.{srv.name}.startup_timeout)"
            )

    async def _call(self, srv: Server, tool: str, arguments: dict) -> Any:
        import anyio

        client = srv.client
        if client is None:
            raise McpCallError(_unavailable(srv))
        try:
            with anyio.fail_after(srv.spec.timeout):
                return await client.call_tool(tool, arguments)
        except TimeoutError:
            raise McpCallError(
                f"{tool} on MCP server '{srv.name}' gave no result in {srv.spec.timeout:g} s "
                f"(mcp.servers.{srv.name}.timeout)"
            ) from None
        except McpCallError:
            raise
        except Exception as exc:
            await asyncio.sleep(0.05)  # a dead server's exit shows in a moment
            if srv.process is not None and srv.process.returncode is not None:
                self._lost(srv, f"exited with code {srv.process.returncode}")
            raise McpCallError(
                f"{tool} on MCP server '{srv.name}' failed: {_describe(exc)}"
            ) from None

    def _lost(self, srv: Server, why: str) -> None:
        """Report a server that failed or died, once; its tools leave the next request."""
        if srv.state in (State.FAILED, State.DIED, State.STOPPED) or self._closed:
            return
        was_ready = srv.state == State.READY
        srv.state = State.DIED if was_ready else State.FAILED
        srv.error = why
        tail = "" if was_ready else _log_tail(srv.log_path, srv.log_start)
        where = f"; its log: {srv.log_path}" if srv.log_path else ""
        verb = "died" if was_ready else "did not start"
        self.notify(
            f"MCP server '{srv.name}' {verb} ({why}){': ' + tail if tail else ''}; "
            f"its tools are withdrawn{where}"
        )

    def _stderr(self, srv: Server) -> IO[Any] | None:
        if self.log_dir is None:
            return None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            srv.log_path = self.log_dir / f"mcp-{srv.name}.log"
            stream = srv.log_path.open("ab")
            srv.log_start = stream.tell()
            return stream
        except OSError:
            srv.log_path = None
            return None


async def _list_tools(client: Any) -> list[RemoteTool]:
    out: list[RemoteTool] = []
    cursor = None
    for _ in range(100):  # pages; a server that never stops paging is cut off
        page = await client.list_tools(cursor=cursor)
        out += [
            RemoteTool(t.name, t.description or t.title or "", dict(t.input_schema or {}))
            for t in page.tools
        ]
        cursor = page.next_cursor
        if not cursor:
            break
    return out


def _unavailable(srv: Server) -> str:
    said = {State.STARTING: "is still starting", State.STOPPED: "was stopped"}
    why = said.get(srv.state, f"{srv.state}" + (f" ({srv.error})" if srv.error else ""))
    return f"MCP server '{srv.name}' {why}: its tools are not available"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename}"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_tail(path: Path | None, start: int, lines: int = 3) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(start, f.tell() - 2000))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


def _devnull() -> IO[Any]:
    import subprocess

    return subprocess.DEVNULL  # type: ignore[return-value]


def _watch(pgid: int) -> None:
    """The kill -9 watchdog stops the group if coder dies without running any code."""
    from coder.tools import shell

    if shell.WATCHDOG is not None:
        shell.WATCHDOG.watch(pgid)


def _forget(pgid: int | None) -> None:
    from coder.tools import shell

    if pgid is not None and shell.WATCHDOG is not None:
        shell.WATCHDOG.forget(pgid)
