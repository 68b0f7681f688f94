"""rich renderables for answer text: markdown (one shared parser) and highlighted code."""

from __future__ import annotations

import copy
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markdown import Markdown
from rich.segment import Segment
from rich.syntax import Syntax

from coder.render.stream import Block

CODE_THEME = "monokai"

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
