"""Acceptance against the real engine and SmolLM2: `coder -q` makes a tool call that runs.

Asserts on the recorded events, never on the tiny model's wording.
"""

from __future__ import annotations

import os
import subprocess
import sys

from coder.log import read_sessions


def test_q_read_file_call_runs_and_its_result_reaches_the_model(tmp_path, engine_url):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("Hello from the test repo\nsecond line\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    # SmolLM2-135M picks among few tools far better than among 17 (agent.tools).
    (repo / ".coder").mkdir()
    (repo / ".coder" / "config.yaml").write_text(
        "agent:\n  tools: [read_file, list_dir]\n  max_steps: 3\n"
    )
    env = dict(os.environ, CODER_BASE_URL=engine_url, CODER_LOG_DIR=str(tmp_path / "logs"))
    env["CODER_LLM__SAMPLING__TEMPERATURE"] = "0"
    env["CODER_LLM__SAMPLING__MAX_TOKENS"] = "128"
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "Read README.md and tell me its first line"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: the tiny model did not finish the task

    [session] = list(read_sessions(sorted((tmp_path / "logs").glob("*.jsonl"))))
    calls = session.calls
    assert calls and "read_file" in calls[0].request["grammar"]  # auto -> json, GBNF
    results = session.tool_results
    assert results and results[0]["name"] == "read_file"
    # the tool's output is in the prompt of the next model call
    assert len(calls) >= 2
    sent = "\n".join(str(m.get("content")) for m in calls[1].request["messages"])
    assert results[0]["output"][:40] in sent
    # the training log is complete: start, user message, calls with usage and timings, end
    assert session.start is not None and session.start["model"]["model_file"].endswith(".gguf")
    assert session.user_messages
    assert all(c.usage and c.usage["prompt_tokens"] > 0 and c.timings for c in calls)
    assert calls[0].tokens and calls[0].tokens.get("ids")  # sampled token ids for training
    assert session.end is not None and session.end["dropped"] == 0
