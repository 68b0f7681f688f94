"""The agent's Sink for a terminal: streamed markdown, a spinner, tool panels.

Finished blocks of the answer are printed once; only the open block is redrawn,
in a throttled Live region together with the spinner.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from coder.render.blocks import CODE_THEME, render_block
from coder.render.panels import EDIT_TOOLS, edit_diff, read_before, tool_panel
from coder.render.progress import TurnProgress
from coder.render.stream import Block, MarkdownStream


class RichSink:
    """The agent's Sink for a terminal (REPL and `-q` on a TTY).

    Call `start()` before a turn and `finish()` after it; `pause()` frees the
    terminal for a question (tool approval) in between.
    """

    def __init__(
        self,
        console: Console,
        workspace_root: str | Path | None = None,
        code_theme: str = CODE_THEME,
        refresh_per_second: float = 8.0,
        live: bool = True,
    ) -> None:
        self.console = console
        self.root = Path(workspace_root).resolve() if workspace_root else None
        self.theme = code_theme
        self.refresh_per_second = refresh_per_second
        self.use_live = live
        self.streamed = False  # any answer text printed since start()
        self.notices: list[str] = []  # notices shown since start()
        self.phase = "idle"  # idle | model | tool | paused
        self._stream = MarkdownStream()
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._spinner = Spinner("dots", text="thinking", style="cyan")
        self.progress = TurnProgress()  # the spinner's text: step, time, tokens
        # call id -> (the file's text before the edit, whether the edit creates it)
        self._before: dict[str, tuple[str | None, bool]] = {}

    # -- lifecycle -------------------------------------------------------------

    def start(self, label: str = "thinking") -> None:
        self.streamed = False
        self.notices = []
        self.phase = "model"
        self.progress = TurnProgress(label)
        self._stream = MarkdownStream()
        self._start_live()

    def finish(self) -> None:
        self._flush_stream()
        self._stop_live()
        self.phase = "idle"

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Stop the live region (e.g. to ask a question), restart it afterwards."""
        was_live = self._live is not None
        phase = self.phase
        self._stop_live()
        self.phase = "paused"
        try:
            yield
        finally:
            self.phase = phase
            if was_live:
                self._start_live()

    def status(self, label: str) -> None:
        self._set_label(label)

    # -- Sink protocol ---------------------------------------------------------

    def text(self, delta: str) -> None:
        if not delta:
            return
        if self.phase == "idle":
            self.start("writing")
        if not self.streamed:
            self.streamed = True
            self._set_label("writing")
        self.progress.on_text()
        with self._lock:
            blocks = self._stream.feed(delta)
        self._print_blocks(blocks)

    def tool_call(self, call: Any) -> None:
        self._flush_stream()
        self.phase = "tool"
        self._set_label(f"running {call.name}")
        if call.name in EDIT_TOOLS:
            self._before[call.id] = read_before(call, self.root)

    def tool_result(self, call: Any, result: Any) -> None:
        before, created = self._before.pop(call.id, (None, False))
        diff = None
        if not result.is_error and call.name in EDIT_TOOLS:
            diff = edit_diff(call, self.root, before, created)
        self.console.print(tool_panel(call, result, diff))
        self.phase = "model"
        self._set_label("thinking")

    def usage(self, usage: dict) -> None:
        self.progress.on_usage(usage)

    def notice(self, message: str) -> None:
        self._flush_stream()  # keeps the order: text so far, then the notice
        self.notices.append(message)
        self.console.print(Text(message, style="yellow"), soft_wrap=True)

    # -- internals -------------------------------------------------------------

    def _set_label(self, label: str) -> None:
        self.progress.label = label

    def _start_live(self) -> None:
        if self._live is not None or not self.use_live or not self.console.is_terminal:
            return
        self._live = Live(
            console=self.console,
            get_renderable=self._live_view,
            refresh_per_second=self.refresh_per_second,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _live_view(self) -> RenderableType:
        with self._lock:
            tail = self._stream.tail()
        parts: list[RenderableType] = []
        if tail is not None:
            parts.append(self._gap_then(render_block(tail, self.theme), tail))
        if self.phase != "paused":
            self._spinner.update(text=Text(self.progress.text(), style="cyan"))
            parts.append(self._spinner)
        return Group(*parts)

    def _gap_then(self, renderable: RenderableType, block: Block) -> RenderableType:
        return Group(Text(""), renderable) if block.gap else renderable

    def _print_blocks(self, blocks: list[Block]) -> None:
        for block in blocks:
            if block.gap:
                self.console.print()
            self.console.print(render_block(block, self.theme))

    def _flush_stream(self) -> None:
        with self._lock:
            blocks = self._stream.close()
            self._stream = MarkdownStream()
        self._print_blocks(blocks)


def console_for(stream: Any = None, *, force_terminal: bool | None = None) -> Console:
    """A Console for a stream; rich itself honours NO_COLOR and TERM=dumb."""
    return Console(file=stream, force_terminal=force_terminal, soft_wrap=False, highlight=False)
