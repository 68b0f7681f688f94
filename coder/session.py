"""Conversation state: the context budget and shedding of old tool output.

The server's own token counts calibrate the estimate: after each call we know how
many prompt tokens the messages we sent really took, so the overhead the chat
template and the tool descriptions add is measured, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

CHARS_PER_TOKEN = 3.5
ELIDED = "[elided: {n} characters of old tool output, to stay within the context window]"
MARGIN_TOKENS = 64


def _chars(messages: list[dict]) -> int:
    return len(orjson.dumps(messages))


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

    def prompt_limit(self, max_tokens: int) -> int | None:
        """Tokens the prompt may take so the reply still fits; None when n_ctx is unknown."""
        if not self.n_ctx:
            return None
        return max(self.n_ctx // 4, self.n_ctx - min(max_tokens, self.n_ctx // 2) - MARGIN_TOKENS)


def shed_context(messages: list[dict], budget: Budget, limit: int) -> int:
    """Elide the oldest tool outputs, then drop the oldest exchanges, until under `limit`.

    The system prompt (index 0) and the latest user message with what follows it are
    never touched. Returns how many messages were elided or dropped.
    """
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    changed = 0
    for i in range(1, last_user):
        if budget.estimate(messages) <= limit:
            return changed
        msg = messages[i]
        content = msg.get("content") or ""
        if msg.get("role") == "tool" and not content.startswith("[elided"):
            messages[i] = {**msg, "content": ELIDED.format(n=len(content))}
            changed += 1
    # Still too big: drop whole exchanges from the oldest, at user-message boundaries,
    # so no tool result is left without the assistant call that asked for it.
    while budget.estimate(messages) > limit:
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if len(users) < 2:
            break
        cut = users[1]
        changed += cut - 1
        del messages[1:cut]
    return changed
