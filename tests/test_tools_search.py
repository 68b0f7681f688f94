"""grep: rg and the pure-Python fallback give the same answer."""

import os
import tracemalloc

import pytest

from coder.tools import ToolContext, dispatch
from coder.tools.search import Query, format_results, rg_binary, search_python, search_rg
from coder.tools.workspace import Workspace

RG = rg_binary()


@pytest.fixture
def ws(tmp_path):
    files = {
        "main.py": "import os\nimport sys\n\ndef main():\n    print('hello world')\n",
        "src/util.py": "def helper():\n    return 'Hello'\n\n\n\n\ndef other():\n    pass\n",
        "src/pkg/deep.py": "# TODO: fix\nx = 1\n# todo lower\n" + "filler\n" * 20 + "# TODO end\n",
        "src/app.js": "function hello() { return 1; }\n// TODO js\n",
        "src/app.min.js": "var a=1;" * 200 + "hello\n",
        "docs/notes.md": "Hello there\nünïcode hello ✓\n",
        "crlf.txt": "hello\r\nworld\r\n",
        ".hidden/conf": "hello hidden\n",
        "node_modules/lib/index.js": "hello from node_modules\n",
        ".git/HEAD": "hello git\n",
        "target/out.txt": "hello target\n",
        "__pycache__/x.txt": "hello cache\n",
        "sp ace/file name.txt": "hello space\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (tmp_path / "bin.dat").write_bytes(b"hello\x00binary\n")
    os.symlink(tmp_path / "main.py", tmp_path / "link.py")
    return Workspace(tmp_path)


CASES = [
    dict(pattern="hello"),
    dict(pattern="hello", ignore_case=True),
    dict(pattern="TODO", context=1),
    dict(pattern="TODO|todo", context=3),
    dict(pattern=r"def \w+\(\)"),
    dict(pattern="^import", start="main.py"),
    dict(pattern="hello", start="src"),
    dict(pattern="hello", globs=["*.py"], ignore_case=True),
    dict(pattern="hello", globs=["src/*.js"]),
    dict(pattern="hello", globs=["!*.min.js"], start="src"),
    dict(pattern="hello", globs=["**/*.{md,txt}"]),
    dict(pattern="hello", max_results=3),
    dict(pattern="TODO", context=2, max_results=2),
    dict(pattern="print(", fixed=True),
    dict(pattern="print("),  # invalid regex: searched as text, with a note
    dict(pattern="world$"),
    dict(pattern="nothing-matches-this"),
    dict(pattern="✓"),
]


def query(
    ws, pattern, start=".", globs=(), ignore_case=False, fixed=False, context=0, max_results=100
):
    return Query(pattern, ws.resolve(start), list(globs), ignore_case, fixed, context, max_results)


@pytest.mark.skipif(RG is None, reason="rg binary not installed")
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_rg_and_python_agree(ws, case):
    q = query(ws, **case)
    rg_blocks, rg_note = search_rg(ws, q, RG)
    py_blocks, py_note = search_python(ws, q)
    assert format_results(py_blocks, q) == format_results(rg_blocks, q)
    assert py_note == rg_note


def run(ws, monkeypatch, backend, **args):
    monkeypatch.setenv("CODER_RG", RG if backend == "rg" else "none")
    r = dispatch("grep", args, ToolContext(workspace=ws))
    assert not r.is_error, r.output
    return r.output


@pytest.mark.parametrize("backend", ["rg", "python"])
def test_grep_tool_output(ws, monkeypatch, backend):
    if backend == "rg" and RG is None:
        pytest.skip("rg binary not installed")
    out = run(ws, monkeypatch, backend, pattern="hello")
    assert out.splitlines() == [
        ".hidden/conf:1:hello hidden",
        "crlf.txt:1:hello",
        "docs/notes.md:2:ünïcode hello ✓",
        "main.py:5:    print('hello world')",
        "sp ace/file name.txt:1:hello space",
        "src/app.js:1:function hello() { return 1; }",
        "src/app.min.js:1:" + "var a=1;" * 37 + "var  [... 1305 more characters]",
        "[7 matches in 7 files]",
    ]
    # skipped: node_modules, .git, target, __pycache__, the binary file, the symlink
    for absent in ("node_modules", ".git/", "target", "__pycache__", "bin.dat", "link.py"):
        assert absent not in out
    out = run(ws, monkeypatch, backend, pattern="TODO", path="src/pkg", context=1)
    assert out == (
        "src/pkg/deep.py:1:# TODO: fix\nsrc/pkg/deep.py-2-x = 1\n--\n"
        "src/pkg/deep.py-23-filler\nsrc/pkg/deep.py:24:# TODO end\n[2 matches in 1 file]"
    )
    out = run(ws, monkeypatch, backend, pattern="hello", max_results=2)
    assert out.endswith("[stopped at 2 matches; there are more: narrow the pattern, path or glob]")
    out = run(ws, monkeypatch, backend, pattern="print(")
    assert out.startswith("[note: not a valid regex, so it was searched as plain text]\n")
    assert run(ws, monkeypatch, backend, pattern="zzz", glob="*.py") == (
        "no matches for 'zzz' in . (glob *.py)"
    )
    assert run(ws, monkeypatch, backend, pattern="x", path="bin.dat") == (
        "[bin.dat is a binary file (binary data); not searched]"
    )


def test_grep_errors(ws):
    ctx = ToolContext(workspace=ws)
    assert dispatch("grep", {"pattern": "x", "path": "../"}, ctx).is_error
    r = dispatch("grep", {"pattern": "x", "path": "nope"}, ctx)
    assert r.is_error and "path not found" in r.output


def test_rg_is_found_in_the_venv():
    assert RG is not None and os.path.basename(RG) == "rg"


@pytest.mark.parametrize("backend", ["rg", "python"])
def test_fifo_is_skipped_or_refused(ws, monkeypatch, backend, no_hang):
    if backend == "rg" and RG is None:
        pytest.skip("rg binary not installed")
    os.mkfifo(ws.root / "src" / "pipe")
    out = run(ws, monkeypatch, backend, pattern="hello", path="src")
    assert out.splitlines()[-1] == "[2 matches in 2 files]"
    r = dispatch("grep", {"pattern": "x", "path": "src/pipe"}, ToolContext(workspace=ws))
    assert r.is_error and "'src/pipe' is a FIFO (named pipe), not a regular file" in r.output


def test_python_grep_streams_huge_files(ws, monkeypatch):
    with open(ws.root / "model.gguf", "wb") as f:
        f.write(b"GGUF hello\x00")
        f.truncate(300 << 20)  # sparse
    with open(ws.root / "big.log", "w") as f:
        for i in range(0, 150_000, 1000):
            f.write("".join(f"line {j} {'.' * 90}\n" for j in range(i, i + 1000)))
        f.write("the last line says hello\n")
    out = {}
    tracemalloc.start()
    try:
        out["all"] = run(ws, monkeypatch, "python", pattern="hello", glob="*.{log,gguf}")
        out["ctx"] = run(ws, monkeypatch, "python", pattern="says", path="big.log", context=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    assert out["all"] == "big.log:150001:the last line says hello\n[1 match in 1 file]"
    assert out["ctx"] == (
        f"big.log-150000-line 149999 {'.' * 90}\nbig.log:150001:the last line says hello\n"
        "[1 match in 1 file]"
    )


@pytest.mark.parametrize("backend", ["rg", "python"])
def test_arguments_that_look_like_options(ws, monkeypatch, backend):
    if backend == "rg" and RG is None:
        pytest.skip("rg binary not installed")
    (ws.root / "-n").write_text("x --pre=sh y\n")
    pre = ws.root / "pre.sh"
    pre.write_text(f"#!/bin/sh\ntouch '{ws.root}.ran'\ncat\n")
    pre.chmod(0o755)
    assert (
        run(ws, monkeypatch, backend, pattern="--pre=sh")
        == "-n:1:x --pre=sh y\n[1 match in 1 file]"
    )
    assert (
        run(ws, monkeypatch, backend, pattern="y", path="-n")
        == "-n:1:x --pre=sh y\n[1 match in 1 file]"
    )
    for glob in [f"--pre={pre}", "--pre=./pre.sh", "-n"]:
        out = run(ws, monkeypatch, backend, pattern="hello", glob=glob)
        assert out == f"no matches for 'hello' in . (glob {glob})"  # globs, not rg options
    assert not os.path.exists(f"{ws.root}.ran")
