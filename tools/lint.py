"""lint: a linter's diagnostics as items (file, line, column, code, message), capped.

A known linter binary runs directly on paths inside the workspace: ruff (Python) and
shellcheck (shell). It is taken from coder's own environment or an absolute PATH entry,
never from inside the workspace, and only linters whose configuration is data are run
this way (eslint's eslint.config.js is JavaScript the workspace supplies). A project's
own lint script (`make lint`, `npm run lint`, ...) runs workspace code, so it goes
through approval like run_shell and its output is read line by line.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from .declare import tool
from .output import ToolError
from .permissions import check_approval
from .registry import ToolContext
from .shell import command_env, run_command
from .workspace import Workspace, find_program

MAX_ITEMS = 50  # diagnostics shown; the total is always given


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int | None
    column: int | None
    code: str | None
    message: str


@dataclass(frozen=True)
class Linter:
    name: str
    suffixes: tuple[str, ...]
    argv: tuple[str, ...]  # before the paths (which follow a "--")

    def parse(self, stdout: str, root: Path) -> list[Diagnostic]:
        data = json.loads(stdout or "[]")
        if self.name == "ruff":
            return [
                Diagnostic(
                    _rel(d.get("filename", ""), root),
                    (d.get("location") or {}).get("row"),
                    (d.get("location") or {}).get("column"),
                    d.get("code") or None,
                    d.get("message", ""),
                )
                for d in data
            ]
        return [  # shellcheck -f json1
            Diagnostic(
                _rel(d.get("file", ""), root),
                d.get("line"),
                d.get("column"),
                f"SC{d['code']}" if d.get("code") else None,
                d.get("message", ""),
            )
            for d in data.get("comments", [])
        ]


LINTERS = {
    # --no-cache: ruff would otherwise write .ruff_cache/ into the workspace
    "ruff": Linter(
        "ruff",
        (".py", ".pyi"),
        ("check", "--output-format", "json", "--no-cache", "--no-fix", "--exit-zero"),
    ),
    "shellcheck": Linter("shellcheck", (".sh", ".bash"), ("--format", "json1")),
}


def find_linter(name: str, root: Path) -> str | None:
    """The linter's executable (see `find_program`)."""
    return find_program(name, root)


def run_linter(ws: Workspace, linter: Linter, paths: list[str], timeout: float) -> list[Diagnostic]:
    """Run `linter` on workspace paths (confined by the Workspace) and parse its report."""
    binary = find_linter(linter.name, ws.root)
    if binary is None:
        raise ToolError(f"{linter.name} is not installed (not found on PATH)")
    targets = [ws.relative(ws.resolve(p)) for p in paths]
    for shown, rel in zip(paths, targets, strict=True):
        if not (ws.root / rel).exists():
            raise ToolError(f"path not found: '{shown}'")
    try:
        proc = subprocess.run(
            [binary, *linter.argv, "--", *targets],
            cwd=ws.root,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=command_env(),
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{linter.name} timed out after {timeout:g} s") from None
    try:
        return linter.parse(proc.stdout, ws.root)
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError):
        err = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolError(
            f"{linter.name} exited with {proc.returncode}: {' / '.join(err) or 'no report'}"
        ) from None


_LINE = re.compile(r"^(?P<file>[^\s:][^:\n]*):(?P<line>\d+)(?::(?P<col>\d+))?:?\s+(?P<rest>.+)$")
_CODE = re.compile(r"^(?:\[?(?P<code>[A-Z]+[0-9]+|[a-z@][\w-]*/[\w-]+)\]?:?)\s+(?P<msg>.+)$")


def parse_lines(output: str, root: Path) -> list[Diagnostic]:
    """`file:line[:col]: [CODE] message` lines (gcc, ruff concise, flake8, eslint -f
    unix, mypy, ...) out of a script's free-form output."""
    out = []
    for raw in output.splitlines():
        m = _LINE.match(raw.strip())
        if not m or not (root / m.group("file")).exists():
            continue
        rest = m.group("rest").strip()
        c = _CODE.match(rest)
        out.append(
            Diagnostic(
                _rel(m.group("file"), root),
                int(m.group("line")),
                int(m.group("col")) if m.group("col") else None,
                c.group("code") if c else None,
                c.group("msg") if c else rest,
            )
        )
    return out


def _rel(name: str, root: Path) -> str:
    p = Path(name)
    try:
        return p.resolve().relative_to(root).as_posix() if p.is_absolute() else p.as_posix()
    except (ValueError, OSError):
        return name


def report(source: str, items: list[Diagnostic], note: str = "") -> str:
    """The tool's answer: a count line, then one JSON object per diagnostic (capped)."""
    files = len({d.file for d in items})
    head = f"{source}: {len(items)} diagnostics in {files} files" if items else f"{source}: clean"
    lines = [head + (f" ({note})" if note else "")]
    lines += [json.dumps(asdict(d), ensure_ascii=False) for d in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        lines.append(f"[{len(items) - MAX_ITEMS} more not shown; lint fewer paths]")
    return "\n".join(lines)


# read: the linter is coder's own (like grep's rg) and only reads; the project's script
# is workspace code, so that one runs only as a command does (it asks; read-only refuses)
@tool(access="read", default=False)
def lint(
    ctx: ToolContext,
    paths: list[str] | None = None,
    linter: Literal["ruff", "shellcheck"] | None = None,
    project_script: bool = False,
) -> str:
    """Lint files and list the problems found (file, line, code, message).

    Args:
        paths: files or directories (default: the whole workspace)
        linter: default: chosen by the files
        project_script: run the project's own lint command (e.g. make lint) instead; needs approval
    """
    from ..project import detect  # here: coder.project imports this package

    ws = ctx.workspace
    if project_script:
        scripts = [c for c in detect(ws).lint if c.source in ("Makefile", "package.json")]
        if not scripts:
            raise ToolError("this project has no lint script (Makefile or package.json)")
        command = scripts[0].command
        check_approval(ctx, "lint", f"the project's lint script: {command}", access="run")
        output = run_command(ctx, command)
        status = output.rsplit("\n", 1)[-1].strip("[]")
        return report(command, parse_lines(output, ws.root), status)
    paths = paths or ["."]
    if linter is not None and linter not in LINTERS:
        raise ToolError(f"unknown linter '{linter}'; one of {', '.join(LINTERS)}")
    chosen = [LINTERS[linter]] if linter else _linters_for(ws, paths)
    if not chosen:
        raise ToolError(
            "no linter for these files (ruff: .py, shellcheck: .sh); "
            "project_script=true runs the project's own lint command"
        )
    out = []
    for lin in chosen:
        if not linter and find_linter(lin.name, ws.root) is None:
            out.append(f"{lin.name}: not installed (not found on PATH), skipped")
            continue
        mine = paths if linter else [p for p in paths if _wants(ws, lin, p)]
        out.append(report(lin.name, run_linter(ws, lin, mine, ctx.shell_timeout)))
    return "\n".join(out)


def _wants(ws: Workspace, linter: Linter, path: str) -> bool:
    from ..project import languages

    p = ws.resolve(path)
    if p.is_dir():
        langs = {"ruff": "Python", "shellcheck": "Shell"}
        return any(lang == langs[linter.name] for lang, _ in languages(ws, p))
    return p.suffix in linter.suffixes


def _linters_for(ws: Workspace, paths: list[str]) -> list[Linter]:
    return [lin for lin in LINTERS.values() if any(_wants(ws, lin, p) for p in paths)]
