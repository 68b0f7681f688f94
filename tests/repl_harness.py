"""What the REPL tests share: a config on the scripted server and a REPL on a pipe."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from coder.config import Config
from coder.repl import Repl
from coder.runtime import open_runtime
from tests.scripted_server import ScriptedServer

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
CTRL_C, CTRL_D, ALT_ENTER = "\x03", "\x04", "\x1b\r"


def repl_config(tmp_path: Path, base_url: str) -> Config:
    """A config for the server at `base_url`, everything under `tmp_path`, a small workspace."""
    cfg = Config()
    cfg.llm.base_url = base_url
    cfg.llm.auto_manage = False
    cfg.llm.tool_protocol = "native"
    cfg.logging.dir = str(tmp_path / "logs")
    cfg.repl.history_file = str(tmp_path / "state" / "history")
    cfg.repl.sessions_dir = str(tmp_path / "state" / "sessions")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello\nworld\n")
    cfg.tools.workspace = str(ws)
    return cfg


class Session:
    """One REPL on a pipe; `run(keys)` types them (from a thread) and returns the exit code."""

    def __init__(self, repl: Repl, pipe, console: Console) -> None:
        self.repl, self.pipe, self.console = repl, pipe, console

    @property
    def out(self) -> str:
        return self.console.file.getvalue()

    @property
    def messages(self) -> list[dict]:
        return self.repl.rt.agent.messages

    def run(self, keys: str, timeout: float = 30) -> int:
        sender = threading.Thread(target=self.pipe.send_text, args=(keys,), daemon=True)
        sender.start()
        code = self.repl.run()
        sender.join(timeout)
        return code


@contextlib.contextmanager
def repl_session(
    cfg: Config, history: History | None = None, width: int = 120
) -> Iterator[Session]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    with create_pipe_input() as pipe, open_runtime(cfg, lambda m: None) as rt:
        history = history or InMemoryHistory()
        repl = Repl(rt, console, input=pipe, output=DummyOutput(), history=history)
        yield Session(repl, pipe, console)


def user_texts(srv: ScriptedServer) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in srv.chat_requests()]


def log_records(cfg: Config, rt) -> list[dict]:
    rt.logger.flush()
    out = []
    for path in sorted(Path(cfg.logging.dir).glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out
