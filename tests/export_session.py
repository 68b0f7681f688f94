"""A scripted, realistic logged session for export tests and the benchmark.

The agent's records without the agent: fixed ids and texts, so rows are the same on
every run. ``protocol="json"`` sends what coder/llm/json_protocol.py renders (tool list
in the system text, calls as JSON text, results as user messages), as the client does.
"""

from __future__ import annotations

import json

from coder.chat import ChatResult
from coder.llm.json_protocol import render_json_messages, response_format
from coder.log import Recorder

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file in the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]
SYSTEM = "You are coder, a coding agent."
HINT = (
    "Your tool call could not be read (the reply was cut at max_tokens before the JSON was "
    'complete). Call a tool with a JSON object: {"tool": "<name>", "arguments": {...}}, or '
    'give your final answer as {"answer": "<text>"}. Available tools: read_file.'
)


def _call(cid: str, path: str) -> dict:
    args = json.dumps({"path": path})
    fn = {"name": "read_file", "arguments": args}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": cid, "type": "function", "function": fn}],
    }


class ScriptedAgent:
    """Records model calls and tool results the way coder/agent.py does."""

    def __init__(self, rec: Recorder, protocol: str) -> None:
        self.rec, self.protocol = rec, protocol
        self.messages: list[dict] = [{"role": "system", "content": SYSTEM}]
        self.turn = 0

    def user(self, text: str) -> None:
        self.turn += 1
        self.step = 0
        self.rec.user_message(self.turn, text)
        self.messages.append({"role": "user", "content": text})

    def _request(self) -> dict:
        if self.protocol == "json":
            return {
                "model": "smol",
                "messages": render_json_messages(self.messages, TOOLS),
                "response_format": response_format(TOOLS),
                "logprobs": True,
            }
        return {"model": "smol", "messages": list(self.messages), "tools": TOOLS}

    def reply(
        self, message: dict, raw: str, error: str | None = None, finish: str = "stop"
    ) -> None:
        self.step += 1
        self.rec.model_call(
            self.turn,
            self.step,
            ChatResult(
                message=message,
                tool_calls=[],
                raw_content=raw,
                finish_reason=finish,
                usage={"prompt_tokens": 50, "completion_tokens": 9},
                timings=None,
                logprobs=[{"id": 1, "token": raw, "bytes": list(raw.encode()), "logprob": -0.5}],
                request=self._request(),
                protocol=self.protocol,
                parse_error=error,
            ),
        )

    def call(self, cid: str, path: str, output: str, is_error: bool = False) -> None:
        msg = _call(cid, path)
        self.reply(msg, json.dumps({"tool": "read_file", "arguments": {"path": path}}))
        self.messages.append(msg)
        from coder.chat import ToolCall
        from coder.tools import ToolResult

        tc = ToolCall(cid, "read_file", msg["tool_calls"][0]["function"]["arguments"])
        self.rec.tool_result(self.turn, self.step, tc, ToolResult(output, is_error, 1.0))
        self.messages.append({"role": "tool", "tool_call_id": cid, "content": output})

    def unreadable(self, raw: str) -> None:
        self.reply({"role": "assistant", "content": raw}, raw, error="cut", finish="length")
        self.messages += [{"role": "assistant", "content": raw}, {"role": "user", "content": HINT}]

    def answer(self, text: str, cut: bool = False) -> None:
        msg = {"role": "assistant", "content": text}
        self.reply(msg, json.dumps({"answer": text}), finish="length" if cut else "stop")
        self.messages.append(msg)

    def end_turn(self, stop: str, value: float, errors: int = 0) -> None:
        self.rec.reward(value, "auto", note=f"{stop}; {errors} tool errors", turn=self.turn)


def realistic_session(
    rec: Recorder, protocol: str = "json", task_id: str | None = None
) -> ScriptedAgent:
    """Three turns: a clean answer after a cut reply and a tool error; a turn stuck
    repeating one call (failed); a plain answer."""
    rec.session_start(
        config={},
        model={"alias": "smol"},
        tools=TOOLS,
        workspace="/w",
        git_head=None,
        extra={"task_id": task_id} if task_id else None,
    )
    a = ScriptedAgent(rec, protocol)
    a.user("What does a.py print?")
    a.unreadable('```json\n{"tool": "read_file", "arguments": {"pa')
    a.call("call_1", "b.py", "error: b.py not found", is_error=True)
    a.call("call_2", "a.py", "print('hi')")
    a.answer("It prints hi.")
    a.end_turn("answer", -0.1, errors=1)
    a.user("And c.py?")
    for k in range(3):
        a.call(f"call_{3 + k}", "c.py", "x = 1")
    a.end_turn("repeated_call", -1.0)
    a.user("Thanks!")
    a.answer("You are welcome.")
    a.end_turn("answer", 0.0)
    rec.session_end("exit")
    return a
