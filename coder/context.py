"""The context budget: how many tokens a prompt may take, and shedding old tool output.

The server's own token counts calibrate the estimate: after each call we know how
many prompt tokens the messages we sent really took, so the overhead the chat
template and the tool descriptions add is measured, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

CHARS_PER_TOKEN = 3.5
ELIDED = "[elided: {n} characters of old tool output, to stay within the context window]"
CUT = "\n[cut: {n} more characters did not fit the context window]"
MARGIN_TOKENS = 64


def _chars(messages: list[dict]) -> int:
    return len(orjson.dumps(messages))


@dataclass(frozen=True)
class InUse:
    """The context a conversation takes: the server's count of the last prompt, or an
    estimate when none was measured (before the first reply, after an interrupted one,
    after /clear, /load or /compact). The toolbar and /stats both show this."""

    tokens: int
    measured: bool

    def __str__(self) -> str:
        return str(self.tokens) if self.measured or not self.tokens else f"~{self.tokens}"


@dataclass
class Budget:
    n_ctx: int | None = None
    overhead: int = 0  # measured tokens beyond the messages' own estimate (template, tools)
    last_prompt_tokens: int | None = None

    def estimate(self, messages: list[dict]) -> int:
        return int(_chars(messages) / CHARS_PER_TOKEN) + self.overhead

    def observe(self, usage: dict | None, sent: list[dict] | None = None) -> None:
        if not usage or not usage.get("prompt_tokens"):
            return
        self.last_prompt_tokens = int(usage["prompt_tokens"])
        if sent is not None:
            self.overhead = max(0, self.last_prompt_tokens - int(_chars(sent) / CHARS_PER_TOKEN))

    def in_use(self, messages: list[dict]) -> InUse:
        if self.last_prompt_tokens is not None:
            return InUse(self.last_prompt_tokens, True)
        return InUse(self.estimate(messages) if len(messages) > 1 else 0, False)

    def prompt_limit(self, max_tokens: int) -> int | None:
        """Tokens the prompt may take so the reply still fits; None when n_ctx is unknown."""
        if not self.n_ctx:
            return None
        return max(self.n_ctx // 4, self.n_ctx - min(max_tokens, self.n_ctx // 2) - MARGIN_TOKENS)


def shed_context(messages: list[dict], budget: Budget, limit: int, request: dict) -> int:
    """Make the prompt fit `limit` tokens, cheapest loss first. Returns messages changed.

    1. elide tool outputs, oldest first, all but the newest message;
    2. drop whole earlier exchanges (at user-message boundaries, so no tool result is
       left without the call that asked for it);
    3. cut the newest message, if it is a tool output, to what is left.
    The system prompt (index 0) and `request`, the user message that opened this turn,
    are never touched.
    """
    changed = 0
    for i in range(1, len(messages) - 1):
        if budget.estimate(messages) <= limit:
            return changed
        msg = messages[i]
        content = msg.get("content") or ""
        if msg.get("role") == "tool" and not content.startswith("[elided"):
            messages[i] = {**msg, "content": ELIDED.format(n=len(content))}
            changed += 1
    while budget.estimate(messages) > limit:
        start = _index(messages, request)
        users = [i for i in range(2, start + 1) if messages[i].get("role") == "user"]
        if not users:
            break
        changed += users[0] - 1
        del messages[1 : users[0]]
    last = messages[-1]
    over = budget.estimate(messages) - limit
    if over > 0 and last.get("role") == "tool" and last is not request:
        content = last.get("content") or ""
        keep = max(0, len(content) - int(over * CHARS_PER_TOKEN) - 200)
        messages[-1] = {**last, "content": content[:keep] + CUT.format(n=len(content) - keep)}
        changed += 1
    return changed


def _index(messages: list[dict], message: dict) -> int:
    return next((i for i, m in enumerate(messages) if m is message), len(messages) - 1)
