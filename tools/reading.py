"""read_file, read_files: text files shown by line, within the output budget."""

from __future__ import annotations

import os
from typing import Annotated

from .declare import Bounds, tool
from .lines import HEAD, LineReader, binary_kind, number_lines
from .output import ToolError, error_text
from .registry import ToolContext
from .workspace import Workspace

COUNT_LIMIT = 64 << 20  # bytes scanned past what read_file shows, to count the file's lines


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
    out = "\n".join(number_lines(shown, first) if numbers else shown)
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
