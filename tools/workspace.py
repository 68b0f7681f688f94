"""The workspace: the one place user paths are resolved, and every write goes through.

Paths are confined to the root: `..`, absolute paths elsewhere and symlinks that
lead out (the link itself or a linked parent directory) are refused. Nothing is
written into git's metadata (a `.git` directory or file): git runs programs its
config and hooks name, so a write there would let the model run commands unasked.
Only regular files are read (a FIFO would block forever). Writes are atomic and
journaled so the agent's edits can be undone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..atomic import atomic_write
from .ignore import Ignores

# Never listed, searched or walked into (also by grep, rg and fallback alike).
SKIP_DIRS = frozenset({".git", "node_modules", "target", ".venv", "__pycache__"})
MAX_JOURNAL = 500  # edits kept for undo
MAX_JOURNAL_FILE = 4 << 20  # an old file larger than this is not kept (its edit cannot be undone)
MAX_JOURNAL_BYTES = 64 << 20  # old contents kept in all; the oldest edits are forgotten first
MAX_WHOLE_FILE = 16 << 20  # read_bytes refuses larger files: whole-file edits load them twice


class WorkspaceError(Exception):
    """A path outside the workspace, missing, or not what was expected."""


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the root
    before: bytes | None  # None: the file did not exist (or was not kept: see `kept`)
    after: bytes  # sha256 of what was written, to tell whether the file changed since
    kept: bool = True  # False: the old file was over MAX_JOURNAL_FILE, so undo cannot restore it


PROJECT_CONFIG_DIR = ".coder"  # <workspace>/.coder/config.yaml: coder's project config


def is_git_name(name: str) -> bool:
    """Whether a path component names git's metadata. Case and trailing dots or spaces are
    ignored (case-insensitive and Windows file systems), as git itself does."""
    return name.lower().rstrip(". ") == ".git"


def file_kind(mode: int) -> str:
    """'a FIFO (named pipe)' and the like, for messages about files that are not regular."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def open_regular(p: Path | str, shown: str) -> BinaryIO:
    """`p` opened for reading if it is a regular file; WorkspaceError (naming `shown`) if not.
    O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused right after)."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise WorkspaceError(f"file not found: '{shown}'") from None
    except OSError as e:
        with contextlib.suppress(OSError):  # a socket cannot be opened at all (ENXIO)
            mode = os.stat(p).st_mode
            if not stat.S_ISREG(mode):
                raise WorkspaceError(f"'{shown}' is {file_kind(mode)}, not a regular file") from e
        raise WorkspaceError(f"cannot read '{shown}': {e.strerror or e}") from e
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise WorkspaceError(f"'{shown}' is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise WorkspaceError(f"'{shown}' is {file_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class Workspace:
    def __init__(self, root: str | Path) -> None:
        root = Path(root).expanduser()
        try:
            resolved = root.resolve(strict=True)
        except (OSError, RuntimeError) as e:
            raise WorkspaceError(f"workspace '{root}' does not exist") from e
        if not resolved.is_dir():
            raise WorkspaceError(f"workspace '{root}' is not a directory")
        self.root: Path = resolved
        self.journal: list[Edit] = []

    # -- paths ---------------------------------------------------------------

    def resolve(self, path: str) -> Path:
        """Absolute, symlink-free path inside the root; WorkspaceError names `path` otherwise."""
        if not isinstance(path, str) or not path.strip():
            raise WorkspaceError("empty path")
        if "\0" in path:
            raise WorkspaceError(f"invalid path '{path}'")
        p = Path(path.strip())
        if not p.is_absolute():
            p = self.root / p
        try:
            resolved = p.resolve(strict=False)
        except (OSError, RuntimeError) as e:  # RuntimeError: symlink loop on 3.11
            raise WorkspaceError(f"cannot resolve path '{path}': {e}") from e
        if not resolved.is_relative_to(self.root):
            raise WorkspaceError(
                f"path '{path}' is outside the workspace (paths must stay inside {self.root})"
            )
        return resolved

    def relative(self, p: Path) -> str:
        """`p` as a path relative to the root ('.' for the root itself)."""
        p = Path(p)
        if not p.is_absolute():
            return p.as_posix() or "."
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            return p.as_posix()
        return rel.as_posix() if rel.parts else "."

    # -- reading ---------------------------------------------------------------

    def file(self, path: str) -> Path:
        """Resolved path of an existing regular file."""
        p = self.resolve(path)
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            raise WorkspaceError(f"file not found: '{path}'") from None
        except OSError as e:
            raise WorkspaceError(f"cannot read '{path}': {e.strerror or e}") from e
        if stat.S_ISDIR(mode):
            raise WorkspaceError(f"'{path}' is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise WorkspaceError(f"'{path}' is {file_kind(mode)}, not a regular file")
        return p

    def directory(self, path: str) -> Path:
        """Resolved path of an existing directory."""
        p = self.resolve(path)
        if not p.exists():
            raise WorkspaceError(f"directory not found: '{path}'")
        if not p.is_dir():
            raise WorkspaceError(f"'{path}' is a file, not a directory")
        return p

    def open(self, path: str) -> BinaryIO:
        """A regular file opened for reading (FIFOs, sockets and devices are refused)."""
        return open_regular(self.resolve(path), path)

    def read_bytes(self, path: str, limit: int = MAX_WHOLE_FILE) -> bytes:
        """The whole file; WorkspaceError if it is larger than `limit` bytes."""
        with self.open(path) as f:
            size = os.fstat(f.fileno()).st_size
            try:
                data = f.read(limit + 1) if size <= limit else b""
            except OSError as e:
                raise WorkspaceError(f"cannot read '{path}': {e.strerror or e}") from e
        if size > limit or len(data) > limit:
            raise WorkspaceError(
                f"'{path}' is too large to load whole ({max(size, len(data))} bytes, the limit "
                f"is {limit}): read parts of it with start_line/end_line, or use run_shell"
            )
        return data

    def read_text(self, path: str) -> str:
        # surrogateescape: bytes that are not UTF-8 survive a read-modify-write unchanged
        return self.read_bytes(path).decode("utf-8", errors="surrogateescape")

    # -- writing ---------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes) -> None:
        """Atomic, journaled write (parent directories are created)."""
        p = self.resolve(path)
        self._check_writable(p, path)
        before: bytes | None = None
        kept = True
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            mode = None
        except OSError as e:
            raise WorkspaceError(f"cannot write '{path}': {e.strerror or e}") from e
        if mode is not None:
            if stat.S_ISDIR(mode):
                raise WorkspaceError(f"'{path}' is a directory, not a file")
            if not stat.S_ISREG(mode):
                raise WorkspaceError(
                    f"'{path}' is {file_kind(mode)}, not a regular file; it cannot be written"
                )
            with open_regular(p, path) as f:  # only the head of a huge file: it is not kept
                try:
                    before = f.read(MAX_JOURNAL_FILE + 1)
                except OSError as e:
                    raise WorkspaceError(f"cannot read '{path}': {e.strerror or e}") from e
            if len(before) > MAX_JOURNAL_FILE:
                before, kept = None, False
        self._atomic_write(p, data, path)
        self.journal.append(Edit(self.relative(p), before, hashlib.sha256(data).digest(), kept))
        del self.journal[:-MAX_JOURNAL]
        total = 0
        for i in range(len(self.journal) - 1, -1, -1):
            total += len(self.journal[i].before or b"")
            if total > MAX_JOURNAL_BYTES:
                del self.journal[: i + 1]
                break

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8", errors="surrogateescape"))

    def _check_writable(self, p: Path, shown: str) -> None:
        """Refuse `p` (resolved) if it is, or is inside, git's metadata or coder's own
        project config."""
        parts = p.relative_to(self.root).parts
        if any(is_git_name(part) for part in parts):
            raise WorkspaceError(
                f"writing '{shown}' is not allowed: it is in git's metadata (.git), where config "
                "and hooks make git run commands. Edit the project's files instead."
            )
        if parts and parts[0] == PROJECT_CONFIG_DIR:
            raise WorkspaceError(
                f"writing '{shown}' is not allowed: {PROJECT_CONFIG_DIR}/ holds coder's settings "
                "for this project, which only the user edits. Edit the project's files instead."
            )

    def _atomic_write(self, p: Path, data: bytes, shown: str) -> None:
        self._check_writable(p, shown)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                mode = stat.S_IMODE(p.stat().st_mode)
            except FileNotFoundError:
                mode = 0o666 & ~_UMASK
            atomic_write(p, data, mode)
        except OSError as e:
            raise WorkspaceError(f"cannot write '{shown}': {e.strerror or e}") from e

    def undo_last(self, force: bool = False) -> str | None:
        """Revert the most recent journaled write; a short note, or None if nothing to undo.
        WorkspaceError if it cannot be reverted. If the file was changed since the edit (by
        the user, say), nothing is undone and the entry stays, so undo works once the file is
        back as the edit left it; `force` reverts it all the same, losing those changes.
        Other failures drop the entry: undo again goes on to the edit before it."""
        if not self.journal:
            return None
        edit = self.journal.pop()
        p = self.resolve(edit.path)
        self._check_writable(p, edit.path)
        if not edit.kept:
            raise WorkspaceError(
                f"cannot undo the last edit of {edit.path}: the file was too large to keep for "
                f"undo (over {MAX_JOURNAL_FILE} bytes). Undo again to revert the edit before it."
            )
        removed = changed = False
        try:
            with open_regular(p, edit.path) as f:
                changed = hashlib.file_digest(f, "sha256").digest() != edit.after
        except (OSError, WorkspaceError):
            removed = True  # nothing of the user's can be lost by restoring it
        if changed and not force:
            self.journal.append(edit)
            raise WorkspaceError(
                f"nothing was undone: {edit.path} changed since the agent's edit, and undoing "
                "it would throw those changes away. Put the file back as the agent left it "
                "to undo the edit, or revert it yourself."
            )
        note = " (it had been removed since the edit)" if removed else ""
        if changed:
            note = " (it had changed since the edit: those changes were discarded)"
        if edit.before is None:
            if os.path.isfile(p):
                with contextlib.suppress(OSError):
                    p.unlink()
            return f"removed {edit.path}, created by the edit{note}"
        self._atomic_write(p, edit.before, edit.path)
        return f"restored {edit.path}{note}"

    # -- walking ---------------------------------------------------------------

    def walk_files(
        self, start: Path, exclude: list[Glob] | None = None, ignores: Ignores | None = None
    ) -> Iterator[str]:
        """Relative paths of regular files under `start` (not following symlinks, skipping
        FIFOs, sockets and devices, SKIP_DIRS, anything matching an `exclude` glob and what
        `ignores` ignores), in no particular order."""
        exclude = exclude or []
        rel_start = self.relative(start)
        stack = [(str(start), "" if rel_start == "." else rel_start + "/")]
        while stack:
            top, prefix = stack.pop()
            try:
                it = os.scandir(top)
            except OSError:
                continue
            with it:
                for e in it:
                    rel = prefix + e.name
                    try:  # DirEntry answers from the directory listing: no stat per file
                        if e.is_dir(follow_symlinks=False):
                            if (
                                e.name not in SKIP_DIRS
                                and not _excluded(rel, e.name, exclude)
                                and not (ignores and ignores.ignored(rel, True))
                            ):
                                stack.append((e.path, rel + "/"))
                        elif (
                            e.is_file(follow_symlinks=False)
                            and not _excluded(rel, e.name, exclude)
                            and not (ignores and ignores.ignored(rel, False))
                        ):
                            yield rel
                    except OSError:
                        continue


def _excluded(rel: str, name: str, globs: list[Glob]) -> bool:
    return any(g.match(rel, name) for g in globs)


@dataclass(frozen=True)
class Glob:
    """A gitignore-style glob as ripgrep reads it: with a '/' it matches the path relative to
    the workspace root, without one the file name. `*` stops at '/', `**` does not, `{a,b}`
    alternates."""

    text: str
    regex: re.Pattern[str]
    anchored: bool

    def match(self, rel: str, name: str | None = None) -> bool:
        if self.anchored:
            return self.regex.match(rel) is not None
        return self.regex.match(name if name is not None else rel.rsplit("/", 1)[-1]) is not None


def compile_glob(glob: str) -> Glob:
    g = glob.strip()
    anchored = "/" in g.rstrip("/")
    g = g.strip("/")
    out: list[str] = []
    i, depth = 0, 0
    while i < len(g):
        c = g[i]
        if g.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if g.startswith("/**", i) and i + 3 == len(g):
            out.append("/.*")
            i += 3
            continue
        if g.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (j := g.find("]", i + 2)) > 0:
            body = g[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    out.append(")" * depth)
    try:
        regex = re.compile("(?s:" + "".join(out) + r")\Z")
    except re.error as e:
        raise WorkspaceError(f"invalid glob '{glob}': {e}") from e
    return Glob(glob, regex, anchored)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: changing the umask later is racy with other threads


def find_program(name: str, root: Path) -> str | None:
    """An executable next to coder's interpreter (its own environment), else the first on
    PATH. Relative PATH entries and anything inside the workspace are passed over: nothing
    in the workspace may change which program coder runs."""
    dirs = [str(Path(sys.executable).parent), *os.environ.get("PATH", "").split(os.pathsep)]
    for d in dirs:
        if not d or not os.path.isabs(d):
            continue
        candidate = Path(d) / name
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_relative_to(root) and Path(d) != Path(sys.executable).parent:
            continue
        if real.is_file() and os.access(real, os.X_OK):
            return str(candidate)
    return None
