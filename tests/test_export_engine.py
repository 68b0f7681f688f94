"""Acceptance on the real engine: exported sft rows, rendered by prompts/chatml-tools.jinja
(llama.cpp's /apply-template with `tools`), are the conversation the session held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from coder.export import export
from coder.log import list_log_files, read_sessions
from tests.conftest import start_engine, stop_engine
from tests.test_native_engine import TEMPLATE


@pytest.fixture(scope="module")
def template_url(model_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("tmpl") / "engine.log"
    proc, url = start_engine(model_path, log, "--chat-template-file", str(TEMPLATE))
    try:
        yield url
    finally:
        stop_engine(proc)


def apply_template(url: str, messages: list[dict], tools: list[dict]) -> str:
    body = json.dumps({"messages": messages, "tools": tools}).encode()
    req = urllib.request.Request(
        url.removesuffix("/v1") + "/apply-template", body, {"Content-Type": "application/json"}
    )
    try:
        return json.load(urllib.request.urlopen(req, timeout=60))["prompt"]
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{e}: {e.read()[:300]!r} for {messages!r}") from None


def held_conversation(session) -> list[dict]:
    """What the agent held, from the logged responses and tool results (not the wire)."""
    sent = session.calls[0].request["messages"]
    out: list[dict] = []
    for c in session.calls:
        if not out:
            out = [m for m in sent if m["role"] == "user"]
        if c.error or c.finish_reason == "length":
            continue
        out.append(c.message)
        for r in session.tool_results:
            if r["turn"] == c.turn and r["step"] == c.step:
                out.append({"role": "tool", "tool_call_id": r["call_id"], "content": r["output"]})
    while out[-1]["role"] == "tool":  # a conversation ends with the model's last reply
        out.pop()
    return out


@pytest.mark.parametrize("protocol", ["json", "native"])
def test_exported_rows_render_as_the_held_conversation(template_url, tmp_path, protocol):
    (tmp_path / "README.md").write_text("Hello from the test repo\n")
    (tmp_path / ".coder").mkdir()
    (tmp_path / ".coder" / "config.yaml").write_text(
        "agent:\n  tools: [read_file, list_dir]\n  max_steps: 3\n"
    )
    env = dict(os.environ, CODER_BASE_URL=template_url, CODER_LOG_DIR=str(tmp_path / "logs"))
    env.update(CODER_LLM__SAMPLING__TEMPERATURE="0", CODER_LLM__SAMPLING__MAX_TOKENS="96")
    env["CODER_TOOL_PROTOCOL"] = protocol
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "Read README.md and tell me its first line"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    assert session.calls[0].protocol == protocol
    out = tmp_path / "sft.jsonl"
    export([tmp_path / "logs"], "sft", out, keep_all=True)
    [row] = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["tools"] == session.tools
    held = [row["messages"][0], *held_conversation(session)]
    assert row["messages"][0]["role"] == "system" and "# Tools" not in row["messages"][0]["content"]
    # llama.cpp will not render a conversation ending in a call (it would continue it)
    tail = [{"role": "user", "content": "next"}]
    rendered = apply_template(template_url, row["messages"] + tail, row["tools"])
    assert "<tools>" in rendered and '"read_file"' in rendered
    assert rendered == apply_template(template_url, held + tail, session.tools)
    for m in row["messages"]:
        if m["role"] == "assistant" and m.get("content"):
            assert '{"answer"' not in m["content"] and not m["content"].endswith(("\t", "  "))
