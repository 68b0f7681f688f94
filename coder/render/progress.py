"""What a turn is doing, for a spinner: its step (thinking, writing, running a tool), the
time it has taken and the tokens generated so far.

`RichSink` shows it in its live region (the REPL, `-q` on a terminal). `StderrProgress`
draws it on one line of stderr for `-q` whose answer goes to a pipe or a file while
stderr is a terminal: plain text and carriage returns, no ANSI codes, and never on a
stream that is not a terminal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"


@dataclass
class TurnProgress:
    label: str = "thinking"
    started: float = field(default_factory=time.monotonic)
    done_tokens: int = 0  # completion tokens of the model calls that finished
    streamed: int = 0  # text pieces of the call under way: llama.cpp sends one per token

    @property
    def tokens(self) -> int:
        return self.done_tokens + self.streamed

    def on_text(self) -> None:
        self.streamed += 1

    def on_usage(self, usage: dict | None) -> None:
        """A model call finished: its own count replaces the pieces counted."""
        self.done_tokens += int((usage or {}).get("completion_tokens") or 0)
        self.streamed = 0

    def text(self) -> str:
        parts = [self.label, clock(time.monotonic() - self.started)]
        if self.tokens:
            parts.append(f"{self.tokens} token{'s' * (self.tokens != 1)}")
        return " · ".join(parts)


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


class StderrProgress:
    """A Sink around `-q`'s own: what it prints goes through as before, and the progress
    line is redrawn on `stream` (a terminal) eight times a second, and erased before
    anything else is printed there and at the end."""

    def __init__(self, inner: Any, stream: TextIO) -> None:
        self.inner = inner
        self.stream = stream
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.frames = FRAMES if encoding == "utf8" else ASCII_FRAMES
        self.progress = TurnProgress()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = 0  # characters of the line on screen
        self._frame = 0
        self._active = False  # between start() and finish()

    def start(self) -> None:
        self.progress = TurnProgress()
        self._active = True
        self._draw()  # at once: a short turn still shows that it ran
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._active = False
            self._erase()

    # -- the Sink: the inner sink's output, the line erased around it ---------------------

    def text(self, delta: str) -> None:
        with self._lock:  # the answer goes to stdout, not this line's stream
            self.inner.text(delta)
            self.progress.on_text()

    def tool_call(self, call: Any) -> None:
        with self._lock:
            self._erase()
            self.inner.tool_call(call)
            self.progress.label = f"running {call.name}"
            self._draw()

    def tool_result(self, call: Any, result: Any) -> None:
        with self._lock:
            self._erase()
            self.inner.tool_result(call, result)
            self.progress.label = "thinking"
            self._draw()

    def notice(self, message: str) -> None:
        with self._lock:
            self._erase()
            self.inner.notice(message)
            self._draw()

    def usage(self, usage: dict) -> None:
        with self._lock:
            self.inner.usage(usage)
            self.progress.on_usage(usage)
            self._draw()

    # -- drawing -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(0.125):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        if not self._active:
            return
        self._frame = (self._frame + 1) % len(self.frames)
        line = f"{self.frames[self._frame]} {self.progress.text()}"
        self._write("\r" + line + " " * max(0, self._shown - len(line)) + "\r")
        self._shown = len(line)

    def _erase(self) -> None:
        if self._shown:
            self._write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the answer still matters
            pass
