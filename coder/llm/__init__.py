"""The chat client: one call, one streamed completion, one ChatResult."""

from coder.chat import ChatResult, ToolCall
from coder.llm.client import Client, LLMError, build_body
from coder.llm.json_protocol import AnswerStream, render_json_messages, response_format, tools_text
from coder.llm.text_calls import parse_text_calls

__all__ = [
    "AnswerStream",
    "ChatResult",
    "Client",
    "LLMError",
    "ToolCall",
    "build_body",
    "parse_text_calls",
    "render_json_messages",
    "response_format",
    "tools_text",
]
