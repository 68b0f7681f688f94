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
import typing
from pathlib import Path
from typing import Any

from coder.config.keys import check_ranges, get_key, merge, set_key
from coder.config.schema import Config, ConfigError


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
    if user is not None and user.is_file():
        _apply_file(cfg, user)
    if project is not None:
        _apply_project(cfg, project)
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        if not path.is_file():
            raise ConfigError(f"config file is not a regular file: {path}")
        _apply_file(cfg, path)
    from_env = env_overrides(env)
    for key, value in from_env.items():
        set_key(cfg, key, value, source="environment", from_text=True)
    take_approval(cfg, "the environment (CODER_TOOLS__SHELL__APPROVAL)", "tools.mode" in from_env)
    for key, value in (overrides or {}).items():
        if value is not None:
            set_key(cfg, key, value, source="command line")
    check_ranges(cfg)
    read_api_key_file(cfg)
    return cfg


# tools.shell.approval, before tools.mode: each value read as the mode that keeps what it
# did. never (commands refused, edits applied) has no mode of its own: auto-edit asks
# before commands instead, and where nobody can answer (-q, rollouts) refuses them as before.
APPROVAL_MODES = {"ask": "auto-edit", "auto": "yes", "never": "auto-edit"}


def take_approval(cfg: Config, source: str, mode_set_too: bool) -> None:
    """Read a deprecated tools.shell.approval that `source` set as tools.mode (unless the
    same source set tools.mode, which wins), with a notice saying so; called after each
    source, so later sources still win."""
    old = cfg.tools.shell.approval
    if old is None:
        return
    cfg.tools.shell.approval = None
    mode = APPROVAL_MODES[old]
    if mode_set_too:
        cfg.notices.append(
            f"{source}: tools.shell.approval ({old}) is deprecated and ignored: tools.mode "
            f"({cfg.tools.mode}) is set there too"
        )
        return
    cfg.tools.mode = mode  # type: ignore[assignment]
    more = " (commands ask; where nobody can answer, as with -q, they are refused)"
    cfg.notices.append(
        f"{source}: tools.shell.approval: {old} is deprecated; read as tools.mode: {mode}"
        + (more if old == "never" else "")
    )


def read_api_key_file(cfg: Config) -> None:
    """llm.api_key_file: the key is the file's first line (like llama-server's
    --api-key-file), so it need not sit in a config file or the environment."""
    name = cfg.llm.api_key_file
    if not name:
        return
    path = Path(name).expanduser()
    if cfg.llm.api_key:
        raise ConfigError(
            f"llm.api_key_file ({path}) and llm.api_key are both set; keep one of them"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"llm.api_key_file: cannot read {path}: {why}") from None
    key = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not key:
        raise ConfigError(f"llm.api_key_file: {path} is empty (the key is its first line)")
    cfg.llm.api_key = key


def user_config_path(env: typing.Mapping[str, str]) -> Path | None:
    """$XDG_CONFIG_HOME/coder/config.yaml (~/.config by default); None in an environment
    with neither variable (as tests pass one)."""
    base = env.get("XDG_CONFIG_HOME") or (env.get("HOME") and f"{env['HOME']}/.config")
    return Path(base).expanduser() / "coder" / "config.yaml" if base else None


def project_config_path(cfg: Config, cwd: str | os.PathLike | None = None) -> Path:
    base = Path(cwd or os.getcwd())
    return base / Path(cfg.tools.workspace or ".").expanduser() / ".coder" / "config.yaml"


# What a project config may set: how the agent works on this project. Everything else
# (the server binary, its flags and model, base_url and api_key, the workspace, shell
# approval, log and history paths) stays with the user: a workspace file must not choose
# what runs, what is approved, or where the conversation goes. Its agent.tools only
# narrows the list already set; the model's file tools cannot write under .coder/.
PROJECT_KEYS = (
    "llm.sampling",
    "llm.tool_protocol",
    "llm.request_timeout",
    "agent.max_steps",
    "agent.tools",
    "agent.system_prompt",
)


# Tools offered only when agent.tools names them (`@tool(default=False)`; a test keeps
# this list equal to the registry's). A project's agent.tools narrows the user's tool
# list; when the user gave none, that list is the default tools, without these.
OPT_IN_TOOLS = ("project_info", "lint")


def _check_allowed(data: dict, allowed: tuple[str, ...], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if any(dotted == a or dotted.startswith(a + ".") for a in allowed):
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


def _apply_file(cfg: Config, path: Path) -> None:
    data = _read_yaml(path)
    if data is not None:
        _apply_data(cfg, data, path)


def _apply_project(cfg: Config, path: Path) -> None:
    """The project's config: only PROJECT_KEYS, its system prompt a file inside the
    workspace, and its tool list can narrow the tools offered, never add one."""
    data = _read_yaml(path)
    if data is None:
        return
    _check_allowed(data, PROJECT_KEYS, str(path))
    offered = cfg.agent.tools
    _apply_data(cfg, data, path)
    agent = data.get("agent") or {}
    if agent.get("system_prompt"):
        workspace = path.parent.parent.resolve()
        prompt = Path(cfg.agent.system_prompt or "").expanduser().resolve()
        if not prompt.is_relative_to(workspace):
            raise ConfigError(
                f"{path}: 'agent.system_prompt' must be a file inside the workspace ({workspace})"
            )
    if offered is not None and cfg.agent.tools is not None:
        cfg.agent.tools = [name for name in cfg.agent.tools if name in offered]
    elif cfg.agent.tools is not None:
        cfg.agent.tools = [name for name in cfg.agent.tools if name not in OPT_IN_TOOLS]


def _read_yaml(path: Path) -> dict | None:
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
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _apply_data(cfg: Config, data: dict, path: Path) -> None:
    merge(cfg, data, prefix="", source=str(path))
    _anchor_paths(cfg, data, path.parent)
    tools = data.get("tools") if isinstance(data.get("tools"), dict) else {}
    take_approval(cfg, str(path), "mode" in tools)
    cfg.sources.append(str(path))


# Path keys that a config file may give relative to its own directory.
PATH_KEYS = (
    "tools.workspace",
    "llm.api_key_file",
    "logging.dir",
    "llm.server.model_path",
    "llm.server.chat_template_file",
    "llm.model_dirs",
    "llm.server.lora",
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
        elif isinstance(node, list) and all(isinstance(n, str) for n in node):
            anchored = [n if Path(n).expanduser().is_absolute() else str(base / n) for n in node]
            set_key(cfg, key, anchored, source="config")
