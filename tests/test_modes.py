"""Permission modes (tools.mode): what each offers and what asks, switching them in a
running REPL (/mode), the deprecated tools.shell.approval, -q where nobody can answer,
and bad values on the command line, in config files and in the environment."""

from __future__ import annotations

import json
import subprocess
import typing
from pathlib import Path

import pytest

from coder import config, tools
from coder.config import Config, ConfigError
from coder.config.schema import Mode
from coder.export import export
from coder.log import list_log_files, read_sessions
from coder.tools import REGISTRY, ToolContext, dispatch, schemas
from coder.tools.workspace import Workspace
from tests import cli
from tests.repl_harness import repl_config, repl_session
from tests.scripted_server import stream_text, stream_tool_calls
from tests.test_query_output import query

WRITE = {"write_file", "append_file", "replace_in_file", "git_add"}
RUN = {"run_shell", "git_commit"}

# one call per tool that writes or runs, each of which would change the workspace
SAMPLES = {
    "write_file": {"path": "new.txt", "content": "x\n"},
    "append_file": {"path": "README.md", "content": "more\n"},
    "replace_in_file": {"path": "README.md", "old_text": "hello", "new_text": "bye"},
    "git_add": {"paths": ["untracked.txt"]},
    "git_commit": {"message": "change", "all": True},
    "run_shell": {"command": "touch ran.txt"},
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("hello\nworld\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    (root / "README.md").write_text("hello\nworld\nchanged\n")  # for git_commit -a
    (root / "untracked.txt").write_text("u\n")  # for git_add
    return root


def state(root: Path) -> tuple:
    """Everything a tool could change: the files and git's view of them."""
    files = sorted((p.name, p.read_bytes()) for p in root.iterdir() if p.is_file())
    status = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    return files, status, head


# -- the classification, declared once per tool -------------------------------------------


def test_every_tool_declares_what_it_does_and_the_modes_follow_it():
    access = {name: t.access for name, t in REGISTRY.items()}
    assert {n for n, a in access.items() if a == "write"} == WRITE
    assert {n for n, a in access.items() if a == "run"} == RUN
    assert set(access.values()) == {"read", "write", "run"}
    every = list(REGISTRY)
    offered = {
        mode: {t["function"]["name"] for t in schemas(every, mode=mode)} for mode in tools.MODES
    }
    assert offered["read-only"] == set(every) - WRITE - RUN
    assert offered["ask"] == offered["auto-edit"] == offered["yes"] == set(every)
    assert typing.get_args(Mode) == tools.MODES  # the config's Literal, the same modes
    assert set(tools.permissions.DESCRIPTIONS) == set(tools.MODES)


def test_in_ask_mode_every_tool_that_writes_or_runs_asks_before_it_acts(repo):
    assert set(SAMPLES) == WRITE | RUN  # a new write or run tool needs a sample here
    asked: list[str] = []
    ctx = ToolContext(
        workspace=Workspace(repo), mode="ask", approve=lambda n, w: asked.append(n) or False
    )
    before = state(repo)
    for name, args in SAMPLES.items():
        r = dispatch(name, args, ctx)
        assert r.is_error and f"{name} was not run: it was not approved" in r.output, r.output
    assert asked == list(SAMPLES) and state(repo) == before


@pytest.mark.parametrize("mode", ["auto-edit", "read-only"])
def test_auto_edit_applies_edits_unasked_and_read_only_refuses_them(repo, mode):
    asked: list[str] = []
    ctx = ToolContext(
        workspace=Workspace(repo), mode=mode, approve=lambda n, w: asked.append(n) or False
    )
    before = state(repo)
    results = {name: dispatch(name, args, ctx) for name, args in SAMPLES.items()}
    if mode == "auto-edit":
        assert not any(results[n].is_error for n in WRITE), results
        assert (repo / "new.txt").read_text() == "x\n"
        assert asked == ["git_commit", "run_shell"]  # commands still ask
    else:
        for name, r in results.items():
            assert r.is_error and f"{name} is not available in read-only mode" in r.output
        assert asked == [] and state(repo) == before
    # a tool the model was not offered is not named to it among the available ones
    r = dispatch("nope", {}, ctx)
    assert ("write_file" in r.output) is (mode == "auto-edit")


def test_the_edit_shown_for_approval_is_its_diff(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    shown: list[str] = []
    ctx = ToolContext(
        workspace=Workspace(tmp_path),
        mode="ask",
        approve=lambda n, w: shown.append(w) or True,
    )
    dispatch("replace_in_file", {"path": "a.txt", "old_text": "two", "new_text": "2"}, ctx)
    dispatch("write_file", {"path": "b.txt", "content": "new\n"}, ctx)
    assert shown[0].splitlines()[:3] == ["edit a.txt", "--- a/a.txt", "+++ b/a.txt"]
    assert "-two" in shown[0] and "+2" in shown[0]
    assert shown[1].startswith("create b.txt\n--- /dev/null") and "+new" in shown[1]
    assert (tmp_path / "a.txt").read_text() == "one\n2\n"  # approved: applied


# -- the setting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, mode", [("ask", "auto-edit"), ("auto", "yes"), ("never", "auto-edit")]
)
def test_the_old_approval_setting_is_read_as_a_mode_with_a_notice(tmp_path, old, mode):
    path = tmp_path / "c.yaml"
    path.write_text(f"tools:\n  shell:\n    approval: {old}\n")
    for cfg in (
        config.load(path, env={}, cwd=tmp_path),
        config.load(None, env={"CODER_TOOLS__SHELL__APPROVAL": old}, cwd=tmp_path),
    ):
        assert cfg.tools.mode == mode and cfg.tools.shell.approval is None
        [notice] = cfg.notices
        assert f"tools.shell.approval: {old} is deprecated; read as tools.mode: {mode}" in notice


def test_later_sources_win_and_tools_mode_beside_the_old_key_wins(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("tools:\n  shell:\n    approval: auto\n")
    env = {"CODER_TOOLS__MODE": "read-only"}
    assert config.load(old, env=env, cwd=tmp_path).tools.mode == "read-only"
    env = {"CODER_TOOLS__SHELL__APPROVAL": "auto"}
    both = tmp_path / "both.yaml"
    both.write_text("tools:\n  mode: ask\n  shell:\n    approval: auto\n")
    assert config.load(both, env=env, cwd=tmp_path).tools.mode == "yes"  # env after file
    cfg = config.load(both, env={}, cwd=tmp_path)
    assert cfg.tools.mode == "ask" and "ignored" in cfg.notices[0]
    assert config.load(old, {"tools.mode": "ask"}, env={}, cwd=tmp_path).tools.mode == "ask"
    with pytest.raises(ConfigError, match="'tools.mode' must be one of read-only, ask"):
        config.load(None, env={"CODER_TOOLS__MODE": "never"}, cwd=tmp_path)


def coder(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    env = {"CODER_LOG_DIR": str(tmp_path / "logs"), **env}
    return cli.coder(*args, cwd=tmp_path, env=env, timeout=60)


def test_a_bad_mode_is_one_line_naming_it_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools:\n  mode: sometimes\n")
    for args, env, named in [
        (
            ["--mode", "nonsense"],
            {},
            "'tools.mode' must be one of read-only, ask, auto-edit, yes; got 'nonsense'",
        ),
        ([], {"CODER_TOOLS__MODE": "bad"}, "environment: 'tools.mode' must be one of"),
        (["--config", str(bad)], {}, f"{bad}: 'tools.mode' must be one of"),
        (["--yes", "--mode", "ask"], {}, "--yes is --mode yes; it does not go with --mode ask"),
    ]:
        done = coder(tmp_path, *args, "-q", "hi", **env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert named in done.stderr


def test_the_deprecation_notice_is_printed_once_at_start(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("tools:\n  shell:\n    approval: auto\n")
    done = coder(
        tmp_path,
        "--config",
        str(old),
        "--no-auto-manage",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "-q",
        "hi",
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("deprecated") == 1
    assert "tools.shell.approval: auto is deprecated; read as tools.mode: yes" in done.stderr


# -- a running session ---------------------------------------------------------------------


def offered_in(request) -> set[str]:
    """The tool names a json-protocol request lists in its system text."""
    listed = request.json["messages"][0]["content"].split("\n# Tools\n")[1]
    return {line[2:].split("(")[0] for line in listed.splitlines() if line.startswith("- ")}


def test_mode_switches_what_the_next_request_offers_and_the_log_follows(tmp_path, srv):
    cfg = repl_config(tmp_path, srv.base_url)
    cfg.llm.tool_protocol = "json"
    srv.enqueue(stream_text('{"answer": "one"}'), stream_text('{"answer": "two"}'))
    with repl_session(cfg) as s:
        s.run("/mode\rfirst\r/mode read-only\r/mode nonsense\rsecond\r/tools\r/exit\r")
        flat = " ".join(s.out.split())
        assert "mode auto-edit: file edits apply at once" in flat
        assert "ask first run_shell modes read-only, ask, auto-edit, yes" in flat
        assert "mode auto-edit -> read-only: the model reads and searches" in s.out
        assert (
            "no longer offered to the model: write_file, append_file, replace_in_file, "
            "run_shell" in s.out
        )
        assert "/mode: unknown mode 'nonsense' (one of read-only, ask, auto-edit, yes)" in s.out
        assert "read-only" in s.repl.toolbar()
        first, second = srv.chat_requests()
        s.repl.rt.logger.flush()
    assert {"write_file", "run_shell", "read_file"} <= offered_in(first)
    assert offered_in(second) and not offered_in(second) & (WRITE | RUN)
    told = second.json["messages"][-1]["content"]
    assert told.startswith("[note: the user switched the permission mode to read-only: only")
    assert told.endswith("]\nsecond")
    [log] = read_sessions(list_log_files(cfg.logging.dir))
    assert log.calls[0].tools is None and "write_file" in {t["function"]["name"] for t in log.tools}
    assert {t["function"]["name"] for t in log.calls[1].tools} == offered_in(second)
    out = tmp_path / "sft.jsonl"  # one row: the conversation, with its last call's tools
    export(None, "sft", out, log_dir=cfg.logging.dir)
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert {t["function"]["name"] for t in row["tools"]} == offered_in(second)


def test_ask_mode_shows_an_edit_and_always_stops_asking_for_that_tool(tmp_path, srv):
    cfg = repl_config(tmp_path, srv.base_url)
    edit = '{"path": "README.md", "old_text": "%s", "new_text": "%s"}'
    srv.enqueue(
        stream_tool_calls([("replace_in_file", edit % ("world", "there"))]),
        stream_tool_calls([("replace_in_file", edit % ("world", "you"))]),
        stream_tool_calls([("replace_in_file", edit % ("hello", "hi"))]),
        stream_text("done"),
    )
    readme = Path(cfg.tools.workspace) / "README.md"
    with repl_session(cfg) as s:
        s.run("/mode ask\redit it\rn\ra\r/exit\r")
        assert "ask first: write_file, append_file, replace_in_file, run_shell" in s.out
        assert "replace_in_file wants to edit README.md" in s.out
        assert "-world" in s.out and "+there" in s.out
        assert s.out.count("wants to edit") == 2  # refused, then always: the third not asked
        results = [m["content"] for m in s.messages if m.get("role") == "tool"]
    assert "not approved (edit README.md)" in results[0]
    assert readme.read_text() == "hi\nyou\n"  # hello -> hi too: not asked again


def test_q_refuses_what_would_ask_and_tells_the_model_why(tmp_path, srv):
    write = stream_tool_calls([("write_file", '{"path": "new.txt", "content": "x"}')])
    srv.enqueue(write, stream_text("ok"), write, stream_text("ok"))
    ask = query(tmp_path, srv.base_url, "-q", "write it", "--mode", "ask")
    assert ask.returncode == 0, ask.stderr
    refused = srv.chat_requests()[1].json["messages"][-1]["content"]
    assert "write_file was not run" in refused and "coder -q cannot ask anyone" in refused
    assert not (tmp_path / "ws" / "new.txt").exists()
    default = query(tmp_path, srv.base_url, "-q", "write it")  # auto-edit: edits apply
    assert default.returncode == 0 and (tmp_path / "ws" / "new.txt").read_text() == "x"


def test_config_tools_mode_switches_like_mode(tmp_path, srv):
    cfg = repl_config(tmp_path, srv.base_url)
    with repl_session(cfg) as s:
        s.run("/config tools.mode yes\r/config tools.shell.approval never\r/exit\r")
        assert "mode auto-edit -> yes: nothing asks" in s.out
        assert (
            "/config: tools.shell.approval: never is deprecated; read as tools.mode: auto-edit"
            in s.out
        )
        assert s.repl.rt.agent.tool_ctx.mode == "auto-edit"


def test_shipped_default_is_todays_behaviour():
    assert Config().tools.mode == "auto-edit" == ToolContext(workspace=None).mode  # type: ignore[arg-type]
