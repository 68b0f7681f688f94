"""`make install`: coder on the PATH, working in any directory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from coder.log import iter_records, list_log_files
from tests.scripted_server import stream_text

ROOT = Path(__file__).resolve().parents[1]


def test_make_install_puts_coder_on_the_path_for_another_directory(tmp_path, srv):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    made = subprocess.run(
        ["make", "-s", "install"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert made.returncode == 0, made.stderr
    launcher = home / ".local" / "bin" / "coder"
    assert launcher.is_symlink() and os.access(launcher, os.X_OK)
    assert f"{home}/.local/bin is not on your PATH" in made.stdout

    project = tmp_path / "myproject"
    project.mkdir()
    srv.enqueue(stream_text("hello from there"))
    env = dict(
        env,
        PATH=f"{launcher.parent}:/usr/bin:/bin",
        CODER_BASE_URL=srv.base_url,
        CODER_LLM__AUTO_MANAGE="false",
        CODER_LOG_DIR=str(tmp_path / "logs"),
    )
    done = subprocess.run(
        ["coder", "-q", "hi", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == "hello from there"
    [start] = [
        r for r in iter_records(list_log_files(tmp_path / "logs")) if r["type"] == "session_start"
    ]
    assert start["workspace"] == str(project)
