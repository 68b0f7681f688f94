"""Token-exact samples from llama.cpp: what a streamed reply leaves out.

Measured on llama.cpp (xllamacpp 2026.10.11549, SmolLM2, json protocol): a streamed
chat completion sends a token's logprobs only inside a chunk that carries new content.
So two kinds of sampled tokens never reach the stream, while ``stream: false`` returns
them all (58 of 58 where the stream gave 53):

- the end-of-generation token (``<|im_end|>``): it has no text. Every reply that
  stopped on it (llama.cpp's ``stop_type: "eos"``) ends with it, so it is appended
  here, its id from /props ``eos_token``, its logprob unknown (NaN, marked ``inferred``);
- tokens whose text the server holds back and then drops, such as the
  ````` ```json\\n ````` fence it strips under ``response_format``: their ids cannot be
  known, so the recorder counts them (``tokens.missing``) and the call is incomplete.
"""

from __future__ import annotations

import math


def append_eos(
    logprobs: list[dict] | None,
    stop_type: str | None,
    completion_tokens: object,
    eos_id: int | None,
) -> list[dict] | None:
    """``logprobs`` with the end token the stream left out, when the reply stopped on
    it and the server counted more tokens than it streamed; else unchanged."""
    if not logprobs or stop_type != "eos" or eos_id is None:
        return logprobs
    if not isinstance(completion_tokens, int) or len(logprobs) >= completion_tokens:
        return logprobs
    end = {"id": eos_id, "token": "", "bytes": [], "logprob": math.nan, "inferred": True}
    return [*logprobs, end]


def prompt_ids_note(ids: list[int], usage: dict | None) -> str | None:
    """Why ``ids`` may not be the prompt the server evaluated, or None when they match."""
    n = (usage or {}).get("prompt_tokens")
    if not isinstance(n, int):
        return "the server reported no usage.prompt_tokens to check the ids against"
    if n != len(ids):
        return f"{len(ids)} ids but usage.prompt_tokens is {n}"
    return None
