"""A tool call as a panel: its key arguments, then a diff of the edit or its output's head."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

MAX_DIFF_LINES = 60
MAX_SUMMARY_LINES = 4
MAX_DIFF_FILE_BYTES = 2 << 20
EDIT_TOOLS = ("write_file", "replace_in_file", "append_file")

_KEY_ARGS = ("path", "command", "pattern", "paths", "query", "rev", "message", "glob")
_BULKY_ARGS = ("content", "old_text", "new_text")


def diff_text(
    before: str, after: str, path: str, max_lines: int = MAX_DIFF_LINES, new: bool = False
) -> Text:
    """A coloured unified diff, cut after `max_lines` lines; `new`: a file just created."""
    old_name = "/dev/null" if new else f"a/{path}"
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), old_name, f"b/{path}", n=2, lineterm=""
        )
    )
    out = Text()
    for i, line in enumerate(lines[:max_lines]):
        if i:
            out.append("\n")
        if line.startswith(("+++", "---")):
            out.append(line, "bold")
        elif line.startswith("@@"):
            out.append(line, "cyan")
        elif line.startswith("+"):
            out.append(line, "green")
        elif line.startswith("-"):
            out.append(line, "red")
        else:
            out.append(line, "dim")
    if len(lines) > max_lines:
        out.append(f"\n... {len(lines) - max_lines} more diff lines", "dim italic")
    if not lines:
        out.append("(no change)", "dim")
    return out


def call_args(call: Any) -> dict:
    """A tool call's arguments as a dict; {} when they are not a JSON object."""
    try:
        args = json.loads(call.arguments or "{}")
    except (TypeError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}


def short(value: Any, limit: int = 80) -> str:
    """The first line of a value, cut at `limit`; "…" says something was left out."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    lines = text.splitlines() or [""]
    first = lines[0]
    more = len(lines) > 1
    if len(first) > limit:
        first, more = first[: limit - 1], True
    return first + ("…" if more else "")


def key_arguments(call: Any) -> str:
    """The arguments worth a glance: paths, commands, patterns; bulky text only sized."""
    args = call_args(call)
    if not args:
        return short(call.arguments or "", 100) if call.arguments not in (None, "", "{}") else ""
    if call.name == "run_shell" and "command" in args:
        return "$ " + short(args["command"], 100)
    shown = []
    keys = [k for k in _KEY_ARGS if k in args] + [
        k for k in args if k not in _KEY_ARGS and k not in _BULKY_ARGS
    ]
    for k in keys[:4]:
        shown.append(f"{k}={short(args[k], 60)}")
    for k in _BULKY_ARGS:
        v = args.get(k)
        if isinstance(v, str):
            n = len(v.splitlines())
            shown.append(f"{k}=({n} line{'s' if n != 1 else ''})")
    return "  ".join(shown)


def result_summary(output: str, is_error: bool) -> Text:
    lines = output.rstrip("\n").splitlines() or ["(no output)"]
    keep = MAX_SUMMARY_LINES * (2 if is_error else 1)
    style = "red" if is_error else "dim"
    text = Text("\n".join(line[:200] for line in lines[:keep]), style=style)
    if len(lines) > keep:
        text.append(f"\n... {len(lines) - keep} more lines", "dim italic")
    return text


# -- edits: the file before the tool runs, the diff after it ---------------------------


def edit_target(call: Any, root: Path | None) -> tuple[str, Path] | None:
    """The workspace-relative name and the path of the file an edit call names."""
    path = call_args(call).get("path")
    if not isinstance(path, str) or not path or root is None:
        return None
    p = (root / path).resolve()
    if not p.is_relative_to(root):
        return None
    return p.relative_to(root).as_posix(), p


def read_before(call: Any, root: Path | None) -> tuple[str | None, bool]:
    """The text of the file an edit call will change (None: not shown), and whether
    the file is new ("" then: the whole content is the change)."""
    target = edit_target(call, root)
    if target is None:
        return None, False
    p = target[1]
    try:
        if not p.exists():
            return "", True
        if not p.is_file() or p.stat().st_size > MAX_DIFF_FILE_BYTES:
            return None, False
        return p.read_text(encoding="utf-8", errors="replace"), False
    except OSError:
        return None, False


def edit_diff(call: Any, root: Path | None, before: str | None, created: bool) -> Text | None:
    """What an edit changed: the file now against `before`, else what the arguments ask."""
    args = call_args(call)
    path = args.get("path") if isinstance(args.get("path"), str) else "file"
    target = edit_target(call, root)
    if before is not None and target is not None:
        try:
            after = target[1].read_text(encoding="utf-8", errors="replace")
        except OSError:
            after = None
        if after is not None:
            return diff_text(before, after, target[0], new=created)
    # no workspace to look at: show the change the arguments ask for
    if call.name == "replace_in_file":
        old, new = args.get("old_text"), args.get("new_text")
        if isinstance(old, str) and isinstance(new, str):
            return diff_text(old, new, path)
    if call.name in ("write_file", "append_file") and isinstance(args.get("content"), str):
        return diff_text("", args["content"], path)
    return None


def tool_panel(call: Any, result: Any, diff: Text | None = None) -> Panel:
    """The call's key arguments, then the diff of an edit or the head of the output;
    update_plan as the checklist it sets."""
    if call.name == "update_plan" and not result.is_error:
        from coder.render.plan import update_panel  # it imports this module

        panel = update_panel(call)
        if panel is not None:
            return panel
    body: list[RenderableType] = []
    head = key_arguments(call)
    if head:
        body.append(Text(head, style="bold"))
    if diff is not None:
        body.append(Text(short(result.output, 120), style="dim"))
        body.append(diff)
    else:
        body.append(result_summary(result.output, result.is_error))
    ms = getattr(result, "duration_ms", 0.0) or 0.0
    title = Text(call.name, style="bold red" if result.is_error else "bold")
    if result.is_error:
        title.append(" failed", "red")
    return Panel(
        Group(*body),
        title=title,
        title_align="left",
        subtitle=Text(f"{ms:.0f} ms", style="dim") if ms >= 1 else None,
        subtitle_align="right",
        border_style="red" if result.is_error else "blue",
        expand=False,
        padding=(0, 1),
    )
