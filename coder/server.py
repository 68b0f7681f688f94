"""The llama-server manager: find, reuse, start, wait, watch, stop.

It knows nothing of agents. One command-line builder serves both a real
llama-server binary and the bundled engine (`python -m coder.engine`), and one
process manager runs either. A server coder did not start is never stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from coder.config import Config, ConfigError
from coder.log.redact import REDACTED
from coder.procs import kill_group

Notify = Callable[[str], None]
LOG_NAME = "llama-server.log"


class ServerError(Exception):
    """The model server cannot be used; the message names host:port or the path."""


@dataclass
class Endpoint:
    host: str
    port: int
    base_url: str  # ".../v1"

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/").removesuffix("/v1")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def endpoint(cfg: Config) -> Endpoint:
    parts = urlsplit(cfg.llm.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"llm.base_url is not an http(s) URL: {cfg.llm.base_url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if cfg.llm.server.port is not None and cfg.llm.server.port != port:
        raise ConfigError(
            f"llm.server.port {cfg.llm.server.port} disagrees with llm.base_url {cfg.llm.base_url}; "
            f"set one of them"
        )
    return Endpoint(parts.hostname, port, cfg.llm.base_url.rstrip("/"))


# ---------------------------------------------------------------- probing


@dataclass
class Probe:
    state: str  # "down" | "loading" | "ready" | "foreign"
    props: dict = field(default_factory=dict)
    detail: str = ""


def probe(root: str, api_key: str | None = None, timeout: float = 2.0) -> Probe:
    """What answers at `root`: nothing, a loading or ready llama.cpp server, or something else."""
    status, body = _get(root + "/health", api_key, timeout)
    if status is None:
        return Probe("down", detail=body)
    if status == 503 and "loading" in body.lower():
        return Probe("loading")
    if status != 200:
        return Probe("foreign", detail=f"/health answered HTTP {status}")
    props = llama_identity(root, api_key, timeout)
    if props is None:
        return Probe(
            "foreign", detail="/health answered but /props and /v1/models are not llama.cpp's"
        )
    return Probe("ready", props)


def llama_identity(root: str, api_key: str | None, timeout: float = 2.0) -> dict | None:
    """/props (or /v1/models) of a llama.cpp server, None when it is not one."""
    status, body = _get(root + "/props", api_key, timeout)
    if status == 200:
        data = _json(body)
        if isinstance(data, dict) and (
            "default_generation_settings" in data or "model_path" in data
        ):
            return data
    status, body = _get(root + "/v1/models", api_key, timeout)
    data = _json(body) if status == 200 else None
    models = data.get("data") if isinstance(data, dict) else None
    if models and isinstance(models, list) and models[0].get("owned_by") == "llamacpp":
        return {"model_alias": models[0].get("id"), "model_path": None}
    return None


def _get(url: str, api_key: str | None, timeout: float) -> tuple[int | None, str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1 << 16).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


# ------------------------------------------------------------ command line


def build_command(cfg: Config, program: list[str], model_path: str) -> list[str]:
    """llama-server flags from the config: each key maps to one flag."""
    s = cfg.llm.server
    ep = endpoint(cfg)
    cmd = [*program, "-m", model_path, "--host", s.host, "--port", str(ep.port)]
    cmd += ["-c", str(s.ctx_size), "-np", str(s.parallel), "--alias", s.alias]
    cmd += ["-fa", s.flash_attn, "--cache-ram", str(s.cache_ram_mib)]
    cmd += ["-b", str(s.batch_size), "-ub", str(s.ubatch_size)]
    cmd += ["--cache-type-k", s.cache_type_k, "--cache-type-v", s.cache_type_v]
    cmd += ["--jinja"] if s.jinja else ["--no-jinja"]
    if s.chat_template_file:
        cmd += ["--chat-template-file", template_path(s.chat_template_file)]
    if s.threads:
        cmd += ["-t", str(s.threads)]
    if s.n_gpu_layers is not None:
        cmd += ["-ngl", str(s.n_gpu_layers)]
    if s.n_cpu_moe is not None:
        cmd += ["--n-cpu-moe", str(s.n_cpu_moe)]
    if s.metrics:
        cmd += ["--metrics"]
    return cmd + list(s.extra_args)


API_KEY_ENV = "LLAMA_API_KEY"  # llama-server reads --api-key from it (common/arg.cpp)


def server_env(cfg: Config) -> dict[str, str]:
    """The server's environment: the api key goes here, never on the command line,
    where every local user (and the model, through `ps`) could read it."""
    env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
    if cfg.llm.api_key:
        env[API_KEY_ENV] = cfg.llm.api_key
    return env


def template_path(name: str) -> str:
    """llm.server.chat_template_file: a path, or a template coder ships (prompts/...)."""
    from coder import resources

    path = Path(name).expanduser()
    if path.is_file():
        return str(path)
    for shipped in (f"prompts/{path.name}", path.name):
        try:
            return str(resources.path(shipped))
        except FileNotFoundError:
            pass
    raise ConfigError(f"llm.server.chat_template_file: no such file: {path}")


def redact(cmd: list[str]) -> list[str]:
    """The command line with the api key hidden (for logs and messages)."""
    out = list(cmd)
    for i, arg in enumerate(out[:-1]):
        if arg == "--api-key":
            out[i + 1] = REDACTED
    return out


# ---------------------------------------------------------------- process


@dataclass
class Server:
    """A usable llama.cpp server: one coder started (managed) or one it found."""

    endpoint: Endpoint
    managed: bool
    props: dict = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    model: str | None = None
    env: dict[str, str] | None = field(default=None, repr=False)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watch: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if coder dies without cleaning up (even kill -9).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    command: list[str], log_path: Path, env: dict[str, str] | None = None, detached: bool = False
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(
            f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(redact(command))}\n".encode()
        )
        log.flush()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: stop() kills the whole tree
            preexec_fn=None if detached else _die_with_parent,
            close_fds=True,
        )


def log_tail(path: Path | None, lines: int = 8) -> str:
    if not path or not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, 2) - 16384))
        text = fh.read().decode("utf-8", "replace")
    text = text.rsplit("\n==== ", 1)[-1]  # only this start's output
    return "\n".join(text.strip().splitlines()[1:][-lines:])


def wait_ready(server: Server, timeout: float, api_key: str | None) -> dict:
    """Poll /health until ready; fail fast when the process exits; kill it on timeout."""
    deadline = time.monotonic() + timeout
    root = server.endpoint.root
    while True:
        if server.proc is not None and server.proc.poll() is not None:
            raise ServerError(
                f"llama-server exited with code {server.proc.returncode} while starting "
                f"on {server.endpoint.address} with {server.model or 'its model'}:\n"
                f"{log_tail(server.log_path)}"
            )
        p = probe(root, api_key, timeout=1.0)
        if p.state == "ready":
            return p.props
        if time.monotonic() > deadline:
            if server.proc is not None:
                kill_group(server.proc)
            raise ServerError(
                f"llama-server on {server.endpoint.address} not ready after {timeout:g} s "
                f"(llm.startup_timeout); stopped it. Last log lines:\n{log_tail(server.log_path)}"
            )
        time.sleep(0.05)


# --------------------------------------------------------------- lifecycle


def resolve_model(cfg: Config, notify: Notify) -> str:
    from coder import provision

    if cfg.llm.server.model_path:
        path = Path(cfg.llm.server.model_path).expanduser()
        if not path.is_file():
            raise ServerError(f"model file not found: {path} (llm.server.model_path)")
        return str(path.resolve())
    if not provision.is_provisioned():
        notify("No model yet: unpacking the default model (SmolLM2-135M) first, once.")
    try:
        return str(provision.ensure_model(notify))
    except provision.ProvisionError as exc:
        raise ServerError(str(exc)) from None


def connect(cfg: Config, log_dir: Path, notify: Notify = lambda m: None) -> Server:
    """Reuse a healthy llama.cpp server at base_url, or start one (auto_manage)."""
    ep = endpoint(cfg)
    api_key = cfg.llm.api_key
    p = probe(ep.root, api_key)
    if p.state == "loading":
        notify(f"llama.cpp server on {ep.address} is loading its model; waiting")
        server = Server(ep, managed=False)
        server.props = wait_ready(server, cfg.llm.startup_timeout, api_key)
        return server
    if p.state == "ready":
        check_model_matches(cfg, p.props, ep)
        server = Server(ep, managed=False, props=p.props)
        if cfg.llm.auto_manage and is_local(ep):
            watch(server, cfg, Path(log_dir), notify)
        return server
    if p.state == "foreign":
        raise ServerError(
            f"{ep.address} is held by something that is not a llama.cpp server ({p.detail}); "
            f"stop it or set llm.base_url / llm.server.port to a free port"
        )
    if not cfg.llm.auto_manage:
        raise ServerError(
            f"no model server answers at {ep.base_url} ({p.detail}) and llm.auto_manage is off"
        )
    if not is_local(ep) and ep.host != cfg.llm.server.host:
        raise ServerError(
            f"no server answers at {ep.base_url}, and coder only starts one on this machine; "
            f"start it there or set llm.base_url to http://127.0.0.1:PORT/v1"
        )
    return start(cfg, log_dir, notify)


def is_local(ep: Endpoint) -> bool:
    return ep.host in ("127.0.0.1", "localhost", "::1")


def check_model_matches(cfg: Config, props: dict, ep: Endpoint) -> None:
    wanted = cfg.llm.server.model_path
    served = props.get("model_path")
    if wanted and served and Path(served).resolve() != Path(wanted).expanduser().resolve():
        raise ServerError(
            f"the llama.cpp server on {ep.address} serves {served}, not {wanted} "
            f"(llm.server.model_path); stop it or use another port"
        )


def start(
    cfg: Config, log_dir: Path, notify: Notify = lambda m: None, detached: bool = False
) -> Server:
    server = Server(endpoint(cfg), managed=True)
    launch(server, cfg, Path(log_dir), notify, detached)
    if not detached:
        watch(server, cfg, Path(log_dir), notify)
    return server


def launch(
    server: Server, cfg: Config, log_dir: Path, notify: Notify, detached: bool = False
) -> None:
    """Start a llama.cpp server process for `server` and wait until it is ready."""
    from coder import provision

    model = resolve_model(cfg, notify)
    try:
        choice = provision.choose_server(cfg.llm.server.binary)
    except provision.ProvisionError as exc:
        raise ServerError(str(exc)) from None
    server.command = build_command(cfg, choice.command, model)
    server.model, server.env, server.log_path = model, server_env(cfg), log_dir / LOG_NAME
    notify(
        f"starting llama.cpp server on {server.endpoint.address} ({choice.kind}) "
        f"with {Path(model).name}"
    )
    server.proc = spawn(server.command, server.log_path, server.env, detached=detached)
    server.managed = True
    try:
        server.props = wait_ready(server, cfg.llm.startup_timeout, cfg.llm.api_key)
    except BaseException:
        if server.proc is not None:
            kill_group(server.proc)
        raise


def stop(server: Server | None) -> None:
    """Stop a server coder started; a reused one is left alone."""
    if server is None:
        return
    server._stopping.set()
    if server.managed and server.proc is not None:
        kill_group(server.proc)


def watch(
    server: Server, cfg: Config, log_dir: Path, notify: Notify, max_restarts: int = 3
) -> None:
    """Keep a server available for the session, with backoff and bounded retries.

    A managed server that dies is restarted. A reused one (say, started by another coder
    session that has since exited) that goes away is replaced by one of our own, when
    llm.auto_manage allows; if another session got there first, that one is reused.
    """

    def refused() -> bool:  # a busy server is slow, not gone: only a refusal counts
        p = probe(server.endpoint.root, cfg.llm.api_key, timeout=2.0)
        return p.state == "down" and "refused" in p.detail.lower()

    def gone() -> bool:
        if server.managed:
            return server.proc is not None and server.proc.poll() is not None
        return refused() and not server._stopping.wait(0.5) and refused()

    def run() -> None:
        failures = 0
        while not server._stopping.wait(0.25 if server.managed else 1.0):
            if not gone():
                continue
            if failures >= max_restarts:
                notify(f"the model server keeps failing; gave up after {max_restarts} tries")
                return
            failures += 1
            if server.managed:
                notify(
                    f"llama-server on {server.endpoint.address} died (exit {server.proc.returncode}); "
                    f"restarting ({failures}/{max_restarts})"
                )
            else:
                notify(f"the llama.cpp server on {server.endpoint.address} went away; starting one")
            if server._stopping.wait(0.5 * 2 ** (failures - 1)):
                return
            try:
                launch(server, cfg, log_dir, notify)
            except ServerError as exc:
                if probe(server.endpoint.root, cfg.llm.api_key).state == "ready":
                    server.managed, server.proc = False, None  # another session was quicker
                    notify(f"reusing the llama.cpp server on {server.endpoint.address}")
                    continue
                notify(str(exc).splitlines()[0])
                continue
            server.restarts += 1
            notify("llama-server is back")

    server._watch = threading.Thread(target=run, name="server-watch", daemon=True)
    server._watch.start()


# -------------------------------------------------- detached server + pidfile


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "coder"


def pidfile_path(ep: Endpoint) -> Path:
    return state_dir() / f"server-{ep.host}-{ep.port}.json"


def start_detached(cfg: Config, log_dir: Path, notify: Notify = lambda m: None) -> Server:
    import psutil

    ep = endpoint(cfg)
    p = probe(ep.root, cfg.llm.api_key)
    if p.state in ("ready", "loading"):
        raise ServerError(f"a llama.cpp server already answers on {ep.address}")
    if p.state == "foreign":
        raise ServerError(f"{ep.address} is held by something that is not a llama.cpp server")
    server = start(cfg, log_dir, notify, detached=True)
    info = {
        "pid": server.pid,
        "create_time": psutil.Process(server.pid).create_time(),
        "base_url": ep.base_url,
        "command": redact(server.command),
        "log": str(server.log_path),
    }
    from coder.atomic import atomic_write

    atomic_write(pidfile_path(ep), json.dumps(info, indent=1).encode())
    return server


def read_pidfile(ep: Endpoint) -> dict | None:
    path = pidfile_path(ep)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pidfile_process(ep: Endpoint):
    """The live process a pidfile names, or None (gone, or the PID was recycled)."""
    import psutil

    info = read_pidfile(ep)
    if not info:
        return None
    try:
        proc = psutil.Process(info["pid"])
        if abs(proc.create_time() - info["create_time"]) < 0.01:
            return proc
    except (psutil.Error, KeyError, TypeError):
        pass
    return None


def stop_detached(ep: Endpoint, grace: float = 5.0) -> bool:
    """Stop the server `coder server start` left running; False when none is recorded."""

    proc = pidfile_process(ep)
    pidfile_path(ep).unlink(missing_ok=True)
    if proc is None:
        return False
    kill_group(proc, grace)
    return True
