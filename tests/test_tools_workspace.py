"""Workspace: path confinement, atomic journaled writes, undo."""

import hashlib
import os
import stat

import pytest

from coder.tools import ToolContext, dispatch
from coder.tools.workspace import MAX_JOURNAL_FILE, Edit, Workspace, WorkspaceError, compile_glob


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "proj").mkdir()
    return Workspace(tmp_path / "proj")


@pytest.mark.parametrize("bad", ["../x", "../proj2/a", "sub/../../x", "/etc/passwd", "/"])
def test_paths_outside_are_refused(ws, bad):
    with pytest.raises(WorkspaceError, match="outside the workspace") as e:
        ws.resolve(bad)
    assert bad in str(e.value)


def test_symlinks_pointing_out_are_refused(ws, tmp_path):
    (tmp_path / "secret.txt").write_text("s")
    os.symlink("/etc", ws.root / "etc_link")
    os.symlink(tmp_path / "secret.txt", ws.root / "secret_link")
    os.symlink(tmp_path, ws.root / "parent_link")
    for bad in ["etc_link", "etc_link/passwd", "secret_link", "parent_link/secret.txt"]:
        with pytest.raises(WorkspaceError, match="outside"):
            ws.resolve(bad)
    ctx = ToolContext(workspace=ws)
    for tool, args in [
        ("read_file", {"path": "etc_link/passwd"}),
        ("write_file", {"path": "parent_link/new.txt", "content": "x"}),
        ("list_dir", {"path": "etc_link"}),
        ("grep", {"pattern": "root", "path": "etc_link"}),
    ]:
        r = dispatch(tool, args, ctx)
        assert r.is_error and "outside the workspace" in r.output, (tool, r.output)
    assert not (tmp_path / "new.txt").exists()


def test_inside_paths_resolve(ws):
    (ws.root / "a").mkdir()
    os.symlink("a", ws.root / "alias")
    assert ws.resolve("a/../b.txt") == ws.root / "b.txt"
    assert ws.resolve(str(ws.root / "a")) == ws.root / "a"
    assert ws.resolve("alias/x") == ws.root / "a" / "x"
    assert ws.relative(ws.root) == "."
    assert ws.relative(ws.root / "a" / "x") == "a/x"
    with pytest.raises(WorkspaceError):
        ws.resolve("")


def test_symlink_loop_is_an_error_not_a_crash(ws):
    os.symlink("loop2", ws.root / "loop1")
    os.symlink("loop1", ws.root / "loop2")
    r = dispatch("read_file", {"path": "loop1"}, ToolContext(workspace=ws))
    assert r.is_error


def test_atomic_write_keeps_mode_and_journals(ws):
    f = ws.root / "run.sh"
    f.write_text("echo 1\n")
    f.chmod(0o750)
    ws.write_text("run.sh", "echo 2\n")
    assert f.read_text() == "echo 2\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o750
    ws.write_text("new/dir/file.txt", "hello")
    assert (ws.root / "new/dir/file.txt").read_text() == "hello"
    assert [(e.path, e.before, e.after) for e in ws.journal] == [
        ("run.sh", b"echo 1\n", hashlib.sha256(b"echo 2\n").digest()),
        ("new/dir/file.txt", None, hashlib.sha256(b"hello").digest()),
    ]
    assert not [p for p in ws.root.rglob("*.tmp")]  # no temp files left behind


def test_undo_last(ws):
    ws.write_text("a.txt", "v1")
    ws.write_text("a.txt", "v2")
    assert ws.undo_last() == "restored a.txt"
    assert (ws.root / "a.txt").read_text() == "v1"
    assert "removed a.txt" in ws.undo_last()
    assert not (ws.root / "a.txt").exists()
    assert ws.undo_last() is None


def test_tool_edits_go_through_the_journal(ws):
    ctx = ToolContext(workspace=ws)
    dispatch("write_file", {"path": "m.py", "content": "x = 1\n"}, ctx)
    dispatch("replace_in_file", {"path": "m.py", "old_text": "x = 1", "new_text": "x = 2"}, ctx)
    dispatch("append_file", {"path": "m.py", "content": "y = 3\n"}, ctx)
    assert len(ws.journal) == 3
    ws.undo_last()
    ws.undo_last()
    assert (ws.root / "m.py").read_text() == "x = 1\n"


def test_non_utf8_bytes_survive_an_edit(ws):
    (ws.root / "l1.txt").write_bytes(b"caf\xe9 = 1\nname = 'x'\n")
    r = dispatch(
        "replace_in_file",
        {"path": "l1.txt", "old_text": "name = 'x'", "new_text": "name = 'y'"},
        ToolContext(workspace=ws),
    )
    assert not r.is_error, r.output
    assert (ws.root / "l1.txt").read_bytes() == b"caf\xe9 = 1\nname = 'y'\n"


def test_writes_into_git_metadata_are_refused(ws):
    """git runs programs named in .git/config and .git/hooks, and a `.git` file can point git at
    a fake repository: none of them may be written, or the model could run commands unasked."""
    (ws.root / ".git" / "hooks").mkdir(parents=True)
    (ws.root / ".git" / "config").write_text("[core]\n")
    (ws.root / "sub").mkdir()
    os.symlink(".git", ws.root / "meta")
    ctx = ToolContext(workspace=ws)
    bad = [
        ".git/config",
        ".git/hooks/pre-commit",
        ".git/new/dir/file",
        "./sub/../.git/config",
        "meta/config",  # a symlink into .git
        ".GIT/config",  # the same directory on a case-insensitive file system
        "sub/.git",  # a .git file: "gitdir: <somewhere the model wrote>"
        "sub/.git/config",
        "sub/.git./config",  # Windows drops trailing dots
    ]
    for path in bad:
        with pytest.raises(WorkspaceError, match="not allowed"):
            ws.write_text(path, "x")
        r = dispatch("write_file", {"path": path, "content": "x"}, ctx)
        assert r.is_error and ".git" in r.output and "not allowed" in r.output, (path, r.output)
    r = dispatch("append_file", {"path": ".git/config", "content": "[core]\nfsmonitor = x"}, ctx)
    assert r.is_error and "not allowed" in r.output
    r = dispatch(
        "replace_in_file",
        {"path": ".git/config", "old_text": "[core]", "new_text": "[core]\nfsmonitor = x"},
        ctx,
    )
    assert r.is_error and "not allowed" in r.output
    assert (ws.root / ".git" / "config").read_text() == "[core]\n"
    assert sorted(p.name for p in ws.root.rglob("*")) == [".git", "config", "hooks", "meta", "sub"]
    # undo never writes there either (the journal cannot hold such a path, but still)
    ws.journal.append(Edit(".git/config", b"[core]\nfsmonitor = x\n", b""))
    with pytest.raises(WorkspaceError, match="not allowed"):
        ws.undo_last()
    assert (ws.root / ".git" / "config").read_text() == "[core]\n"
    # names that only start with .git are ordinary files
    for path in [".gitignore", ".github/workflows/ci.yml", "docs/.gitkeep", "x.git/config"]:
        ws.write_text(path, "x")
        assert (ws.root / path).read_text() == "x"


def test_too_large_old_files_are_not_kept_for_undo(ws):
    big = ws.root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(MAX_JOURNAL_FILE + 1)  # sparse
    ws.write_text("small.txt", "v1")
    ws.write_text("big.bin", "now small")
    assert big.read_text() == "now small"
    assert ws.journal[-1].before is None and not ws.journal[-1].kept
    with pytest.raises(WorkspaceError, match="too large to keep"):
        ws.undo_last()
    assert big.read_text() == "now small"
    assert "removed small.txt" in ws.undo_last()  # the entry was dropped: undo goes on before it


def test_missing_workspace():
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace("/nonexistent/nowhere")


@pytest.mark.parametrize(
    "glob, yes, no",
    [
        ("*.py", ["a.py", "src/deep/b.py"], ["a.pyc", "a.py/x"]),
        ("src/*.py", ["src/a.py"], ["src/x/a.py", "a.py"]),
        ("src/**/*.py", ["src/a.py", "src/x/y/a.py"], ["lib/src/a.py"]),
        ("**/test_*.py", ["test_a.py", "t/test_b.py"], ["t/a_test.py"]),
        ("*.{js,ts}", ["a.js", "b/c.ts"], ["a.py"]),
        ("file?.[ch]", ["file1.c", "file2.h"], ["file10.c", "file1.o"]),
    ],
)
def test_globs(glob, yes, no):
    g = compile_glob(glob)
    for p in yes:
        assert g.match(p), (glob, p)
    for p in no:
        assert not g.match(p), (glob, p)


def test_undo_keeps_the_users_own_edits(ws):
    """The agent appends, then the user edits the file in an editor: undo must not silently
    throw the user's line away."""
    calc = ws.root / "calc.py"
    calc.write_text("def add(a, b):\n    return a + b\n")
    r = dispatch(
        "append_file", {"path": "calc.py", "content": "def sub(a, b):\n"}, ToolContext(workspace=ws)
    )
    assert not r.is_error, r.output
    agent_version = calc.read_text()
    with open(calc, "a") as f:  # the user's editor
        f.write("# mine\n")
    with pytest.raises(WorkspaceError, match="nothing was undone: calc.py changed since the agent"):
        ws.undo_last()
    assert calc.read_text() == agent_version + "# mine\n"
    assert len(ws.journal) == 1  # kept: undo works once the file is as the agent left it
    calc.write_text(agent_version)
    assert ws.undo_last() == "restored calc.py"
    assert calc.read_text() == "def add(a, b):\n    return a + b\n"
    # force reverts all the same, and says what it discarded
    ws.write_text("calc.py", "agent\n")
    calc.write_text("user\n")
    assert "those changes were discarded" in ws.undo_last(force=True)
    assert calc.read_text() == "def add(a, b):\n    return a + b\n"
    # a file the agent created and the user then edited is not removed either
    ws.write_text("new.py", "agent\n")
    (ws.root / "new.py").write_text("agent\nuser\n")
    with pytest.raises(WorkspaceError, match="nothing was undone"):
        ws.undo_last()
    assert (ws.root / "new.py").read_text() == "agent\nuser\n"
    # a file removed since the edit loses nothing by being restored
    (ws.root / "new.py").unlink()
    assert "removed new.py, created by the edit (it had been removed" in ws.undo_last()


def test_coders_project_config_is_not_the_models_to_write(ws):
    """.coder/config.yaml chooses the next session's system prompt and tools: the model
    must not be able to write it (or anything beside it) for itself."""
    (ws.root / ".coder").mkdir()
    os.symlink(".coder", ws.root / "cfg")
    ctx = ToolContext(workspace=ws)
    for path in (".coder/config.yaml", ".coder/prompt.md", "./.coder/x", "cfg/config.yaml"):
        with pytest.raises(WorkspaceError, match="not allowed"):
            ws.write_text(path, "x")
        r = dispatch("write_file", {"path": path, "content": "x"}, ctx)
        assert r.is_error and ".coder" in r.output
    assert list((ws.root / ".coder").iterdir()) == []
    ws.write_text("sub/.coder/notes.md", "a nested .coder is just a folder")
