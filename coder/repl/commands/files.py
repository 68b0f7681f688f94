"""The workspace's files: /undo, /diff (the agent's edits), /add, /drop (pins), /init."""

from __future__ import annotations

import difflib
import os
from typing import Any

from coder import agent as agent_mod
from coder.tools.workspace import WorkspaceError


class FileCommands:
    """The workspace-file commands of `Commands`."""

    def cmd_undo(self, arg: str) -> None:
        """/undo
        revert the last file change the agent made"""
        try:
            note = self.agent.tool_ctx.workspace.undo_last()
        except WorkspaceError as exc:  # e.g. the old file was too large to keep
            self.say(str(exc), "yellow")
            return
        if note is None:
            self.say("nothing to undo", "dim")
            return
        self.state.pending_notes.append(f"the user undid your last file edit ({note})")
        self.say(note, "green")

    def cmd_diff(self, arg: str) -> None:
        """/diff
        what the agent's file edits changed this session, as one diff"""
        text = session_diff(self.agent.tool_ctx.workspace)
        if not text:
            self.say("the agent has changed no file this session", "dim")
            return
        from rich.syntax import Syntax

        self.out.print(Syntax(text, "diff", theme="ansi_dark", word_wrap=True))
        self.say(
            "(edits by the file tools; what shell commands changed is not tracked: "
            "in a git repository, git diff shows everything)",
            "dim",
        )

    def cmd_add(self, arg: str) -> None:
        """/add PATH...
        pin files: the model sees their current content (sent again after each change)"""
        if not arg:
            self.say(
                "usage: /add PATH... (/drop unpins; @PATH in a message attaches once)", "yellow"
            )
            return
        ws = self.agent.tool_ctx.workspace
        for path in arg.split():
            try:
                rel = self.state.pinned.add(ws, path)
            except WorkspaceError as exc:
                self.say(f"not pinned: {exc}", "red")
                continue
            self.say(
                f"pinned {rel}: it goes with your next message, and again when it changes", "green"
            )

    def cmd_drop(self, arg: str) -> None:
        """/drop [PATH...]
        unpin files (all of them without a PATH)"""
        paths = arg.split() or [None]
        gone = [p for path in paths for p in self.state.pinned.drop(path)]
        if gone:
            self.say(f"unpinned {', '.join(gone)}", "green")
        else:
            pinned = ", ".join(self.state.pinned.sent) or "none"
            self.say(f"not pinned: {arg} (pinned: {pinned})", "yellow")

    def complete_drop(self) -> list[str]:
        return list(self.state.pinned.sent)

    def cmd_init(self, arg: str) -> None:
        """/init [--force]
        write a starting AGENTS.md from what coder detects in the project, for you to edit"""
        from coder.atomic import atomic_write
        from coder.instructions import load_instructions, starting_agents_md, user_dir
        from coder.project import detect

        ws = self.agent.tool_ctx.workspace
        path = ws.root / "AGENTS.md"
        if os.path.lexists(path) and arg.strip() != "--force":
            self.say(f"{path} exists: edit it, or /init --force to write it anew", "yellow")
            return
        atomic_write(path, starting_agents_md(detect(ws)).encode())
        self.rt.instructions = load_instructions(ws.root, user_dir())
        base = agent_mod.system_prompt(self.cfg)
        self.agent.messages[0] = {"role": "system", "content": base + self.rt.instructions.prompt()}
        self.say(f"wrote {path}: edit it; the model gets it from your next message", "green")


def session_diff(workspace: Any) -> str:
    """A unified diff of every file the agent's tools wrote, from its content before the
    first edit of the session (as the undo journal kept it) to its content now."""
    first: dict[str, Any] = {}
    for edit in workspace.journal:
        first.setdefault(edit.path, edit)
    out: list[str] = []
    for path, edit in sorted(first.items()):
        if not edit.kept:
            out.append(f"# {path}: the file was too large to keep; no diff\n")
            continue
        now_path = workspace.root / path
        now = now_path.read_bytes() if now_path.is_file() else None
        if now == edit.before:
            continue
        if b"\0" in (edit.before or b"") or b"\0" in (now or b""):
            out.append(f"Binary file {path} changed\n")
            continue
        before = (edit.before or b"").decode("utf-8", "replace").splitlines(keepends=True)
        after = (now or b"").decode("utf-8", "replace").splitlines(keepends=True)
        lines = difflib.unified_diff(
            before,
            after,
            "/dev/null" if edit.before is None else f"a/{path}",
            "/dev/null" if now is None else f"b/{path}",
        )
        out.extend(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )
    return "".join(out)
