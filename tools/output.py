"""What the model reads back from a tool: error results and outputs capped to a size."""

from __future__ import annotations

import re


class ToolError(Exception):
    """A failure to report to the model as the tool's (error) output."""


_ERROR_PREFIX = re.compile(r"\A(?:\s*(?:error|fatal)\s*:)+\s*", re.IGNORECASE)


def error_text(message: str) -> str:
    """`message` as an error result: with one leading "error: ", however many (or "fatal: ",
    as git writes) it had."""
    return "error: " + (_ERROR_PREFIX.sub("", message) or "failed")


def cap_text(text: str, limit: int) -> str:
    """`text` if it fits in `limit` UTF-8 bytes, else its head and tail with the middle elided."""
    data = text.encode("utf-8", errors="surrogateescape")
    if limit <= 0 or len(data) <= limit:
        return text
    return cap_bytes(data, len(data), limit)


def cap_bytes(data: bytes, total: int, limit: int, tail: bytes = b"") -> str:
    """Head and tail of an output of `total` bytes, decoded, with a note of what was elided.
    `data` holds the head (or everything); `tail` the last bytes if kept separately."""
    if not tail:
        if len(data) <= limit:
            return data.decode("utf-8", errors="replace")
        half = limit // 2
        head, tail = data[:half], data[len(data) - (limit - half) :]
    else:
        head = data
    elided = total - len(head) - len(tail)
    # cut at line boundaries when one is near, so no half lines are shown
    nl = head.rfind(b"\n", max(0, len(head) - 200))
    if nl >= 0:
        elided += len(head) - nl - 1
        head = head[: nl + 1]
    nl = tail.find(b"\n", 0, 200)
    if nl >= 0:
        elided += nl + 1
        tail = tail[nl + 1 :]
    note = f"\n[... {elided} bytes elided from the middle of the output ...]\n"
    return (
        head.decode("utf-8", errors="replace").rstrip("\n")
        + note
        + tail.decode("utf-8", errors="replace")
    )
