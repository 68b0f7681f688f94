"""Where attempts run: a fresh git worktree per attempt, removed on every way out.

A task's repo is used as it is when it is a repository's top directory (its `.git` is
there); any other directory is copied once into a temporary repository, committed
with a fixed author and date so the same files give the same commit. The task's repo
is never written to: a worktree adds only an entry under `.git/worktrees` that its
removal takes away again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# git run by coder itself, never the task repo's hooks, fsmonitor or pager
GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "--no-pager"]
_FIXED = "2000-01-01T00:00:00+0000"
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "coder",
    "GIT_AUTHOR_EMAIL": "coder@localhost",
    "GIT_COMMITTER_NAME": "coder",
    "GIT_COMMITTER_EMAIL": "coder@localhost",
    "GIT_AUTHOR_DATE": _FIXED,
    "GIT_COMMITTER_DATE": _FIXED,
}
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.pyc")


class SourceError(Exception):
    """A task repo that cannot give a worktree (missing, not a directory, bad ref)."""


@dataclass(frozen=True)
class Source:
    repo: Path  # the repository worktrees are made from
    commit: str  # the task's ref, resolved
    tree: str  # its tree id: the same files give the same id, wherever they came from


def git(repo: Path, *args: str, timeout: float = 60) -> str:
    env = {**os.environ, **GIT_ENV}
    try:
        proc = subprocess.run(
            [*GIT, "-C", str(repo), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"git {args[0]} in {repo}: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise SourceError(f"git {args[0]} in {repo}: {detail}")
    return proc.stdout.strip()


class Sources:
    """Task repos resolved once per run, from any thread; `close` removes the copies."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._lock = threading.Lock()
        self._found: dict[tuple[Path, str | None], Source | SourceError] = {}
        self._copies: dict[Path, Path] = {}
        self.repo_locks: dict[Path, threading.Lock] = {}

    def get(self, repo: Path, ref: str | None) -> Source:
        with self._lock:
            key = (repo, ref)
            if key not in self._found:
                try:
                    self._found[key] = self._resolve(repo, ref)
                except SourceError as exc:
                    self._found[key] = exc
            found = self._found[key]
        if isinstance(found, SourceError):
            raise found
        return found

    def _resolve(self, repo: Path, ref: str | None) -> Source:
        if not repo.is_dir():
            what = "not a directory" if repo.exists() else "not found"
            raise SourceError(f"repo {what}: {repo}")
        if (repo / ".git").exists():
            source_repo = repo
            git(repo, "worktree", "prune")  # entries left by a run that was killed
        else:
            source_repo = self._copies.get(repo) or self._copy(repo)
        commit = git(
            source_repo, "rev-parse", "--verify", "--end-of-options", f"{ref or 'HEAD'}^{{commit}}"
        )
        tree = git(source_repo, "rev-parse", f"{commit}^{{tree}}")
        self.repo_locks.setdefault(source_repo, threading.Lock())
        return Source(source_repo, commit, tree)

    def _copy(self, directory: Path) -> Path:
        dest = self.scratch / f"repo-{len(self._copies)}-{directory.name}"
        try:
            shutil.copytree(directory, dest, symlinks=True, ignore=COPY_IGNORE)
        except (OSError, shutil.Error) as exc:
            raise SourceError(f"cannot copy {directory}: {exc}") from None
        git(dest, "init", "-q")
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", f"{directory.name}")
        self._copies[directory] = dest
        return dest

    def close(self) -> None:
        for copy in self._copies.values():
            shutil.rmtree(copy, ignore_errors=True)
        self._copies.clear()


@contextlib.contextmanager
def worktree(sources: Sources, source: Source, dest: Path) -> Iterator[Path]:
    """A detached worktree of `source` at `dest`, removed afterwards whatever happens."""
    lock = sources.repo_locks[source.repo]  # git's own lock on .git/worktrees is not waited for
    with lock:
        git(source.repo, "worktree", "add", "--detach", "--force", str(dest), source.commit)
    try:
        yield dest
    finally:
        remove_worktree(source.repo, dest, lock)


def remove_worktree(repo: Path, dest: Path, lock: threading.Lock) -> None:
    with lock:
        try:  # takes its entry in the repo's .git along
            git(repo, "worktree", "remove", "--force", "--force", str(dest))
        except SourceError:
            shutil.rmtree(dest, ignore_errors=True)
            with contextlib.suppress(SourceError):
                git(repo, "worktree", "prune")  # the entry of the directory just deleted


def attempt_diff(path: Path, limit: int = 64_000) -> str:
    """What the attempt changed, new files included, capped at `limit` characters."""
    git(path, "add", "-A")
    text = git(path, "diff", "--cached", "--no-ext-diff", "--no-textconv", "--binary", "HEAD")
    if len(text) > limit:
        text = text[:limit] + f"\n[diff cut at {limit:,} of {len(text):,} characters]"
    return text
