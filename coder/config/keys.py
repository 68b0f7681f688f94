"""Reading and setting one dotted key (`llm.server.port`), checked against its type:
for config files, the environment, the command line and `/config KEY VALUE`."""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from coder.config.schema import Config, ConfigError
from coder.redact import REDACTED

NOT_KEYS = ("sources", "notices")  # Config fields that say where values came from, not keys


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
    fields = {f.name: f for f in dataclasses.fields(obj) if f.name not in NOT_KEYS}
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
        merge(current, value, prefix=f"{dotted}.", source=source)
        return
    if typing.get_origin(hint) is dict:
        _set_entries(current, typing.get_args(hint)[1], rest, value, source, from_text, dotted)
        return
    if rest:
        raise ConfigError(f"{source}: unknown key '{dotted}' ('{head}' has no sub-keys)")
    setattr(obj, head, coerce(value, hint, dotted, source, from_text))


NAME = re.compile(r"[A-Za-z0-9_-]+")


def _check_name(name: str, dotted: str, source: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{source}: '{dotted}': the name {name!r} may hold only letters, digits, _ and -"
        )


def _set_entries(
    mapping: dict, item: Any, rest: str, value: Any, source: str, from_text: bool, dotted: str
) -> None:
    """A mapping of names to values (mcp.servers): given whole, its entries are merged
    into what earlier sources set, one by one (`NAME: null` drops one); `KEY.NAME[.sub]`
    sets one entry or a key inside it."""
    if not rest:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {_kind(value)}")
        for name, entry in value.items():
            _check_name(str(name), f"{dotted}.{name}", source)
            _set_entries(mapping, item, str(name), entry, source, from_text, f"{dotted}.{name}")
        return
    name, _, sub = rest.partition(".")
    _check_name(name, dotted, source)
    if value is None and not sub:
        mapping.pop(name, None)
        return
    if not dataclasses.is_dataclass(item):
        if sub:
            raise ConfigError(f"{source}: unknown key '{dotted}' ('{name}' has no sub-keys)")
        mapping[name] = coerce(value, item, dotted, source, from_text)
        return
    entry = copy.deepcopy(mapping.get(name) or item())
    if sub:
        set_key(entry, sub, value, source, from_text, dotted)
    elif isinstance(value, dict):
        merge(entry, value, prefix=f"{dotted}.", source=source)
    else:
        raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {_kind(value)}")
    mapping[name] = entry  # only once every key in it was valid


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
            value = _text_list(value, key, source)
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


def _text_list(text: str, key: str, source: str) -> Any:
    """A list from the environment or the command line: `[a, b]` (YAML), `a,b`, or
    words as a shell splits them (`--flag "a b"`)."""
    import shlex

    stripped = text.strip()
    if stripped.startswith("["):
        import yaml

        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: '{key}': not a list: {exc}") from None
    if "," in stripped:
        return [item.strip() for item in stripped.split(",") if item.strip()]
    try:
        return shlex.split(stripped)
    except ValueError as exc:
        raise ConfigError(f"{source}: '{key}': {exc}") from None


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
    for name in NOT_KEYS:
        data.pop(name, None)
    if redact and data["llm"].get("api_key"):
        data["llm"]["api_key"] = REDACTED
    if redact:  # an MCP server's env is where its tokens go
        for server in data["mcp"]["servers"].values():
            server["env"] = {name: REDACTED for name in server["env"]}
    return data


def log_dir(cfg: Config) -> Path:
    return Path(cfg.logging.dir).expanduser()


def get_key(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        if not dataclasses.is_dataclass(obj) or part not in {
            f.name for f in dataclasses.fields(obj) if f.name not in NOT_KEYS
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


def merge(obj: Any, data: dict, prefix: str, source: str) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        set_key(obj, str(key), value, source=source, dotted=dotted)


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
    for name, server in cfg.mcp.servers.items():
        if not server.command.strip():
            raise ConfigError(f"'mcp.servers.{name}.command' is required (the program to run)")
        for key in ("startup_timeout", "timeout"):
            if getattr(server, key) <= 0:
                raise ConfigError(f"'mcp.servers.{name}.{key}' must be above 0")
