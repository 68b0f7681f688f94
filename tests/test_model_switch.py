"""/model NAME: the managed server restarts on another GGUF, the conversation stays, the
next answer comes from the new file; a reused server is never restarted."""

from __future__ import annotations

import io
import json
import os
import urllib.request

import pytest
from rich.console import Console

from coder.config import Config
from coder.query import PlainSink
from coder.repl import Commands
from coder.runtime import open_runtime
from tests.conftest import free_port
from tests.repl_harness import log_records

pytestmark = pytest.mark.engine


def props(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/props", timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def shelf(tmp_path, model_path):
    """Two names for the one real GGUF here (hard links: no 98 MB copies)."""
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    os.link(model_path, shelf / "first-smol.gguf")
    os.link(model_path, shelf / "second-smol.gguf")
    return shelf


def managed_config(tmp_path, shelf) -> Config:
    cfg = Config()
    cfg.llm.base_url = f"http://127.0.0.1:{free_port()}/v1"
    cfg.llm.model_dirs = [str(shelf)]
    cfg.llm.server.model_path = str(shelf / "first-smol.gguf")
    cfg.llm.server.threads = 2
    cfg.llm.server.cache_ram_mib = 64
    cfg.llm.sampling.temperature = 0.0
    cfg.llm.sampling.max_tokens = 16
    cfg.agent.tools = ["read_file"]
    cfg.logging.dir = str(tmp_path / "logs")
    (tmp_path / "ws").mkdir()
    cfg.tools.workspace = str(tmp_path / "ws")
    return cfg


def test_model_switch_restarts_the_managed_server_and_keeps_the_conversation(tmp_path, shelf):
    from coder.agent import run_turn

    cfg = managed_config(tmp_path, shelf)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    notices: list[str] = []
    with open_runtime(cfg, notices.append) as rt:
        assert rt.server.managed
        first_pid = rt.server.pid
        assert props(cfg.llm.base_url)["model_path"].endswith("first-smol.gguf")
        sink = PlainSink(stream_text=False)
        run_turn(rt.agent, "Say hello.", sink, rt.cancel)
        kept = len(rt.agent.messages)
        commands = Commands(rt, console)
        assert "second-smol.gguf" in commands.choices("model")
        commands.run("model", "second")
        out = console.file.getvalue()
        assert "switching to second-smol.gguf" in out and "now serving second-smol" in out
        assert "json tool protocol" in out  # re-resolved from the new server's /props
        assert rt.server.pid != first_pid and rt.server.managed
        assert props(cfg.llm.base_url)["model_path"].endswith("second-smol.gguf")
        assert len(rt.agent.messages) == kept and rt.agent.budget.n_ctx == 8192
        assert any("with second-smol.gguf" in n for n in notices)  # the start, shown
        run_turn(rt.agent, "Say hello again.", sink, rt.cancel)
        assert props(cfg.llm.base_url)["model_path"].endswith("second-smol.gguf")
        records = log_records(cfg, rt)
        commands.run("model", "second-smol.gguf")
        assert "already serving second-smol.gguf" in console.file.getvalue()
        commands.run("model", "nothing-like-it")
        assert "no model matches 'nothing-like-it'" in console.file.getvalue()
    blobs = {r["hash"]: r["data"] for r in records if r["type"] == "blob"}
    calls = [r for r in records if r["type"] == "model_call"]
    files = [blobs[c["model_ref"]]["model_file"] for c in calls]
    assert files[0] == "first-smol.gguf" and files[-1] == "second-smol.gguf"
    # the second turn's request still holds the first turn: the conversation was kept
    assert calls[-1]["prompt"] and len(rt.agent.messages) > kept


def test_a_reused_server_is_never_restarted(tmp_path, shelf, engine_url):
    cfg = managed_config(tmp_path, shelf)
    cfg.llm.base_url = engine_url  # a server this coder did not start
    cfg.llm.server.model_path = None
    console = Console(file=io.StringIO(), width=200, color_system=None)
    with open_runtime(cfg, lambda m: None) as rt:
        assert not rt.server.managed
        before = props(engine_url)["model_path"]
        Commands(rt, console).run("model", "second")
        assert props(engine_url)["model_path"] == before
    out = console.file.getvalue()
    assert "was not started by this coder, so coder never restarts it" in out
    assert "--model second" in out


def test_a_model_that_does_not_start_brings_the_previous_one_back(tmp_path, shelf):
    from coder.agent import run_turn
    from tests.gguf_files import write_gguf

    write_gguf(shelf / "broken-header-only.gguf")  # a header, no weights: llama.cpp refuses it
    cfg = managed_config(tmp_path, shelf)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    with open_runtime(cfg, lambda m: None) as rt:
        Commands(rt, console).run("model", "broken")
        out = console.file.getvalue()
        assert "the previous model is back" in out, out
        assert props(cfg.llm.base_url)["model_path"].endswith("first-smol.gguf")
        assert cfg.llm.server.model_path.endswith("first-smol.gguf")
        result = run_turn(rt.agent, "Say hello.", PlainSink(stream_text=False), rt.cancel)
        assert result.error is None
