"""Text files as lines: telling text from binary, and reading lines in chunks."""

from __future__ import annotations

from typing import BinaryIO

HEAD = 8192  # bytes looked at to tell a binary file

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


def number_lines(lines: list[str], first: int) -> list[str]:
    """`lines` prefixed "N| ", numbered from `first`, the numbers right-aligned."""
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
