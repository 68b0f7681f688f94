"""Git tools: status, diff, log, show, add, commit (commit needs approval, like the shell).

Git runs programs its configuration names: an fsmonitor, hooks, external diff and
textconv drivers, filters, a pager. The tools that need no approval must run none
the model could have chosen. So: the Workspace refuses writes into `.git` (and a
`.git` file naming a fake git dir); every command here turns the fsmonitor and
pager off, uses no bare repository it was not told to, takes paths literally and
uses no external diff or textconv; the read-only ones run no hooks; and no git tool
runs when git reads config from a workspace file (`include.path = ../.gitconfig`),
which the model could edit. A workspace inside a larger repository sees only
itself: paths and revisions cannot reach the rest of the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Annotated

from .declare import Bounds, tool
from .output import ToolError
from .permissions import check_approval
from .registry import ToolContext
from .workspace import is_git_name

_ENV = {
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",  # status must not take the index lock the user's git may want
    "GIT_EDITOR": "true",
}

# Before the subcommand, on every git command. Command-line config outranks every file.
_GLOBAL = [
    "--no-pager",
    "--literal-pathspecs",  # ":(top)x" and ":/x" would reach outside a workspace subdirectory
    "-c",
    "core.fsmonitor=false",  # a program (or the user's daemon: then status is just slower)
    "-c",
    "core.pager=cat",
    "-c",
    "safe.bareRepository=explicit",  # a workspace laid out as a bare repository is not one
    "-c",
    "color.ui=never",
    "-c",
    "core.quotepath=false",
]
# Read-only tools run no hooks (git add runs post-index-change). git_commit keeps the user's
# hooks: the user approves each commit, and the model cannot plant hooks in .git (writes there
# are refused); a hooks directory in the work tree (core.hooksPath) is named in the approval.
_NO_HOOKS = ["-c", "core.hooksPath=/dev/null"]
_DIFF = ["--no-ext-diff", "--no-textconv", "--no-show-signature"]  # diff.external, gpg, ...
_COMMIT_HOOKS = (
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "post-index-change",
    "reference-transaction",
    "pre-auto-gc",
)


def run_git(ctx: ToolContext, *args: str, hooks: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = ["git", *_GLOBAL, *([] if hooks else _NO_HOOKS), *args]
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


def _message(text: str) -> str:
    """git's own message without its "error: " / "fatal: " line prefixes: the tool result
    gets one "error: " of its own."""
    return re.sub(r"(?im)^(?:error|fatal): ?", "", text).strip()


def in_repo(workspace_root: str | os.PathLike[str]) -> bool:
    """Whether `workspace_root` is inside a git work tree the git tools can use (for the
    runtime to leave them out otherwise). With no `.git` in it or above it (and no GIT_DIR)
    this answers without running git; otherwise git itself decides (GIT_CEILING_DIRECTORIES,
    safe.directory, a bare layout, a broken `.git`, git not installed)."""
    root = Path(workspace_root).resolve()
    if not root.is_dir():
        return False
    if "GIT_DIR" not in os.environ and not any(
        (d / ".git").exists() for d in (root, *root.parents)
    ):
        return False
    try:
        r = subprocess.run(
            ["git", *_GLOBAL, *_NO_HOOKS, "rev-parse", "--is-inside-work-tree"],
            cwd=root,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=10,
            env={**os.environ, **_ENV},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and r.stdout.strip() == "true"


def _git(ctx: ToolContext, *args: str) -> str:
    """Output of a git command in the workspace; ToolError (with git's message) on failure.
    Call _repo first."""
    r = run_git(ctx, *args)
    if r.returncode != 0:
        msg = _message(r.stderr) or r.stdout.strip() or f"exit code {r.returncode}"
        raise ToolError(f"git {args[0]} failed: {msg}")
    return r.stdout.rstrip()


def _repo(ctx: ToolContext) -> list[str]:
    """Check the workspace is a usable work tree; the pathspec that limits a command to the
    workspace: [] at the top of the repository, ["."] in a subdirectory of a larger one."""
    r = run_git(ctx, "rev-parse", "--is-inside-work-tree", "--show-toplevel")
    lines = r.stdout.splitlines()
    if r.returncode != 0 or not lines or lines[0] != "true":
        raise ToolError(
            f"not a git repository: the workspace ({ctx.workspace.root}) is not inside a git "
            "work tree, so git tools cannot be used here."
        )
    top = Path(lines[1]).resolve() if len(lines) > 1 else ctx.workspace.root
    _check_config(ctx, top)
    return [] if top == ctx.workspace.root else ["."]


def _check_config(ctx: ToolContext, top: Path) -> None:
    """Refuse to run git if one of its config files is a workspace file the model can edit."""
    r = run_git(ctx, "config", "--list", "--show-origin", "--name-only", "-z")
    fields = r.stdout.split("\0")
    origins = {o.removeprefix("file:") for o in fields[0::2] if o.startswith("file:")}
    ws = ctx.workspace
    for origin in sorted(origins):
        p = Path(origin)
        p = (p if p.is_absolute() else top / p).resolve()  # relative: to the top of the tree
        if p.is_relative_to(ws.root) and not any(map(is_git_name, p.relative_to(ws.root).parts)):
            raise ToolError(
                f"git tools are disabled in this workspace: git reads its configuration from "
                f"'{ws.relative(p)}', a workspace file the file tools can change, and git config "
                "can make git run commands. Tell the user; they can run git themselves."
            )


def _paths(ctx: ToolContext, paths: list[str]) -> list[str]:
    ws = ctx.workspace
    return [ws.relative(ws.resolve(p)) for p in paths]


def _commit(ctx: ToolContext, rev: str) -> str:
    """The full hash of the commit `rev` names. Only commits: "HEAD:file" (a file of the commit),
    a tree or a blob would show files the workspace does not contain."""
    rev = rev.strip()
    if not rev or rev.startswith("-"):
        raise ToolError(f"invalid revision {rev!r}: give a commit like HEAD, HEAD~1 or a hash")
    if ":" in rev:
        raise ToolError(
            f"invalid revision {rev!r}: give only the commit in rev (like HEAD or a hash) and "
            "the file in path"
        )
    r = run_git(ctx, "rev-parse", "--verify", "-q", rev + "^{commit}")
    if r.returncode != 0 or len(r.stdout.split()) != 1:
        raise ToolError(f"{rev!r} is not a commit here: give a commit like HEAD, HEAD~1 or a hash")
    return r.stdout.strip()


def _has_commits(ctx: ToolContext) -> bool:
    return run_git(ctx, "rev-parse", "--verify", "-q", "HEAD").returncode == 0


@tool()
def git_status(ctx: ToolContext) -> str:
    """Show changed, staged and untracked files."""
    scope = _repo(ctx)
    out = _git(ctx, "status", "--short", "--branch", "--", *scope)
    if "\n" not in out:
        out += "\n(clean: nothing to commit)"
    return out


@tool()
def git_diff(ctx: ToolContext, staged: bool = False, path: str | None = None) -> str:
    """Show uncommitted changes as a diff (staged=true: what will be committed).

    Args:
        path: limit to this file or directory
    """
    scope = _repo(ctx)
    args = ["diff", *_DIFF, "--relative"]
    if staged:
        args.append("--cached")
    args += ["--", *(_paths(ctx, [path]) if path else scope)]
    out = _git(ctx, *args)
    if not out and path and not os.path.lexists(ctx.workspace.resolve(path)):
        raise ToolError(f"path not found: '{path}'")
    if not out:
        kind = "staged" if staged else "unstaged"
        return f"no {kind} changes" + ("" if staged else " (untracked files: see git_status)")
    return out


@tool()
def git_log(
    ctx: ToolContext, max_count: Annotated[int, Bounds(1, 200)] = 10, path: str | None = None
) -> str:
    """List recent commits.

    Args:
        path: limit to this file or directory
    """
    scope = _repo(ctx)
    if not _has_commits(ctx):
        return "no commits yet"
    args = ["log", *_DIFF, f"-n{max_count}", "--date=short", "--format=%h %ad %an: %s"]
    args += ["--", *(_paths(ctx, [path]) if path else scope)]
    out = _git(ctx, *args)
    if not out:
        return "no commits touch " + ("that path" if path else "the workspace directory")
    return out


@tool()
def git_show(ctx: ToolContext, rev: str = "HEAD", path: str | None = None) -> str:
    """Show a commit (message and diff). rev is e.g. HEAD, HEAD~1 or a hash.

    Args:
        path: limit to this file or directory
    """
    scope = _repo(ctx)
    if not _has_commits(ctx):
        return "no commits yet"
    args = ["show", *_DIFF, "--relative", "--stat", "--patch", _commit(ctx, rev)]
    args += ["--", *(_paths(ctx, [path]) if path else scope)]
    out = _git(ctx, *args)
    if not out:  # limited by a pathspec, a commit that does not touch it shows nothing
        return f"{rev} changes nothing in " + ("that path" if path else "the workspace directory")
    return out


@tool(access="write")
def git_add(ctx: ToolContext, paths: list[str]) -> str:
    """Stage files for the next commit."""
    if not paths:
        raise ToolError('paths is empty: give the files to stage ("." for all)')
    _repo(ctx)
    staged = _paths(ctx, paths)
    check_approval(ctx, "git_add", f"git add -- {' '.join(staged)}", access="write")
    _git(ctx, "add", "--", *staged)
    return "staged. Now:\n" + git_status(ctx)


def _hooks(ctx: ToolContext) -> list[str]:
    """The commit hooks the user's repository would run (names, for the approval prompt)."""
    r = run_git(ctx, "rev-parse", "--git-path", "hooks", hooks=True)
    if r.returncode != 0:
        return []
    d = ctx.workspace.root / r.stdout.strip()
    return [h for h in _COMMIT_HOOKS if os.access(d / h, os.X_OK) and (d / h).is_file()]


@tool(access="run")
def git_commit(ctx: ToolContext, message: str, all: bool = False) -> str:
    """Commit the staged changes (all=true also stages modified files). Needs user approval."""
    if not message.strip():
        raise ToolError("message is empty: describe the change")
    _repo(ctx)
    first = message.strip().splitlines()[0]
    hooks = _hooks(ctx)
    ran = f" (runs hooks: {', '.join(hooks)})" if hooks else ""
    check_approval(ctx, "git_commit", f"git commit{' -a' if all else ''}: {first}{ran}")
    args = ["commit", "-m", message]
    if all:
        args.insert(1, "-a")
    r = run_git(ctx, *args, hooks=True)
    if r.returncode != 0:
        msg = (r.stdout.strip() + "\n" + _message(r.stderr)).strip()
        if "nothing to commit" in msg or "no changes added" in msg:
            raise ToolError("nothing to commit: stage files with git_add first (or all=true)")
        raise ToolError(f"git commit failed: {msg}")
    return r.stdout.strip()
