"""`@tool`: a tool declared once, by its function. The name is the function's, the
model-facing description the docstring's first paragraph, and the arguments' JSON schema
comes from the signature: type hints give the types (`X | None` is still X: null counts as
absent), parameters with a default are optional, `Literal[...]` is an enum,
`Annotated[int, Bounds(1, 10)]` adds limits, a TypedDict is an object of its keys, and an `Args:` section of the docstring
(`name: description` lines) describes the parameters. The first parameter is `ctx`.

A docstring or type hint this cannot read is a TypeError at import time, naming the
function and the parameter.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from .arguments import object_schema
from .permissions import Access
from .registry import Tool, register

F = TypeVar("F", bound=Callable[..., str])

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def tool(*, access: Access = "read", default: bool = True) -> Callable[[F], F]:
    """Register the decorated function as a tool; the function itself is returned unchanged.
    `access` is what the permission mode decides on: "read", "write" (files, the git
    index) or "run" (commands, commits); a write or run tool asks through
    `check_approval` itself. `default=False` makes it opt-in: offered only when
    agent.tools names it."""
    if access not in ("read", "write", "run"):
        raise TypeError(f"@tool: access must be read, write or run, not {access!r}")

    def decorate(fn: F) -> F:
        register(declared(fn, access=access, default=default))
        return fn

    return decorate


def declared(fn: Callable[..., str], *, access: Access = "read", default: bool = True) -> Tool:
    """The Tool of `fn`, as `@tool` declares it, but not registered: for a tool the agent
    offers by itself in some state (update_plan, while a plan is open)."""
    description, parameters = function_schema(fn)
    return Tool(fn.__name__, description, parameters, fn, access, default)


@dataclass(frozen=True)  # hashable: typing hashes Annotated's metadata in `X | None`
class Bounds:
    """Limits of a number parameter, as `Annotated[int, Bounds(1, 10)]`."""

    minimum: int | float | None = None
    maximum: int | float | None = None


def function_schema(fn: Callable[..., str]) -> tuple[str, dict]:
    """The description and the arguments' JSON schema of a tool function."""
    where = f"tool {fn.__module__}.{fn.__qualname__}"
    description, docs = _parse_docstring(fn, where)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:  # a hint naming something that does not exist
        raise TypeError(f"{where}: cannot read its type hints ({e})") from e
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].name != "ctx":
        raise TypeError(f"{where}: the first parameter must be ctx")
    properties: dict[str, dict] = {}
    required: list[str] = []
    for p in params[1:]:
        what = f"{where}: parameter '{p.name}'"
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"{what}: *args and **kwargs cannot be tool arguments")
        if p.name not in hints:
            raise TypeError(f"{what} has no type hint")
        prop = _schema_of(hints[p.name], what)
        if p.name in docs:
            prop["description"] = docs.pop(p.name)
        properties[p.name] = prop
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    if docs:
        raise TypeError(f"{where}: its docstring describes no parameter '{next(iter(docs))}'")
    return description, object_schema(properties, required)


def _schema_of(hint: Any, what: str) -> dict:
    """The JSON schema of one parameter's type hint; keys in the order type, enum, items,
    then limits (the description goes last)."""
    extra: dict = {}
    if typing.get_origin(hint) in (typing.Required, typing.NotRequired):  # a TypedDict's key
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is Annotated:
        hint, *meta = typing.get_args(hint)
        for m in meta:
            if not isinstance(m, Bounds):
                raise TypeError(f"{what}: Annotated takes Bounds(...) only, got {m!r}")
            if m.minimum is not None:
                extra["minimum"] = m.minimum
            if m.maximum is not None:
                extra["maximum"] = m.maximum
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"{what}: a union is only allowed with None, got {hint}")
        return {**_schema_of(rest[0], what), **extra}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint], **extra}
    if origin is Literal:
        kinds = {_SCALARS.get(type(a)) for a in args}
        if len(kinds) != 1 or None in kinds:
            raise TypeError(f"{what}: Literal values must be of one type (str, int, ...)")
        return {"type": kinds.pop(), "enum": list(args), **extra}
    if origin is list and len(args) == 1:
        return {"type": "array", "items": _schema_of(args[0], what), **extra}
    if typing.is_typeddict(hint):
        keys = typing.get_type_hints(hint, include_extras=True)
        properties = {k: _schema_of(v, f"{what}, key '{k}'") for k, v in keys.items()}
        required = [k for k in keys if k in hint.__required_keys__]
        return {**object_schema(properties, required), **extra}
    raise TypeError(
        f"{what}: type {hint} has no JSON schema here (str, int, float, bool, "
        "list[...], Literal[...], a TypedDict, X | None)"
    )


def _parse_docstring(fn: Callable[..., str], where: str) -> tuple[str, dict[str, str]]:
    """The first paragraph (on one line) and the `Args:` section's descriptions."""
    doc = inspect.getdoc(fn)
    if not doc or not doc.strip():
        raise TypeError(f"{where} has no docstring (its first paragraph is the description)")
    paragraphs = re.split(r"\n\s*\n", doc.strip())
    description = " ".join(paragraphs[0].split())
    if description.startswith("Args:"):
        raise TypeError(f"{where}: its docstring starts with Args: (say what the tool does first)")
    docs: dict[str, str] = {}
    lines = doc.splitlines()
    if "Args:" in lines:
        name = None
        for line in lines[lines.index("Args:") + 1 :]:
            if not line.startswith(" ") or not line.strip():
                break  # the section ends at a blank or unindented line
            m = re.fullmatch(r" {2,4}(\w+): (.+)", line)
            if m:
                name = m.group(1)
                docs[name] = m.group(2).strip()
            elif name is not None:
                docs[name] += " " + line.strip()
            else:
                raise TypeError(f"{where}: cannot read the Args: line {line.strip()!r}")
    return description, docs
