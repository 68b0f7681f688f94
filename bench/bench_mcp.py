"""Benchmark: an MCP tool call through coder vs the same call straight through the SDK.

Two processes of tests/mcp_server.py. coder's side: `dispatch` of `mcp__calc__TOOL` (the
path the agent takes: argument checks, the hop to the MCP loop's thread, the result as
text, the cap). The baseline: `mcp.Client.call_tool` timed inside its own event loop (no
thread hop, no conversion). Batches interleaved so load hits both alike; medians.
Also the start: coder's host until the tools are listed vs the SDK client entered.
Target: coder's round trip <= 1.5x the SDK's for `add` (the smallest call: the worst case).

    python bench/bench_mcp.py [--runs N] [--batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coder.config.schema import McpServerConfig  # noqa: E402
from coder.mcp import McpHost  # noqa: E402
from coder.mcp.tools import mcp_tools  # noqa: E402
from coder.tools import ToolContext, dispatch  # noqa: E402
from coder.tools.workspace import Workspace  # noqa: E402

SERVER = [sys.executable, str(ROOT / "tests" / "mcp_server.py")]
CALLS = {
    "add": {"a": 2, "b": 40},
    "echo 10 KB": {"text": "x" * 10_000},
}


class Direct:
    """The SDK's client on a loop of its own; batches are timed inside that loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.ready = threading.Event()
        self.served = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.ready.wait()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _serve(self) -> None:
        """One task enters and leaves the client (anyio's scopes require it)."""
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        self.stop = asyncio.Event()
        start = time.perf_counter()
        params = StdioServerParameters(command=SERVER[0], args=SERVER[1:])
        async with Client(params) as self.client:
            await self.client.list_tools()
            self.started = time.perf_counter() - start
            self.ready.set()
            await self.stop.wait()

    async def _batch(self, tool: str, arguments: dict, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            result = await self.client.call_tool(tool, arguments)
            assert not result.is_error
        return (time.perf_counter() - start) / n

    def batch(self, tool: str, arguments: dict, n: int) -> float:
        return self._run(self._batch(tool, arguments, n))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.served.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def through_coder(ctx: ToolContext, tools: dict, tool: str, arguments: dict, n: int) -> float:
    name = f"mcp__calc__{tool}"
    start = time.perf_counter()
    for _ in range(n):
        result = dispatch(name, arguments, ctx, tools)
        assert not result.is_error, result.output
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=30)
    args = ap.parse_args(argv)
    import mcp  # noqa: F401  # both sides start with the SDK imported

    spec = McpServerConfig(command=SERVER[0], args=SERVER[1:], trusted=True)
    start = time.perf_counter()
    host = McpHost({"calc": spec}, cwd=ROOT, log_dir=None, notify=print)
    host.start()
    host.wait_started()
    coder_start = time.perf_counter() - start
    direct = Direct()
    try:
        tools = {t.name: t for t in mcp_tools(host)}
        ctx = ToolContext(workspace=Workspace(Path(tempfile.mkdtemp())), mode="yes")
        print(f"{'call':<14} {'SDK ms':>8} {'coder ms':>9} {'ratio':>7}")
        worst = 0.0
        for label, arguments in CALLS.items():
            tool = label.split()[0]
            sdk, ours = [], []
            for _ in range(args.runs):
                sdk.append(direct.batch(tool, arguments, args.batch))
                ours.append(through_coder(ctx, tools, tool, arguments, args.batch))
            a, b = statistics.median(sdk), statistics.median(ours)
            if tool == "add":
                worst = b / a
            print(f"{label:<14} {a * 1000:>8.2f} {b * 1000:>9.2f} {b / a:>6.2f}x")
        print(
            f"start until tools listed: SDK {direct.started * 1000:.0f} ms, "
            f"coder {coder_start * 1000:.0f} ms (one server process each)"
        )
    finally:
        direct.close()
        host.close()
    print(f"target add <= 1.5x: {'met' if worst <= 1.5 else 'MISSED'}")
    return 0 if worst <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
