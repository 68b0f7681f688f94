"""Native tool calling on the real engine: SmolLM2 behind prompts/chatml-tools.jinja.

The model's own template drops `tools`; with this template llama.cpp reports tool
support, so `auto` picks the native protocol and requests carry `tools`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coder.config import Sampling
from coder.llm import Client
from coder.log import list_log_files, read_sessions
from tests.conftest import start_engine, stop_engine

TEMPLATE = Path(__file__).resolve().parent.parent / "prompts" / "chatml-tools.jinja"


@pytest.fixture(scope="module")
def native_url(model_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("native") / "engine.log"
    proc, url = start_engine(model_path, log, "--chat-template-file", str(TEMPLATE))
    try:
        yield url
    finally:
        stop_engine(proc)


def test_template_makes_auto_choose_native(native_url):
    with Client(native_url) as client:
        assert client.props()["chat_template_caps"]["supports_tools"] is True
        assert client.resolve_protocol("auto") == "native"


def test_template_renders_calls_and_results_for_the_model(native_url):
    import json
    import urllib.request

    messages = [
        {"role": "user", "content": "Read a.py"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "print(1)"},
    ]
    body = json.dumps({"messages": messages}).encode()
    root = native_url.removesuffix("/v1")
    req = urllib.request.Request(
        root + "/apply-template", body, {"Content-Type": "application/json"}
    )
    prompt = json.load(urllib.request.urlopen(req, timeout=30))["prompt"]
    assert (
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>' in prompt
    )
    assert "<tool_response>\nprint(1)\n</tool_response>" in prompt


def test_native_session_with_logprobs_on_runs_and_logs(native_url, tmp_path):
    # llama.cpp refuses logprobs with tools + stream (HTTP 400); the client must not ask
    env = dict(os.environ, CODER_BASE_URL=native_url, CODER_LOG_DIR=str(tmp_path / "logs"))
    env["CODER_LLM__SAMPLING__MAX_TOKENS"] = "48"
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "Say hi"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    [session] = list(read_sessions(list_log_files(tmp_path / "logs")))
    call = session.calls[0]
    assert call.protocol == "native" and call.request["tools"] and call.error is None
    assert "tools + stream" in call.record["tokens_note"]


def test_client_streams_text_natively(native_url):
    seen: list[str] = []
    with Client(native_url) as client:
        result = client.chat(
            [{"role": "user", "content": "Say hello"}],
            [],
            sampling=Sampling(max_tokens=16, temperature=0),
            protocol="native",
            on_text=seen.append,
            logprobs=True,
        )
    assert result.error is None and "".join(seen) == result.message["content"]
    assert result.logprobs  # without tools, logprobs stream fine
