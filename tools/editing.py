"""write_file, append_file, replace_in_file: every change goes through the Workspace
(atomic and journaled). replace_in_file forgives whitespace differences and, on a miss,
shows the closest lines so a small model can correct itself."""

from __future__ import annotations

import difflib
import re

from .declare import tool
from .lines import HEAD, binary_kind, number_lines, split_lines
from .output import ToolError
from .permissions import check_approval, decide
from .registry import ToolContext

PREVIEW_LINES = 80  # of an edit's diff, shown when tools.mode asks before edits
PREVIEW_MAX_BYTES = 1 << 20  # a larger old file is not diffed for the preview


def _summary(text: str) -> str:
    n = len(split_lines(text))
    return f"{n} line{'s' if n != 1 else ''}, {len(text.encode('utf-8', 'surrogateescape'))} bytes"


def _confirm(ctx: ToolContext, name: str, rel: str, before: str | None, after: str) -> None:
    """In a mode that asks before edits (tools.mode: ask), show the edit as a diff and
    wait for the user's answer; ToolError if it is refused."""
    if decide(ctx.mode, "write") == "ask":
        check_approval(ctx, name, edit_preview(rel, before, after), access="write")


def edit_preview(rel: str, before: str | None, after: str) -> str:
    """`edit PATH` (or `create PATH`) and the unified diff, cut at PREVIEW_LINES."""
    head = f"{'create' if before is None else 'edit'} {rel}"
    lines = list(
        difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            after.splitlines(keepends=True),
            "/dev/null" if before is None else f"a/{rel}",
            f"b/{rel}",
        )
    )
    lines = [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
    more = len(lines) - PREVIEW_LINES
    if more > 0:
        lines = [*lines[:PREVIEW_LINES], f"[{more} more diff lines]\n"]
    return head + "\n" + "".join(lines).rstrip("\n")


def _old_text(ctx: ToolContext, path: str) -> str | None:
    """The file's text before a write_file, for the preview (None: no such file)."""
    p = ctx.workspace.resolve(path)
    if not p.is_file():
        return None
    if p.stat().st_size > PREVIEW_MAX_BYTES:
        return f"[{p.stat().st_size} bytes: too large to show a diff]\n"
    data = ctx.workspace.read_bytes(path)
    if binary_kind(data[:HEAD]):
        return f"[binary file, {len(data)} bytes]\n"
    return data.decode("utf-8", errors="surrogateescape")


@tool(access="write")
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
    if decide(ctx.mode, "write") == "ask":
        _confirm(ctx, "write_file", rel, _old_text(ctx, path), content)
    ws.write_bytes(path, data)
    return f"{'overwrote' if existed else 'created'} {rel} ({_summary(content)})"


@tool(access="write")
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
    _confirm(ctx, "append_file", rel, before if p.exists() else None, before + sep + content)
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
    body = "\n".join(number_lines(lines[lo:hi], lo + 1))
    return f"closest lines ({lo + 1}-{hi}, {round(best * 100)}% similar):\n{body}"


@tool(access="write")
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
        _confirm(ctx, "replace_in_file", rel, text, text.replace(old_text, new_text))
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
        _confirm(ctx, "replace_in_file", rel, text, "".join(pieces))
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
