"""Rendering: block splitting of streamed markdown, tool panels and diffs, `-q` output."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from coder import render
from coder.llm import ToolCall
from coder.render import Block, MarkdownStream, RichSink
from coder.tools import ToolResult
from tests.scripted_server import ScriptedServer, stream_text

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "# Title\n\nSome **bold** and `code`.\n\n```python\ndef f():\n    return 1\n```\n\nBye.\n"
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def blocks_of(text: str, step: int = 1) -> list[Block]:
    ms = MarkdownStream()
    out: list[Block] = []
    for i in range(0, len(text), step):
        out += ms.feed(text[i : i + step])
    return out + ms.close()


def console(width: int = 80, terminal: bool = False) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)


# -- MarkdownStream -----------------------------------------------------------------


def test_blocks_are_the_same_however_the_text_arrives():
    whole = blocks_of(ANSWER, step=len(ANSWER))
    assert blocks_of(ANSWER, 1) == whole == blocks_of(ANSWER, 7)
    assert [(b.kind, b.text, b.gap) for b in whole] == [
        ("md", "# Title", False),
        ("md", "Some **bold** and `code`.", True),
        ("code", "def f():\n    return 1", True),
        ("md", "Bye.", True),
    ]
    assert whole[2].lang == "python"


def test_each_character_is_printed_once():
    text = ("para " * 30 + "\n\n- item\n" * 40 + "```js\n" + "x();\n" * 100 + "```\n") * 3
    blocks = blocks_of(text, 5)
    printed = sum(len(b.text) for b in blocks)
    assert printed <= len(text)
    assert printed >= len(text.replace("\n", "").replace(" ", "")) // 2


def test_open_blocks_stay_small():
    ms = MarkdownStream()
    biggest = 0
    text = "```python\n" + "x = 1\n" * 500 + "```\n" + "- item\n" * 500 + "word " * 3000
    for i in range(0, len(text), 4):
        ms.feed(text[i : i + 4])
        tail = ms.tail()
        biggest = max(biggest, len(tail.text) if tail else 0)
    assert biggest <= render.LONG_LINE + render.TAIL_CHARS


def test_code_fences_of_other_kinds_and_unclosed_fences():
    blocks = blocks_of("~~~~\nnot ``` closed\n~~~~\n````\ncode\n")
    assert [(b.kind, b.text) for b in blocks] == [("code", "not ``` closed"), ("code", "code")]


def test_a_long_line_is_cut_at_a_sentence_end():
    text = "This is a sentence. " * 200
    blocks = blocks_of(text, 50)
    assert len(blocks) > 1
    assert all(b.text.endswith(".") for b in blocks[:-1])
    assert " ".join(b.text for b in blocks).split() == text.split()


# -- the sink -----------------------------------------------------------------------


def test_sink_prints_markdown_and_highlighted_code():
    c = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")
    sink = RichSink(c, live=False)
    sink.start()
    for i in range(0, len(ANSWER), 3):
        sink.text(ANSWER[i : i + 3])
    sink.finish()
    out = c.file.getvalue()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "Title" in plain and "bold" in plain and "return 1" in plain and "Bye." in plain
    assert "**" not in plain and "```" not in plain
    assert "38;2;" in out  # the code is coloured
    assert sink.streamed


def test_live_region_on_a_terminal_ends_clean():
    c = Console(file=io.StringIO(), width=60, force_terminal=True, color_system="256")
    sink = RichSink(c, refresh_per_second=50)
    sink.start()
    for ch in ANSWER:
        sink.text(ch)
    with sink.pause():
        assert sink._live is None
    assert sink._live is not None
    sink.finish()
    assert sink._live is None and sink.phase == "idle"
    assert "Bye." in c.file.getvalue()


def call(name: str, args: dict, id: str = "c1") -> ToolCall:
    return ToolCall(id=id, name=name, arguments=json.dumps(args))


def test_tool_panel_shows_key_arguments_and_errors_in_red():
    c = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    sink = RichSink(c, live=False)
    sink.tool_call(call("run_shell", {"command": "pytest -q"}))
    sink.tool_result(
        call("run_shell", {"command": "pytest -q"}), ToolResult("boom\nline2", True, 5)
    )
    out = c.file.getvalue()
    assert "$ pytest -q" in out and "boom" in out and "failed" in out
    assert "\x1b[31m" in out  # red


def test_edits_show_a_unified_diff_of_the_real_change(tmp_path):
    (tmp_path / "a.py").write_text("one\ntwo\nthree\n")
    c = console()
    sink = RichSink(c, workspace_root=tmp_path, live=False)
    edit = call("replace_in_file", {"path": "a.py", "old_text": "two", "new_text": "2"})
    sink.tool_call(edit)
    (tmp_path / "a.py").write_text("one\n2\nthree\n")  # what the tool does
    sink.tool_result(edit, ToolResult("replaced 1 occurrence in a.py", False, 1))
    out = c.file.getvalue()
    assert "--- a/a.py" in out and "-two" in out and "+2" in out and " one" in out

    new = call("write_file", {"path": "new.txt", "content": "hello\n"}, id="c2")
    sink.tool_call(new)
    (tmp_path / "new.txt").write_text("hello\n")
    sink.tool_result(new, ToolResult("created new.txt", False, 1))
    assert "+hello" in c.file.getvalue() and "--- /dev/null" in c.file.getvalue()
    assert "+++ b/new.txt" in c.file.getvalue() and "--- a/new.txt" not in c.file.getvalue()


def test_without_a_workspace_the_diff_comes_from_the_arguments():
    c = console()
    sink = RichSink(c, live=False)
    edit = call("replace_in_file", {"path": "x", "old_text": "a\nb", "new_text": "a\nc"})
    sink.tool_call(edit)
    sink.tool_result(edit, ToolResult("replaced", False, 1))
    out = c.file.getvalue()
    assert "-b" in out and "+c" in out


def test_long_diffs_and_outputs_are_cut():
    text = render.diff_text("", "\n".join(map(str, range(500))), "f")
    assert "more diff lines" in text.plain and text.plain.count("\n") <= render.MAX_DIFF_LINES + 1
    summary = render.result_summary("\n".join(map(str, range(100))), False)
    assert "96 more lines" in summary.plain


def test_notice_keeps_the_order_of_text_and_notices():
    c = console()
    sink = RichSink(c, live=False)
    sink.start()
    sink.text("first part")
    sink.notice("retrying")
    sink.text("second part")
    sink.finish()
    out = c.file.getvalue()
    assert out.index("first part") < out.index("retrying") < out.index("second part")


# -- coder -q -----------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODER_") and k != "NO_COLOR"}
    env.update(HOME=str(tmp_path), CODER_LOG_DIR=str(tmp_path / "logs"), **extra)
    return env


def _query_cmd(srv: ScriptedServer, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "coder",
        "-q",
        "hello",
        "--no-auto-manage",
        "--base-url",
        srv.base_url,
        "--tool-protocol",
        "native",
        *extra,
    ]


def test_query_piped_is_plain_text_and_json_parses(srv, tmp_path):
    srv.enqueue(stream_text(ANSWER), stream_text(ANSWER))
    p = subprocess.run(
        _query_cmd(srv),
        cwd=tmp_path,
        env=_env(tmp_path, TERM="xterm-256color", FORCE_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == ANSWER + ("\n" if not ANSWER.endswith("\n") else "\n")
    assert "\x1b" not in p.stdout and "\x1b" not in p.stderr

    p = subprocess.run(
        _query_cmd(srv, "--json"),
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["answer"] == ANSWER and data["stop"] == "answer"


def _run_in_pty(cmd: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(10), b"".join(chunks).decode("utf-8", "replace")


def _colours(out: str) -> list[str]:
    found = []
    for params in SGR.findall(out):
        codes = [int(p) for p in params.split(";") if p.isdigit()]
        if any(30 <= c <= 49 or 90 <= c <= 107 for c in codes):
            found.append(params)
    return found


def test_query_on_a_terminal_renders_markdown_and_honours_no_color(srv, tmp_path):
    srv.enqueue(stream_text(ANSWER), stream_text(ANSWER))
    env = _env(tmp_path, TERM="xterm-256color", COLUMNS="80")
    code, out = _run_in_pty(_query_cmd(srv), tmp_path, env)
    assert code == 0, out
    assert "```" not in out and "**" not in out and "return" in out
    assert _colours(out)

    code, out = _run_in_pty(_query_cmd(srv), tmp_path, {**env, "NO_COLOR": "1"})
    assert code == 0, out
    assert "return" in out and "```" not in out
    assert not _colours(out)
