"""Per-call overhead of coder.llm.Client.chat against a raw HTTP request.

Both send the same JSON body to the same server and read the whole streamed
reply; the raw side uses http.client on a kept-alive connection and does not
parse anything. Calls are interleaved (alternating which goes first) so drift
in the server's speed hits both alike.

Rows:
  engine    the real llama.cpp engine with SmolLM2 (started here unless --base-url)
  scripted  the scripted test server (no model): the client's own cost, isolated

    python bench/bench_llm.py [--base-url URL] [-n 60] [--max-tokens 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coder.config import Sampling  # noqa: E402
from coder.llm import Client  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Name one prime number."},
]


def raw_call(conn: http.client.HTTPConnection, path: str, payload: bytes) -> None:
    try:
        conn.request("POST", path, payload, {"Content-Type": "application/json"})
        resp = conn.getresponse()
    except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
        # the server closed the kept-alive connection (as httpx, reconnect and resend)
        conn.close()
        conn.request("POST", path, payload, {"Content-Type": "application/json"})
        resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}")


def measure(base_url: str, n: int, sampling: Sampling, protocol: str = "native") -> dict:
    client = Client(base_url)
    client.props()  # not part of a call: cached after the first
    first = client.chat(MESSAGES, [], sampling=sampling, protocol=protocol)
    if first.error:
        raise RuntimeError(first.error)
    import orjson

    payload = orjson.dumps(first.request)
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    path = url.path.rstrip("/") + "/chat/completions"

    def timed_raw() -> float:
        t = time.perf_counter()
        raw_call(conn, path, payload)
        return (time.perf_counter() - t) * 1000

    def timed_client() -> float:
        t = time.perf_counter()
        r = client.chat(MESSAGES, [], sampling=sampling, protocol=protocol)
        ms = (time.perf_counter() - t) * 1000
        if r.error:
            raise RuntimeError(r.error)
        return ms

    for _ in range(3):  # warm both paths (connections, prompt cache)
        timed_raw()
        timed_client()
    raws, clients = [], []
    for i in range(n):
        if i % 2:
            raws.append(timed_raw())
            clients.append(timed_client())
        else:
            clients.append(timed_client())
            raws.append(timed_raw())
    conn.close()
    client.close()
    diffs = [c - r for c, r in zip(clients, raws, strict=True)]
    return {
        "raw_ms": statistics.median(raws),
        "client_ms": statistics.median(clients),
        "ratio": statistics.median(clients) / statistics.median(raws),
        "added_ms": statistics.median(diffs),
        # trimmed: a loaded 2-core machine throws a few multi-second outliers at either side
        "added_trim_ms": statistics.fmean(
            sorted(diffs)[len(diffs) // 10 : len(diffs) - len(diffs) // 10]
        ),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_engine() -> tuple[subprocess.Popen, str]:
    from coder import provision

    model = provision.ensure_model()
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "coder.engine",
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        "4096",
        "-np",
        "1",
        "--cache-ram",
        "256",
        "-t",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(root + "/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc, root + "/v1"
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise TimeoutError("engine did not become healthy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="use this server instead of starting the engine")
    parser.add_argument("-n", type=int, default=60, help="calls per side (default 60)")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--skip-engine", action="store_true", help="scripted server only")
    args = parser.parse_args(argv)
    sampling = Sampling(temperature=0.0, max_tokens=args.max_tokens, seed=1)

    rows: list[tuple[str, dict]] = []
    from tests.scripted_server import ScriptedServer, stream_text

    with ScriptedServer() as srv:
        srv.default = stream_text(["2", "3", "."])
        rows.append(("scripted", measure(srv.base_url, args.n * 4, sampling)))
        srv.default = stream_text(['{"answer": "', "23", '"}'])
        rows.append(("scripted json", measure(srv.base_url, args.n * 4, sampling, protocol="json")))
    if not args.skip_engine:
        proc = None
        base_url = args.base_url
        if base_url is None:
            proc, base_url = start_engine()
        try:
            rows.append(("engine", measure(base_url, args.n, sampling)))
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)

    print(
        f"Client.chat vs raw http.client, same body, max_tokens={args.max_tokens}; medians, "
        "added = median of paired differences (trim add: 10% trimmed mean)"
    )
    print(
        f"{'server':<14} {'raw ms':>8} {'chat ms':>8} {'ratio':>6} {'added ms':>9} {'trim add':>9}   target"
    )
    for name, m in rows:
        print(
            f"{name:<14} {m['raw_ms']:8.2f} {m['client_ms']:8.2f} {m['ratio']:6.3f} "
            f"{m['added_ms']:9.2f} {m['added_trim_ms']:9.2f}   ratio<=1.05 (engine), added<2 ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
