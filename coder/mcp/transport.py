"""The stdio transport: an MCP server as a child process in a process group of its own,
newline-delimited JSON-RPC over its stdin and stdout.

The SDK's own `stdio_client` never shows its process, and coder needs the process: to
register its group with the kill -9 watchdog, to see it die mid-session, and to stop the
whole group on the way out (as it does the llama server's). So this is that transport with
the process handed to `started` the moment it exists.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import anyio
import mcp_types
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from mcp.shared.message import SessionMessage

from coder.procs import group_alive, signal_group

EOF_GRACE = 1.0  # a stdio server should exit when its stdin closes
TERM_GRACE = 2.0  # then SIGTERM to its group, and SIGKILL to what is left


@contextlib.asynccontextmanager
async def stdio_transport(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    stderr: IO[Any],
    started: Callable[[Process], None],
) -> AsyncIterator[tuple[Any, Any]]:
    """Yield the (read, write) streams an `mcp.Client` takes; the process group is gone
    when this exits, however it exits."""
    process = await anyio.open_process(
        argv, env=env, cwd=cwd, stderr=stderr, start_new_session=True
    )
    started(process)
    to_session, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, from_session = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_stdout() -> None:
        assert process.stdout is not None
        buffer = ""
        async with to_session:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                async for chunk in TextReceiveStream(process.stdout, errors="replace"):
                    *lines, buffer = (buffer + chunk).split("\n")
                    for line in lines:
                        if line.strip():
                            await to_session.send(_parse(line))

    async def write_stdin() -> None:
        assert process.stdin is not None
        async with from_session:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async for message in from_session:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((data + "\n").encode())

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stdout)
            tg.start_soon(write_stdin)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await stop_process(process)


def _parse(line: str) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # the session reports it; a stray print() must not end it
        return exc


async def stop_process(process: Process) -> None:
    """Close stdin (the MCP way to ask a stdio server to exit), then SIGTERM and SIGKILL
    the group: what the server started goes too."""
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        if process.stdin is not None:
            await process.stdin.aclose()
    await _wait(lambda: process.returncode is not None, EOF_GRACE)
    pgid = process.pid
    if group_alive(pgid):
        signal_group(pgid, signal.SIGTERM)
        await _wait(lambda: not group_alive(pgid), TERM_GRACE)
        signal_group(pgid, signal.SIGKILL)
    await _wait(lambda: process.returncode is not None, TERM_GRACE)
    for stream in (process.stdout, process.stdin):
        if stream is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await stream.aclose()


async def _wait(done: Callable[[], bool], timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        while not done():
            await anyio.sleep(0.01)
    return done()
