"""Terminal output with rich: streaming markdown, highlighted code, tool panels, diffs.

`RichSink` is the agent's Sink for a terminal. Streaming stays linear in the
answer's length: `MarkdownStream` cuts the text into blocks as it arrives, each
finished block (paragraph, heading, a run of code lines) is printed once and
never again, and only the open block is redrawn, in a throttled Live region
together with a spinner.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.segment import Segment
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.text import Text

CODE_THEME = "monokai"
CODE_CHUNK = 12  # finished code lines printed together (bounds the redrawn tail)
PROSE_MAX = 12  # an open prose block of more lines is cut at a list item
TAIL_CHARS = 1200  # ... and one of more characters at any line outside a table
LONG_LINE = 1500  # a line (paragraph) longer than this is cut at a sentence or word end
MAX_DIFF_LINES = 60
MAX_SUMMARY_LINES = 4
MAX_DIFF_FILE_BYTES = 2 << 20

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d{1,9}[.)])\s")
_KEY_ARGS = ("path", "command", "pattern", "paths", "query", "rev", "message", "glob")
_BULKY_ARGS = ("content", "old_text", "new_text")


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
            out.append(Block(kind, "\n".join(self._lines), self._lang if kind == "code" else "",
                             gap=self._gap_next))  # fmt: skip
            self._lines = []
            self._chars = 0
            self._started = True
            self._gap_next = False

    def _emit_prose(self, out: list[Block]) -> None:
        self._emit("md", out)

    def _emit_code(self, out: list[Block]) -> None:
        self._emit("code", out)


# -- renderables -------------------------------------------------------------------

_md_template: Markdown | None = None
_md_parser: Any = None
_lexers: dict[str, Any] = {}


def markdown(text: str, code_theme: str = CODE_THEME) -> Markdown:
    """rich Markdown, but with one shared parser (building a MarkdownIt costs ~150 us)."""
    global _md_template, _md_parser
    if _md_template is None:
        from markdown_it import MarkdownIt

        _md_parser = MarkdownIt().enable("strikethrough").enable("table")
        _md_template = Markdown("", code_theme=code_theme)
    md = copy.copy(_md_template)
    md.markup = text
    md.parsed = _md_parser.parse(text)
    md.code_theme = code_theme
    md.inline_code_theme = code_theme
    return md


def lexer_for(lang: str) -> Any:
    """A pygments lexer for a fence's language (cached), plain text when unknown."""
    key = (lang or "text").lower()
    lexer = _lexers.get(key)
    if lexer is None:
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound

        try:
            lexer = get_lexer_by_name(key)
        except ClassNotFound:
            lexer = get_lexer_by_name("text")
        _lexers[key] = lexer
    return lexer


def code(text: str, lang: str, theme: str = CODE_THEME) -> Syntax:
    # no vertical padding: consecutive chunks of one code block join seamlessly
    return Syntax(text, lexer_for(lang), theme=theme, word_wrap=True, padding=(0, 1))


class _Trimmed:
    """A renderable without its leading blank lines (rich starts lists, quotes and
    tables with one; the stream puts its own gaps between blocks)."""

    def __init__(self, inner: RenderableType) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.inner, options, pad=False)
        start = 0
        while start < len(lines) and not "".join(s.text for s in lines[start]).strip():
            start += 1
        newline = Segment.line()
        for line in lines[start:]:
            yield from line
            yield newline


def render_block(block: Block, theme: str = CODE_THEME) -> RenderableType:
    if block.kind == "code":
        return code(block.text, block.lang, theme)
    return _Trimmed(markdown(block.text, theme))


def diff_text(
    before: str, after: str, path: str, max_lines: int = MAX_DIFF_LINES, new: bool = False
) -> Text:
    """A coloured unified diff, cut after `max_lines` lines; `new`: a file just created."""
    old_name = "/dev/null" if new else f"a/{path}"
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), old_name, f"b/{path}", n=2, lineterm=""
        )
    )
    out = Text()
    for i, line in enumerate(lines[:max_lines]):
        if i:
            out.append("\n")
        if line.startswith(("+++", "---")):
            out.append(line, "bold")
        elif line.startswith("@@"):
            out.append(line, "cyan")
        elif line.startswith("+"):
            out.append(line, "green")
        elif line.startswith("-"):
            out.append(line, "red")
        else:
            out.append(line, "dim")
    if len(lines) > max_lines:
        out.append(f"\n... {len(lines) - max_lines} more diff lines", "dim italic")
    if not lines:
        out.append("(no change)", "dim")
    return out


def _args(call: Any) -> dict:
    try:
        args = json.loads(call.arguments or "{}")
    except (TypeError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    lines = text.splitlines() or [""]
    first = lines[0]
    more = len(lines) > 1
    if len(first) > limit:
        first, more = first[: limit - 1], True
    return first + ("…" if more else "")


def key_arguments(call: Any) -> str:
    """The arguments worth a glance: paths, commands, patterns; bulky text only sized."""
    args = _args(call)
    if not args:
        return _short(call.arguments or "", 100) if call.arguments not in (None, "", "{}") else ""
    if call.name == "run_shell" and "command" in args:
        return "$ " + _short(args["command"], 100)
    shown = []
    keys = [k for k in _KEY_ARGS if k in args] + [
        k for k in args if k not in _KEY_ARGS and k not in _BULKY_ARGS
    ]
    for k in keys[:4]:
        shown.append(f"{k}={_short(args[k], 60)}")
    for k in _BULKY_ARGS:
        v = args.get(k)
        if isinstance(v, str):
            n = len(v.splitlines())
            shown.append(f"{k}=({n} line{'s' if n != 1 else ''})")
    return "  ".join(shown)


def result_summary(output: str, is_error: bool) -> Text:
    lines = output.rstrip("\n").splitlines() or ["(no output)"]
    keep = MAX_SUMMARY_LINES * (2 if is_error else 1)
    style = "red" if is_error else "dim"
    text = Text("\n".join(line[:200] for line in lines[:keep]), style=style)
    if len(lines) > keep:
        text.append(f"\n... {len(lines) - keep} more lines", "dim italic")
    return text


# -- the sink ----------------------------------------------------------------------


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
        self._label = "thinking"
        self._before: dict[str, str | None] = {}  # call id -> file text before an edit
        self._created: set[str] = set()  # call ids whose file did not exist before

    # -- lifecycle -------------------------------------------------------------

    def start(self, label: str = "thinking") -> None:
        self.streamed = False
        self.notices = []
        self.phase = "model"
        self._set_label(label)
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
        with self._lock:
            blocks = self._stream.feed(delta)
        self._print_blocks(blocks)

    def tool_call(self, call: Any) -> None:
        self._flush_stream()
        self.phase = "tool"
        self._set_label(f"running {call.name}")
        if call.name in ("write_file", "replace_in_file", "append_file"):
            self._before[call.id] = self._read_target(call)

    def tool_result(self, call: Any, result: Any) -> None:
        self.console.print(self._tool_panel(call, result))
        self._before.pop(call.id, None)
        self._created.discard(call.id)
        self.phase = "model"
        self._set_label("thinking")

    def notice(self, message: str) -> None:
        self._flush_stream()  # keeps the order: text so far, then the notice
        self.notices.append(message)
        self.console.print(Text(message, style="yellow"), soft_wrap=True)

    # -- internals -------------------------------------------------------------

    def _set_label(self, label: str) -> None:
        self._label = label
        self._spinner.update(text=Text(label, style="cyan"))

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

    def _target(self, call: Any) -> tuple[str, Path] | None:
        path = _args(call).get("path")
        if not isinstance(path, str) or not path or self.root is None:
            return None
        p = (self.root / path).resolve()
        if not p.is_relative_to(self.root):
            return None
        return p.relative_to(self.root).as_posix(), p

    def _read_target(self, call: Any) -> str | None:
        target = self._target(call)
        if target is None:
            return None
        p = target[1]
        try:
            if not p.exists():
                self._created.add(call.id)
                return ""  # a new file: the whole content is the change
            if not p.is_file():
                return None
            if p.stat().st_size > MAX_DIFF_FILE_BYTES:
                return None
            return p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def _edit_diff(self, call: Any) -> Text | None:
        args = _args(call)
        path = args.get("path") if isinstance(args.get("path"), str) else "file"
        before = self._before.get(call.id)
        target = self._target(call)
        if before is not None and target is not None:
            try:
                after = target[1].read_text(encoding="utf-8", errors="replace")
            except OSError:
                after = None
            if after is not None:
                return diff_text(before, after, target[0], new=call.id in self._created)
        # no workspace to look at: show the change the arguments ask for
        if call.name == "replace_in_file":
            old, new = args.get("old_text"), args.get("new_text")
            if isinstance(old, str) and isinstance(new, str):
                return diff_text(old, new, path)
        if call.name in ("write_file", "append_file") and isinstance(args.get("content"), str):
            return diff_text("", args["content"], path)
        return None

    def _tool_panel(self, call: Any, result: Any) -> Panel:
        body: list[RenderableType] = []
        head = key_arguments(call)
        if head:
            body.append(Text(head, style="bold"))
        diff = None
        if not result.is_error and call.name in ("write_file", "replace_in_file", "append_file"):
            diff = self._edit_diff(call)
        if diff is not None:
            body.append(Text(_short(result.output, 120), style="dim"))
            body.append(diff)
        else:
            body.append(result_summary(result.output, result.is_error))
        ms = getattr(result, "duration_ms", 0.0) or 0.0
        title = Text(call.name, style="bold red" if result.is_error else "bold")
        if result.is_error:
            title.append(" failed", "red")
        return Panel(
            Group(*body),
            title=title,
            title_align="left",
            subtitle=Text(f"{ms:.0f} ms", style="dim") if ms >= 1 else None,
            subtitle_align="right",
            border_style="red" if result.is_error else "blue",
            expand=False,
            padding=(0, 1),
        )


def console_for(stream: Any = None, *, force_terminal: bool | None = None) -> Console:
    """A Console for a stream; rich itself honours NO_COLOR and TERM=dumb."""
    return Console(file=stream, force_terminal=force_terminal, soft_wrap=False, highlight=False)
