"""Every config key: its section, its type and its default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class ConfigError(Exception):
    """A bad config value: the message names the key and its source."""


@dataclass
class Sampling:
    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    max_tokens: int = 1024
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    mirostat: int = 0
    seed: int | None = None


@dataclass
class ServerConfig:
    binary: str | None = None
    model_path: str | None = None
    alias: str = "coder"
    host: str = "127.0.0.1"
    port: int | None = None
    ctx_size: int = 8192
    parallel: int = 1
    flash_attn: Literal["on", "off", "auto"] = "auto"
    jinja: bool = True
    chat_template_file: str | None = None
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    batch_size: int = 2048
    ubatch_size: int = 512
    n_gpu_layers: int | None = None
    n_cpu_moe: int | None = None
    threads: int | None = None
    cache_ram_mib: int = 1024
    metrics: bool = True
    lora: list[str] = field(default_factory=list)  # LoRA adapters (GGUF): "FILE" or "FILE:SCALE"
    extra_args: list[str] = field(default_factory=list)


@dataclass
class LLMConfig:
    auto_manage: bool = True
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key: str | None = None
    api_key_file: str | None = None  # read into api_key when that is not set
    startup_timeout: float = 120.0
    request_timeout: float = 600.0
    tool_protocol: Literal["auto", "native", "json"] = "auto"
    model_dirs: list[str] | None = None  # where `coder models` looks; None: coder.models defaults
    sampling: Sampling = field(default_factory=Sampling)
    server: ServerConfig = field(default_factory=ServerConfig)


@dataclass
class AgentConfig:
    max_steps: int = 20
    system_prompt: str | None = None
    tools: list[str] | None = None


@dataclass
class ShellConfig:
    # before tools.mode: read as the mode it meant, with a notice (load.APPROVAL_MODES)
    approval: Literal["ask", "auto", "never"] | None = None
    timeout: float = 120.0
    max_output_bytes: int = 32768
    sandbox: Literal["none", "bwrap"] = "none"


# the permission modes, as coder.tools.permissions.MODES (a test keeps the two equal)
Mode = Literal["read-only", "ask", "auto-edit", "yes"]


@dataclass
class ToolsConfig:
    workspace: str | None = None
    mode: Mode = "auto-edit"  # which tools are offered and which ask (README: permission modes)
    shell: ShellConfig = field(default_factory=ShellConfig)


@dataclass
class LoggingConfig:
    dir: str = "~/.local/share/coder/logs"
    buffer_size: int = 1000
    flush_interval: float = 1.0
    rotate_mib: int = 256
    logprobs: bool = True
    prompt_ids: bool = True


@dataclass
class ReplConfig:
    history_file: str = "~/.local/state/coder/history"
    sessions_dir: str = "~/.local/state/coder/sessions"


@dataclass
class McpServerConfig:
    """One MCP server coder starts (stdio): `command args...` with `env` added to a
    minimal environment, in the workspace."""

    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    trusted: bool = False  # its tools never ask (else they ask in tools.mode ask and auto-edit)
    startup_timeout: float = 30.0
    timeout: float = 120.0  # one tool call


@dataclass
class McpConfig:
    servers: dict[str, McpServerConfig] = field(default_factory=dict)


@dataclass
class Config:
    llm: LLMConfig = field(default_factory=LLMConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    repl: ReplConfig = field(default_factory=ReplConfig)
    mcp: McpConfig = field(default_factory=McpConfig)
    sources: list[str] = field(default_factory=list, repr=False)
    notices: list[str] = field(default_factory=list, repr=False)  # e.g. a deprecated key read
