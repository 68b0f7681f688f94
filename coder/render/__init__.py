"""Terminal output with rich: streaming markdown, highlighted code, tool panels, diffs.

`stream` cuts the streamed answer into blocks, `blocks` turns them into rich
renderables, `panels` draws a tool call and the diff of an edit, `plan` the /plan
checklist, and `sink`'s
RichSink, the agent's Sink for a terminal, drives them.
"""

from coder.render.blocks import CODE_THEME, code, lexer_for, markdown, render_block
from coder.render.panels import (
    MAX_DIFF_LINES,
    MAX_SUMMARY_LINES,
    diff_text,
    key_arguments,
    result_summary,
    tool_panel,
)
from coder.render.plan import plan_panel
from coder.render.sink import RichSink, console_for
from coder.render.stream import CODE_CHUNK, LONG_LINE, PROSE_MAX, TAIL_CHARS, Block, MarkdownStream

__all__ = [
    "CODE_CHUNK",
    "CODE_THEME",
    "LONG_LINE",
    "MAX_DIFF_LINES",
    "MAX_SUMMARY_LINES",
    "PROSE_MAX",
    "TAIL_CHARS",
    "Block",
    "MarkdownStream",
    "RichSink",
    "code",
    "console_for",
    "diff_text",
    "key_arguments",
    "lexer_for",
    "markdown",
    "plan_panel",
    "render_block",
    "result_summary",
    "tool_panel",
]
