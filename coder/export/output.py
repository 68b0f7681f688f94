"""Where rows go (a file written atomically, or stdout) and what the export reports."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class Options:
    min_reward: float | None = None
    keep_all: bool = False  # --all: failed turns are targets too (sft, openai)
    wire: bool = False  # --wire: the messages exactly as the server received them
    skip_flat: bool = False  # grpo: leave out groups whose rewards are all equal


@dataclass
class ExportStats:
    rows: int = 0
    skipped_lines: int = 0
    sessions: int = 0
    broken_calls: int = 0
    out: str | None = None
    skipped: Counter = field(default_factory=Counter)  # reason -> how many left out
    filtered_sessions: Counter = field(default_factory=Counter)  # filter -> sessions
    flat: int = 0  # grpo groups whose rewards are all equal
    identical: int = 0  # completions equal to another of their group
    incomplete: int = 0  # tokens rows whose ids are not the whole call (kept, marked)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def summary(self) -> str:
        """What was left out and why, one clause per reason; then what was kept but marked."""
        parts = [f"{n} {why}" for why, n in self.skipped.most_common()]
        if self.skipped_lines:
            parts.append(f"{self.skipped_lines} corrupt lines")
        if self.broken_calls:
            parts.append(f"{self.broken_calls} calls whose request could not be rebuilt")
        kept = []
        if self.flat:
            kept.append(f"{self.flat} flat groups (equal rewards)")
        if self.identical:
            kept.append(f"{self.identical} completions identical to another of their group")
        if self.incomplete:
            kept.append(f"{self.incomplete} tokens rows not complete (see their note)")
        text = f"left out: {'; '.join(parts)}" if parts else ""
        if kept:
            text += ("; " if text else "") + f"kept, marked: {'; '.join(kept)}"
        return text

    def empty_reason(self, fmt: str) -> str:
        """Why an export wrote no row."""
        if not self.sessions:
            if self.filtered_sessions:
                by = ", ".join(f"{k} ({n} sessions)" for k, n in self.filtered_sessions.items())
                return f"every session was filtered out by {by}"
            if self.skipped_lines:
                return f"the logs hold no readable session ({self.skipped_lines} corrupt lines)"
            return "the logs hold no session"
        if self.skipped:
            left = "; ".join(f"{n} {why}" for why, n in self.skipped.most_common())
            return f"no {fmt} row in {self.sessions} sessions: {left}"
        if fmt == "dpo":
            return "no prompt was answered twice with different rewards"
        return f"no {fmt} row in {self.sessions} sessions: no model call completed"


class Out:
    """A JSONL sink: a temp file beside ``out`` renamed over it on commit, or stdout."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.tmp: str | None = None
        if out is None:
            self.f: IO[bytes] = sys.stdout.buffer
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
            self.f = os.fdopen(fd, "wb")

    def write(self, line: bytes) -> None:
        self.f.write(line)

    def commit(self) -> None:
        self.f.flush()
        if self.tmp is not None and self.out is not None:
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.out)
            self.tmp = None

    def abort(self) -> None:
        if self.tmp is not None:
            self.f.close()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None
