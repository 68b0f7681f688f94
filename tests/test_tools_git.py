"""Git tools against a real repository."""

import subprocess

import pytest

from tools import ToolContext, dispatch
from tools.workspace import Workspace

ENV_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]


def git(root, *args):
    subprocess.run(["git", *ENV_ID, *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "first commit")
    return tmp_path


def ok(ctx, name, **args):
    r = dispatch(name, args, ctx)
    assert not r.is_error, r.output
    return r.output


def test_outside_a_repo_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    ctx = ToolContext(workspace=Workspace(tmp_path), approval="auto")
    for name, args in [
        ("git_status", {}),
        ("git_diff", {}),
        ("git_log", {}),
        ("git_show", {}),
        ("git_add", {"paths": ["."]}),
        ("git_commit", {"message": "x"}),
    ]:
        r = dispatch(name, args, ctx)
        assert r.is_error, name
        assert "not a git repository" in r.output, r.output


def test_status_diff_add_commit_log_show(repo):
    ctx = ToolContext(workspace=Workspace(repo), approval="auto")
    assert ok(ctx, "git_status") == "## main\n(clean: nothing to commit)"
    (repo / "a.txt").write_text("one\ntwo\n")
    (repo / "new.txt").write_text("new\n")
    assert ok(ctx, "git_status") == "## main\n M a.txt\n?? new.txt"
    diff = ok(ctx, "git_diff")
    assert "+two" in diff and "a/a.txt" in diff and "new.txt" not in diff
    assert ok(ctx, "git_diff", staged=True) == "no staged changes"
    assert ok(ctx, "git_diff", path="new.txt").startswith("no unstaged changes")
    assert ok(ctx, "git_add", paths=["a.txt", "new.txt"]).endswith("M  a.txt\nA  new.txt")
    assert "+new" in ok(ctx, "git_diff", staged=True)
    out = ok(ctx, "git_commit", message="second: add two")
    assert "second: add two" in out and "2 files changed" in out
    log = ok(ctx, "git_log")
    assert log.splitlines()[0].endswith("Test: second: add two")
    assert log.splitlines()[1].endswith("Test: first commit")
    assert len(ok(ctx, "git_log", max_count=1).splitlines()) == 1
    assert ok(ctx, "git_log", path="new.txt").count("\n") == 0
    show = ok(ctx, "git_show", rev="HEAD~1")
    assert "first commit" in show and "+one" in show
    assert "+new" in ok(ctx, "git_show", path="new.txt")
    r = dispatch("git_show", {"rev": "--output=/tmp/x"}, ctx)
    assert r.is_error and "invalid revision" in r.output
    r = dispatch("git_commit", {"message": "empty"}, ctx)
    assert r.is_error and "nothing to commit" in r.output
    r = dispatch("git_add", {"paths": ["../outside"]}, ctx)
    assert r.is_error and "outside the workspace" in r.output


def test_commit_asks_for_approval(repo):
    asked = []

    def approve(name, what):
        asked.append((name, what))
        return False

    (repo / "a.txt").write_text("changed\n")
    ctx = ToolContext(workspace=Workspace(repo), approve=approve, approval="ask")
    r = dispatch("git_commit", {"message": "change a\n\nbody", "all": True}, ctx)
    assert r.is_error and "the user did not approve" in r.output
    assert asked == [("git_commit", "git commit -a: change a")]
    ctx.approval = "never"
    r = dispatch("git_commit", {"message": "change a", "all": True}, ctx)
    assert r.is_error and "approval: never" in r.output
    ctx.approve = lambda name, what: True
    ctx.approval = "ask"
    assert "1 file changed" in ok(ctx, "git_commit", message="change a", all=True)


def test_empty_repo(tmp_path):
    git(tmp_path, "init", "-q")
    ctx = ToolContext(workspace=Workspace(tmp_path))
    assert ok(ctx, "git_log") == "no commits yet"
    assert ok(ctx, "git_show") == "no commits yet"
