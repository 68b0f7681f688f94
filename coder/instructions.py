"""Project instructions: AGENTS.md (or CODER.md) in the workspace and the user's own
in $XDG_CONFIG_HOME/coder/, appended to the system prompt.

Each file is bounded (a longer one is cut, with a notice), must be a regular file, and
the workspace's must resolve inside the workspace: a cloned repository's AGENTS.md that
links to ~/.ssh/id_rsa would otherwise send the key to the model and into the logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coder.project import ProjectInfo

NAMES = ("AGENTS.md", "CODER.md")
MAX_CHARS = 8_000  # per file: about 2,500 tokens, a third of the default model's context


@dataclass
class Instructions:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (file, text as sent)
    notices: list[str] = field(default_factory=list)

    def prompt(self) -> str:
        """The system prompt's addition ("" when there are none)."""
        if not self.files:
            return ""
        parts = [
            f"## From {path.name} ({path.parent})\n\n{text.strip()}" for path, text in self.files
        ]
        return "\n\n# Instructions for this project and user\n\n" + "\n\n".join(parts)


def user_dir(env: os._Environ | dict = os.environ) -> Path | None:
    from coder.config.load import user_config_path

    path = user_config_path(env)
    return path.parent if path else None


def load_instructions(root: Path, user: Path | None = None, limit: int = MAX_CHARS) -> Instructions:
    """The user's instructions first, then the workspace's (the more specific last)."""
    found = Instructions()
    for directory, confine in ((user, None), (root, root)):
        if directory is None:
            continue
        for name in NAMES:
            path = directory / name
            if os.path.lexists(path):
                _read(path, confine, limit, found)
                break  # AGENTS.md wins over CODER.md in one directory
    return found


def _read(path: Path, confine: Path | None, limit: int, found: Instructions) -> None:
    real = path.resolve()
    if confine is not None and not real.is_relative_to(confine.resolve()):
        found.notices.append(f"{path} points outside the workspace ({real}): not read")
        return
    if not real.is_file():
        found.notices.append(f"{path} is not a regular file: not read")
        return
    try:
        with real.open("rb") as f:
            data = f.read(limit * 4 + 4)  # enough bytes for `limit` characters, and one more
    except OSError as exc:
        found.notices.append(f"{path}: cannot read it ({exc.strerror or exc})")
        return
    text = data.decode("utf-8", errors="replace")
    if len(text) > limit or real.stat().st_size > len(data):
        size = real.stat().st_size
        text = text[:limit]
        found.notices.append(
            f"{path} is {size:,} bytes: only its first {limit:,} characters reach the model"
        )
        text += f"\n[... cut: the file is {size:,} bytes]"
    found.files.append((path, text))


def starting_agents_md(info: ProjectInfo) -> str:
    """`/init`: an AGENTS.md from what coder detects in the project, for the user to edit."""
    lines = [
        "# AGENTS.md",
        "",
        "Instructions for coding agents working in this project. coder adds this file to",
        "the model's system prompt (the first 8,000 characters): keep it short and edit it.",
        "",
        "## Project",
    ]
    langs = ", ".join(lang for lang, _ in info.languages[:5])
    lines.append(f"- Languages: {langs or 'none detected'}")
    if info.build_systems:
        lines.append(f"- Build: {', '.join(b.name for b in info.build_systems)}")
    lines += ["", "## Commands"]
    for kind, label in (("test", "Test"), ("lint", "Lint"), ("format", "Format")):
        found = getattr(info, kind)
        lines.append(
            f"- {label}: " + (", ".join(f"`{c.command}`" for c in found) or "(none found)")
        )
    lines += ["", "## Layout"]
    lines += [f"- `{entry}`" for entry in info.layout[:30]] or ["- (empty)"]
    lines += [
        "",
        "## Conventions",
        "- Run the tests after a change and before saying it is done.",
        "- Keep changes small and focused; do not reformat code you did not change.",
        "",
    ]
    return "\n".join(lines)
