"""The Recorder the agent loop calls: agent events -> v1 records -> a logger.

Every record: ``{"v": 1, "ts": <unix seconds>, "type": ..., "session_id": ...,
"turn": int|None, "step": int|None, ...}``. Messages are logged once per session
and referenced by id, large request parts once as blobs (coder/log/schema.py),
and secrets never reach the log (coder/redact.py). See docs/log-format.md.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from coder.chat import ChatResult, ToolCall
from coder.log.schema import (
    REWARD_SOURCES,
    SCHEMA_VERSION,
    canonical,
    compact_logprobs,
    content_hash,
    encode_prompt_ids,
    to_ranges,
)
from coder.redact import env_secrets, find_secrets, is_secret_key, scrub, usable_secrets

if TYPE_CHECKING:  # the log stays a leaf: it never imports the tools at run time
    from coder.tools import ToolResult

# Request fields logged once per session as a blob: these always, others when large.
BLOB_FIELDS = frozenset({"tools", "response_format", "json_schema", "grammar", "functions"})
BLOB_MIN_BYTES = 256


class Sink(Protocol):
    def log(self, record: dict) -> None: ...


class Recorder:
    """Turns agent events into v1 records and hands them to a logger.

    ``secrets``: values to mask in every record (the real api key: the config the
    Recorder sees at session_start is already redacted). $CODER_API_KEY,
    $OPENAI_API_KEY and $LLAMA_API_KEY are always masked. Values shorter than 6
    characters are not (they would mask innocent text everywhere).
    """

    def __init__(
        self,
        logger: Sink,
        session_id: str | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.logger = logger
        self.session_id = session_id or uuid.uuid4().hex
        self._lock = threading.Lock()
        self._msg_ids: dict[bytes, int] = {}
        self._blobs: set[str] = set()
        self._secrets: tuple[str, ...] = ()
        self._secret_blobs: set[str] = set()
        self._secret_needles: tuple[bytes, ...] = ()
        self._add_secrets([*secrets, *env_secrets()])
        self._model_ref: str | None = None
        self._tools_ref: str | None = None
        self._last_prompt_ids: list[int] | None = None
        self._secret_messages: set[int] = set()
        self.counts = {"model_calls": 0, "tool_results": 0, "messages": 0, "rewards": 0}
        self._ended = False
        self.started = False  # session_start written

    # ------------------------------------------------------------ interface

    def session_start(
        self,
        *,
        config: dict,
        model: dict,
        tools: list[dict],
        workspace: str,
        git_head: str | None,
        extra: dict | None = None,
    ) -> None:
        from coder import __version__

        with self._lock:
            self.started = True
            self._add_secrets(find_secrets(config))
            model = scrub(dict(model), self._secrets)
            template = model.pop("chat_template", None)
            template_hash = model.get("chat_template_hash")
            template_ref = None
            if isinstance(template, str):
                template_hash = hashlib.sha256(template.encode()).hexdigest()
                template_ref = self._blob(template, 0, None)
            self._model_ref = self._blob(model, 0, None)
            self._tools_ref = self._blob(list(tools), 0, None)
            self._emit(
                "session_start",
                0,
                None,
                config=scrub(config, self._secrets),
                model=model,
                model_ref=self._model_ref,
                chat_template_hash=template_hash,
                chat_template_ref=template_ref,
                tools_ref=self._tools_ref,
                tool_names=[(t.get("function") or t).get("name") for t in tools],
                workspace=workspace,
                git_head=git_head,
                extra=scrub(extra, self._secrets) if extra else None,
                coder_version=__version__,
                pid=os.getpid(),
            )

    def model_changed(self, model: dict) -> None:
        """Another model answers from now on (/model): later model_call records point at
        its identity (a new model blob), earlier ones keep theirs."""
        with self._lock:
            model = scrub(dict(model), self._secrets)
            model.pop("chat_template", None)
            self._model_ref = self._blob(model, None, None)

    def user_message(self, turn: int, content: str) -> None:
        with self._lock:
            self._emit("user_message", turn, None, content=content)

    def model_call(self, turn: int, step: int, reply: ChatResult) -> None:
        """One exchange with the model. A reply whose tool call could not be parsed
        is logged with that parse error as its ``error``."""
        request = reply.request
        error = reply.error or reply.parse_error
        with self._lock:
            ids = [self._message_id(m, turn, step) for m in request.get("messages") or []]
            rest, blobs = self._split_request(request, turn, step)
            tokens, note = self._tokens(reply, error)
            prompt_ids, prompt_note = self._prompt_ids(reply, ids, blobs)
            # tools other than the session's (a /mode switch, an MCP server gone): named
            # per call, since the json protocol's request carries them only as text
            offered = None
            if reply.tools is not None and self._tools_ref is not None:
                offered = self._blob(list(reply.tools), turn, step)
            changed = {"tools_ref": offered} if offered and offered != self._tools_ref else {}
            self.counts["model_calls"] += 1
            self._emit(
                "model_call",
                turn,
                step,
                request=rest,
                prompt=to_ranges(ids),
                request_blobs=blobs,
                request_keys=list(request.keys()),
                model_ref=self._model_ref,
                protocol=reply.protocol,
                response=reply.message,
                raw_content=reply.raw_content,
                reasoning=reply.reasoning,
                finish_reason=reply.finish_reason,
                usage=reply.usage,
                timings=reply.timings,
                tokens=tokens,
                tokens_note=note,
                prompt_ids=prompt_ids,
                prompt_ids_note=prompt_note,
                interrupted=reply.interrupted,
                error=error,
                duration_ms=reply.duration_ms,
                adapters=reply.adapters,
                **changed,
            )

    def tool_result(self, turn: int, step: int, call: ToolCall, result: ToolResult) -> None:
        with self._lock:
            self.counts["tool_results"] += 1
            self._emit(
                "tool_result",
                turn,
                step,
                call_id=call.id,
                name=call.name,
                arguments=call.arguments,
                output=result.output,
                is_error=result.is_error,
                duration_ms=result.duration_ms,
            )

    def reward(
        self,
        value: float,
        source: str,
        note: str | None = None,
        turn: int | None = None,
        verifier: dict | None = None,
    ) -> None:
        """``verifier``: for a verifier's reward, which command gave it and how it ran
        (coder.rollout.verify.Verdict.record())."""
        if source not in REWARD_SOURCES:
            raise ValueError(f"reward source must be one of {REWARD_SOURCES}, not {source!r}")
        with self._lock:
            self.counts["rewards"] += 1
            extra = {"verifier": verifier} if verifier is not None else {}
            self._emit("reward", turn, None, value=float(value), source=source, note=note, **extra)

    def attempt(self, **fields: Any) -> None:
        """A rollout attempt's outcome (coder.rollout.runner.AttemptRecord): written after
        its reward, so a session with an `attempt` record of status passed or failed is
        complete and a rerun skips it."""
        with self._lock:
            self._emit("attempt", None, None, **fields)

    def compaction(
        self,
        *,
        turn: int,
        dropped_messages: int,
        tokens_before: int | None,
        tokens_after: int | None,
        note: str = "",
    ) -> None:
        with self._lock:
            self._emit(
                "compaction",
                turn,
                None,
                dropped_messages=dropped_messages,
                tokens_before=tokens_before,
                tokens_after=tokens_after,
                note=note,
            )

    def session_end(self, reason: str) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            stats_fn = getattr(self.logger, "stats", None)
            logger_stats = stats_fn() if callable(stats_fn) else None
            self._emit(
                "session_end",
                None,
                None,
                reason=reason,
                dropped=(logger_stats or {}).get("dropped", 0),
                errors=(logger_stats or {}).get("errors", 0),
                logger=logger_stats,
                counts=dict(self.counts),
            )

    # -------------------------------------------------------------- plumbing

    def _split_request(self, request: dict, turn: int, step: int) -> tuple[dict, dict[str, str]]:
        """The body minus messages: small fields inline, large ones as blob hashes.
        Keys that name a credential are not logged at all."""
        rest: dict[str, Any] = {}
        blobs: dict[str, str] = {}
        for k, v in request.items():
            if k == "messages" or (isinstance(k, str) and is_secret_key(k)):
                continue
            if k in BLOB_FIELDS or (
                isinstance(v, dict | list) and len(canonical(v)) >= BLOB_MIN_BYTES
            ):
                blobs[k] = self._blob(scrub(v, self._secrets), turn, step)
            else:
                rest[k] = scrub(v, self._secrets) if isinstance(v, dict | list) else v
        return rest, blobs

    def _prompt_ids(
        self, reply: ChatResult, msg_ids: list[int], blobs: dict[str, str]
    ) -> tuple[dict | None, str | None]:
        """The prompt's token ids packed against the previous call's, and a note."""
        if reply.prompt_ids is None:
            return None, reply.prompt_ids_note
        if self._secret_messages.intersection(msg_ids) or any(
            h in self._secret_blobs for h in blobs.values()
        ):
            # token ids cannot be masked: they would decode back to the secret
            return None, "dropped: the prompt contains a secret"
        packed = encode_prompt_ids(reply.prompt_ids, self._last_prompt_ids)
        self._last_prompt_ids = reply.prompt_ids
        return packed, reply.prompt_ids_note

    def _tokens(self, reply: ChatResult, error: str | None) -> tuple[dict | None, str | None]:
        """The packed sampled tokens, or None and a note saying why there are none.
        ``missing``: tokens the server counted (usage.completion_tokens) but never sent."""
        tokens = compact_logprobs(reply.logprobs, reply.raw_content)
        if tokens is not None:
            if self._has_secret([reply.raw_content, reply.reasoning, tokens]):
                # token ids cannot be masked: they would decode back to the secret
                return None, "dropped: the completion contains a secret"
            n = (reply.usage or {}).get("completion_tokens")
            got = len(tokens.get("ids") or tokens.get("tokens") or ())
            if isinstance(n, int) and n > got:
                tokens["missing"] = n - got
                return tokens, (
                    f"incomplete: the server streamed {got} of {n} sampled tokens "
                    "(text it held back and dropped, e.g. a code fence or trailing whitespace, "
                    "comes without logprobs)"
                )
            return tokens, None
        request = reply.request
        if not request.get("logprobs") and request.get("tools") and request.get("stream"):
            return None, "not requested: llama.cpp gives no logprobs with tools + stream"
        if not request.get("logprobs"):
            return None, "not requested (logging.logprobs is off)"
        if reply.interrupted:
            return None, "interrupted before the server sent logprobs"
        if error:
            return None, "request failed"
        return None, "requested but the server returned none"

    def _add_secrets(self, values: Iterable[Any]) -> None:
        self._secrets = usable_secrets([*self._secrets, *values])
        # as they appear in serialised JSON (a quote or backslash in a key is escaped)
        self._secret_needles = tuple(orjson.dumps(s)[1:-1] for s in self._secrets)

    def _has_secret(self, obj: Any) -> bool:
        if not self._secrets:
            return False
        blob = orjson.dumps(obj, default=str)
        return any(n in blob for n in self._secret_needles)

    def _emit(self, type_: str, turn: int | None, step: int | None, **fields: Any) -> None:
        rec = {
            "v": SCHEMA_VERSION,
            "ts": time.time(),
            "type": type_,
            "session_id": self.session_id,
            "turn": turn,
            "step": step,
        }
        rec.update(fields)
        if self._has_secret(rec):
            rec = scrub(rec, self._secrets)
        self.logger.log(rec)

    def _blob(self, data: Any, turn: int | None = None, step: int | None = None) -> str:
        secret = self._has_secret(data)
        if secret:
            data = scrub(data, self._secrets)  # so the hash is that of the stored data
        h = content_hash(data)
        if secret:
            self._secret_blobs.add(h)
        if h not in self._blobs:
            self._blobs.add(h)
            self._emit("blob", turn, step, hash=h, data=data)
        return h

    def _message_id(self, msg: dict, turn: int | None, step: int | None) -> int:
        key = hashlib.blake2b(canonical(msg), digest_size=16).digest()
        mid = self._msg_ids.get(key)
        if mid is None:
            mid = len(self._msg_ids)
            self._msg_ids[key] = mid
            if self._has_secret(msg):
                self._secret_messages.add(mid)
            self.counts["messages"] += 1
            self._emit("message", turn, step, id=mid, message=msg)
        return mid
