"""One redaction marker everywhere coder writes a secret down."""

from __future__ import annotations

from pathlib import Path

import orjson

from coder import config, server, sessions
from coder.config import Config
from coder.log import REDACTED, Logger, Recorder, list_log_files, scrub

KEY = "sk-one-marker-test-key"


def test_config_sessions_server_and_log_use_the_same_marker(tmp_path: Path) -> None:
    cfg = Config()
    cfg.llm.api_key = KEY
    assert config.as_dict(cfg)["llm"]["api_key"] == REDACTED

    path = sessions.save(tmp_path / "s", "x", [], None, config.as_dict(cfg, redact=False))
    saved = orjson.loads(path.read_bytes())
    assert saved["config"]["llm"]["api_key"] == REDACTED

    assert server.redact(["llama-server", "--api-key", KEY]) == [
        "llama-server",
        "--api-key",
        REDACTED,
    ]

    lg = Logger(tmp_path / "logs")
    rec = Recorder(lg, "r", secrets=[KEY])
    rec.session_start(
        config=config.as_dict(cfg, redact=False),
        model={},
        tools=[],
        workspace="/w",
        git_head=None,
    )
    rec.user_message(1, f"key {KEY}")
    rec.session_end("done")
    lg.close()
    data = b"".join(p.read_bytes() for p in list_log_files(tmp_path / "logs"))
    assert KEY.encode() not in data and data.count(REDACTED.encode()) >= 2
    assert b"***" not in data


def test_scrub_redacts_secret_named_keys_and_masks_known_values() -> None:
    got = scrub({"Authorization": "Bearer x", "note": f"a {KEY} b", KEY: 1}, (KEY,))
    assert got == {"Authorization": REDACTED, "note": f"a {REDACTED} b", REDACTED: 1}
