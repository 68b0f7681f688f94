"""Saved sessions: round trip, names, corrupt / newer / unwritable files."""

from __future__ import annotations

import json
import os

import pytest

from coder import sessions
from coder.config import Config, as_dict
from coder.sessions import SessionError

MESSAGES = [
    {"role": "system", "content": "You are coder."},
    {"role": "user", "content": "fix the tests\nplease"},
    {"role": "assistant", "content": "Done."},
]


def test_round_trip_keeps_created_and_redacts_the_api_key(tmp_path):
    cfg = Config()
    cfg.llm.api_key = "sk-very-secret-123456"
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]
    path = sessions.save(tmp_path, "work", MESSAGES, tools, as_dict(cfg, redact=False))
    assert path == tmp_path / "work.json"
    raw = path.read_text()
    assert "sk-very-secret-123456" not in raw
    first = json.loads(raw)
    assert first["version"] == sessions.VERSION and first["name"] == "work"
    assert first["tools"] == tools and first["config"]["llm"]["api_key"] == "[REDACTED]"

    sessions.save(tmp_path, "work", MESSAGES + [{"role": "user", "content": "more"}])
    data = sessions.load(tmp_path, "work")
    assert data["messages"][-1]["content"] == "more"
    assert data["created"] == first["created"] and data["updated"] >= first["updated"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_undecodable_text_round_trips(tmp_path):
    msgs = MESSAGES + [{"role": "tool", "tool_call_id": "c", "content": "bad \udcff byte"}]
    sessions.save(tmp_path, "s", msgs)
    assert sessions.load(tmp_path, "s")["messages"][-1]["content"] == "bad \udcff byte"


@pytest.mark.parametrize("bad", ["", "  ", "../x", "a/b", "a\\b", ".hidden", "..", "a..b", "x;y"])
def test_unsafe_names_are_refused(tmp_path, bad):
    with pytest.raises(SessionError):
        sessions.save(tmp_path, bad, MESSAGES)
    assert list(tmp_path.iterdir()) == []


def test_names_are_tidied():
    assert sessions.sanitize_name(" my work ") == "my-work"
    assert sessions.sanitize_name("v1.2_x.json") == "v1.2_x"
    with pytest.raises(SessionError, match="longer"):
        sessions.sanitize_name("x" * 101)


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", "corrupt or truncated"),
        (b'{"version": 1, "messages": [{"role": "user", "con', "corrupt or truncated"),
        (b"\xff\xfe garbage", "corrupt or truncated"),
        (b"[1, 2]", "not a valid session"),
        (b'{"version": 1, "messages": []}', "not a valid session"),
        (b'{"version": 1, "messages": [{"role": "wizard"}]}', "not a valid session"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "not a valid session"),
        (b'{"version": 99, "messages": [{"role": "user", "content": "x"}]}', "newer coder"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path, content, why):
    (tmp_path / "s.json").write_bytes(content)
    with pytest.raises(SessionError, match=why):
        sessions.load(tmp_path, "s")


def test_missing_session_names_the_saved_ones(tmp_path):
    sessions.save(tmp_path, "alpha", MESSAGES)
    with pytest.raises(SessionError, match="no session named 'beta'.*alpha"):
        sessions.load(tmp_path, "beta")


def test_unwritable_directory_loses_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SessionError, match="Nothing was lost"):
        sessions.save(blocker / "sessions", "s", MESSAGES)
    assert blocker.read_text() == "not a directory"


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    sessions.save(tmp_path, "s", MESSAGES)
    before = (tmp_path / "s.json").read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(SessionError, match="No space left"):
        sessions.save(tmp_path, "s", MESSAGES + MESSAGES[1:])
    assert (tmp_path / "s.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_list_shows_newest_first_with_first_user_line_and_corrupt_files(tmp_path):
    sessions.save(tmp_path, "old", MESSAGES)
    sessions.save(tmp_path, "new", [MESSAGES[0], {"role": "user", "content": "second one"}])
    os.utime(tmp_path / "old.json")
    (tmp_path / "broken.json").write_text("{")
    found = {s.name: s for s in sessions.list_sessions(tmp_path)}
    assert (
        found["old"].first_user == "fix the tests" and found["old"].messages == 2
    )  # not the system prompt
    assert found["broken"].error
    ordered = [s.name for s in sessions.list_sessions(tmp_path) if not s.error]
    assert ordered == ["new", "old"]
    assert sessions.list_sessions(tmp_path / "nowhere") == []


def test_delete(tmp_path):
    sessions.save(tmp_path, "s", MESSAGES)
    sessions.delete(tmp_path, "s")
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(SessionError, match="no session"):
        sessions.delete(tmp_path, "s")


def test_a_directory_named_like_a_session_is_not_listed(tmp_path):
    from coder.sessions import list_sessions

    (tmp_path / "adir.json").mkdir()
    assert list_sessions(tmp_path) == []


@pytest.mark.parametrize(
    "message, why",
    [
        ({"role": "assistant", "content": None, "tool_calls": "garbage"}, "tool_calls"),
        ({"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}, "tool call"),
        ({"role": "tool", "content": "x"}, "tool_call_id"),
        ({"role": "user", "content": [1, 2]}, "content parts"),
    ],
)
def test_a_structurally_bad_message_is_refused_at_load_naming_the_file(tmp_path, message, why):
    from coder.sessions import SessionError, load

    data = {"version": 1, "messages": [{"role": "user", "content": "hi"}, message]}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(SessionError) as err:
        load(tmp_path, "bad")
    assert "message 1" in str(err.value) and why in str(err.value)
    assert str(tmp_path / "bad.json") in str(err.value)


def test_json_nested_too_deeply_is_a_corrupt_session_not_a_crash(tmp_path):
    from coder.sessions import SessionError, list_sessions, load

    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    [info] = list_sessions(tmp_path)  # what /load's Tab completion reads
    assert info.name == "deep"
    with pytest.raises(SessionError, match="deep.json"):
        load(tmp_path, "deep")
