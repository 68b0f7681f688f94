"""@tool: a tool's schema read from its function's signature and docstring."""

from typing import Annotated, Literal, Required, TypedDict

import pytest

from coder import tools
from coder.tools import ToolContext, dispatch
from coder.tools.declare import Bounds, function_schema, tool
from coder.tools.workspace import Workspace


def sample(
    ctx: ToolContext,
    name: str,
    count: Annotated[int, Bounds(1, 9)],
    tags: list[str],
    mode: Literal["fast", "slow"] = "fast",
    verbose: bool = False,
    ratio: float | None = None,
    limit: Annotated[int, Bounds(minimum=0)] | None = None,
) -> str:
    """Do a sample thing. This sentence
    continues the first paragraph.

    Notes for developers: not shown to the model.

    Args:
        name: who to greet
        mode: how fast, a description
            that goes on over two lines
    """
    return f"{name} {count} {tags} {mode} {verbose} {ratio} {limit}"


def test_schema_from_signature_and_docstring():
    description, params = function_schema(sample)
    assert description == "Do a sample thing. This sentence continues the first paragraph."
    assert params == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "who to greet"},
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {
                "type": "string",
                "enum": ["fast", "slow"],
                "description": "how fast, a description that goes on over two lines",
            },
            "verbose": {"type": "boolean"},
            "ratio": {"type": "number"},
            "limit": {"type": "integer", "minimum": 0},
        },
        "required": ["name", "count", "tags"],
        "additionalProperties": False,
    }
    # key order is part of the prompt: type, enum/items, limits, description
    assert list(params["properties"]["mode"]) == ["type", "enum", "description"]
    assert list(params) == ["type", "properties", "required", "additionalProperties"]


def test_registered_tool_is_validated_from_its_generated_schema(tmp_path):
    @tool(access="run")
    def _sample(ctx: ToolContext, mode: Literal["a", "b"], n: int = 3) -> str:
        """Echo the mode."""
        return f"{mode} {n}"

    ctx = ToolContext(workspace=Workspace(tmp_path))
    try:
        assert tools.REGISTRY["_sample"].access == "run"
        assert tools.REGISTRY["_sample"].fn is _sample  # the function stays callable as is
        assert dispatch("_sample", {"mode": "b", "n": "4"}, ctx).output == "b 4"
        assert dispatch("_sample", {"mode": "a", "n": None}, ctx).output == "a 3"
        r = dispatch("_sample", {"mode": "c"}, ctx)
        assert r.is_error and '\'mode\' must be one of "a", "b", got "c"' in r.output
        assert "Expected: _sample(mode: string, n?: integer)" in r.output
    finally:
        tools.REGISTRY.pop("_sample", None)


def _no_doc(ctx: ToolContext, path: str) -> str:
    return path


def _no_hint(ctx: ToolContext, path) -> str:
    """Has a parameter without a type hint."""
    return path


def _dict_hint(ctx: ToolContext, options: dict) -> str:
    """Has a parameter whose type has no schema here."""
    return ""


def _two_types(ctx: ToolContext, value: int | str) -> str:
    """Has a union that is not X | None."""
    return ""


def _unknown_arg_doc(ctx: ToolContext, path: str) -> str:
    """Describes a parameter it does not have.

    Args:
        pth: a typo
    """
    return path


def _no_ctx(path: str) -> str:
    """Forgot ctx."""
    return path


def _var_kwargs(ctx: ToolContext, **kw: str) -> str:
    """Takes **kw."""
    return ""


def _untyped_list(ctx: ToolContext, paths: list) -> str:
    """A list of what?"""
    return ""


@pytest.mark.parametrize(
    "fn, fragments",
    [
        (_no_doc, ["_no_doc", "no docstring"]),
        (_no_hint, ["_no_hint", "parameter 'path'", "no type hint"]),
        (_dict_hint, ["_dict_hint", "parameter 'options'", "dict"]),
        (_two_types, ["_two_types", "parameter 'value'", "union"]),
        (_unknown_arg_doc, ["_unknown_arg_doc", "no parameter 'pth'"]),
        (_no_ctx, ["_no_ctx", "first parameter must be ctx"]),
        (_var_kwargs, ["_var_kwargs", "parameter 'kw'"]),
        (_untyped_list, ["_untyped_list", "parameter 'paths'"]),
    ],
)
def test_undeclarable_functions_fail_at_decoration(fn, fragments):
    with pytest.raises(TypeError) as e:
        tool()(fn)
    for fragment in fragments:
        assert fragment in str(e.value)
    assert fn.__name__ not in tools.REGISTRY


def test_the_prompt_schemas_of_two_tools_exactly():
    """What the model reads: a change here changes every prompt (and the prompt cache)."""
    by_name = {s["function"]["name"]: s["function"] for s in tools.schemas()}
    assert by_name["read_file"] == {
        "name": "read_file",
        "description": "Read a text file. Optional start_line/end_line (1-based, inclusive) "
        "read part of it.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "path relative to the workspace"},
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
                "line_numbers": {
                    "type": "boolean",
                    "description": "prefix each line with its number",
                },
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    }
    assert by_name["run_shell"] == {
        "name": "run_shell",
        "description": "Run a shell command in the workspace and show its output and exit "
        "code. Needs user approval.",
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "bash command line"},
                "timeout": {"type": "integer", "minimum": 1, "description": "seconds (optional)"},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    }


def test_include_ignored_in_three_listing_tools_exactly():
    """#19 point 9 added one parameter to tree, find_files and grep (every prompt carries
    it): the same short description in each, last, optional. list_dir has none (its note
    points to tree): SmolLM2 answered a read-README request in prose once it had one."""
    by_name = {s["function"]["name"]: s["function"]["parameters"] for s in tools.schemas()}
    expect = {
        "tree": ["path", "depth", "include_ignored"],
        "find_files": ["pattern", "path", "include_ignored"],
        "grep": [
            "pattern",
            "path",
            "glob",
            "context",
            "max_results",
            "ignore_case",
            "fixed_strings",
            "include_ignored",
        ],
    }
    for name, params in expect.items():
        props = by_name[name]["properties"]
        assert list(props) == params, name
        assert props["include_ignored"] == {
            "type": "boolean",
            "description": "also files that .gitignore excludes",
        }
        assert "include_ignored" not in by_name[name]["required"]
    others = [n for n in by_name if n not in expect]
    assert all("include_ignored" not in by_name[n]["properties"] for n in others)


class Item(TypedDict, total=False):
    text: Required[str]
    done: bool


class Loose(TypedDict):
    value: dict


def test_a_typeddict_is_an_object_of_its_keys():
    def items(ctx: ToolContext, items: list[Item]) -> str:
        """Take items."""
        return ""

    _, params = function_schema(items)
    assert params["properties"]["items"]["items"] == {
        "type": "object",
        "properties": {"text": {"type": "string"}, "done": {"type": "boolean"}},
        "required": ["text"],
        "additionalProperties": False,
    }

    def loose(ctx: ToolContext, thing: Loose) -> str:
        """Take a thing."""
        return ""

    with pytest.raises(TypeError, match="parameter 'thing', key 'value': type <class 'dict'>"):
        function_schema(loose)
