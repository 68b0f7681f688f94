"""`coder server status [--watch]`: the server on llm.base_url, from what it answers
(/health, /props, /slots, /metrics) and, on this machine, from its process.

`read_status` gathers one `ServerStatus` and feeds the health check (health.py), which
`--watch` keeps from one refresh to the next: failed checks then count as Docker's do.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import IO

from coder.config import Config
from coder.server.detached import pidfile_process, read_pidfile
from coder.server.endpoint import Endpoint, endpoint, http_get, probe
from coder.server.health import RETRIES, Health, HealthCheck
from coder.server.manager import is_local

WATCH_INTERVAL = 1.0  # seconds between refreshes of --watch


@dataclass
class ServerStatus:
    base_url: str
    port: int
    state: Health
    detail: str = ""
    pid: int | None = None
    started: float | None = None  # the process's start, epoch seconds
    owner: str = ""  # who started it, when coder knows
    model: str | None = None
    alias: str | None = None
    n_ctx: int | None = None  # per slot
    slots_idle: int | None = None
    slots_busy: int | None = None
    gen_tps: float | None = None  # tokens/s generating, averaged since the server started
    prompt_tps: float | None = None  # tokens/s reading prompts, likewise

    @property
    def uptime(self) -> float | None:
        return None if self.started is None else max(0.0, time.time() - self.started)


def one_shot_check(cfg: Config) -> HealthCheck:
    """For a single `status`: its one check is all there is, so one failure counts."""
    return HealthCheck(retries=1, start_period=cfg.llm.startup_timeout)


def watch_check(cfg: Config) -> HealthCheck:
    """For `status --watch`: RETRIES failures in a row after the start period (as long as
    coder waits for a server to load: llm.startup_timeout)."""
    return HealthCheck(retries=RETRIES, start_period=cfg.llm.startup_timeout)


def read_status(cfg: Config, check: HealthCheck) -> ServerStatus:
    ep = endpoint(cfg)
    api_key = cfg.llm.api_key
    proc, owner = server_process(ep)
    st = ServerStatus(ep.base_url, ep.port, Health.UNKNOWN, owner=owner)
    if proc is not None:
        st.pid, st.started = proc.pid, _create_time(proc)
        check.started = st.started
    p = probe(ep.root, api_key)
    if owner == "gone":
        st.owner = ""
        if p.state == "down" and proc is None:  # it died: not merely stopped
            check.exited(None)
            pid = (read_pidfile(ep) or {}).get("pid")
            check.detail = f"the server `coder server start` left (pid {pid}) has exited"
        else:
            check.observe(p)
    else:
        check.observe(p)
    st.state, st.detail = check.state, check.detail
    if p.state == "down" and st.state != Health.ERROR:
        st.detail = f"nothing answers on {ep.address}: {p.detail}"
    props = p.props or {}
    st.model = props.get("model_path")
    st.alias = props.get("model_alias")
    st.n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
    if p.state == "ready":
        st.slots_idle, st.slots_busy = slots(ep, api_key)
        st.gen_tps, st.prompt_tps = speeds(ep, api_key)
    return st


def server_process(ep: Endpoint):
    """The process serving `ep` (psutil.Process or None) and who started it: "coder server
    start" (its pidfile), "" (found listening on the port), or "gone" (a pidfile is left
    whose process is not running: it died, or the machine restarted)."""
    proc = pidfile_process(ep)
    if proc is not None:
        return proc, "coder server start"
    owner = "gone" if read_pidfile(ep) is not None else ""
    if not is_local(ep):
        return None, owner
    pid = listening_pid(ep.port)
    if pid is None:
        return None, owner
    import psutil

    try:
        return psutil.Process(pid), ""
    except psutil.Error:
        return None, owner


def listening_pid(port: int) -> int | None:
    """The process listening on TCP `port` here, when this user may see it."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    return None


def _create_time(proc) -> float | None:
    try:
        return proc.create_time()
    except Exception:  # psutil.Error: it ended meanwhile
        return None


def slots(ep: Endpoint, api_key: str | None) -> tuple[int | None, int | None]:
    """(idle, processing) from /slots; (None, None) when the server does not say."""
    status, body = http_get(ep.root + "/slots", api_key, 2.0)
    try:
        data = json.loads(body) if status == 200 else None
    except ValueError:
        data = None
    if not isinstance(data, list):
        return None, None
    busy = sum(
        1
        for s in data
        if isinstance(s, dict) and (s.get("is_processing") or s.get("state", 0) != 0)
    )
    return len(data) - busy, busy


def speeds(ep: Endpoint, api_key: str | None) -> tuple[float | None, float | None]:
    """(generation, prompt) tokens/s from /metrics' totals since the server started;
    None when it has no /metrics (started without --metrics) or no such work yet."""
    status, body = http_get(ep.root + "/metrics", api_key, 2.0)
    if status != 200:
        return None, None
    m = parse_metrics(body)

    def rate(tokens: str, seconds: str) -> float | None:
        n, s = m.get(tokens), m.get(seconds)
        return n / s if n and s else None

    return (
        rate("llamacpp:tokens_predicted_total", "llamacpp:tokens_predicted_seconds_total"),
        rate("llamacpp:prompt_tokens_total", "llamacpp:prompt_seconds_total"),
    )


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: `name value` lines (labels are kept as part of the name)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.strip().rpartition(" ")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            continue
    return out


# -- what is printed ----------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def status_rows(st: ServerStatus) -> list[tuple[str, str]]:
    from pathlib import Path

    pid = "-" if st.pid is None else str(st.pid)
    if st.pid is not None and st.owner:
        pid += f" (started by `{st.owner}`)"
    model = Path(st.model).name if st.model else (st.alias or "-")
    if st.model and st.alias:
        model += f" (alias {st.alias})"
    slots_text = "-"
    if st.slots_idle is not None:
        slots_text = f"{st.slots_idle + (st.slots_busy or 0)}: {st.slots_idle} idle, {st.slots_busy} processing"
    speed = "-"
    if st.gen_tps is not None or st.prompt_tps is not None:
        speed = (
            f"{_tps(st.gen_tps)} generating, {_tps(st.prompt_tps)} reading prompts "
            "(averages, /metrics)"
        )
    state = str(st.state) + (f" ({st.detail})" if st.detail else "")
    return [
        ("state", state),
        ("pid", pid),
        ("port", str(st.port)),
        ("model", model),
        ("uptime", duration(st.uptime)),
        ("slots", slots_text),
        ("context", f"{st.n_ctx} tokens per slot" if st.n_ctx else "-"),
        ("tokens/s", speed),
    ]


def _tps(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} tok/s"


def status_text(st: ServerStatus) -> str:
    rows = status_rows(st)
    width = max(len(k) for k, _ in rows)
    return "\n".join([st.base_url, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def status_line(st: ServerStatus) -> str:
    """One line for --watch through a pipe."""
    parts = [time.strftime("%H:%M:%S"), str(st.state)]
    if st.pid is not None:
        parts += [f"pid {st.pid}", f"up {duration(st.uptime)}"]
    if st.slots_idle is not None:
        parts.append(f"slots {st.slots_idle} idle {st.slots_busy} processing")
    if st.n_ctx:
        parts.append(f"ctx {st.n_ctx}")
    if st.gen_tps is not None:
        parts.append(f"gen {st.gen_tps:.1f} tok/s")
    if st.detail and st.state != Health.HEALTHY:
        parts.append(f"({st.detail})")
    return "  ".join(parts)


def watch(cfg: Config, out: IO[str] | None = None, interval: float = WATCH_INTERVAL) -> int:
    """Refresh until Ctrl-C (exit 0): a live view on a terminal, else one line each time."""
    out = out or sys.stdout
    check = watch_check(cfg)
    try:
        if out.isatty():
            _watch_live(cfg, check, out, interval)
        else:
            _watch_lines(cfg, check, out, interval)
    except KeyboardInterrupt:
        pass
    return 0


def _watch_lines(cfg: Config, check: HealthCheck, out: IO[str], interval: float) -> None:
    while True:
        out.write(status_line(read_status(cfg, check)) + "\n")
        out.flush()
        time.sleep(interval)


def _watch_live(cfg: Config, check: HealthCheck, out: IO[str], interval: float) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            live.update(_view(read_status(cfg, check)), refresh=True)
            time.sleep(interval)


def _view(st: ServerStatus):
    from rich.table import Table
    from rich.text import Text

    styles = {Health.HEALTHY: "green", Health.LOADING: "yellow", Health.UNKNOWN: "dim"}
    table = Table.grid(padding=(0, 2))
    table.title = f"{st.base_url}  {time.strftime('%H:%M:%S')}  (Ctrl-C to stop)"
    table.title_justify = "left"
    for key, value in status_rows(st):
        style = styles.get(st.state, "red") if key == "state" else ""
        table.add_row(Text(key, style="bold"), Text(value, style=style))
    return table
