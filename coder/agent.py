"""The loop: messages -> model -> tool calls -> results -> model ... -> answer.

Nothing here knows about the terminal: output goes to a Sink the caller passes
in, approval is a callback inside the ToolContext, and every step is handed to a
Recorder (training logs). The same loop serves the REPL, `-q` and rollouts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from coder import resources
from coder import tools as toolbox
from coder.chat import ChatResult, Stop, Terminated, ToolCall
from coder.config import Config, ConfigError
from coder.context import Budget, shed_context
from coder.llm import LLMError
from coder.tools import Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    from coder.config import Sampling

FORMAT_HINT = (
    "Your tool call could not be read ({error}). Call a tool with a JSON object: "
    '{{"tool": "<name>", "arguments": {{...}}}}, or give your final answer as '
    '{{"answer": "<text>"}}. Available tools: {names}.'
)
REPEAT_NOTE = (
    "\n[note: you made this exact call {n} times in a row; use the result above or answer]"
)
REPEAT_LIMIT = 5  # identical calls in a row before the turn is ended as stuck


class Sink(Protocol):
    """Where the loop's output goes (the REPL's renderer, -q's printer, a rollout's null)."""

    def text(self, delta: str) -> None: ...
    def tool_call(self, call: ToolCall) -> None: ...
    def tool_result(self, call: ToolCall, result: ToolResult) -> None: ...
    def notice(self, message: str) -> None: ...
    # a model call finished: its token counts (prompt_tokens, completion_tokens), for progress
    def usage(self, usage: dict) -> None: ...


class NullSink:
    def text(self, delta: str) -> None:
        pass

    def tool_call(self, call: ToolCall) -> None:
        pass

    def tool_result(self, call: ToolCall, result: ToolResult) -> None:
        pass

    def notice(self, message: str) -> None:
        pass

    def usage(self, usage: dict) -> None:
        pass


class Recorder(Protocol):  # coder.log.Recorder, or nothing
    def user_message(self, turn: int, content: str) -> None: ...
    def model_call(self, turn: int, step: int, reply: ChatResult) -> None: ...
    def tool_result(self, turn: int, step: int, call: ToolCall, result: ToolResult) -> None: ...
    def reward(
        self, value: float, source: str, note: str | None = None, turn: int | None = None
    ) -> None: ...
    def compaction(
        self,
        *,
        turn: int,
        dropped_messages: int,
        tokens_before: int | None,
        tokens_after: int | None,
        note: str = "",
    ) -> None: ...


class ChatModel(Protocol):
    """What the loop needs of a model: coder.llm.Client, or a scripted one in tests."""

    def chat(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        sampling: Sampling,
        protocol: str = "auto",
        on_text: Callable[[str], None] | None = None,
        logprobs: bool = False,
        cancel: threading.Event | None = None,
        stream: bool = True,
    ) -> ChatResult: ...

    def context_size(self) -> int | None: ...


@dataclass
class CallOutcome:
    """One tool call the turn ran: what was asked and whether it failed."""

    name: str
    arguments: str  # raw JSON text, as the model wrote it
    is_error: bool


@dataclass
class TurnResult:
    answer: str
    stop: Stop
    steps: int = 0
    tool_calls: list[CallOutcome] = field(default_factory=list)
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    error: str | None = None
    calls: list[dict] = field(default_factory=list)  # per model call: usage, timings

    @property
    def ok(self) -> bool:
        return self.stop == Stop.ANSWER


@dataclass
class Agent:
    client: ChatModel
    config: Config
    tool_ctx: ToolContext
    recorder: Recorder | None = None
    messages: list[dict] = field(default_factory=list)
    turn: int = 0
    budget: Budget = field(default_factory=Budget)
    tool_names: list[str] | None = None  # None: every registered tool
    # tools beyond the registry (MCP servers'), asked again for every request: a server
    # that died takes its tools out of the next one
    extra_tools: Callable[[], list[Tool]] = field(default=lambda: [])
    # False: whole replies, not streamed. llama.cpp sends no sampled token ids for native
    # tool calls while streaming, so a rollout that must be token-exact asks without.
    stream: bool = True

    def __post_init__(self) -> None:
        if not self.messages:
            self.messages.append({"role": "system", "content": system_prompt(self.config)})

    @property
    def tools(self) -> list[dict]:
        """What the next request offers: the chosen tools the permission mode allows, and
        the tools of the moment (state_tools)."""
        return toolbox.schemas(self.tool_names, self.state_tools(), mode=self.tool_ctx.mode)

    def state_tools(self) -> list[Tool]:
        """The tools beyond the configured ones, of the moment: update_plan while the
        plan (/plan) has unfinished steps, then the MCP servers'."""
        plan = self.tool_ctx.plan
        return [
            *([toolbox.UPDATE_PLAN] if plan is not None and plan.open else []),
            *self.extra_tools(),
        ]

    def callable_tools(self) -> dict[str, Tool]:
        """What a call may name: the registry and the extra tools of the moment."""
        return {**toolbox.REGISTRY, **{t.name: t for t in self.state_tools()}}

    def clear(self) -> None:
        """Forget the conversation (its plan too), keep the system prompt."""
        del self.messages[1:]
        self.tool_ctx.plan = None


def system_prompt(cfg: Config) -> str:
    path = cfg.agent.system_prompt
    if not path:
        return resources.read_text("prompts/system.md").strip()
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"agent.system_prompt: cannot read {path}: {exc}") from None


def run_turn(
    agent: Agent,
    user_text: str,
    sink: Sink | None = None,
    cancel: threading.Event | None = None,
) -> TurnResult:
    """One user request, run to a final answer, max_steps, an error or cancellation.

    Ctrl-C (KeyboardInterrupt) anywhere inside ends the turn as interrupted; either way
    every tool call in the history gets a result, so the next request stays valid.
    """
    sink = sink or NullSink()
    over = context_overflow(agent, user_text)
    if over:
        error = (
            f"the message is too long for the model's context: about {over.needed:,} tokens, "
            f"and {over.limit:,} fit in a prompt (llm.server.ctx_size {over.n_ctx:,})"
        )
        return TurnResult(answer="", stop=Stop.TOO_LONG, error=error)
    agent.turn += 1
    if agent.recorder:
        agent.recorder.user_message(agent.turn, user_text)
    request = {"role": "user", "content": user_text}
    agent.messages.append(request)
    result = TurnResult(answer="", stop=Stop.MAX_STEPS)
    try:
        _steps(agent, request, result, sink, cancel)
    except KeyboardInterrupt:
        result.stop = Stop.INTERRUPTED
    finally:
        answer_unanswered_calls(agent.messages)
    _auto_reward(agent, result)
    return result


@dataclass
class _Progress:
    """What the loop remembers across the steps of one turn."""

    retried_format: bool = False
    last_call: tuple[str, str] | None = None
    repeats: int = 0


# After reading a reply: the turn is over, the model is asked again, or its calls run.
Next = Literal["stop", "ask_again", "run_calls"]


def _steps(
    agent: Agent, request: dict, result: TurnResult, sink: Sink, cancel: threading.Event | None
) -> None:
    progress = _Progress()
    for step in range(1, agent.config.agent.max_steps + 1):
        result.steps = step
        _fit_context(agent, request, sink, agent.turn, step)
        reply = _query(agent, result, sink, cancel, step)
        if reply is None:
            return
        after = _read_reply(agent, reply, result, sink, progress)
        if after == "stop":
            return
        if after == "run_calls" and _run_calls(agent, reply, result, sink, cancel, progress, step):
            return
    msg = f"stopped after {agent.config.agent.max_steps} steps (agent.max_steps) without a final answer"
    sink.notice(msg)
    result.error = msg


def _query(
    agent: Agent, result: TurnResult, sink: Sink, cancel: threading.Event | None, step: int
) -> ChatResult | None:
    """One model call, recorded and counted; None when the server failed (the turn ends)."""
    cfg = agent.config
    try:
        reply = agent.client.chat(
            agent.messages,
            agent.tools,
            sampling=cfg.llm.sampling,
            protocol=cfg.llm.tool_protocol,
            on_text=sink.text,
            logprobs=cfg.logging.logprobs,
            cancel=cancel,
            stream=agent.stream,
        )
    except LLMError as exc:
        result.stop, result.error = Stop.ERROR, str(exc)
        return None
    except Terminated as exc:  # SIGTERM / SIGHUP: the call in flight is logged as interrupted
        if exc.reply is not None:
            _record_call(agent, exc.reply, agent.turn, step)
            exc.reply = None
        raise
    _record_call(agent, reply, agent.turn, step)
    sink.usage(reply.usage or {})
    _add_usage(result.usage, reply.usage)
    result.calls.append({"usage": reply.usage, "timings": reply.timings})
    agent.budget.observe(reply.usage, agent.messages)
    return reply


def _read_reply(
    agent: Agent, reply: ChatResult, result: TurnResult, sink: Sink, progress: _Progress
) -> Next:
    """Take the reply into the conversation and decide what comes next."""
    if reply.interrupted or reply.error:
        # keep only what the user saw; a half-written call or nothing is not a turn
        if (reply.message.get("content") or "").strip():
            agent.messages.append(reply.message)
        result.answer = reply.message.get("content") or ""
        result.stop = Stop.INTERRUPTED if reply.interrupted else Stop.ERROR
        result.error = reply.error
        return "stop"

    if reply.parse_error and not reply.tool_calls:
        agent.messages.append({"role": "assistant", "content": reply.raw_content})
        if progress.retried_format:
            result.answer, result.stop = reply.raw_content, Stop.INVALID_TOOL_CALL
            return "stop"
        progress.retried_format = True
        names = ", ".join(t["function"]["name"] for t in agent.tools)
        hint = FORMAT_HINT.format(error=reply.parse_error, names=names)
        agent.messages.append({"role": "user", "content": hint})
        sink.notice(
            f"the model's tool call could not be parsed ({reply.parse_error}); asked it to retry"
        )
        return "ask_again"

    agent.messages.append(reply.message)
    if reply.tool_calls:
        return "run_calls"
    result.answer = reply.message.get("content") or ""
    result.stop = _answer_kind(result.answer, reply.finish_reason)
    if result.stop == Stop.TRUNCATED:
        max_tokens = agent.config.llm.sampling.max_tokens
        sink.notice(f"the answer was cut at llm.sampling.max_tokens ({max_tokens})")
    return "stop"


def _run_calls(
    agent: Agent,
    reply: ChatResult,
    result: TurnResult,
    sink: Sink,
    cancel: threading.Event | None,
    progress: _Progress,
    step: int,
) -> bool:
    """Run the reply's tool calls in order; True when the turn ends here. The repeat
    guard holds inside one reply too: its calls after the limit are not run."""
    for call in reply.tool_calls:
        key = (call.name, call.arguments)
        progress.repeats = progress.repeats + 1 if key == progress.last_call else 1
        progress.last_call = key
        output = _run_tool(agent, call, sink, agent.turn, step)
        result.tool_calls.append(CallOutcome(call.name, call.arguments, output.is_error))
        note = REPEAT_NOTE.format(n=progress.repeats) if progress.repeats >= 3 else ""
        agent.messages.append(
            {"role": "tool", "tool_call_id": call.id, "content": output.output + note}
        )
        if cancel is not None and cancel.is_set():
            result.stop = Stop.INTERRUPTED
            return True
        if progress.repeats >= REPEAT_LIMIT:
            msg = f"stopped: the model made the same {call.name} call {progress.repeats} times in a row"
            sink.notice(msg)
            result.stop, result.error = Stop.REPEATED_CALL, msg
            return True
    return False


NOT_RUN = "[not run: the turn was interrupted before this call]"


def answer_unanswered_calls(messages: list[dict]) -> int:
    """Give every assistant tool call a tool result (a cut-short turn can leave some
    unanswered, which makes the next request invalid). Returns how many were added."""
    added = 0
    i = 0
    while i < len(messages):
        msg = messages[i]
        i += 1
        if msg.get("role") != "assistant" or not msg.get("tool_calls"):
            continue
        answered = set()
        while i < len(messages) and messages[i].get("role") == "tool":
            answered.add(messages[i].get("tool_call_id"))
            i += 1
        for call in msg["tool_calls"]:
            if call.get("id") not in answered:
                messages.insert(
                    i, {"role": "tool", "tool_call_id": call.get("id"), "content": NOT_RUN}
                )
                i += 1
                added += 1
    return added


@dataclass
class Overflow:
    """A user message that cannot fit the context even with the whole history shed."""

    needed: int  # tokens the system prompt and the message take (estimated)
    limit: int  # tokens a prompt may take
    n_ctx: int


def context_overflow(agent: Agent, user_text: str) -> Overflow | None:
    """The figures when `user_text` is too long to send at all; None when it fits or the
    context size is unknown. run_turn refuses such a message; a UI may check first."""
    if agent.budget.n_ctx is None:
        agent.budget.n_ctx = agent.client.context_size()
    limit = agent.budget.prompt_limit(agent.config.llm.sampling.max_tokens)
    if limit is None:
        return None
    needed = agent.budget.estimate([agent.messages[0], {"role": "user", "content": user_text}])
    if needed <= limit:
        return None
    return Overflow(needed, limit, agent.budget.n_ctx)


def _run_tool(agent: Agent, call: ToolCall, sink: Sink, turn: int, step: int) -> ToolResult:
    sink.tool_call(call)
    if call.error:
        out = ToolResult(f"error: arguments are not valid JSON: {call.error}", True, 0.0)
    else:
        out = toolbox.dispatch(call.name, call.arguments, agent.tool_ctx, agent.callable_tools())
    sink.tool_result(call, out)
    if agent.recorder:
        agent.recorder.tool_result(turn, step, call, out)
    return out


def _record_call(agent: Agent, reply: ChatResult, turn: int, step: int) -> None:
    if agent.recorder:
        agent.recorder.model_call(turn, step, reply)  # logs parse_error as its error


# The model's own failures; a server error or the user's Ctrl-C is not scored.
AUTO_SCORED = {
    Stop.ANSWER: 0.0,
    Stop.TRUNCATED: -0.5,
    Stop.EMPTY_ANSWER: -1.0,
    Stop.MAX_STEPS: -1.0,
    Stop.REPEATED_CALL: -1.0,
    Stop.INVALID_TOOL_CALL: -1.0,
}


def _answer_kind(text: str, finish_reason: str | None) -> Stop:
    if not text.strip():
        return Stop.EMPTY_ANSWER
    return Stop.TRUNCATED if finish_reason == "length" else Stop.ANSWER


TOOL_ERROR_PENALTY = 0.1


def _auto_reward(agent: Agent, result: TurnResult) -> None:
    """One automatic reward per turn: 0 for an answer, -1 for a failure, -0.1 per tool
    error. A verifier's or the user's reward for the same turn outranks it on export."""
    if not agent.recorder or result.stop not in AUTO_SCORED:
        return
    errors = sum(1 for call in result.tool_calls if call.is_error)
    value = AUTO_SCORED[result.stop] - TOOL_ERROR_PENALTY * errors
    note = f"{result.stop}; {errors} tool error{'s' * (errors != 1)}"
    agent.recorder.reward(round(value, 3), "auto", note=note, turn=agent.turn)


def _add_usage(total: dict, usage: dict | None) -> None:
    for key in ("prompt_tokens", "completion_tokens"):
        total[key] += int((usage or {}).get(key) or 0)


def _fit_context(agent: Agent, request: dict, sink: Sink, turn: int, step: int) -> None:
    """Shed old tool output before the prompt would outgrow the server's context."""
    limit = agent.budget.prompt_limit(agent.config.llm.sampling.max_tokens)
    if limit is None:
        return
    before = agent.budget.estimate(agent.messages)
    if before <= limit:
        return
    dropped = shed_context(agent.messages, agent.budget, limit, request)
    after = agent.budget.estimate(agent.messages)
    sink.notice(
        f"context {before} of {agent.budget.n_ctx} tokens: shed {dropped} old messages/outputs "
        f"(now about {after})"
    )
    if agent.recorder:
        agent.recorder.compaction(
            turn=turn,
            dropped_messages=dropped,
            tokens_before=before,
            tokens_after=after,
            note="elided oldest tool outputs" if after <= limit else "still over the limit",
        )


def tool_calls_summary(result: TurnResult) -> list[dict]:
    out = []
    for call in result.tool_calls:
        try:
            args = json.loads(call.arguments)
        except (ValueError, TypeError):
            args = call.arguments
        out.append({"name": call.name, "arguments": args, "is_error": call.is_error})
    return out
