"""list_dir, tree, exists, find_files: what is in the workspace (SKIP_DIRS and special
files left out, and what .gitignore / .ignore files ignore unless include_ignored)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated

from .declare import Bounds, tool
from .ignore import Ignores, rules_for
from .registry import ToolContext
from .workspace import SKIP_DIRS, compile_glob, file_kind

MAX_LIST = 500  # entries shown by list_dir / find_files / tree


def ignores(ctx: ToolContext, start: Path, include_ignored: bool) -> Ignores | None:
    """The workspace's ignore rules for a listing of `start`, or None to list everything."""
    return rules_for(ctx.workspace.root, ctx.workspace.relative(start), include_ignored)


def _sort_key(rel: str) -> list[str]:
    return rel.split("/")


def _exts(ext: str | None) -> tuple[str, ...] | None:
    if not ext:
        return None
    parts = [e.strip().lstrip("*").lstrip(".") for e in re.split(r"[,\s]+", ext) if e.strip()]
    return tuple("." + e.lower() for e in parts if e) or None


@tool()
def list_dir(
    ctx: ToolContext, path: str = ".", ext: str | None = None, recursive: bool = False
) -> str:
    """List a directory (directories end with /). ext filters files, e.g. "py".

    Args:
        path: path relative to the workspace
        ext: file extension(s), e.g. "py" or "js,ts"
    """
    ws = ctx.workspace
    d = ws.directory(path)
    exts = _exts(ext)
    # no include_ignored here: one more parameter costs tiny models more than it gives,
    # and tree / find_files have it (the note says so), as a path named directly is listed
    ig = ignores(ctx, d, include_ignored=False)
    rows: list[tuple[list[str], str]] = []
    hidden = 0
    if recursive:
        for rel in ws.walk_files(d, ignores=ig):
            if exts is None or rel.lower().endswith(exts):
                rows.append((_sort_key(rel), rel))
    else:
        with os.scandir(d) as it:
            for entry in it:
                if entry.name in SKIP_DIRS or _special(entry):
                    continue
                rel = ws.relative(Path(entry.path))
                if ig and _ignored(ig, rel, entry):
                    hidden += 1
                elif entry.is_dir():
                    rows.append((["", entry.name], rel + "/"))  # directories first
                elif exts is None or entry.name.lower().endswith(exts):
                    rows.append((["~", entry.name], rel))
    rows.sort()
    where = ws.relative(d)
    note = f"[{hidden} ignored by .gitignore not shown; tree with include_ignored lists them]"
    if not rows:
        empty = f"no {'matching ' if exts else ''}entries in {where}"
        return f"{empty}\n{note}" if hidden else empty
    out = [r for _, r in rows[:MAX_LIST]]
    if len(rows) > MAX_LIST:
        out.append(f"[{len(rows) - MAX_LIST} more entries not shown; use a narrower path or ext]")
    if hidden:
        out.append(note)
    return "\n".join(out)


@tool()
def tree(
    ctx: ToolContext,
    path: str = ".",
    depth: Annotated[int, Bounds(1, 10)] = 2,
    include_ignored: bool = False,
) -> str:
    """Show the directory tree down to a depth.

    Args:
        path: path relative to the workspace
        include_ignored: also files that .gitignore excludes
    """
    ws = ctx.workspace
    top = ws.directory(path)
    ig = ignores(ctx, top, include_ignored)
    out = [ws.relative(top) + "/"]
    per_dir = 50

    def walk(d: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: (not e.is_dir(), e.name))
        except OSError:
            return
        entries = [e for e in entries if e.name not in SKIP_DIRS and not _special(e)]
        if ig:
            entries = [e for e in entries if not _ignored(ig, ws.relative(Path(e.path)), e)]
        for e in entries[:per_dir]:
            if len(out) > MAX_LIST:
                return
            is_dir = e.is_dir(follow_symlinks=False)
            out.append("  " * level + e.name + ("/" if is_dir else ""))
            if is_dir and level < depth:
                walk(Path(e.path), level + 1)
        if len(entries) > per_dir:
            out.append("  " * level + f"... {len(entries) - per_dir} more")

    walk(top, 1)
    if len(out) > MAX_LIST:
        out.append(f"[stopped at {MAX_LIST} entries; use a smaller depth or a subdirectory]")
    return "\n".join(out)


def _ignored(ig: Ignores, rel: str, entry: os.DirEntry) -> bool:
    return ig.ignored(rel, entry.is_dir(follow_symlinks=False))


def _special(entry: os.DirEntry) -> bool:
    """A FIFO, socket or device: not listed (reading one would block or make no sense)."""
    try:
        return not (entry.is_dir() or entry.is_file() or entry.is_symlink())
    except OSError:
        return True


@tool()
def exists(ctx: ToolContext, path: str) -> str:
    """Tell whether a path exists and if it is a file or a directory.

    Args:
        path: path relative to the workspace
    """
    ws = ctx.workspace
    p = ws.resolve(path)
    rel = ws.relative(p)
    try:
        st = p.stat()
    except OSError:
        return f"no: {rel} does not exist"
    if stat.S_ISDIR(st.st_mode):
        return f"yes: {rel} is a directory"
    if stat.S_ISREG(st.st_mode):
        return f"yes: {rel} is a file ({st.st_size} bytes)"
    return f"yes: {rel} is {file_kind(st.st_mode)}, not a regular file"


@tool()
def find_files(
    ctx: ToolContext, pattern: str, path: str = ".", include_ignored: bool = False
) -> str:
    """Find files by glob, e.g. "*.py" (any directory) or "src/**/*.ts".

    Args:
        path: path relative to the workspace
        include_ignored: also files that .gitignore excludes
    """
    ws = ctx.workspace
    d = ws.directory(path)
    glob = compile_glob(pattern)
    walk = ws.walk_files(d, ignores=ignores(ctx, d, include_ignored))
    found = sorted((r for r in walk if glob.match(r)), key=_sort_key)
    if not found:
        return f"no files match '{pattern}' under {ws.relative(d)}"
    out = found[:MAX_LIST]
    if len(found) > MAX_LIST:
        out.append(f"[{len(found) - MAX_LIST} more files not shown; use a narrower pattern]")
    return "\n".join(out)
