"""Files the user puts in front of the model: `@path` in a message attaches that file
once; `/add PATH` pins a file whose current content the model sees.

Pinned files are not kept in the system prompt, where an edit to one would change the
first message and throw away the server's prompt cache for the whole conversation.
The first message the user sends after a change carries the file's current content
at its end: the history before it stays byte-identical and cached, and an
unchanged file costs nothing more (bench/bench_pinned.py measures the two placements).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from coder.tools.workspace import Workspace, WorkspaceError

MAX_FILE_BYTES = 24_000  # per attached or pinned file: about 6,000 tokens
_MENTION = re.compile(r"(?<![\w@/])@([\w.~+/-][^\s]*)")


def read_for_context(ws: Workspace, path: str, limit: int = MAX_FILE_BYTES) -> str:
    """A workspace file's text for the model, confined like the file tools; WorkspaceError
    names the path when it cannot be used (outside, missing, not a file, binary)."""
    with ws.open(path) as f:
        data = f.read(limit + 1)
    if b"\0" in data:
        raise WorkspaceError(f"'{path}' is a binary file")
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n[... cut at {limit:,} bytes]"
    return text


def file_block(path: str, text: str, label: str) -> str:
    return f"[{label}: {path}]\n```\n{text.rstrip()}\n```"


def attach_mentions(text: str, ws: Workspace) -> tuple[str, list[str], list[str]]:
    """The message with every `@path` that names a workspace file attached after it:
    (message, attached paths, notices about mentions that could not be attached).
    A mention that names no file (an e-mail address, a decorator) is left as it is."""
    blocks, attached, notices = [], [], []
    for m in _MENTION.finditer(text):
        path = m.group(1).rstrip(".,;:!?)]}'\"")
        if path in attached:
            continue
        try:
            content = read_for_context(ws, path)
        except WorkspaceError as exc:
            if "not found" not in str(exc):
                notices.append(f"@{path} not attached: {exc}")
            continue
        except OSError as exc:
            notices.append(f"@{path} not attached: {exc.strerror or exc}")
            continue
        attached.append(path)
        blocks.append(file_block(path, content, "attached file"))
    if not blocks:
        return text, attached, notices
    return text + "\n\n" + "\n\n".join(blocks), attached, notices


@dataclass
class Pinned:
    """Pinned files and the hash of the content the model last saw of each."""

    sent: dict[str, str | None] = field(default_factory=dict)  # path -> sha256, None: not yet

    def add(self, ws: Workspace, path: str) -> str:
        """Pin `path` (checked now); its content goes with the next request."""
        read_for_context(ws, path)
        rel = ws.relative(ws.resolve(path))
        self.sent.setdefault(rel, None)
        return rel

    def drop(self, path: str | None = None) -> list[str]:
        """Unpin `path`, or every file when None; the paths unpinned."""
        if path is None:
            gone = list(self.sent)
            self.sent.clear()
            return gone
        return [path] if self.sent.pop(path, 0) != 0 else []

    def changed(self, ws: Workspace) -> tuple[list[tuple[str, str, str]], list[str]]:
        """(path, digest, block) of each pinned file that changed since the model last saw
        it, and notices for those that cannot be read now (they stay pinned). Call
        `mark_sent` once the request went out."""
        changes, notices = [], []
        for path, last in self.sent.items():
            try:
                content = read_for_context(ws, path)
            except (WorkspaceError, OSError) as exc:
                notices.append(f"pinned {path} not sent: {exc}")
                continue
            digest = hashlib.sha256(content.encode()).hexdigest()
            if digest != last:
                label = "pinned file, current content" + (", changed" if last else "")
                changes.append((path, digest, file_block(path, content, label)))
        return changes, notices

    def mark_sent(self, changes: list[tuple[str, str, str]]) -> None:
        for path, digest, _ in changes:
            if path in self.sent:
                self.sent[path] = digest
