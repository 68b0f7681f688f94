"""File tools on real files."""

import os
import socket
import stat
import tracemalloc

import pytest

from coder.tools import ToolContext, dispatch
from coder.tools.lines import LineReader, split_lines
from coder.tools.workspace import Workspace, WorkspaceError


@pytest.fixture
def ctx(tmp_path):
    return ToolContext(workspace=Workspace(tmp_path))


def call(ctx, name, **args):
    return dispatch(name, args, ctx)


def ok(ctx, name, **args):
    r = dispatch(name, args, ctx)
    assert not r.is_error, r.output
    return r.output


def test_read_file_whole_range_and_numbers(ctx, tmp_path):
    (tmp_path / "a.txt").write_text("l1\nl2\nl3\nl4\n")
    assert ok(ctx, "read_file", path="a.txt") == "l1\nl2\nl3\nl4"
    assert (
        ok(ctx, "read_file", path="a.txt", start_line=2, end_line=3) == "l2\nl3\n[lines 2-3 of 4]"
    )
    assert ok(ctx, "read_file", path="a.txt", start_line=3, line_numbers=True) == (
        "3| l3\n4| l4\n[lines 3-4 of 4]"
    )
    r = call(ctx, "read_file", path="a.txt", start_line=9)
    assert r.is_error and "past the end" in r.output and "4 lines" in r.output
    assert (
        call(ctx, "read_file", path="missing.txt").output == "error: file not found: 'missing.txt'"
    )
    (tmp_path / "empty").write_text("")
    assert ok(ctx, "read_file", path="empty") == "[empty is empty]"
    assert call(ctx, "read_file", path=".").is_error


def test_read_file_size_cap_says_where_to_continue(ctx, tmp_path):
    ctx.max_output_bytes = 1024
    (tmp_path / "big.txt").write_text("".join(f"row {i:04d}\n" for i in range(1000)))
    out = ok(ctx, "read_file", path="big.txt")
    assert out.startswith("row 0000\n")
    assert "[truncated: showed lines 1-" in out and "of 1000 (size limit)" in out
    shown = out.count("\n")
    assert f"start_line={shown + 1}]" in out


def test_binary_file_is_reported_not_dumped(ctx, tmp_path):
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    (tmp_path / "blob.bin").write_bytes(b"abc\x00def" * 100)
    out = ok(ctx, "read_file", path="img.png")
    assert out == "[img.png is a binary file (PNG image, 2568 bytes); not shown]"
    assert "binary file (binary data" in ok(ctx, "read_file", path="blob.bin")
    r = call(ctx, "replace_in_file", path="blob.bin", old_text="abc", new_text="x")
    assert r.is_error and "binary" in r.output


def test_read_files(ctx, tmp_path):
    (tmp_path / "a").write_text("A\n")
    (tmp_path / "b").write_text("B\n")
    out = ok(ctx, "read_files", paths=["a", "nope", "b"])
    assert out == "==> a <==\nA\n\n==> nope <==\nerror: file not found: 'nope'\n\n==> b <==\nB"


def test_write_and_append(ctx, tmp_path):
    assert ok(ctx, "write_file", path="d/n.txt", content="x\ny\n") == (
        "created d/n.txt (2 lines, 4 bytes)"
    )
    assert (
        ok(ctx, "write_file", path="d/n.txt", content="x\ny\n")
        == "d/n.txt unchanged (same content)"
    )
    assert (
        ok(ctx, "write_file", path="d/n.txt", content="z") == "overwrote d/n.txt (1 line, 1 bytes)"
    )
    ok(ctx, "append_file", path="d/n.txt", content="w\n")  # adds the missing newline first
    assert (tmp_path / "d/n.txt").read_text() == "z\nw\n"
    ok(ctx, "append_file", path="new.txt", content="q")
    assert (tmp_path / "new.txt").read_text() == "q"
    assert call(ctx, "write_file", path="d", content="x").is_error


SRC = """def add(a, b):
    return a + b


def sub(a, b):
    return a - b
"""


def test_replace_exactly_once(ctx, tmp_path):
    f = tmp_path / "m.py"
    f.write_text(SRC)
    out = ok(ctx, "replace_in_file", path="m.py", old_text="return a + b", new_text="return b + a")
    assert out == "replaced 1 occurrence in m.py"
    assert "return b + a" in f.read_text()


def test_replace_refuses_two_matches_unless_replace_all(ctx, tmp_path):
    f = tmp_path / "m.py"
    f.write_text(SRC)
    r = call(ctx, "replace_in_file", path="m.py", old_text="(a, b)", new_text="(x, y)")
    assert r.is_error
    assert "matches 2 times in m.py (lines 1, 5)" in r.output and "replace_all" in r.output
    assert f.read_text() == SRC
    out = ok(
        ctx, "replace_in_file", path="m.py", old_text="(a, b)", new_text="(x, y)", replace_all=True
    )
    assert out == "replaced 2 occurrences in m.py"
    assert f.read_text().count("(x, y)") == 2


def test_replace_miss_answers_with_closest_lines(ctx, tmp_path):
    f = tmp_path / "m.py"
    f.write_text(SRC)
    r = call(ctx, "replace_in_file", path="m.py", old_text="return a * b", new_text="x")
    assert r.is_error
    assert "old_text was not found in m.py; nothing changed." in r.output
    assert "closest lines (1-3" in r.output or "closest lines (5-6" in r.output
    assert "2|     return a + b" in r.output or "6|     return a - b" in r.output
    assert f.read_text() == SRC
    r = call(ctx, "replace_in_file", path="m.py", old_text="zzzzqqqq", new_text="x")
    assert r.is_error and "No similar lines" in r.output


def test_replace_whitespace_insensitive_and_reindented(ctx, tmp_path):
    f = tmp_path / "m.py"
    f.write_text(SRC)
    # the model lost the indentation and a space; its new text has the same (wrong) indent
    out = ok(
        ctx,
        "replace_in_file",
        path="m.py",
        old_text="return a+b\n",
        new_text="total = a + b\nreturn total\n",
    )
    assert "matched ignoring whitespace differences" in out
    assert f.read_text() == SRC.replace("    return a + b", "    total = a + b\n    return total")
    # trailing spaces / tabs vs spaces
    f.write_text("x = [\n\t1,\n\t2,\n]\n")
    ok(
        ctx,
        "replace_in_file",
        path="m.py",
        old_text="x = [\n    1,\n    2,\n]",
        new_text="x = [1, 2]",
    )
    assert f.read_text() == "x = [1, 2]\n"


def test_replace_no_match_zero_and_empty_old(ctx, tmp_path):
    (tmp_path / "m.py").write_text(SRC)
    assert call(ctx, "replace_in_file", path="m.py", old_text="", new_text="x").is_error
    assert call(ctx, "replace_in_file", path="nofile", old_text="a", new_text="x").is_error


def make_tree(root):
    for p in [
        "src/a.py",
        "src/b.js",
        "src/pkg/c.py",
        "README.md",
        ".env",
        "node_modules/x/y.js",
        ".git/config",
        "target/t.py",
        ".venv/v.py",
        "src/__pycache__/a.pyc",
    ]:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text("x\n")


def test_list_dir(ctx, tmp_path):
    make_tree(tmp_path)
    assert ok(ctx, "list_dir") == "src/\n.env\nREADME.md"
    assert ok(ctx, "list_dir", path="src", ext="py") == "src/pkg/\nsrc/a.py"
    assert ok(ctx, "list_dir", path="src", ext=".py", recursive=True) == "src/a.py\nsrc/pkg/c.py"
    assert ok(ctx, "list_dir", ext="js,md", recursive=True) == "README.md\nsrc/b.js"
    assert call(ctx, "list_dir", path="README.md").is_error


def test_tree(ctx, tmp_path):
    make_tree(tmp_path)
    assert ok(ctx, "tree", depth=1) == "./\n  src/\n  .env\n  README.md"
    out = ok(ctx, "tree")
    assert out == "./\n  src/\n    pkg/\n    a.py\n    b.js\n  .env\n  README.md"
    assert "c.py" in ok(ctx, "tree", depth=3)


def test_exists(ctx, tmp_path):
    make_tree(tmp_path)
    assert ok(ctx, "exists", path="src") == "yes: src is a directory"
    assert ok(ctx, "exists", path="src/a.py") == "yes: src/a.py is a file (2 bytes)"
    assert ok(ctx, "exists", path="nope") == "no: nope does not exist"
    assert call(ctx, "exists", path="../x").is_error


def test_find_files(ctx, tmp_path):
    make_tree(tmp_path)
    assert ok(ctx, "find_files", pattern="*.py") == "src/a.py\nsrc/pkg/c.py"
    assert ok(ctx, "find_files", pattern="src/*.py") == "src/a.py"
    assert ok(ctx, "find_files", pattern="**/*.{py,js}", path="src") == (
        "src/a.py\nsrc/b.js\nsrc/pkg/c.py"
    )
    assert ok(ctx, "find_files", pattern="*.rs") == "no files match '*.rs' under ."


def test_replace_in_a_crlf_file_keeps_crlf(ctx, tmp_path):
    f = tmp_path / "w.txt"
    f.write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    ok(ctx, "replace_in_file", path="w.txt", old_text="a = 1\nb = 2", new_text="a = 10\nb = 20")
    assert f.read_bytes() == b"a = 10\r\nb = 20\r\nc = 3\r\n"


def test_fifos_and_sockets_are_refused_and_not_listed(ctx, tmp_path, no_hang):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "d").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "d" / "sock"))
    (tmp_path / "a.txt").write_text("x\n")
    for path, kind in [("pipe", "a FIFO (named pipe)"), ("d/sock", "a socket")]:
        for name, args in [
            ("read_file", {"path": path}),
            ("read_files", {"paths": [path]}),
            ("replace_in_file", {"path": path, "old_text": "a", "new_text": "b"}),
            ("append_file", {"path": path, "content": "x"}),
            ("write_file", {"path": path, "content": "x"}),
        ]:
            out = call(ctx, name, **args).output
            assert f"'{path}' is {kind}, not a regular file" in out, (name, out)
        assert ok(ctx, "exists", path=path) == f"yes: {path} is {kind}, not a regular file"
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)  # not replaced by a write
    assert ok(ctx, "list_dir") == "d/\na.txt"
    assert ok(ctx, "list_dir", path="d") == "no entries in d"
    assert ok(ctx, "list_dir", recursive=True) == "a.txt"
    assert ok(ctx, "find_files", pattern="*") == "a.txt"
    assert ok(ctx, "tree") == "./\n  d/\n  a.txt"
    sock.close()


@pytest.fixture
def big_files(tmp_path):
    with open(tmp_path / "model.gguf", "wb") as f:
        f.write(b"GGUF\x03\x00\x00\x00")
        f.truncate(300 << 20)  # sparse: no disk space used, but reading it whole takes 300 MiB
    with open(tmp_path / "log.txt", "w") as f:
        for i in range(0, 200_000, 1000):
            f.write("".join(f"log line {j:06d} {'.' * 80}\n" for j in range(i, i + 1000)))
    (tmp_path / "one.txt").write_text("a" * (5 << 20))  # one 5 MiB line
    return tmp_path


def peak_memory(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_files_are_not_read_whole(ctx, big_files):
    ctx.max_output_bytes = 2048
    out = {}

    def run():
        out["gguf"] = ok(ctx, "read_file", path="model.gguf")
        out["log"] = ok(ctx, "read_file", path="log.txt")
        out["tail"] = ok(ctx, "read_file", path="log.txt", start_line=199_999, line_numbers=True)
        out["one"] = ok(ctx, "read_file", path="one.txt")
        out["two"] = ok(ctx, "read_files", paths=["model.gguf", "log.txt"])
        out["write"] = ok(ctx, "write_file", path="model.gguf", content="small\n")

    assert peak_memory(run) < 8 << 20
    assert out["gguf"] == "[model.gguf is a binary file (binary data, 314572800 bytes); not shown]"
    assert out["log"].startswith("log line 000000 ...")
    assert (
        "[truncated: showed lines 1-18 of 200000 (size limit); read more with start_line=19]"
        in (out["log"])
    )
    assert out["tail"] == (
        f"199999| log line 199998 {'.' * 80}\n200000| log line 199999 {'.' * 80}\n"
        "[lines 199999-200000 of 200000]"
    )
    assert out["one"].startswith("aaaa") and len(out["one"]) < 2048
    assert "bytes more on this line" in out["one"]
    assert "==> model.gguf <==\n[model.gguf is a binary file" in out["two"]
    assert out["write"] == "overwrote model.gguf (1 line, 6 bytes)"
    assert (big_files / "model.gguf").read_text() == "small\n"
    with pytest.raises(WorkspaceError, match="too large to keep"):
        ctx.workspace.undo_last()


def test_whole_file_edits_refuse_huge_files(ctx, big_files):
    results = []

    def run():
        for name, args in [
            ("replace_in_file", {"path": "log.txt", "old_text": "log", "new_text": "x"}),
            ("append_file", {"path": "log.txt", "content": "x"}),
            ("replace_in_file", {"path": "model.gguf", "old_text": "GGUF", "new_text": "x"}),
        ]:
            results.append(call(ctx, name, **args))

    assert peak_memory(run) < 8 << 20
    for r, why in zip(results, ["too large", "too large", "binary file"], strict=True):
        assert r.is_error and why in r.output, r.output
    assert os.path.getsize(big_files / "log.txt") == 200_000 * 97


@pytest.mark.parametrize(
    "data", [b"", b"\n", b"a", b"a\n", b"\n\n", b"ab\ncd", b"abc\n\ndef\n", b"x" * 10 + b"\nyy"]
)
def test_line_reader_agrees_with_split_lines_across_chunks(tmp_path, data):
    (tmp_path / "f").write_bytes(data)
    want = [line.encode() for line in split_lines(data.decode())]
    for skip in range(len(want) + 2):
        with open(tmp_path / "f", "rb") as f:
            r = LineReader(f, chunk=3)
            assert r.skip(skip) == min(skip, len(want))
            got = []
            while (line := r.line(4)) is not None:
                got.append(line)
            assert got == [(w[:4], len(w)) for w in want[skip:]]
        with open(tmp_path / "f", "rb") as f:
            r = LineReader(f, chunk=3)
            r.skip(skip)
            assert r.count(100) == max(0, len(want) - skip)
    with open(tmp_path / "f", "rb") as f:
        assert LineReader(f, chunk=3).count(len(data)) == len(want)
    with open(tmp_path / "f", "rb") as f:  # counting gives up past its limit
        assert LineReader(f, chunk=3).count(2) == (None if len(data) > 2 else len(want))


def test_read_file_line_ranges_stream(ctx, tmp_path):
    (tmp_path / "n.txt").write_bytes(b"a\r\nb\n\nc")  # CRLF, an empty line, no final newline
    assert ok(ctx, "read_file", path="n.txt") == "a\r\nb\n\nc"
    assert ok(ctx, "read_file", path="n.txt", start_line=4) == "c\n[lines 4-4 of 4]"
    assert ok(ctx, "read_file", path="n.txt", start_line=2, end_line=3) == "b\n\n[lines 2-3 of 4]"
    r = call(ctx, "read_file", path="n.txt", start_line=5)
    assert r.is_error and "past the end of n.txt (4 lines)" in r.output
    r = call(ctx, "read_file", path="n.txt", start_line=3, end_line=2)
    assert r.is_error and "end_line 2 is before start_line 3" in r.output
    assert ok(ctx, "read_file", path="n.txt", end_line=99) == "a\r\nb\n\nc"
    (tmp_path / "nl.txt").write_text("\n\n")
    assert ok(ctx, "read_file", path="nl.txt", start_line=2) == "\n[lines 2-2 of 2]"


def test_paths_that_look_like_options(ctx, tmp_path):
    ok(ctx, "write_file", path="-n", content="dash\n")
    assert ok(ctx, "read_file", path="-n") == "dash"
    assert ok(ctx, "find_files", pattern="-*") == "-n"
