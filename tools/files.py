"""File tools: read, write, edit, list, find. All paths go through the Workspace."""

from __future__ import annotations

import difflib
import os
import re
import stat
from pathlib import Path
from typing import Annotated, BinaryIO

from .declare import Bounds, tool
from .output import ToolError, error_text
from .registry import ToolContext
from .workspace import SKIP_DIRS, Workspace, compile_glob, file_kind

MAX_LIST = 500  # entries shown by list_dir / find_files / tree
HEAD = 8192  # bytes looked at to tell a binary file
COUNT_LIMIT = 64 << 20  # bytes scanned past what read_file shows, to count the file's lines

_MAGIC = [
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "zip archive"),
    (b"\x7fELF", "ELF executable"),
    (b"\x1f\x8b", "gzip archive"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\x00asm", "WebAssembly module"),
]


# -- reading -----------------------------------------------------------------------


def binary_kind(data: bytes) -> str | None:
    """A short description if `data` looks binary, else None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    head = data[:8192]
    if b"\x00" in head:
        return "binary data"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the 8 KiB boundary
            bad = head.decode("utf-8", errors="replace").count("\ufffd")
            if bad > len(head) // 20:
                return "binary data (not UTF-8 text)"
    return None


def split_lines(text: str) -> list[str]:
    """Lines split on '\\n' only (like editors, git and rg), without the separators."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _number(lines: list[str], first: int) -> list[str]:
    width = len(str(first + len(lines) - 1))
    return [f"{n:>{width}}| {line}" for n, line in enumerate(lines, first)]


class LineReader:
    """The lines of a binary file, split on b'\\n' like split_lines, read in chunks: memory
    stays small however large the file or long its lines."""

    def __init__(self, f: BinaryIO, chunk: int = 1 << 20) -> None:
        self.f = f
        self.chunk = chunk
        self.buf = b""
        self.pos = 0
        self.last = b""  # the last byte read: does the file end with a newline?

    def _more(self) -> bool:
        """Make unread bytes available; False at the end of the file."""
        if self.pos < len(self.buf):
            return True
        self.buf, self.pos = self.f.read(self.chunk), 0
        if self.buf:
            self.last = self.buf[-1:]
        return bool(self.buf)

    def skip(self, n: int) -> int:
        """Skip up to `n` lines; how many there were."""
        done = 0
        while done < n and self._more():
            k = self.buf.count(b"\n", self.pos)
            if done + k < n:
                done += k
                self.pos = len(self.buf)
                continue
            while done < n:
                self.pos = self.buf.index(b"\n", self.pos) + 1
                done += 1
        if done < n and self.last not in (b"", b"\n"):
            done += 1  # the unterminated last line, consumed whole by the loop
        return done

    def line(self, keep: int) -> tuple[bytes, int] | None:
        """The next line's first `keep` bytes and its full length; None at the end."""
        parts: list[bytes] = []
        kept = total = 0
        while self._more():
            nl = self.buf.find(b"\n", self.pos)
            end = len(self.buf) if nl < 0 else nl
            if kept < keep:
                piece = self.buf[self.pos : min(end, self.pos + keep - kept)]
                parts.append(piece)
                kept += len(piece)
            total += end - self.pos
            self.pos = end + (nl >= 0)
            if nl >= 0:
                return b"".join(parts), total
        return (b"".join(parts), total) if total else None

    def count(self, limit: int) -> int | None:
        """How many lines are left; None if that would mean scanning over `limit` bytes."""
        n = scanned = 0
        started = False
        while self._more():
            started = True
            n += self.buf.count(b"\n", self.pos)
            scanned += len(self.buf) - self.pos
            self.pos = len(self.buf)
            if scanned > limit:
                return None
        return n + (started and self.last != b"\n")


def _read(
    ws: Workspace, path: str, start: int | None, end: int | None, numbers: bool, budget: int
) -> str:
    rel = ws.relative(ws.resolve(path))
    with ws.open(path) as f:
        size = os.fstat(f.fileno()).st_size
        kind = binary_kind(f.read(HEAD))
        if kind:
            return f"[{rel} is a binary file ({kind}, {size} bytes); not shown]"
        f.seek(0)
        reader = LineReader(f)
        first = start or 1
        skipped = reader.skip(first - 1)
        line = reader.line(budget) if skipped == first - 1 else None
        if line is None:
            if skipped == 0:
                return f"[{rel} is empty]"
            raise ToolError(f"start_line {first} is past the end of {rel} ({skipped} lines)")
        if end is not None and end < first:
            raise ToolError(f"end_line {end} is before start_line {first}")
        shown: list[str] = []
        used = 0
        cut = False  # stopped by the size limit before `end`
        while line is not None:
            text = line[0].decode("utf-8", errors="replace")
            used += len(text.encode("utf-8", errors="replace")) + 1
            if used > budget and shown:
                cut = True
                break
            if line[1] > len(line[0]):
                text += f" [... {line[1] - len(line[0])} bytes more on this line]"
            shown.append(text)
            if end is not None and first + len(shown) > end:
                break
            line = reader.line(budget)
        rest = reader.count(COUNT_LIMIT) if line is not None else 0  # after what was read
    shown_last = first + len(shown) - 1
    if rest is None:
        total = f"more than {shown_last + cut} ({size} bytes)"
    else:
        total = str(shown_last + cut + rest)
    out = "\n".join(_number(shown, first) if numbers else shown)
    if cut:
        out += (
            f"\n[truncated: showed lines {first}-{shown_last} of {total} (size limit); "
            f"read more with start_line={shown_last + 1}]"
        )
    elif first > 1 or rest != 0:  # rest None: more than was counted
        out += f"\n[lines {first}-{shown_last} of {total}]"
    return out


Line = Annotated[int, Bounds(minimum=1)]


@tool()
def read_file(
    ctx: ToolContext,
    path: str,
    start_line: Line | None = None,
    end_line: Line | None = None,
    line_numbers: bool = False,
) -> str:
    """Read a text file. Optional start_line/end_line (1-based, inclusive) read part of it.

    Args:
        path: path relative to the workspace
        line_numbers: prefix each line with its number
    """
    return _read(
        ctx.workspace, path, start_line, end_line, line_numbers, ctx.max_output_bytes - 256
    )


@tool()
def read_files(ctx: ToolContext, paths: list[str]) -> str:
    """Read several text files at once."""
    if not paths:
        raise ToolError("paths is empty: give at least one file path")
    budget = max(1024, (ctx.max_output_bytes - 256) // len(paths))
    parts = []
    for p in paths:
        try:
            body = _read(ctx.workspace, p, None, None, False, budget)
        except Exception as e:  # one bad path should not hide the others
            body = error_text(str(e))
        parts.append(f"==> {p} <==\n{body}")
    return "\n\n".join(parts)


# -- writing -----------------------------------------------------------------------


def _summary(text: str) -> str:
    n = len(split_lines(text))
    return f"{n} line{'s' if n != 1 else ''}, {len(text.encode('utf-8', 'surrogateescape'))} bytes"


@tool()
def write_file(ctx: ToolContext, path: str, content: str) -> str:
    """Create or overwrite a file with the given content.

    Args:
        path: path relative to the workspace
    """
    ws = ctx.workspace
    p = ws.resolve(path)
    rel = ws.relative(p)
    existed = p.exists()
    data = content.encode("utf-8", "surrogateescape")
    # compare only a file of the same size: an old file is never read whole for this
    if p.is_file() and p.stat().st_size == len(data) and ws.read_bytes(path) == data:
        return f"{rel} unchanged (same content)"
    ws.write_bytes(path, data)
    return f"{'overwrote' if existed else 'created'} {rel} ({_summary(content)})"


@tool()
def append_file(ctx: ToolContext, path: str, content: str) -> str:
    """Add content at the end of a file (created if missing).

    Args:
        path: path relative to the workspace
    """
    ws = ctx.workspace
    p = ws.resolve(path)
    rel = ws.relative(p)
    before = ws.read_text(path) if p.exists() else ""
    sep = "\n" if before and not before.endswith("\n") else ""
    ws.write_text(path, before + sep + content)
    return f"appended {_summary(content)} to {rel}"


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _loose_pattern(old: str) -> re.Pattern[str] | None:
    """`old` with any whitespace allowed between its non-space characters."""
    chars = [re.escape(c) for c in old if not c.isspace()]
    if not chars:
        return None
    return re.compile(r"\s*".join(chars))


def _reindent(new: str, old: str, file_indent: str) -> str:
    """Shift `new` by the indentation the file has where the model's `old` had another."""
    old_lines = [ln for ln in old.split("\n") if ln.strip()]
    old_indent = re.match(r"[ \t]*", old_lines[0]).group() if old_lines else ""
    if old_indent == file_indent:
        return new
    out = []
    for ln in new.split("\n"):
        if ln.startswith(old_indent) and ln.strip():
            ln = file_indent + ln[len(old_indent) :]
        out.append(ln)
    return "\n".join(out)


def closest_lines(text: str, old: str, context: int = 1) -> str | None:
    """The part of `text` most similar to `old`, with line numbers, or None if nothing is close."""
    lines = split_lines(text)
    want = split_lines(old.strip("\n")) or [old]
    n = len(want)
    if not lines:
        return None
    target = "\n".join(ln.strip() for ln in want)
    best, best_i = 0.0, 0
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    stripped = [ln.strip() for ln in lines]
    step = 1 if len(lines) <= 5000 else max(1, n // 2)
    for i in range(0, max(1, len(lines) - n + 1), step):
        matcher.set_seq1("\n".join(stripped[i : i + n]))
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        r = matcher.ratio()
        if r > best:
            best, best_i = r, i
    if best < 0.4:
        return None
    lo = max(0, best_i - context)
    hi = min(len(lines), best_i + n + context)
    body = "\n".join(_number(lines[lo:hi], lo + 1))
    return f"closest lines ({lo + 1}-{hi}, {round(best * 100)}% similar):\n{body}"


@tool()
def replace_in_file(
    ctx: ToolContext, path: str, old_text: str, new_text: str, replace_all: bool = False
) -> str:
    """Replace old_text with new_text in a file. old_text must match exactly once (copy it
    from the file), unless replace_all is true.

    Args:
        path: path relative to the workspace
        old_text: exact text to find
        new_text: text to put instead
    """
    ws = ctx.workspace
    rel = ws.relative(ws.file(path))
    with ws.open(path) as f:
        if binary_kind(f.read(HEAD)):
            raise ToolError(f"{rel} is a binary file; replace_in_file edits text files only")
    text = ws.read_text(path)
    if old_text == "":
        raise ToolError("old_text is empty: give the exact text to replace")
    if old_text == new_text:
        raise ToolError("old_text and new_text are the same: nothing would change")
    if "\r\n" in text and "\r" not in old_text:  # a CRLF file, edited by a model that writes \n
        old_text = old_text.replace("\n", "\r\n")
        new_text = new_text.replace("\n", "\r\n")
    count = text.count(old_text)
    if count == 1 or (count > 1 and replace_all):
        ws.write_text(path, text.replace(old_text, new_text))
        return f"replaced {count} occurrence{'s' if count > 1 else ''} in {rel}"
    if count > 1:
        at = []
        i = text.find(old_text)
        while i >= 0 and len(at) < 10:
            at.append(str(_line_of(text, i)))
            i = text.find(old_text, i + 1)
        raise ToolError(
            f"old_text matches {count} times in {rel} (lines {', '.join(at)}); nothing changed. "
            "Include more surrounding lines so it matches once, or set replace_all=true."
        )
    # exact miss: try again ignoring whitespace differences (indentation, spacing, line ends)
    pattern = _loose_pattern(old_text)
    matches = list(pattern.finditer(text)) if pattern else []
    if len(matches) == 1 or (len(matches) > 1 and replace_all):
        pieces, pos = [], 0
        for m in matches:
            s = m.start()
            line_start = text.rfind("\n", 0, s) + 1
            if text[line_start:s].strip() == "":  # the match starts a line: take its indent too
                indent = text[line_start:s]
                s = line_start
                repl = _reindent(new_text, old_text, indent)
                if not new_text[:1].isspace() and not repl.startswith(indent):
                    repl = indent + repl
            else:
                repl = new_text.lstrip(" \t")
            # the match ends at old_text's last non-space character: keep the file's line end
            pieces += [text[pos:s], repl.rstrip()]
            pos = m.end()
        pieces.append(text[pos:])
        ws.write_text(path, "".join(pieces))
        n = len(matches)
        return (
            f"replaced {n} occurrence{'s' if n > 1 else ''} in {rel} "
            "(matched ignoring whitespace differences)"
        )
    if len(matches) > 1:
        lines = ", ".join(str(_line_of(text, m.start())) for m in matches[:10])
        raise ToolError(
            f"old_text was not found exactly in {rel}; ignoring whitespace it matches "
            f"{len(matches)} times (lines {lines}). Nothing changed. Copy the exact text, "
            "with more surrounding lines."
        )
    hint = closest_lines(text, old_text)
    msg = f"old_text was not found in {rel}; nothing changed."
    if hint:
        msg += (
            f"\n{hint}\nCopy the text exactly as in the file (without the 'N| ' line-number "
            "prefixes) into old_text and try again."
        )
    else:
        msg += " No similar lines either: read the file first, then copy the exact text."
    raise ToolError(msg)


# -- listing -------------------------------------------------------------------------


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
    rows: list[tuple[list[str], str]] = []
    if recursive:
        for rel in ws.walk_files(d):
            if exts is None or rel.lower().endswith(exts):
                rows.append((_sort_key(rel), rel))
    else:
        with os.scandir(d) as it:
            for entry in it:
                if entry.name in SKIP_DIRS or _special(entry):
                    continue
                rel = ws.relative(Path(entry.path))
                if entry.is_dir():
                    rows.append((["", entry.name], rel + "/"))  # directories first
                elif exts is None or entry.name.lower().endswith(exts):
                    rows.append((["~", entry.name], rel))
    rows.sort()
    where = ws.relative(d)
    if not rows:
        return f"no {'matching ' if exts else ''}entries in {where}"
    out = [r for _, r in rows[:MAX_LIST]]
    if len(rows) > MAX_LIST:
        out.append(f"[{len(rows) - MAX_LIST} more entries not shown; use a narrower path or ext]")
    return "\n".join(out)


@tool()
def tree(ctx: ToolContext, path: str = ".", depth: Annotated[int, Bounds(1, 10)] = 2) -> str:
    """Show the directory tree down to a depth.

    Args:
        path: path relative to the workspace
    """
    ws = ctx.workspace
    top = ws.directory(path)
    out = [ws.relative(top) + "/"]
    per_dir = 50

    def walk(d: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: (not e.is_dir(), e.name))
        except OSError:
            return
        entries = [e for e in entries if e.name not in SKIP_DIRS and not _special(e)]
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
def find_files(ctx: ToolContext, pattern: str, path: str = ".") -> str:
    """Find files by glob, e.g. "*.py" (any directory) or "src/**/*.ts".

    Args:
        path: path relative to the workspace
    """
    ws = ctx.workspace
    d = ws.directory(path)
    glob = compile_glob(pattern)
    found = sorted((r for r in ws.walk_files(d) if glob.match(r)), key=_sort_key)
    if not found:
        return f"no files match '{pattern}' under {ws.relative(d)}"
    out = found[:MAX_LIST]
    if len(found) > MAX_LIST:
        out.append(f"[{len(found) - MAX_LIST} more files not shown; use a narrower pattern]")
    return "\n".join(out)
