"""Ignore files: what list_dir, tree, find_files and grep leave out by default.

The rules ripgrep reads (and grep's rg is told to read only these, so both backends
agree): `.gitignore`, `.ignore` and `.rgignore` in the workspace and every directory
below it (a deeper file overrides a shallower one; in one directory `.rgignore` over
`.ignore` over `.gitignore`), and `.git/info/exclude` at the root. Whether the workspace
is a git repository does not matter. Not read: ignore files above the workspace and
git's global excludes file (the user's, not the project's).

Matched with the `pathspec` package (git's wildmatch semantics, pure Python): nothing is
run to decide, so nothing in the workspace can choose code that coder runs, as a
`git check-ignore` reading the workspace's .git/config could.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pathspec import GitIgnoreSpec

IGNORE_FILES = (".gitignore", ".ignore", ".rgignore")  # later files take precedence
MAX_IGNORE_FILE = 1 << 20  # bytes of one ignore file read; the rest is not


def rules_for(root: Path, start: str, include_ignored: bool) -> Ignores | None:
    """The rules for a walk from `start` (relative to `root`); None (nothing left out) when
    include_ignored, or when `start` is itself ignored or inside an ignored directory: a
    path asked for by name is listed whole, as rg searches a directory it is given. (rg
    would still apply rules like `*.log` inside it; this lists those files too.)"""
    if include_ignored:
        return None
    rules = Ignores(root)
    return None if start != "." and rules.ignored(start, True) else rules


class Ignores:
    """One workspace's rules, each directory's read once, when the walk first needs it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._specs: dict[str, GitIgnoreSpec | None] = {}

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether `rel` (relative to the root, '/'-separated) is ignored by itself; a walk
        does not enter an ignored directory, so what is below one is never asked about."""
        parts = rel.split("/")
        verdict: bool | None = None
        for i in range(len(parts)):  # the directories from the root down to rel's own
            spec = self._spec("/".join(parts[:i]))
            if spec is not None:
                result = spec.check_file("/".join(parts[i:]) + ("/" if is_dir else ""))
                if result.include is not None:
                    verdict = result.include
        return bool(verdict)

    def _spec(self, rel_dir: str) -> GitIgnoreSpec | None:
        if rel_dir not in self._specs:
            directory = self.root / rel_dir if rel_dir else self.root
            names = [".git/info/exclude"] if not rel_dir else []
            lines = [ln for n in (*names, *IGNORE_FILES) for ln in _read_lines(directory / n)]
            self._specs[rel_dir] = GitIgnoreSpec.from_lines(lines) if lines else None
        return self._specs[rel_dir]


def _read_lines(p: Path) -> list[str]:
    """An ignore file's lines; none if it is missing, not a regular file or a symlink
    (which could point anywhere, a FIFO included)."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        data = os.read(fd, MAX_IGNORE_FILE)
    except OSError:
        return []
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace").splitlines()
