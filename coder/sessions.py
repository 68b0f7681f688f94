"""Saved conversations: one versioned JSON file per name in repl.sessions_dir.

A file holds {"version", "name", "created", "updated", "workspace", "messages",
"tools", "config", "plan"} ("plan": the /plan checklist's steps and statuses, or null;
files without it, from before plans, read as null); the REPL saves every conversation as it goes (after each turn), so
`coder -c` resumes the last one of a workspace. Secrets are masked in all of it, as in
the log. Writes are atomic (temp
file in the same directory, fsync, rename), so a crash leaves the old file or the
new one, never half of either. Reading checks everything before anything is
returned: a corrupt, truncated or newer-version file raises SessionError and the
caller's conversation stays as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coder.atomic import atomic_write
from coder.plan import PlanError, plan_from_json
from coder.redact import env_secrets, scrub, usable_secrets

VERSION = 1
SUFFIX = ".json"
MAX_NAME = 100
ROLES = {"system", "user", "assistant", "tool"}
_NAME_RE = re.compile(r"^[\w][\w.\-]*$")


class SessionError(Exception):
    """A session could not be saved, read or found; the message says why and what to do."""


@dataclass
class SessionInfo:
    name: str
    path: Path
    updated: float | None
    first_user: str
    messages: int
    error: str | None = None  # set when the file cannot be read
    workspace: str | None = None  # where the conversation took place


def sanitize_name(name: str) -> str:
    """A safe file stem from a user-given name, or SessionError.

    Whitespace becomes "-"; path separators, a leading dot (hidden files, "..")
    and anything but letters, digits, "_", "-" and "." are refused.
    """
    raw = name.strip()
    if raw.endswith(SUFFIX):
        raw = raw[: -len(SUFFIX)]
    cleaned = re.sub(r"\s+", "-", raw)
    if not cleaned:
        raise SessionError("a session needs a name (letters, digits, '-', '_', '.')")
    if "/" in cleaned or "\\" in cleaned or "\0" in cleaned:
        raise SessionError(f"session name {name!r}: no path separators, just a name")
    if cleaned.startswith(".") or ".." in cleaned:
        raise SessionError(f"session name {name!r}: may not start with '.' or contain '..'")
    if not _NAME_RE.match(cleaned):
        raise SessionError(f"session name {name!r}: use letters, digits, '-', '_' and '.' only")
    if len(cleaned) > MAX_NAME:
        raise SessionError(f"session name {name!r}: longer than {MAX_NAME} characters")
    return cleaned


def session_path(directory: str | os.PathLike, name: str) -> Path:
    return Path(directory).expanduser() / (sanitize_name(name) + SUFFIX)


def save(
    directory: str | os.PathLike,
    name: str,
    messages: list[dict],
    tools: list[dict] | None = None,
    config: dict | None = None,
    workspace: str | None = None,
    secrets: Iterable[str | None] = (),
    plan: list[dict] | None = None,
) -> Path:
    """Write the conversation atomically; keeps `created` of an existing file of that name.

    Masked as in the log: `secrets` (the config's api key) and coder's keys from its
    environment, wherever they appear (a pasted key, a tool's output)."""
    masked = usable_secrets([*secrets, *env_secrets()])
    path = session_path(directory, name)
    now = time.time()
    created = now
    with contextlib.suppress(OSError, ValueError, SessionError, AttributeError):
        created = float(_read_json(path).get("created") or now)
    data = {
        "version": VERSION,
        "name": path.stem,
        "created": created,
        "updated": now,
        "workspace": workspace,
        "messages": scrub(messages, masked),
        "tools": tools or [],
        "config": scrub(config or {}, masked),  # api_key and the like become REDACTED
        "plan": scrub(plan, masked) if plan is not None else None,
    }
    try:
        blob = _encode(data)
    except (TypeError, ValueError) as exc:
        raise SessionError(f"cannot save session '{path.stem}': {exc}") from None
    try:
        atomic_write(path, blob)
    except OSError as exc:
        raise SessionError(
            f"cannot save session '{path.stem}' in {path.parent}: {exc.strerror or exc}. "
            "Nothing was lost: the conversation is still open. Set repl.sessions_dir "
            "(/config repl.sessions_dir DIR) to a writable directory and /save again."
        ) from None
    return path


def load(directory: str | os.PathLike, name: str) -> dict:
    """The saved session as a validated dict (raises SessionError, never half a result)."""
    path = session_path(directory, name)
    if not path.is_file():
        known = [s.name for s in list_sessions(directory)]
        hint = f" (saved: {', '.join(known[:10])})" if known else " (no sessions saved yet)"
        raise SessionError(f"no session named '{path.stem}' in {path.parent}{hint}")
    try:
        data = _read_json(path)
    except OSError as exc:
        raise SessionError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SessionError(
            f"session file {path} is corrupt or truncated ({exc}); nothing was loaded"
        ) from None
    validate(data, path)
    return data


def validate(data: Any, path: Path | str = "session") -> None:
    def bad(why: str) -> SessionError:
        return SessionError(
            f"session file {path} is not a valid session ({why}); nothing was loaded"
        )

    if not isinstance(data, dict):
        raise bad("the top level is not an object")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"missing or bad 'version': {version!r}")
    if version > VERSION:
        raise SessionError(
            f"session file {path} was written by a newer coder (format version {version}; "
            f"this one reads up to {VERSION}); upgrade coder to load it. Nothing was loaded."
        )
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if problem := message_problem(m):
            raise bad(f"message {i}: {problem}")
    if not isinstance(data.get("tools", []), list):
        raise bad("'tools' must be a list")
    try:
        plan_from_json(data.get("plan"))
    except PlanError as exc:
        raise bad(f"'plan': {exc}") from None


def message_problem(m: Any) -> str | None:
    """Why `m` is not a chat message coder can send back to a model, or None: a bad
    message loaded from a file must be refused there, not crash the next turn."""
    if not isinstance(m, dict) or m.get("role") not in ROLES:
        return "no valid role"
    content = m.get("content")
    if isinstance(content, list):
        if not all(isinstance(p, dict) and isinstance(p.get("text", ""), str) for p in content):
            return "content parts must be objects with text"
    elif content is not None and not isinstance(content, str):
        return "a bad content type"
    calls = m.get("tool_calls")
    if calls is not None:
        if m["role"] != "assistant" or not isinstance(calls, list):
            return "tool_calls must be a list on an assistant message"
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not (
                isinstance(fn, dict)
                and isinstance(call.get("id"), str)
                and isinstance(fn.get("name"), str)
                and isinstance(fn.get("arguments"), str)
            ):
                return "a tool call needs a string id, function name and arguments"
    if m["role"] == "tool" and not isinstance(m.get("tool_call_id"), str):
        return "a tool result needs a string tool_call_id"
    return None


def list_sessions(directory: str | os.PathLike, workspace: str | None = None) -> list[SessionInfo]:
    """Every saved session, newest first (those of `workspace` before the others);
    unreadable files are listed with their error."""
    d = Path(directory).expanduser()
    if not d.is_dir():
        return []
    out: list[SessionInfo] = []
    for path in d.glob("*" + SUFFIX):
        if path.name.startswith(".") or not path.is_file():  # a directory is no session
            continue
        try:
            data = _read_json(path)
            validate(data, path)
        except (OSError, ValueError, SessionError) as exc:
            why = "newer format" if "newer coder" in str(exc) else "corrupt or unreadable"
            out.append(SessionInfo(path.stem, path, _mtime(path), "", 0, why))
            continue
        first = next((m.get("content") for m in data["messages"] if m.get("role") == "user"), None)
        first = first if isinstance(first, str) else ""
        line = first.strip().splitlines()[0] if first.strip() else ""
        updated = data.get("updated")
        out.append(
            SessionInfo(
                path.stem,
                path,
                float(updated) if isinstance(updated, int | float) else _mtime(path),
                line,
                sum(m.get("role") != "system" for m in data["messages"]),
                workspace=data.get("workspace") if isinstance(data.get("workspace"), str) else None,
            )
        )
    out.sort(key=lambda s: s.updated or 0, reverse=True)
    if workspace is not None:
        out.sort(key=lambda s: s.workspace != workspace)  # stable: newest first within each
    return out


def latest(directory: str | os.PathLike, workspace: str) -> SessionInfo | None:
    """The most recently saved readable conversation of `workspace` (`coder -c`)."""
    return next(
        (
            s
            for s in list_sessions(directory, workspace)
            if s.workspace == workspace and not s.error
        ),
        None,
    )


def auto_name(workspace: str) -> str:
    """A new conversation's file name: the workspace's directory name and the time."""
    stem = re.sub(r"[^\w.\-]+", "-", Path(workspace).name).strip(".-")[:40] or "session"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


def conversation(data: dict, system: dict) -> list[dict]:
    """A loaded session's messages, with `system` first when it was saved without one."""
    messages = list(data["messages"])
    if not messages or messages[0].get("role") != "system":
        messages.insert(0, dict(system))
    return messages


def delete(directory: str | os.PathLike, name: str) -> Path:
    path = session_path(directory, name)
    try:
        path.unlink()
    except FileNotFoundError:
        raise SessionError(f"no session named '{path.stem}' in {path.parent}") from None
    except OSError as exc:
        raise SessionError(f"cannot delete {path}: {exc.strerror or exc}") from None
    return path


def _encode(data: dict) -> bytes:
    try:
        return json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates (undecodable bytes kept from a file): \u-escaped, they round-trip
        return json.dumps(data, ensure_ascii=True, indent=1).encode("ascii")


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc}") from None
    if not text.strip():
        raise ValueError("the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JSON error at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to be a session") from None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
