"""Project instructions (AGENTS.md, CODER.md, the user's own) reach the system prompt:
bounded, confined to the workspace, shown by /context."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from coder.instructions import MAX_CHARS, load_instructions
from tests import cli
from tests.scripted_server import stream_text


def run_query(tmp_path: Path, base_url: str) -> subprocess.CompletedProcess:
    env = {
        "CODER_BASE_URL": base_url,
        "CODER_LLM__AUTO_MANAGE": "false",
        "CODER_LOG_DIR": str(tmp_path / "logs"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    return cli.coder("-q", "hi", cwd=tmp_path / "ws", env=env, timeout=60)


def system_of(srv) -> str:
    return srv.chat_requests()[-1].json["messages"][0]["content"]


def test_agents_md_and_the_users_own_reach_the_server(tmp_path, srv):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "AGENTS.md").write_text("Run tests with `make check`.\n")
    (tmp_path / "xdg" / "coder").mkdir(parents=True)
    (tmp_path / "xdg" / "coder" / "AGENTS.md").write_text("Answer in British English.\n")
    srv.enqueue(stream_text("ok"))
    done = run_query(tmp_path, srv.base_url)
    assert done.returncode == 0, done.stderr
    system = system_of(srv)
    assert "Run tests with `make check`." in system and "British English" in system
    assert system.index("British English") < system.index("make check")  # specific last


def test_a_one_megabyte_agents_md_is_cut_with_a_notice(tmp_path, srv):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "AGENTS.md").write_text("rule\n" * 200_000)
    srv.props = {**srv.props, "default_generation_settings": {"n_ctx": 16384}}
    srv.enqueue(stream_text("ok"))
    done = run_query(tmp_path, srv.base_url)
    assert done.returncode == 0, done.stderr
    assert "only its first 8,000 characters reach the model" in done.stderr
    system = system_of(srv)
    assert (
        system.count("rule") == MAX_CHARS // 5
        and "[... cut: the file is 1,000,000 bytes]" in system
    )


def test_an_agents_md_linking_outside_the_workspace_is_not_read(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "AGENTS.md").symlink_to(secret)
    found = load_instructions(tmp_path / "ws")
    assert found.files == [] and "points outside the workspace" in found.notices[0]
    assert "PRIVATE" not in found.prompt()


def test_coder_md_is_read_when_there_is_no_agents_md_and_a_fifo_is_refused(tmp_path):
    (tmp_path / "CODER.md").write_text("use tabs")
    assert "use tabs" in load_instructions(tmp_path).prompt()
    os.mkfifo(tmp_path / "AGENTS.md")  # AGENTS.md wins, and is no file: nothing hangs
    found = load_instructions(tmp_path)
    assert found.files == [] and "not a regular file" in found.notices[0]
