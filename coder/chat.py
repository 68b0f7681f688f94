"""The shapes of one exchange with the model, shared by the client, the loop, the log
and the terminal. No dependencies: anything may import it."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import StrEnum


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as produced
    error: str | None = None  # set when `arguments` is not a JSON object


@dataclass
class ChatResult:
    message: dict
    tool_calls: list[ToolCall]
    raw_content: str
    finish_reason: str | None
    usage: dict | None
    timings: dict | None
    logprobs: list[dict] | None
    request: dict
    protocol: str
    interrupted: bool = False
    error: str | None = None
    parse_error: str | None = None
    duration_ms: float = 0.0
    reasoning: str | None = None  # reasoning_content deltas (thinking models), not streamed
    stop_type: str | None = None  # llama.cpp's own: eos | word | limit (asked with `verbose`)
    prompt_ids: list[int] | None = None  # the prompt as the server tokenized it
    prompt_ids_note: str | None = None  # why there are none, or why they may not match
    # the LoRA adapters the server applied: [{"id", "path", "scale"}]; [] none; None unknown
    adapters: list[dict] | None = None
    # the tools offered, as OpenAI schemas, whatever the protocol (json sends them as text)
    tools: list[dict] | None = None


class Stop(StrEnum):
    """Why a turn ended. A StrEnum: it is logged, printed and compared as its text."""

    ANSWER = "answer"
    TRUNCATED = "truncated"  # the answer was cut at max_tokens
    EMPTY_ANSWER = "empty_answer"
    MAX_STEPS = "max_steps"
    REPEATED_CALL = "repeated_call"
    INVALID_TOOL_CALL = "invalid_tool_call"
    INTERRUPTED = "interrupted"
    TOO_LONG = "too_long"  # the request cannot fit the context
    ERROR = "error"  # the server failed


class Terminated(SystemExit):
    """coder is being stopped by SIGTERM or SIGHUP: it unwinds like SystemExit(128 + sig)
    so every `finally` runs, and carries the reply that was streaming (`reply`), so the
    loop can log that call as interrupted on the way out, as it does for Ctrl-C."""

    REASONS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}  # session_end's reason

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.reply: ChatResult | None = None

    @property
    def reason(self) -> str:
        return self.REASONS.get(self.signum, "terminated")
