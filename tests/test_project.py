"""Project awareness: detection (coder.project), the opt-in project_info and lint tools
(the real ruff binary), and the default tool set staying as it was."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from coder import config as config_mod
from coder import tools
from coder.config.load import OPT_IN_TOOLS
from coder.project import detect, summary
from coder.runtime import offered_tools
from coder.tools import ToolContext, dispatch
from coder.tools.lint import MAX_ITEMS, find_linter
from coder.tools.workspace import Workspace

DEFAULT_17 = [
    "read_file", "read_files", "write_file", "append_file", "replace_in_file", "list_dir",
    "tree", "exists", "find_files", "git_status", "git_diff", "git_log", "git_show",
    "git_add", "git_commit", "grep", "run_shell",
]  # fmt: skip


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def pyproject(tmp_path) -> Path:
    return write(
        tmp_path / "proj",
        {
            "pyproject.toml": """\
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"
                [project]
                name = "demo"
                dependencies = ["requests>=2"]
                [project.optional-dependencies]
                dev = ["pytest>=8", "ruff>=0.5"]
                """,
            "src/demo/__init__.py": "",
            "src/demo/core.py": "import os\n\n\ndef f():\n    return 1\n",
            "tests/test_core.py": "def test_f():\n    assert True\n",
            "scripts/run.sh": "#!/bin/sh\necho hi\n",
        },
    )


def ctx_for(root: Path, **kw) -> ToolContext:
    return ToolContext(workspace=Workspace(root), **kw)


def test_a_python_project_reports_pytest_and_ruff(pyproject):
    info = detect(Workspace(pyproject))
    assert [c.command for c in info.test] == ["pytest"]
    assert [c.command for c in info.lint] == ["ruff check ."]
    assert [c.command for c in info.format] == ["ruff format ."]
    assert info.test[0].source == "pyproject.toml"
    assert [b.name for b in info.build_systems] == ["Python (pyproject.toml, hatchling)"]
    assert info.languages[0] == ("Python", 3) and ("Shell", 1) in info.languages
    assert info.layout == ["scripts/", "src/", "tests/", "pyproject.toml"]
    text = dispatch("project_info", {}, ctx_for(pyproject))
    assert not text.is_error
    assert "test: pytest (pyproject.toml)" in text.output
    assert "lint: ruff check . (pyproject.toml)" in text.output


def test_many_build_systems_and_the_makefile_first(tmp_path):
    root = write(
        tmp_path,
        {
            "Makefile": "test:\n\tgo test ./...\nlint: vet\n\tgolangci-lint run\nX := 1\n",
            "package.json": json.dumps(
                {
                    "scripts": {"test": "vitest", "lint": "eslint .", "format": "prettier -w ."},
                    "devDependencies": {"eslint": "9", "typescript": "5"},
                }
            ),
            "pnpm-lock.yaml": "",
            "Cargo.toml": "[package]\nname='x'\n",
            "go.mod": "module x\n",
            "CMakeLists.txt": "project(x)\n",
            "web/app.ts": "",
            "cmd/main.go": "",
            "node_modules/dep/index.js": "",  # never counted
        },
    )
    info = detect(Workspace(root))
    tests_ = [c.command for c in info.test]
    assert tests_[0] == "make test" and "pnpm test" in tests_ and "cargo test" in tests_
    assert "go test ./..." in tests_ and "ctest --test-dir build" in tests_
    lint = [c.command for c in info.lint]
    assert lint[:2] == ["make lint", "pnpm lint"] and "cargo clippy" in lint
    assert "npx eslint ." in lint and "npx tsc --noEmit" in lint
    assert "pnpm format" in [c.command for c in info.format]
    assert {b.name for b in info.build_systems} >= {"Make", "pnpm", "Cargo", "Go modules", "CMake"}
    assert dict(info.languages) == {"TypeScript": 1, "Go": 1}
    assert "X" not in str(info.test)  # `X := 1` is a variable, not a target


def test_a_manifest_linking_out_of_the_workspace_is_not_read(tmp_path):
    outside = write(tmp_path / "outside", {"pyproject.toml": "[tool.ruff]\n"})
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "pyproject.toml").symlink_to(outside / "pyproject.toml")
    info = detect(Workspace(ws))
    assert info.lint == [] and any("outside the workspace" in n for n in info.notes)
    assert "note:" in summary(info)


def test_lint_reports_an_unused_import_with_file_and_line(pyproject):
    r = dispatch("lint", {"paths": ["src/demo/core.py"]}, ctx_for(pyproject))
    assert not r.is_error, r.output
    head, *items = r.output.splitlines()
    assert head == "ruff: 1 diagnostics in 1 files"
    item = json.loads(items[0])
    assert item == {
        "file": "src/demo/core.py",
        "line": 1,
        "column": 8,
        "code": "F401",
        "message": "`os` imported but unused",
    }
    assert not (pyproject / ".ruff_cache").exists()  # nothing written into the workspace
    whole = dispatch("lint", {}, ctx_for(pyproject))  # the workspace: ruff for Python,
    assert "F401" in whole.output  # shellcheck too if it is installed
    clean = dispatch("lint", {"paths": ["tests"]}, ctx_for(pyproject))
    assert clean.output.startswith("ruff: clean")


def test_lint_caps_the_items_and_keeps_the_count(pyproject):
    many = "".join(f"import mod{i}\n" for i in range(MAX_ITEMS + 10))
    (pyproject / "many.py").write_text(many)
    r = dispatch("lint", {"paths": ["many.py"], "linter": "ruff"}, ctx_for(pyproject))
    lines = r.output.splitlines()
    assert lines[0] == f"ruff: {MAX_ITEMS + 10} diagnostics in 1 files"
    assert len(lines) == 1 + MAX_ITEMS + 1 and lines[-1].startswith("[10 more not shown")


def test_lint_stays_in_the_workspace(pyproject, tmp_path):
    (tmp_path / "secret.py").write_text("import os\n")
    for bad in ("../secret.py", str(tmp_path / "secret.py"), "nope.py"):
        r = dispatch("lint", {"paths": [bad], "linter": "ruff"}, ctx_for(pyproject))
        assert r.is_error, bad
    r = dispatch("lint", {"paths": ["README"], "linter": "eslint"}, ctx_for(pyproject))
    assert r.is_error and "ruff" in r.output  # a linter that is not known is not run


def test_a_linter_is_never_taken_from_the_workspace(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    for where in (ws / "bin", outside):
        where.mkdir(parents=True)
        fake = where / "fakelint"
        fake.write_text("#!/bin/sh\ntouch ran\n")
        fake.chmod(0o755)
    monkeypatch.chdir(ws)
    monkeypatch.setenv("PATH", os.pathsep.join(["bin", str(ws / "bin")]))
    assert find_linter("fakelint", ws.resolve()) is None
    monkeypatch.setenv("PATH", os.pathsep.join(["bin", str(ws / "bin"), str(outside)]))
    assert find_linter("fakelint", ws.resolve()) == str(outside / "fakelint")


def test_the_project_lint_script_needs_approval(tmp_path):
    root = write(
        tmp_path,
        {
            "Makefile": "lint:\n\t@echo 'src/a.py:3:1: E999 boom'; echo 'noise'; exit 1\n",
            "src/a.py": "x\n",
        },
    )
    asked: list[tuple[str, str]] = []
    refuse = ctx_for(root, approve=lambda name, what: asked.append((name, what)) or False)
    r = dispatch("lint", {"project_script": True}, refuse)
    assert r.is_error and "not approved" in r.output
    assert asked == [("lint", "the project's lint script: make lint")]
    ok = dispatch("lint", {"project_script": True}, ctx_for(root, mode="yes"))
    head, item = ok.output.splitlines()
    assert head == "make lint: 1 diagnostics in 1 files (exit code 2)"
    assert json.loads(item) == {
        "file": "src/a.py",
        "line": 3,
        "column": 1,
        "code": "E999",
        "message": "boom",
    }
    never = dispatch("lint", {"project_script": True}, ctx_for(root, mode="read-only"))
    assert never.is_error and "read-only mode (tools.mode) allows no action" in never.output
    assert not dispatch("lint", {}, ctx_for(root, mode="read-only")).is_error  # ruff reads


def test_the_default_tools_are_the_17_and_the_new_ones_are_opt_in(tmp_path):
    assert [s["function"]["name"] for s in tools.schemas()] == DEFAULT_17
    assert tools.default_tools() == DEFAULT_17
    assert set(OPT_IN_TOOLS) == {n for n, t in tools.REGISTRY.items() if not t.default}
    cfg = config_mod.Config()
    assert "lint" not in (offered_tools(cfg, tmp_path) or [])  # not a repository: no git_*
    cfg.agent.tools = ["read_file", "lint", "project_info"]
    assert offered_tools(cfg, tmp_path) == ["read_file", "lint", "project_info"]


def test_a_project_config_cannot_add_an_opt_in_tool(tmp_path):
    ws = tmp_path / "ws"
    (ws / ".coder").mkdir(parents=True)
    (ws / ".coder" / "config.yaml").write_text("agent:\n  tools: [read_file, lint]\n")
    cfg = config_mod.load(None, {"tools.workspace": str(ws)}, env={}, cwd=str(tmp_path))
    assert cfg.agent.tools == ["read_file"]


def test_slash_project_shows_the_same_report(pyproject, tmp_path):
    import io
    import threading

    from rich.console import Console

    from coder import server as srv_mod
    from coder.agent import Agent
    from coder.llm import Client
    from coder.log import Logger, Recorder
    from coder.repl import Commands
    from coder.runtime import Notifier, Runtime

    url = "http://127.0.0.1:9/v1"  # nothing listens there: /project does not ask the server
    cfg = config_mod.Config()
    logger = Logger(tmp_path / "logs")
    recorder = Recorder(logger)
    client = Client(url)
    agent = Agent(client=client, config=cfg, tool_ctx=ctx_for(pyproject), recorder=recorder)
    server = srv_mod.Server(srv_mod.Endpoint("127.0.0.1", 9, url), managed=False)
    rt = Runtime(cfg, logger, recorder, server, client, agent, threading.Event(), Notifier(print))
    console = Console(file=io.StringIO(), width=120, color_system=None)
    try:
        Commands(rt, console).run("project", "")
    finally:
        client.close()
        logger.close()
    out = console.file.getvalue()
    assert "Python (pyproject.toml, hatchling)" in out
    assert "pytest  (pyproject.toml)" in out and "ruff check .  (pyproject.toml)" in out
    assert "scripts/ src/ tests/ pyproject.toml" in out
