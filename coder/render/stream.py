"""Streamed markdown cut into blocks as it arrives.

Streaming stays linear in the answer's length: each finished block (paragraph,
heading, a run of code lines) is handed out once and never again; only the open
block, `tail()`, is redrawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_CHUNK = 12  # finished code lines printed together (bounds the redrawn tail)
PROSE_MAX = 12  # an open prose block of more lines is cut at a list item
TAIL_CHARS = 1200  # ... and one of more characters at any line outside a table
LONG_LINE = 1500  # a line (paragraph) longer than this is cut at a sentence or word end

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d{1,9}[.)])\s")


@dataclass
class Block:
    kind: str  # "md" | "code"
    text: str
    lang: str = ""
    gap: bool = False  # a blank line goes before it (a new top-level element)


class MarkdownStream:
    """Cuts streamed markdown into finished blocks; the unfinished rest is `tail()`."""

    def __init__(self, code_chunk: int = CODE_CHUNK, prose_max: int = PROSE_MAX) -> None:
        self.code_chunk = code_chunk
        self.prose_max = prose_max
        self._parts: list[str] = []  # the current, unfinished line
        self._part_len = 0
        self._lines: list[str] = []  # finished lines of the open block
        self._chars = 0  # characters in self._lines
        self._fence: str | None = None  # the opening fence while inside a code block
        self._lang = ""
        self._started = False  # any block emitted yet (the first one gets no gap)
        self._gap_next = False

    @property
    def in_code(self) -> bool:
        return self._fence is not None

    def feed(self, delta: str) -> list[Block]:
        if not delta:
            return []
        self._parts.append(delta)
        self._part_len += len(delta)
        out: list[Block] = []
        if "\n" in delta:
            *lines, rest = "".join(self._parts).split("\n")
            self._parts = [rest] if rest else []
            self._part_len = len(rest)
            for line in lines:
                self._line(line, out)
        if self._part_len > LONG_LINE and not self.in_code:
            self._cut_long_line(out)
        return out

    def _cut_long_line(self, out: list[Block]) -> None:
        """A paragraph with no line break yet: print its head so the tail stays small."""
        text = "".join(self._parts)
        cut = text.rfind(". ", 0, LONG_LINE) + 1
        if cut < LONG_LINE // 2:
            cut = text.rfind(" ", 0, LONG_LINE)
        if cut <= 0:
            cut = LONG_LINE
        head, rest = text[:cut], text[cut:].lstrip(" ")
        self._parts = [rest] if rest else []
        self._part_len = len(rest)
        self._add(head)
        self._emit_prose(out)

    def close(self) -> list[Block]:
        """Everything still open, as final blocks (an unclosed code fence is closed)."""
        out: list[Block] = []
        rest = "".join(self._parts)
        self._parts = []
        self._part_len = 0
        if rest:
            if self.in_code and self._closes(rest):
                self._emit_code(out)
                self._fence = None
            else:
                self._add(rest)
        if self.in_code:
            self._emit_code(out)
            self._fence = None
        else:
            self._emit_prose(out)
        return out

    def tail(self) -> Block | None:
        text = "\n".join(self._lines + ["".join(self._parts)]).rstrip("\n")
        if self.in_code:
            return Block("code", text, self._lang, self._gap_next) if text else None
        return Block("md", text, gap=self._gap_next) if text.strip() else None

    # -- line handling -------------------------------------------------------

    def _closes(self, line: str) -> bool:
        s = line.strip()
        fence = self._fence or "```"
        return bool(s) and s[0] == fence[0] and len(s) >= len(fence) and s == s[0] * len(s)

    def _line(self, line: str, out: list[Block]) -> None:
        if self.in_code:
            if self._closes(line):
                self._emit_code(out)
                self._fence = None
                self._gap_next = True
            else:
                self._add(line)
                if len(self._lines) >= self.code_chunk:
                    self._emit_code(out)
            return
        m = _FENCE.match(line)
        if m:
            self._emit_prose(out)
            self._fence, self._lang = m.group(1), m.group(2)
            self._gap_next = self._started
            return
        if not line.strip():
            self._emit_prose(out)
            self._gap_next = self._started
            return
        if _HEADING.match(line):
            self._emit_prose(out)
            self._add(line)
            self._emit_prose(out)
            self._gap_next = True
            return
        if self._lines and (
            (len(self._lines) >= self.prose_max and _LIST_ITEM.match(line))
            or (self._chars >= TAIL_CHARS and not line.lstrip().startswith("|"))
        ):
            self._emit_prose(out)  # continues the same element: no gap
        self._add(line)

    def _add(self, line: str) -> None:
        self._lines.append(line)
        self._chars += len(line) + 1

    def _emit(self, kind: str, out: list[Block]) -> None:
        if self._lines:
            lang = self._lang if kind == "code" else ""
            out.append(Block(kind, "\n".join(self._lines), lang, gap=self._gap_next))
            self._lines = []
            self._chars = 0
            self._started = True
            self._gap_next = False

    def _emit_prose(self, out: list[Block]) -> None:
        self._emit("md", out)

    def _emit_code(self, out: list[Block]) -> None:
        self._emit("code", out)
