"""list_dir, tree, find_files and grep (both backends) leave out what .gitignore, .ignore
and .git/info/exclude ignore, in a git repository or not, and show it with
include_ignored."""

import os
import subprocess

import pytest

from coder.tools import ToolContext, dispatch
from coder.tools.search import rg_binary
from coder.tools.workspace import Workspace

RG = rg_binary()

# every data file holds "needle"; the ignore files themselves do not
SHOWN = [
    "a.py",
    "keep.log",
    "sub/b.py",
    "sub/root.txt",  # /root.txt is anchored to the root
    "sub/special.gen",  # *.gen at the root, re-included by sub/.gitignore
    "sub/deeper/c.py",
]
IGNORED = [
    "build/out.py",  # build/
    "sub/build/x.py",  # build/ matches at any depth
    "x.log",  # *.log
    "root.txt",  # /root.txt
    "other.gen",  # *.gen
    "sub/deeper/d.tmp",  # *.tmp from sub/.gitignore, one level up
    "vendor/v.py",  # vendor/ from .ignore
]
IGNORE_FILES = {
    ".gitignore": "build/\n*.log\n!keep.log\n/root.txt\n*.gen\n",
    "sub/.gitignore": "*.tmp\n!special.gen\n",
    ".ignore": "vendor/\n",
}


@pytest.fixture(params=["git", "plain"])
def ws(request, tmp_path):
    root = tmp_path / "ws"
    for rel in SHOWN + IGNORED + ["node_modules/m.py"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("the needle\n")
    for rel, text in IGNORE_FILES.items():
        (root / rel).write_text(text)
    if request.param == "git":
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".git/info/exclude").write_text("sub/b.py\n")
        return Workspace(root), [p for p in SHOWN if p != "sub/b.py"]
    return Workspace(root), SHOWN


def call(ws, name, **args):
    r = dispatch(name, args, ToolContext(workspace=ws))
    assert not r.is_error, r.output
    return r.output


def paths(output: str) -> set[str]:
    return {line.split(":")[0] for line in output.splitlines() if not line.startswith("[")}


ALL = set(SHOWN + IGNORED)


def test_find_files_and_recursive_list_dir(ws):
    ws, shown = ws
    files = set(shown) | set(IGNORE_FILES)
    assert paths(call(ws, "find_files", pattern="*")) == files
    assert paths(call(ws, "list_dir", recursive=True)) == files
    all_files = ALL | set(IGNORE_FILES)
    assert paths(call(ws, "find_files", pattern="*", include_ignored=True)) == all_files
    args = {"recursive": True, "include_ignored": True}  # tree and find_files have it
    r = dispatch("list_dir", args, ToolContext(workspace=ws))
    assert r.is_error and "include_ignored" in r.output


def test_list_dir_says_how_many_it_left_out(ws):
    ws, _ = ws
    out = call(ws, "list_dir")
    assert out.splitlines() == [
        "sub/",
        ".gitignore",
        ".ignore",
        "a.py",
        "keep.log",
        "[5 ignored by .gitignore not shown; tree with include_ignored lists them]",
    ]
    out = call(ws, "tree", depth=1, include_ignored=True)
    for name in ["build/", "vendor/", "x.log", "root.txt", "other.gen"]:
        assert "  " + name in out.splitlines()
    assert "node_modules/" not in out  # the always-skipped directories stay skipped
    assert call(ws, "list_dir", path="build").splitlines()  # a path named directly is listed


def test_tree(ws):
    ws, _ = ws
    out = call(ws, "tree", depth=3)
    for name in ["build/", "vendor/", "x.log", "other.gen", "d.tmp"]:
        assert name not in out
    assert "  root.txt" not in out.splitlines() and "    root.txt" in out.splitlines()
    assert "special.gen" in out and "c.py" in out
    out = call(ws, "tree", depth=3, include_ignored=True)
    for name in ["build/", "vendor/", "x.log", "other.gen", "d.tmp"]:
        assert name in out


@pytest.mark.parametrize("backend", ["rg", "python"])
def test_grep(ws, monkeypatch, backend):
    ws, shown = ws
    if backend == "rg" and RG is None:
        pytest.skip("rg not available")
    monkeypatch.setenv("CODER_RG", RG if backend == "rg" else "none")
    assert paths(call(ws, "grep", pattern="needle")) == set(shown)
    got = paths(call(ws, "grep", pattern="needle", include_ignored=True))
    assert got == ALL
    # a path given by name is searched, as rg does
    assert paths(call(ws, "grep", pattern="needle", path="build")) == {"build/out.py"}
    assert paths(call(ws, "find_files", pattern="*", path="sub/build")) == {"sub/build/x.py"}


def test_a_gitignore_that_is_a_symlink_or_fifo_is_not_read(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "rules").write_text("*.py\n")
    (root / ".gitignore").symlink_to(tmp_path / "rules")
    os.mkfifo(root / ".ignore")
    (root / "a.py").write_text("x\n")
    assert call(Workspace(root), "find_files", pattern="*.py") == "a.py"
