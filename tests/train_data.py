"""A tiny fixed set of logged tool-call sessions for `coder train` tests and bench.

Each session: a request that needs a tool, the native tool call, the tool's output, the
answer; recorded with the real Recorder and Logger in coder's log format, so training
reads them through `coder export` like a user's own sessions.
"""

from __future__ import annotations

import json
from pathlib import Path

from coder.chat import ChatResult, ToolCall
from coder.log import Logger, Recorder

SYSTEM = "You are coder, a coding agent. Use the tools to look at the workspace."
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
    },
    {
        "type": "function",
        "function": {
            "name": "run_shell",
            "description": "Run a shell command in the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
]
# (request, tool, arguments, tool output, answer)
EXAMPLES = [
    (
        "Read README.md and tell me its first line.",
        "read_file",
        {"path": "README.md"},
        "# Demo\nA small project.",
        "Its first line is: # Demo",
    ),
    (
        "What is in setup.cfg?",
        "read_file",
        {"path": "setup.cfg"},
        "[metadata]\nname = demo",
        "setup.cfg names the package demo.",
    ),
    (
        "Show me main.py.",
        "read_file",
        {"path": "main.py"},
        "print('hello')",
        "main.py prints hello.",
    ),
    (
        "Open notes.txt and summarise it.",
        "read_file",
        {"path": "notes.txt"},
        "buy milk\ncall bob",
        "Two notes: buy milk, call bob.",
    ),
    (
        "Run the tests.",
        "run_shell",
        {"command": "pytest -q"},
        "3 passed in 0.1s",
        "All 3 tests passed.",
    ),
    (
        "List the files here.",
        "run_shell",
        {"command": "ls"},
        "README.md\nmain.py",
        "There are README.md and main.py.",
    ),
    (
        "Which Python version is installed?",
        "run_shell",
        {"command": "python --version"},
        "Python 3.11.7",
        "Python 3.11.7.",
    ),
    (
        "Read config.yaml please.",
        "read_file",
        {"path": "config.yaml"},
        "debug: true",
        "config.yaml sets debug: true.",
    ),
]


def _result(request: dict, message: dict) -> ChatResult:
    content = message.get("content") or ""
    return ChatResult(
        message=message,
        tool_calls=[],
        raw_content=content,
        finish_reason="tool_calls" if message.get("tool_calls") else "stop",
        usage={"prompt_tokens": 100, "completion_tokens": 20},
        timings=None,
        logprobs=None,
        request=request,
        protocol="native",
    )


def write_sessions(
    log_dir: Path, examples=EXAMPLES, reward: float | None = None, prose: bool = False
) -> None:
    """One session per example; `reward`: a verifier reward for each turn as well;
    `prose`: the reply a model without tool calling gives instead (no call, a guess)."""
    logger = Logger(log_dir)
    try:
        for n, (ask, tool, arguments, output, answer) in enumerate(examples):
            if prose:
                _prose_session(logger, ask, reward)
                continue
            rec = Recorder(logger)
            rec.session_start(
                config={}, model={"alias": "smol"}, tools=TOOLS, workspace="/w", git_head=None
            )
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}]
            rec.user_message(1, ask)
            cid = f"call_{n}"
            call = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": tool, "arguments": json.dumps(arguments)},
                    }
                ],
            }
            body = {"model": "smol", "messages": list(messages), "tools": TOOLS}
            rec.model_call(1, 1, _result(body, call))
            from coder.tools import ToolResult

            rec.tool_result(
                1, 1, ToolCall(cid, tool, json.dumps(arguments)), ToolResult(output, False, 1.0)
            )
            messages += [call, {"role": "tool", "tool_call_id": cid, "content": output}]
            body = {"model": "smol", "messages": list(messages), "tools": TOOLS}
            rec.model_call(1, 2, _result(body, {"role": "assistant", "content": answer}))
            rec.reward(0.0, "auto", note="answer; 0 tool errors", turn=1)
            if reward is not None:
                rec.reward(reward, "verifier", note="scripted", turn=1)
            rec.session_end("exit")
    finally:
        logger.close()


def _prose_session(logger: Logger, ask: str, reward: float | None) -> None:
    rec = Recorder(logger)
    rec.session_start(
        config={}, model={"alias": "smol"}, tools=TOOLS, workspace="/w", git_head=None
    )
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}]
    rec.user_message(1, ask)
    body = {"model": "smol", "messages": messages, "tools": TOOLS}
    guess = "You can use the open() function in Python to do that."
    rec.model_call(1, 1, _result(body, {"role": "assistant", "content": guess}))
    rec.reward(0.0, "auto", note="answer; 0 tool errors", turn=1)
    if reward is not None:
        rec.reward(reward, "verifier", note="scripted", turn=1)
    rec.session_end("exit")


def write_pairs(log_dir: Path, examples=EXAMPLES) -> None:
    """Each request answered twice: with the tool (verifier 1.0) and in prose (0.0), so
    the grpo export has groups of two and the dpo export one pair per request."""
    write_sessions(log_dir, examples, reward=1.0)
    write_sessions(log_dir, examples, reward=0.0, prose=True)
