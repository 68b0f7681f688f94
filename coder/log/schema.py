"""The v1 record encoding shared by the Recorder (writing) and the reader.

A model_call does not repeat its prompt: each distinct message is a ``message``
record with a per-session integer id and the call lists inclusive id ranges
(``[[0, 12], [14, 15]]``); large request parts are ``blob`` records keyed by
``content_hash``; sampled tokens' logprobs are packed float32. See
docs/log-format.md.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from array import array
from collections.abc import Iterable
from typing import Any

import orjson

SCHEMA_VERSION = 1
REWARD_SOURCES = ("user", "verifier", "auto")


def canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)


def content_hash(obj: Any) -> str:
    return hashlib.blake2b(canonical(obj), digest_size=16).hexdigest()


def to_ranges(ids: Iterable[int]) -> list[list[int]]:
    """[0,1,2,5,6,3] -> [[0,2],[5,6],[3,3]] (inclusive, order kept)."""
    out: list[list[int]] = []
    for i in ids:
        if out and out[-1][1] + 1 == i:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def from_ranges(ranges: Iterable[Iterable[int]]) -> list[int]:
    out: list[int] = []
    for a, b in ranges:
        out.extend(range(a, b + 1))
    return out


def decode_logprobs(tokens: dict | None) -> list[float] | None:
    """The per-token logprobs of a model_call's ``tokens`` column."""
    if not tokens:
        return None
    if "logprobs_f32" in tokens:
        a = array("f")
        a.frombytes(base64.b64decode(tokens["logprobs_f32"]))
        if sys.byteorder == "big":
            a.byteswap()
        return a.tolist()
    return tokens.get("logprobs")


def compact_logprobs(entries: list | None, raw_content: str | None = None) -> dict | None:
    """OpenAI ``logprobs.content`` entries -> compact columns.

    ``ids`` (sampled token ids), ``logprobs_f32`` (base64 little-endian float32),
    ``text`` (the tokens' concatenated text, only when it differs from
    raw_content, e.g. a fence the server stripped under response_format),
    ``tokens`` (per-token strings, only when the server gave no ids) and
    ``top`` (top_logprobs as [id, token, logprob] triples, when requested) and
    ``inferred`` (indexes of tokens the client added, not the server: the end token).
    """
    if not entries:
        return None
    ids = [e.get("id") for e in entries]
    lps = [e.get("logprob") for e in entries]
    out: dict[str, Any] = {}
    if all(isinstance(i, int) for i in ids):
        out["ids"] = ids
    else:
        out["tokens"] = [e.get("token", "") for e in entries]
    if all(isinstance(x, float | int) for x in lps):
        out["logprobs_f32"] = _pack_f32(lps)
    else:
        out["logprobs"] = lps
    text = _tokens_text(entries)
    if text != raw_content:
        out["text"] = text
    top = _top_logprobs(entries)
    if top is not None:
        out["top"] = top
    inferred = [i for i, e in enumerate(entries) if e.get("inferred")]
    if inferred:
        out["inferred"] = inferred
    return out


def encode_prompt_ids(ids: list[int], previous: list[int] | None) -> dict:
    """``{"keep": N, "ids": [...], "sum": H}``: the first N ids of the previous call's
    prompt ids (in the session, the latest call that has some), then these; H checks the
    whole, so a reader that lost a call in between (a corrupt line) cannot rebuild wrong
    ids of the right length. A session's prompts grow by appending, so the log grows
    with its tokens, not with turns squared."""
    keep = 0
    if previous:
        limit = min(len(previous), len(ids))
        while keep < limit and previous[keep] == ids[keep]:
            keep += 1
    return {"keep": keep, "ids": ids[keep:], "sum": ids_checksum(ids)}


def ids_checksum(ids: list[int]) -> str:
    a = array("q", ids)
    if sys.byteorder == "big":
        a.byteswap()  # the same sum on every machine: int64 little-endian
    return hashlib.blake2b(a.tobytes(), digest_size=8).hexdigest()


def decode_prompt_ids(packed: object, previous: list[int] | None) -> list[int] | None:
    """The ids ``encode_prompt_ids`` packed; None when malformed, when the previous ids
    it refers to are missing, or when the rebuilt ids fail the record's checksum."""
    if not isinstance(packed, dict):
        return None
    keep, ids = packed.get("keep"), packed.get("ids")
    if not isinstance(keep, int) or not isinstance(ids, list) or keep < 0:
        return None
    if keep > len(previous or ()):
        return None
    out = [*(previous or [])[:keep], *ids]
    if "sum" in packed and packed["sum"] != ids_checksum(out):
        return None
    return out


def _pack_f32(values: list[float]) -> str:
    # llama.cpp computes logprobs as float32, so this is lossless, and 4x
    # smaller and faster to write than decimal text.
    a = array("f", values)
    if sys.byteorder == "big":
        a.byteswap()  # stored little-endian
    return base64.b64encode(a.tobytes()).decode()


def _tokens_text(entries: list) -> str:
    """The sampled text, from the tokens' bytes (a token may hold part of a character)."""
    chunks = []
    exact = True
    for e in entries:
        b = e.get("bytes")
        if b is not None:
            chunks.append(bytes(b))
        else:
            exact = False
            chunks.append(str(e.get("token", "")).encode("utf-8", "surrogatepass"))
    return b"".join(chunks).decode("utf-8", "replace" if exact else "surrogatepass")


def _top_logprobs(entries: list) -> list | None:
    """[[id, token, logprob], ...] per token (None where a token has none);
    None when no token has any."""
    if not any(e.get("top_logprobs") for e in entries):
        return None
    return [
        [[t.get("id"), t.get("token"), t.get("logprob")] for t in tl]
        if (tl := e.get("top_logprobs"))
        else None
        for e in entries
    ]
