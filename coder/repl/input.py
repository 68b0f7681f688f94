"""Input helpers: the history file and Tab completion (commands, their arguments, paths)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from coder.repl.commands import Commands

MAX_HISTORY_ENTRY = 64 * 1024  # longer inputs (big pastes) stay out of the history file
MAX_PATH_COMPLETIONS = 200
_PATH_WORD = re.compile(r"[\w./~+-]*$")
PATH_COMMANDS = ("add",)  # commands whose arguments complete as workspace paths
MENTION_WORD = re.compile(r"(?:^|\s)@[\w./~+-]*$")  # "@pa" as it is typed: complete at once


class _History(FileHistory):
    """FileHistory that skips huge entries and survives an unwritable file."""

    def __init__(self, filename: str, on_error: Callable[[str], None]) -> None:
        super().__init__(filename)
        self._on_error = on_error
        self._failed = False

    def load_history_strings(self) -> Iterable[str]:
        try:
            yield from super().load_history_strings()
        except OSError:
            return

    def store_string(self, string: str) -> None:
        if len(string) > MAX_HISTORY_ENTRY or self._failed:
            return
        try:
            super().store_string(string)
        except OSError as exc:
            self._failed = True
            self._on_error(f"history not saved ({self.filename}: {exc.strerror or exc})")


def open_history(path: str, on_error: Callable[[str], None]) -> History:
    """The history file at `path`; in memory only (said through `on_error`) if unwritable."""
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        on_error(f"history kept in memory only: cannot write {p} ({exc.strerror or exc})")
        return InMemoryHistory()
    return _History(str(p), on_error)


class ReplCompleter(Completer):
    """Slash commands and their arguments (each command's `complete_<name>`); file paths
    (relative to the workspace) on Tab."""

    def __init__(self, commands: Commands, root: Path) -> None:
        self.commands = commands
        self.root = root

    def get_completions(self, document: Document, complete_event: Any) -> Iterable[Completion]:
        text = document.text_before_cursor
        if text.startswith("/") and "\n" not in text:
            yield from self._command_completions(text)
            return
        m = _PATH_WORD.search(text)
        word = m.group(0) if m else ""
        if word or complete_event.completion_requested:
            yield from self._paths(word)

    def _command_completions(self, text: str) -> Iterable[Completion]:
        if " " not in text:
            for name in self.commands.names():
                if name.startswith(text[1:]):
                    meta = self.commands.help_line(name)
                    yield Completion("/" + name, -len(text), display_meta=meta)
            return
        name, _, arg = text[1:].partition(" ")
        if name in PATH_COMMANDS:  # each argument a workspace path
            yield from self._paths(arg.rpartition(" ")[2])
            return
        if " " in arg:
            return
        for choice in self.commands.choices(name):
            if choice.startswith(arg):
                yield Completion(choice, -len(arg))

    def _paths(self, word: str) -> Iterable[Completion]:
        root = self.root
        head, _, prefix = word.rpartition("/")
        base = (root / head).resolve() if head else root
        if not base.is_relative_to(root) or not base.is_dir():
            return
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            return
        n = 0
        for e in entries:
            if not e.name.startswith(prefix) or (e.name.startswith(".") and not prefix):
                continue
            shown = e.name + ("/" if e.is_dir() else "")
            yield Completion((head + "/" if head else "") + shown, -len(word), display=shown)
            n += 1
            if n >= MAX_PATH_COMPLETIONS:
                return
