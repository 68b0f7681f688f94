"""Load and validate configuration.

Precedence (later wins): built-in defaults < the user's config
($XDG_CONFIG_HOME/coder/config.yaml) < the project's config
(<workspace>/.coder/config.yaml, limited to PROJECT_KEYS) < --config FILE <
environment (CODER_*) < command-line flags. Every value is checked against the
dataclass field it lands in; an unknown key or a wrong type is a ConfigError that
names the key, where it came from, and the expected type.

A project config lives in the workspace, where the model can write: so it may only
set keys that choose neither what runs nor what is approved nor where data goes.
A `config.yaml` in the working directory is not coder's and is never read.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coder.redact import REDACTED


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
    extra_args: list[str] = field(default_factory=list)


@dataclass
class LLMConfig:
    auto_manage: bool = True
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key: str | None = None
    startup_timeout: float = 120.0
    request_timeout: float = 600.0
    tool_protocol: Literal["auto", "native", "json"] = "auto"
    sampling: Sampling = field(default_factory=Sampling)
    server: ServerConfig = field(default_factory=ServerConfig)


@dataclass
class AgentConfig:
    max_steps: int = 20
    system_prompt: str | None = None
    tools: list[str] | None = None


@dataclass
class ShellConfig:
    approval: Literal["ask", "auto", "never"] = "ask"
    timeout: float = 120.0
    max_output_bytes: int = 32768


@dataclass
class ToolsConfig:
    workspace: str | None = None
    shell: ShellConfig = field(default_factory=ShellConfig)


@dataclass
class LoggingConfig:
    dir: str = "~/.local/share/coder/logs"
    buffer_size: int = 1000
    flush_interval: float = 1.0
    rotate_mib: int = 256
    logprobs: bool = True


@dataclass
class ReplConfig:
    history_file: str = "~/.local/state/coder/history"
    sessions_dir: str = "~/.local/state/coder/sessions"


@dataclass
class Config:
    llm: LLMConfig = field(default_factory=LLMConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    repl: ReplConfig = field(default_factory=ReplConfig)
    sources: list[str] = field(default_factory=list, repr=False)


def load(
    config_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    env: typing.Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Config:
    """Build the effective Config. `overrides` maps dotted keys to CLI values."""
    env = os.environ if env is None else env
    cfg = _build(config_file, overrides, env, project=None)
    project = project_config_path(cfg, cwd)
    if project.is_file():  # the workspace is known only once everything else is read
        cfg = _build(config_file, overrides, env, project=project)
    return cfg


def _build(
    config_file: str | os.PathLike | None,
    overrides: dict[str, Any] | None,
    env: typing.Mapping[str, str],
    project: Path | None,
) -> Config:
    cfg = Config()
    user = user_config_path(env)
    if user.is_file():
        _apply_file(cfg, user)
    if project is not None:
        _apply_file(cfg, project, allowed=PROJECT_KEYS)
        _confine_project_paths(cfg, project)
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        if not path.is_file():
            raise ConfigError(f"config file is not a regular file: {path}")
        _apply_file(cfg, path)
    for key, value in env_overrides(env).items():
        set_key(cfg, key, value, source="environment", from_text=True)
    for key, value in (overrides or {}).items():
        if value is not None:
            set_key(cfg, key, value, source="command line")
    check_ranges(cfg)
    return cfg


def user_config_path(env: typing.Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base).expanduser() / "coder" / "config.yaml"


def project_config_path(cfg: Config, cwd: str | os.PathLike | None = None) -> Path:
    base = Path(cwd or os.getcwd())
    return base / Path(cfg.tools.workspace or ".").expanduser() / ".coder" / "config.yaml"


# What a project config may set: how the agent works on this project. Everything else
# (the server binary, its flags and model, base_url and api_key, the workspace, shell
# approval, log and history paths) stays with the user: a workspace file must not choose
# what runs, what is approved, or where the conversation goes.
PROJECT_KEYS = (
    "llm.sampling",
    "llm.tool_protocol",
    "llm.request_timeout",
    "agent.max_steps",
    "agent.tools",
    "agent.system_prompt",
)


def _check_allowed(data: dict, allowed: tuple[str, ...], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if dotted in allowed:
            continue
        try:
            known = get_key(Config(), dotted)
        except ConfigError:
            set_key(Config(), dotted, value, source=source)  # raises: names the unknown key
            raise
        if isinstance(value, dict) and dataclasses.is_dataclass(known):
            _check_allowed(value, allowed, source, dotted + ".")  # name the key inside
            continue
        raise ConfigError(
            f"{source}: '{dotted}' cannot be set in a project config (it would let the "
            f"workspace choose what runs or what is approved); set it in "
            f"~/.config/coder/config.yaml, --config FILE or on the command line"
        )


def _confine_project_paths(cfg: Config, project: Path) -> None:
    prompt = cfg.agent.system_prompt
    workspace = project.parent.parent.resolve()
    if prompt and not Path(prompt).expanduser().resolve().is_relative_to(workspace):
        raise ConfigError(
            f"{project}: 'agent.system_prompt' must be a file inside the workspace ({workspace})"
        )


# key -> (lowest allowed, highest allowed or None): values the type allows but llama.cpp
# would reject or silently misread
RANGES = {
    "llm.sampling.temperature": (0.0, None),
    "llm.sampling.top_p": (0.0, 1.0),
    "llm.sampling.min_p": (0.0, 1.0),
    "llm.sampling.top_k": (0, None),
    "llm.sampling.max_tokens": (1, None),
    "llm.sampling.repeat_penalty": (0.0, None),
    "llm.sampling.mirostat": (0, 2),
    "llm.server.ctx_size": (256, None),
    "llm.server.parallel": (1, None),
    "llm.startup_timeout": (0.1, None),
    "agent.max_steps": (1, None),
    "tools.shell.timeout": (0.1, None),
    "logging.buffer_size": (1, None),
}


def check_ranges(cfg: Config) -> None:
    for key, (low, high) in RANGES.items():
        value = get_key(cfg, key)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"'{key}' must be {bound}; got {value}")


# CODER_<SECTION>__<KEY> sets any key (e.g. CODER_LLM__SERVER__PORT=8081);
# these short names cover the common ones.
ENV_ALIASES = {
    "CODER_API_KEY": "llm.api_key",
    "CODER_BASE_URL": "llm.base_url",
    "CODER_MODEL": "llm.server.model_path",
    "CODER_TOOL_PROTOCOL": "llm.tool_protocol",
    "CODER_LOG_DIR": "logging.dir",
}


def env_overrides(env: typing.Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in env.items():
        if name in ENV_ALIASES:
            out[ENV_ALIASES[name]] = value
        elif name.startswith("CODER_") and "__" in name:
            out[name[len("CODER_") :].lower().replace("__", ".")] = value
    return out


def _apply_file(cfg: Config, path: Path, allowed: tuple[str, ...] | None = None) -> None:
    import yaml  # lazy: keeps `coder --version` fast

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    if allowed is not None:
        _check_allowed(data, allowed, str(path))
    _merge(cfg, data, prefix="", source=str(path))
    _anchor_paths(cfg, data, path.parent)
    cfg.sources.append(str(path))


# Path keys that a config file may give relative to its own directory.
PATH_KEYS = (
    "tools.workspace",
    "logging.dir",
    "llm.server.model_path",
    "llm.server.chat_template_file",
    "agent.system_prompt",
    "repl.history_file",
    "repl.sessions_dir",
)


def _anchor_paths(cfg: Config, data: dict, base: Path) -> None:
    for key in PATH_KEYS:
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and not Path(node).expanduser().is_absolute():
            set_key(cfg, key, str(base / node), source="config")


def _merge(obj: Any, data: dict, prefix: str, source: str) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        set_key(obj, str(key), value, source=source, dotted=dotted)


def set_key(
    obj: Any,
    key: str,
    value: Any,
    source: str,
    from_text: bool = False,
    dotted: str | None = None,
) -> None:
    """Set a dotted key (e.g. "llm.server.port") on a config dataclass, validated."""
    dotted = dotted or key
    head, _, rest = key.partition(".")
    fields = {f.name: f for f in dataclasses.fields(obj) if f.name != "sources"}
    if head not in fields:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{dotted}' (known here: {known})")
    hint = typing.get_type_hints(type(obj))[head]
    current = getattr(obj, head)
    if dataclasses.is_dataclass(hint):
        if rest:
            set_key(current, rest, value, source, from_text, dotted)
            return
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {_kind(value)}")
        _merge(current, value, prefix=f"{dotted}.", source=source)
        return
    if rest:
        raise ConfigError(f"{source}: unknown key '{dotted}' ('{head}' has no sub-keys)")
    setattr(obj, head, coerce(value, hint, dotted, source, from_text))


def coerce(value: Any, hint: Any, key: str, source: str, from_text: bool = False) -> Any:
    """Check `value` against a type hint; text from env/CLI is parsed first."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_null = value is None or (from_text and value.lower() in ("", "null", "none"))
        if is_null and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, source, from_text)
    if origin is Literal:
        if isinstance(value, bool) and "on" in args:
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        if value in args:
            return value
        hint = " (YAML reads a bare yes/no/on/off as true/false)" if isinstance(value, bool) else ""
        raise ConfigError(
            f"{source}: '{key}' must be one of {', '.join(map(str, args))}; got {value!r}{hint}"
        )
    if origin is list:
        if from_text and isinstance(value, str):
            import shlex

            value = shlex.split(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"{source}: '{key}' must be a list of strings, got {_kind(value)}")
    if from_text and isinstance(value, str):
        value = _parse_text(value, hint, key, source)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: '{key}' must be true or false, got {_kind(value)}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{source}: '{key}' must be an integer, got {_kind(value)}")
    if not isinstance(value, hint):
        raise ConfigError(f"{source}: '{key}' must be {_type_name(hint)}, got {_kind(value)}")
    return value


def _parse_text(text: str, hint: Any, key: str, source: str) -> Any:
    if hint is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{source}: '{key}' must be true or false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(
                f"{source}: '{key}' must be {_type_name(hint)}, got {text!r}"
            ) from None
    return text


def _type_name(hint: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:80]


def as_dict(cfg: Config, redact: bool = True) -> dict:
    """The config as plain data (for logs and /config); the api key is redacted."""
    data = dataclasses.asdict(cfg)
    data.pop("sources", None)
    if redact and data["llm"].get("api_key"):
        data["llm"]["api_key"] = REDACTED
    return data


def log_dir(cfg: Config) -> Path:
    return Path(cfg.logging.dir).expanduser()


def get_key(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        if not dataclasses.is_dataclass(obj) or part not in {
            f.name for f in dataclasses.fields(obj)
        }:
            raise ConfigError(f"unknown key '{key}'")
        obj = getattr(obj, part)
    return obj


def set_config_text(
    cfg: Config, key: str, text: str, check: Callable[[Config], Any] | None = None
) -> None:
    """/config KEY VALUE: VALUE is YAML (`[a, b]`, `null`, `0.7`); a list may also be
    written `a,b` or `a b`. Nothing changes unless the whole config stays valid, by
    `check_ranges` and by `check` (e.g. that agent.tools names real tools)."""
    import copy
    import re

    import yaml

    get_key(cfg, key)  # an unknown key fails here, naming it
    try:
        value: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if value is None and text.strip().lower() not in ("null", "~", "none"):
        value = text  # e.g. "#abc": a YAML comment, not a null
    if isinstance(value, str) and _is_list_key(cfg, key):
        value = [w for w in re.split(r"[,\s]+", value) if w]

    def apply(target: Config) -> None:
        try:
            set_key(target, key, value, "/config", from_text=isinstance(value, str))
        except ConfigError:
            if isinstance(value, str | list | dict):
                raise
            # a string key given e.g. 123 or true: take the text as written
            set_key(target, key, text, source="/config", from_text=True)

    trial = copy.deepcopy(cfg)
    apply(trial)
    check_ranges(trial)
    if check is not None:
        check(trial)
    apply(cfg)


def _is_list_key(cfg: Config, key: str) -> bool:
    *parents, last = key.split(".")
    obj: Any = cfg
    for part in parents:
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj):
        return False
    hint = typing.get_type_hints(type(obj)).get(last)
    return any(typing.get_origin(h) is list for h in (hint, *typing.get_args(hint)))


def yaml_inline(value: Any) -> str:
    """A value as YAML writes it on one line: null, true, [a, b], not Python's None."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 16)
    return text.strip().removesuffix("...").strip()
