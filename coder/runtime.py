"""Assemble a working session in the spec's order, and take it apart in reverse.

config -> logger -> MCP servers (started in the background) -> server -> client -> tools
-> (REPL / -q) -> stop server -> stop MCP servers -> close logger.
SIGTERM and SIGHUP are turned into `chat.Terminated` (a SystemExit) by the CLI, so the
`finally` here runs on every way out: no orphan server, no lost log record, and
session_end says `terminated` or `hangup`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from coder import config as config_mod
from coder import server as srv
from coder.agent import Agent, system_prompt
from coder.chat import Terminated
from coder.config import Config, ConfigError, log_dir
from coder.context import Budget
from coder.instructions import Instructions, load_instructions, user_dir
from coder.llm import Client
from coder.log import Logger, Recorder
from coder.tools import ToolContext
from coder.tools.sandbox import SandboxError
from coder.tools.sandbox import check as check_sandbox
from coder.tools.workspace import Workspace, WorkspaceError

if TYPE_CHECKING:
    from coder.mcp import McpHost


@dataclass
class Notifier:
    """Where notices go, the server watcher's among them (from its thread). A UI that
    comes up after the runtime, like the REPL, points `target` at itself."""

    target: Callable[[str], None]

    def __call__(self, message: str) -> None:
        self.target(message)


@dataclass
class Runtime:
    config: Config
    logger: Logger
    recorder: Recorder
    server: srv.Server
    client: Client
    agent: Agent  # its tool_ctx.approve refuses until the caller sets its own
    cancel: threading.Event
    notify: Notifier
    instructions: Instructions = field(default_factory=Instructions)  # AGENTS.md and the like
    end_reason: str = "exit"  # for session_end; the caller may set it (-q: the turn's stop)

    def save_conversation(self, name: str | None = None) -> Path:
        """Save the conversation and its plan (REPL and -q alike) under `name`, or a new
        name for this workspace; secrets masked. Raises sessions.SessionError."""
        from coder import sessions

        here = str(self.agent.tool_ctx.workspace.root)
        return sessions.save(
            self.config.repl.sessions_dir,
            name or sessions.auto_name(here),
            self.agent.messages,
            self.agent.tools,
            config_mod.as_dict(self.config),
            workspace=here,
            secrets=[self.config.llm.api_key],
            plan=plan.to_json() if (plan := self.agent.tool_ctx.plan) is not None else None,
        )

    mcp: McpHost | None = None  # the MCP servers (None: none configured)


def workspace_root(cfg: Config) -> Path:
    root = Path(cfg.tools.workspace or ".").expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"tools.workspace: not a directory: {root}")
    return root


@contextlib.contextmanager
def open_runtime(cfg: Config, notify: Callable[[str], None]) -> Iterator[Runtime]:
    """Yield a ready Runtime; its `end_reason` (set by the caller) goes into session_end.

    Tool approval starts as "refuse": the caller sets `rt.agent.tool_ctx.approve`."""
    root = workspace_root(cfg)
    tool_names = offered_tools(cfg, root)
    try:  # asked for and impossible here: said before anything starts
        check_sandbox(cfg.tools.shell.sandbox, root)
    except SandboxError as exc:
        raise ConfigError(str(exc)) from None
    instructions = load_instructions(root, user_dir())
    # a bad system prompt path fails before the server starts
    system = {"role": "system", "content": system_prompt(cfg) + instructions.prompt()}
    try:
        logger = Logger(
            log_dir(cfg),
            buffer_size=cfg.logging.buffer_size,
            flush_interval=cfg.logging.flush_interval,
            rotate_mib=cfg.logging.rotate_mib,
        )
    except OSError as exc:
        raise ConfigError(
            f"logging.dir: cannot write logs in {log_dir(cfg)}: {exc.strerror}"
        ) from None
    recorder = Recorder(logger, secrets=[cfg.llm.api_key])
    notifier = Notifier(notify)
    server = None
    client = None
    mcp = None
    rt: Runtime | None = None
    try:
        mcp = start_mcp(cfg, root, notifier)  # they start while the model server does
        server = srv.connect(cfg, log_dir(cfg), notifier)
        client = Client(
            server.base_url,
            api_key=cfg.llm.api_key,
            model=cfg.llm.server.alias,
            timeout=cfg.llm.request_timeout,
            prompt_ids=cfg.logging.prompt_ids,
        )
        n_ctx = client.context_size()  # once: the budget, the warnings and the log share it
        cancel = threading.Event()
        try:
            workspace = Workspace(root)
        except WorkspaceError as exc:
            raise ConfigError(f"tools.workspace: {exc}") from None
        tool_ctx = ToolContext(
            workspace=workspace,
            mode=cfg.tools.mode,
            shell_timeout=cfg.tools.shell.timeout,
            max_output_bytes=cfg.tools.shell.max_output_bytes,
            sandbox=cfg.tools.shell.sandbox,
            cancel=cancel,
        )
        for warning in [*instructions.notices, *server_warnings(cfg, client.props(), n_ctx)]:
            notifier(warning)
        extra_tools = _no_tools
        if mcp is not None:
            from coder.mcp.tools import mcp_tools

            mcp.wait_started()  # each server within its startup_timeout
            extra_tools = functools.partial(mcp_tools, mcp)
        if client.props():  # llama.cpp: which adapters it applies, named in every model_call
            for warning in adapter_warnings(cfg, client.load_adapters(), server.base_url):
                notifier(warning)
        agent = Agent(
            client=client,
            config=cfg,
            tool_ctx=tool_ctx,
            recorder=recorder,
            messages=[system],
            tool_names=tool_names,
            budget=Budget(n_ctx=n_ctx),
            extra_tools=extra_tools,
        )
        recorder.session_start(
            config=config_mod.as_dict(cfg),
            model=model_identity(server.props, cfg, n_ctx),
            tools=agent.tools,
            workspace=str(root),
            git_head=git_head(root),
            extra={"tool_protocol": client.resolve_protocol(cfg.llm.tool_protocol)},
        )
        rt = Runtime(
            cfg, logger, recorder, server, client, agent, cancel, notifier, instructions, mcp=mcp
        )
        yield rt
    except BaseException as exc:
        if rt is not None:
            rt.end_reason = end_reason(exc, rt.end_reason)
        raise
    finally:
        if client is not None:
            client.close()
        srv.stop(server)
        if mcp is not None:
            mcp.close()
        if rt is not None:  # session_start was written
            recorder.session_end(rt.end_reason)
        logger.close()
        stats = logger.stats()
        lost = stats["dropped_on_error"]
        if lost:  # written nowhere else: the user must hear of it
            notifier(
                f"{lost} log records could not be written to {logger.dir} "
                f"({stats['last_error']}): this session's training data is incomplete"
            )


def start_mcp(cfg: Config, root: Path, notify: Callable[[str], None]) -> McpHost | None:
    """The configured MCP servers, starting (None, and nothing of the SDK imported, when
    there are none)."""
    if not cfg.mcp.servers:
        return None
    from coder.mcp import start_servers

    return start_servers(cfg, root, log_dir(cfg), notify)


def _no_tools() -> list:
    return []


def end_reason(exc: BaseException, reason: str) -> str:
    """session_end's reason when `exc` ends the session: a signal names itself (even
    after the turn ended, `reason`); otherwise an unfinished session was interrupted or
    failed."""
    if isinstance(exc, Terminated):
        return exc.reason
    if reason != "exit":
        return reason
    return "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "error"


def server_warnings(cfg: Config, props: dict, n_ctx: int | None) -> list[str]:
    """What about the server the user should know before the first request; `n_ctx` is
    its context size (client.context_size())."""
    out = []
    caps = props.get("chat_template_caps") or {}
    if cfg.llm.tool_protocol == "native" and caps.get("supports_tools") is False:
        out.append(
            "llm.tool_protocol is native, but the server's chat template drops tools: the model "
            "will not see them (use auto, or llm.server.chat_template_file: "
            "prompts/chatml-tools.jinja)"
        )
    if n_ctx and n_ctx != cfg.llm.server.ctx_size:
        out.append(
            f"the server's context is {n_ctx} tokens (llm.server.ctx_size "
            f"{cfg.llm.server.ctx_size} applies only to a server coder starts)"
        )
    return out


def offered_tools(cfg: Config, root: Path | None = None) -> list[str] | None:
    """agent.tools, checked; else the tools a served adapter coder trained was trained
    with (its card says); else the default tools (not the opt-in ones), less git's
    outside a repository (a small model keeps calling them there)."""
    from coder import tools
    from coder.server.command import adapters_tools
    from coder.tools.git import in_repo

    if cfg.agent.tools is None:
        trained = adapters_tools(cfg)
        if trained and all(name in tools.REGISTRY for name in trained):
            return trained
    unknown = [name for name in cfg.agent.tools or [] if name not in tools.REGISTRY]
    if unknown:
        known = ", ".join(sorted(tools.REGISTRY))
        raise ConfigError(f"agent.tools: unknown tool {unknown[0]!r} (known: {known})")
    if cfg.agent.tools is not None or root is None or in_repo(root):
        return cfg.agent.tools
    return [name for name in tools.default_tools() if not name.startswith("git_")]


def adapter_warnings(cfg: Config, loaded: list[dict], base_url: str) -> list[str]:
    """llm.server.lora adapters the server does not have: a server coder reused (started
    before, or not coder's) is shown as it is, never restarted."""
    from coder.server.command import lora_adapters

    have = {str(Path(a["path"]).resolve()) for a in loaded if a.get("path")}
    missing = [p for p, _ in lora_adapters(cfg) if p not in have]
    if not missing:
        return []
    return [
        f"the server on {base_url} was started without the adapter {', '.join(missing)} "
        f"(it has {len(loaded)} adapter(s)); it is reused as it is: stop it (`coder server "
        "stop`, or end the program that started it) so coder starts one with the adapter"
    ]


def model_identity(props: dict, cfg: Config, n_ctx: int | None) -> dict:
    """Which model answered: alias, file, size, template hash, context size."""
    path = props.get("model_path") or cfg.llm.server.model_path
    identity = {
        "alias": props.get("model_alias") or cfg.llm.server.alias,
        "model_path": path,
        "model_file": Path(path).name if path else None,
        "n_ctx": n_ctx,
        "build_info": props.get("build_info"),
    }
    if path and Path(path).is_file():
        identity["model_size"] = Path(path).stat().st_size
    template = props.get("chat_template")
    if template:
        identity["chat_template_hash"] = hashlib.sha256(template.encode()).hexdigest()
        identity["chat_template"] = template
    return identity


def git_head(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
