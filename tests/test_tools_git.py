"""Git tools against a real repository."""

import subprocess

import pytest

from coder.tools import ToolContext, dispatch
from coder.tools.git import in_repo
from coder.tools.workspace import Workspace

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
    ctx = ToolContext(workspace=Workspace(tmp_path), mode="yes")
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
    ctx = ToolContext(workspace=Workspace(repo), mode="yes")
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
    ctx = ToolContext(workspace=Workspace(repo), approve=approve, mode="auto-edit")
    r = dispatch("git_commit", {"message": "change a\n\nbody", "all": True}, ctx)
    assert (
        r.is_error
        and "git_commit was not run: it was not approved (git commit -a: change a)" in r.output
    )
    assert asked == [("git_commit", "git commit -a: change a")]
    ctx.mode = "read-only"
    r = dispatch("git_commit", {"message": "change a", "all": True}, ctx)
    assert r.is_error and "git_commit is not available in read-only mode" in r.output
    ctx.approve = lambda name, what: True
    ctx.mode = "auto-edit"
    assert "1 file changed" in ok(ctx, "git_commit", message="change a", all=True)


def test_empty_repo(tmp_path):
    git(tmp_path, "init", "-q")
    ctx = ToolContext(workspace=Workspace(tmp_path))
    assert ok(ctx, "git_log") == "no commits yet"
    assert ok(ctx, "git_show") == "no commits yet"


def script(path, code=0):
    """A program that leaves `path`.ran behind when something runs it."""
    path.write_text(f"#!/bin/sh\ntouch '{path}.ran'\nexit {code}\n")
    path.chmod(0o755)
    return str(path)


def test_read_only_tools_run_no_program_from_the_repo_config(repo):
    """Defence in depth: the model cannot write .git any more, but even commands planted there
    earlier (fsmonitor, hooks, external diff, textconv, pager) are not run by the tools that need
    no approval. git_commit (approved by the user) keeps the user's hooks."""
    g = repo / ".git"
    git(repo, "config", "core.fsmonitor", script(g / "fsmonitor", 1))
    git(repo, "config", "core.pager", script(g / "pager"))
    git(repo, "config", "diff.external", script(g / "extdiff"))
    git(repo, "config", "diff.conv.textconv", script(g / "textconv"))
    script(g / "hooks" / "post-index-change")
    # attributes in the work tree only name a driver; a filter the config does not define is inert
    (repo / ".gitattributes").write_text("*.txt diff=conv filter=nosuch\n")
    (repo / "a.txt").write_text("one\ntwo\n")
    ctx = ToolContext(workspace=Workspace(repo), mode="yes")
    assert "M a.txt" in ok(ctx, "git_status")
    assert "+two" in ok(ctx, "git_diff")
    ok(ctx, "git_add", paths=["a.txt", ".gitattributes"])
    assert "+two" in ok(ctx, "git_diff", staged=True)
    ok(ctx, "git_log", path="a.txt")
    ok(ctx, "git_show", rev="HEAD", path="a.txt")
    assert sorted(p.name for p in g.rglob("*.ran")) == []
    script(g / "hooks" / "pre-commit")
    asked = []
    ctx.mode, ctx.approve = "auto-edit", lambda name, what: asked.append(what) or True
    ok(ctx, "git_commit", message="two")
    assert asked == ["git commit: two (runs hooks: pre-commit, post-index-change)"]
    assert "+two" in ok(ctx, "git_show", path="a.txt")  # textconv not used
    # the commit ran the user's hooks, and still no fsmonitor or diff driver
    assert sorted(p.name for p in g.rglob("*.ran")) == ["post-index-change.ran", "pre-commit.ran"]


def test_a_fake_git_dir_written_by_the_model_is_not_used(tmp_path, monkeypatch):
    """In a workspace that is no repository, the model wrote a git dir and a `.git` file naming it
    (or laid the workspace out as a bare repository): git_status must not run its fsmonitor."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    ctx = ToolContext(workspace=Workspace(tmp_path))
    mark = tmp_path.parent / f"{tmp_path.name}.pwned"
    config = f'[core]\n\tfsmonitor = "touch {mark}; false"\n'
    for prefix in ["e/", ""]:  # a gitdir under e/ with .git pointing at it; the root itself
        for path, content in [
            ("HEAD", "ref: refs/heads/main\n"),
            ("config", config),
            ("objects/.keep", ""),
            ("refs/.keep", ""),
        ]:
            dispatch("write_file", {"path": prefix + path, "content": content}, ctx)
        r = dispatch("write_file", {"path": ".git", "content": "gitdir: e\n"}, ctx)
        assert r.is_error and "not allowed" in r.output
        r = dispatch("git_status", {}, ctx)
        assert r.is_error and "not a git repository" in r.output, r.output
        assert not mark.exists()


def test_git_tools_refuse_a_config_file_the_model_can_edit(repo):
    """Some projects share git settings with `include.path = ../.gitconfig`: then a work-tree
    file is git config, and a filter defined there runs on git_add and git_status."""
    git(repo, "config", "include.path", "../.gitconfig")
    ctx = ToolContext(workspace=Workspace(repo), mode="yes")
    mark = repo / ".git" / "filter"
    for path, content in [
        (".gitconfig", f'[filter "x"]\n\tclean = "touch {mark}.ran; cat"\n'),
        (".gitattributes", "*.txt filter=x\n"),
        ("a.txt", "changed\n"),
    ]:
        ok(ctx, "write_file", path=path, content=content)
    for name, args in [("git_status", {}), ("git_add", {"paths": ["a.txt"]}), ("git_diff", {})]:
        r = dispatch(name, args, ctx)
        assert r.is_error and "'.gitconfig'" in r.output and "disabled" in r.output, r.output
    assert not (repo / ".git" / "filter.ran").exists()


@pytest.fixture
def nested(tmp_path, repo):
    """The workspace ws/ is a subdirectory of a larger repository with a secret at its top."""
    (repo / "secret.txt").write_text("TOP SECRET v1\n")
    (repo / "ws").mkdir()
    (repo / "ws" / "pub.txt").write_text("public\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "ws and secret")
    (repo / "secret.txt").write_text("TOP SECRET v2\n")
    git(repo, "commit", "-q", "-am", "parent only")
    return repo


def test_a_workspace_inside_a_larger_repo_sees_only_itself(nested):
    ctx = ToolContext(workspace=Workspace(nested / "ws"), mode="yes")
    assert dispatch("read_file", {"path": "../secret.txt"}, ctx).is_error  # as the file tools
    blob = subprocess.run(
        ["git", "rev-parse", "HEAD:secret.txt"], cwd=nested, capture_output=True, text=True
    ).stdout.strip()
    for rev in [
        "HEAD:secret.txt",
        "HEAD:../secret.txt",
        "HEAD~1:./../secret.txt",
        ":secret.txt",
        ":/parent",
        "HEAD^{tree}",
        blob,
    ]:
        r = dispatch("git_show", {"rev": rev}, ctx)
        assert r.is_error and "SECRET" not in r.output, rev
    (nested / "secret.txt").write_text("TOP SECRET v3\n")
    assert ok(ctx, "git_status") == "## main\n(clean: nothing to commit)"
    log = ok(ctx, "git_log")
    assert "ws and secret" in log and "parent only" not in log and "first commit" not in log
    show = ok(ctx, "git_show")  # HEAD changes only the parent
    assert "SECRET" not in show and "secret" not in show
    assert "+public" in ok(ctx, "git_show", rev="HEAD~1")
    assert "SECRET" not in ok(ctx, "git_show", rev="HEAD~1")
    # pathspec magic would reach the top of the repository: paths are taken literally
    for p in [":(top)", ":/", ":(top)secret.txt", ":/secret.txt"]:
        for name, args in [
            ("git_log", {"path": p}),
            ("git_diff", {"path": p}),
            ("git_show", {"path": p}),
            ("git_add", {"paths": [p]}),
        ]:
            out = dispatch(name, args, ctx).output
            assert "SECRET" not in out and "parent only" not in out, (name, p, out)
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=nested, capture_output=True, text=True
    ).stdout
    assert staged == ""


def test_paths_that_look_like_options(repo):
    (repo / "-n").write_text("dash\n")
    (repo / "--output=x").write_text("dash\n")
    ctx = ToolContext(workspace=Workspace(repo), mode="yes")
    assert "A  --output=x\nA  -n" in ok(ctx, "git_add", paths=["-n", "--output=x"])
    assert "+dash" in ok(ctx, "git_diff", staged=True, path="-n")
    ok(ctx, "git_commit", message="-n")
    assert ok(ctx, "git_log", path="-n").endswith("Test: -n")
    assert "+dash" in ok(ctx, "git_show", path="--output=x")
    assert not (repo / "x").exists()


def test_git_messages_lose_their_own_error_prefix(repo):
    """git writes "fatal: ..." / "error: ..."; the model should see one "error: " only."""
    ctx = ToolContext(workspace=Workspace(repo), mode="yes")
    r = dispatch("git_add", {"paths": ["nope.txt"]}, ctx)
    assert r.is_error
    assert r.output.startswith("error: git add failed: pathspec 'nope.txt' did not match")
    assert "fatal:" not in r.output and r.output.count("error:") == 1, r.output


def test_in_repo(repo, tmp_path_factory, monkeypatch):
    """For the runtime to offer git tools only where they can work."""
    assert in_repo(repo) and in_repo(str(repo))
    (repo / "sub" / "deeper").mkdir(parents=True)
    assert in_repo(repo / "sub" / "deeper")
    assert not in_repo(repo / ".git")  # git's own directory is not a work tree
    assert not in_repo(repo / "missing")
    plain = tmp_path_factory.mktemp("plain")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(plain.parent))
    assert not in_repo(plain)
    (plain / ".git").mkdir()  # an empty .git directory is no repository
    assert not in_repo(plain)
    git(plain, "init", "-q")
    assert in_repo(plain)
    r = dispatch("git_status", {}, ToolContext(workspace=Workspace(plain)))
    assert not r.is_error, r.output
