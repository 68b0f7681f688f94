"""File tools on real files."""

import pytest

from tools import ToolContext, dispatch
from tools.workspace import Workspace


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
