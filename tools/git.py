"""Git tools: status, diff, log, show, add, commit (commit needs approval, like the shell)."""

from __future__ import annotations

import os
import subprocess

from tools import Tool, ToolContext, ToolError, check_approval, object_schema, register

_ENV = {
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",  # status must not take the index lock the user's git may want
    "GIT_EDITOR": "true",
}


def run_git(ctx: ToolContext, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["git", "--no-pager", "-c", "color.ui=never", "-c", "core.quotepath=false", *args]
    try:
        return subprocess.run(
            cmd,
            cwd=ctx.workspace.root,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=ctx.shell_timeout,
            env={**os.environ, **_ENV},
        )
    except FileNotFoundError:
        raise ToolError("git is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"git {args[0]} timed out after {ctx.shell_timeout:g} s") from None


def _git(ctx: ToolContext, *args: str) -> str:
    """Output of a git command in the workspace; ToolError (with git's message) on failure."""
    _require_repo(ctx)
    r = run_git(ctx, *args)
    if r.returncode != 0:
        msg = r.stderr.strip() or r.stdout.strip() or f"exit code {r.returncode}"
        raise ToolError(f"git {args[0]} failed: {msg}")
    return r.stdout.rstrip()


def _require_repo(ctx: ToolContext) -> None:
    r = run_git(ctx, "rev-parse", "--is-inside-work-tree")
    if r.returncode != 0 or r.stdout.strip() != "true":
        raise ToolError(
            f"not a git repository: the workspace ({ctx.workspace.root}) is not inside a git "
            "work tree, so git tools cannot be used here."
        )


def _paths(ctx: ToolContext, paths: list[str]) -> list[str]:
    ws = ctx.workspace
    return [ws.relative(ws.resolve(p)) for p in paths]


def _rev(rev: str) -> str:
    rev = rev.strip()
    if not rev or rev.startswith("-"):
        raise ToolError(f"invalid revision {rev!r}: give a commit like HEAD, HEAD~1 or a hash")
    return rev


def _has_commits(ctx: ToolContext) -> bool:
    return run_git(ctx, "rev-parse", "--verify", "-q", "HEAD").returncode == 0


def git_status(ctx: ToolContext) -> str:
    out = _git(ctx, "status", "--short", "--branch")
    if "\n" not in out:
        out += "\n(clean: nothing to commit)"
    return out


def git_diff(ctx: ToolContext, staged: bool = False, path: str | None = None) -> str:
    args = ["diff", "--relative"]
    if staged:
        args.append("--cached")
    if path:
        args += ["--", *_paths(ctx, [path])]
    out = _git(ctx, *args)
    if not out:
        kind = "staged" if staged else "unstaged"
        return f"no {kind} changes" + ("" if staged else " (untracked files: see git_status)")
    return out


def git_log(ctx: ToolContext, max_count: int = 10, path: str | None = None) -> str:
    _require_repo(ctx)
    if not _has_commits(ctx):
        return "no commits yet"
    args = ["log", f"-n{max_count}", "--date=short", "--format=%h %ad %an: %s"]
    if path:
        args += ["--", *_paths(ctx, [path])]
    return _git(ctx, *args) or "no commits touch that path"


def git_show(ctx: ToolContext, rev: str = "HEAD", path: str | None = None) -> str:
    _require_repo(ctx)
    if not _has_commits(ctx):
        return "no commits yet"
    args = ["show", "--relative", "--stat", "--patch", _rev(rev)]
    if path:
        args += ["--", *_paths(ctx, [path])]
    return _git(ctx, *args)


def git_add(ctx: ToolContext, paths: list[str]) -> str:
    if not paths:
        raise ToolError('paths is empty: give the files to stage ("." for all)')
    _git(ctx, "add", "--", *_paths(ctx, paths))
    return "staged. Now:\n" + git_status(ctx)


def git_commit(ctx: ToolContext, message: str, all: bool = False) -> str:
    if not message.strip():
        raise ToolError("message is empty: describe the change")
    _require_repo(ctx)
    first = message.strip().splitlines()[0]
    check_approval(ctx, "git_commit", f"git commit{' -a' if all else ''}: {first}")
    args = ["commit", "-m", message]
    if all:
        args.insert(1, "-a")
    r = run_git(ctx, *args)
    if r.returncode != 0:
        msg = (r.stdout.strip() + "\n" + r.stderr.strip()).strip()
        if "nothing to commit" in msg or "no changes added" in msg:
            raise ToolError("nothing to commit: stage files with git_add first (or all=true)")
        raise ToolError(f"git commit failed: {msg}")
    return r.stdout.strip()


_PATH = {"type": "string", "description": "limit to this file or directory"}

register(
    Tool(
        "git_status", "Show changed, staged and untracked files.", object_schema({}, []), git_status
    )
)
register(
    Tool(
        "git_diff",
        "Show uncommitted changes as a diff (staged=true: what will be committed).",
        object_schema({"staged": {"type": "boolean"}, "path": _PATH}, []),
        git_diff,
    )
)
register(
    Tool(
        "git_log",
        "List recent commits.",
        object_schema(
            {"max_count": {"type": "integer", "minimum": 1, "maximum": 200}, "path": _PATH}, []
        ),
        git_log,
    )
)
register(
    Tool(
        "git_show",
        "Show a commit (message and diff). rev is e.g. HEAD, HEAD~1 or a hash.",
        object_schema({"rev": {"type": "string"}, "path": _PATH}, []),
        git_show,
    )
)
register(
    Tool(
        "git_add",
        "Stage files for the next commit.",
        object_schema({"paths": {"type": "array", "items": {"type": "string"}}}, ["paths"]),
        git_add,
    )
)
register(
    Tool(
        "git_commit",
        "Commit the staged changes (all=true also stages modified files). Needs user approval.",
        object_schema({"message": {"type": "string"}, "all": {"type": "boolean"}}, ["message"]),
        git_commit,
        needs_approval=True,
    )
)
