"""Registry: schemas, argument validation, dispatch never raising."""

import json
import time

import pytest

from coder import tools
from coder.tools import Tool, ToolContext, ToolError, dispatch, schemas, validate
from coder.tools.workspace import Workspace


@pytest.fixture
def ctx(tmp_path):
    return ToolContext(workspace=Workspace(tmp_path))


def test_import_gives_the_full_registry():
    expected = {
        "read_file",
        "read_files",
        "write_file",
        "append_file",
        "replace_in_file",
        "list_dir",
        "tree",
        "exists",
        "find_files",
        "grep",
        "git_status",
        "git_diff",
        "git_log",
        "git_show",
        "git_add",
        "git_commit",
        "run_shell",
    }
    assert expected <= set(tools.REGISTRY)
    assert tools.REGISTRY["run_shell"].access == "run"
    assert tools.REGISTRY["git_commit"].access == "run"
    assert tools.REGISTRY["read_file"].access == "read"


def test_schemas_are_openai_tools_and_valid_json_schema_subset():
    all_schemas = schemas(tools.REGISTRY)  # the opt-in tools too
    assert len(all_schemas) == len(tools.REGISTRY)
    for s in all_schemas:
        assert s["type"] == "function"
        f = s["function"]
        assert set(f) == {"name", "description", "parameters"}
        assert f["parameters"]["type"] == "object"
        assert f["parameters"]["additionalProperties"] is False
        assert len(f["description"]) < 200  # read by a 135M model
        json.dumps(s)
    picked = schemas(["grep", "nope", "read_file"])
    assert [s["function"]["name"] for s in picked] == ["grep", "read_file"]


def test_unknown_tool_is_an_error_result(ctx):
    r = dispatch("rm_everything", {}, ctx)
    assert r.is_error
    assert "unknown tool 'rm_everything'" in r.output and "read_file" in r.output
    assert r.duration_ms >= 0


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({}, "missing required 'path'"),
        ({"path": 5}, "'path' must be a string, got integer"),
        ({"path": "a", "start_line": "x"}, "'start_line' must be an integer"),
        ({"path": "a", "start_line": 0}, "'start_line' must be >= 1"),
        ({"path": "a", "file": "b"}, "unknown argument 'file' (allowed: path,"),
        ({"path": "a", "line_numbers": "yes"}, "'line_numbers' must be a boolean"),
    ],
)
def test_bad_arguments_are_error_results(ctx, arguments, fragment):
    r = dispatch("read_file", arguments, ctx)
    assert r.is_error
    assert fragment in r.output
    if "JSON" not in fragment:
        assert "Expected: read_file(path: string, start_line?: integer" in r.output


def test_json_string_arguments_and_forgiven_scalars(ctx, tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    r = dispatch("read_file", '{"path": "a.txt", "start_line": "2", "end_line": null}', ctx)
    assert not r.is_error, r.output
    assert r.output.startswith("two\nthree")
    assert dispatch("list_dir", "", ctx).output == "a.txt"


def test_validator_subset():
    schema = {
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["a", "b"]},
            "xs": {"type": "array", "items": {"type": "integer"}},
            "flag": {"type": "boolean"},
        },
        "required": ["mode"],
        "additionalProperties": False,
    }
    assert validate(schema, {"mode": "a", "xs": [1, 2], "flag": True}) == []
    assert validate(schema, {"mode": "c"}) == ['\'mode\' must be one of "a", "b", got "c"']
    assert validate(schema, {"mode": "a", "xs": [1, "2"]}) == [
        "'xs'[1] must be an integer, got string \"2\""
    ]
    assert validate(schema, {"mode": "a", "flag": 1}) == ["'flag' must be a boolean, got integer"]
    assert validate({"type": "integer"}, True) == ["arguments must be an integer, got boolean"]
    assert validate(schema, []) == ["arguments must be an object, got array"]


def test_tool_errors_and_crashes_become_error_results(ctx):
    def boom(ctx):
        raise ValueError("kaput")

    def clean(ctx):
        raise ToolError("nope, and here is why")

    def interrupted(ctx):
        raise KeyboardInterrupt

    params = {"type": "object", "properties": {}, "additionalProperties": False}
    try:
        tools.register(Tool("_boom", "test", params, boom))
        tools.register(Tool("_clean", "test", params, clean))
        tools.register(Tool("_int", "test", params, interrupted))
        r = dispatch("_boom", {}, ctx)
        assert r.is_error and "ValueError: kaput" in r.output
        r = dispatch("_clean", None, ctx)
        assert r.is_error and r.output == "error: nope, and here is why"
        with pytest.raises(KeyboardInterrupt):
            dispatch("_int", {}, ctx)
    finally:
        for name in ("_boom", "_clean", "_int"):
            tools.REGISTRY.pop(name, None)


def test_outputs_are_capped(ctx, tmp_path):
    ctx.max_output_bytes = 2000
    (tmp_path / "big.txt").write_text("".join(f"line {i}\n" for i in range(5000)))
    r = dispatch("read_file", {"path": "big.txt"}, ctx)
    assert len(r.output.encode()) <= 2000
    assert "[truncated: showed lines 1-" in r.output and "start_line=" in r.output


def test_duration_leaves_out_the_wait_at_the_approval_prompt(tmp_path):
    """A user who takes a while to answer y/N must not make the command look slow."""
    asked = []

    def slow_user(name, what):
        asked.append(what)
        time.sleep(0.5)
        return True

    ctx = ToolContext(workspace=Workspace(tmp_path), approve=slow_user)
    r = dispatch("run_shell", {"command": "sleep 0.1; echo done"}, ctx)
    assert asked and not r.is_error and "done" in r.output, r.output
    assert 100 <= r.duration_ms < 450, r.duration_ms
    ctx.approve = lambda name, what: (time.sleep(0.5), False)[1]
    r = dispatch("run_shell", {"command": "echo no"}, ctx)
    assert r.is_error and r.duration_ms < 300, r.duration_ms


@pytest.mark.parametrize(
    "message, shown",
    [
        ("error: not a git repository", "error: not a git repository"),
        ("error: error: file not found", "error: file not found"),
        ("fatal: bad object", "error: bad object"),
        ("Error:  x", "error: x"),
        ("errors were found", "error: errors were found"),
        ("", "error: failed"),
    ],
)
def test_error_results_have_one_prefix(ctx, message, shown):
    def fail(ctx):
        raise ToolError(message)

    params = {"type": "object", "properties": {}, "additionalProperties": False}
    try:
        tools.register(Tool("_fail", "test", params, fail))
        r = dispatch("_fail", {}, ctx)
    finally:
        tools.REGISTRY.pop("_fail", None)
    assert r.is_error and r.output == shown
