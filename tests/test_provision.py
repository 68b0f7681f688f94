"""`coder setup`: unpack the default model once, safely, and say which server runs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from coder import provision


def setup_env(tmp_path, **extra):
    return dict(os.environ, CODER_CACHE_DIR=str(tmp_path / "cache"), **extra)


def test_two_concurrent_setups_unpack_one_verified_model(tmp_path):
    env = setup_env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "coder", "setup"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    models = list((tmp_path / "cache" / "models").rglob("*.gguf"))
    assert len(models) == 1
    assert hashlib.sha256(models[0].read_bytes()).hexdigest() == provision.SHA256
    assert not list((tmp_path / "cache" / "models").rglob(".download-*"))  # no leftovers
    # idempotent: a second run does no work and says where things are
    again = subprocess.run(
        [sys.executable, "-m", "coder", "setup"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "downloading" not in again.stdout
    assert str(models[0]) in again.stdout and "bundled engine" in again.stdout


def test_own_model_path_skips_the_download(tmp_path, model_path):
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "setup", "--model", str(model_path)],
        cwd=tmp_path,
        env=setup_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "nothing to unpack" in proc.stdout
    assert not (tmp_path / "cache").exists()


def test_server_choice_order(tmp_path, monkeypatch):
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    assert provision.choose_server(None).command == [str(fake)]
    monkeypatch.setenv("LLAMA_SERVER", sys.executable)
    assert provision.choose_server(None).reason == "$LLAMA_SERVER is set"
    assert provision.choose_server(str(fake)).reason == "llm.server.binary in the config"
    monkeypatch.setenv("LLAMA_SERVER", str(tmp_path / "missing"))
    with pytest.raises(provision.ProvisionError, match="LLAMA_SERVER"):
        provision.choose_server(None)


def test_bad_server_binary_is_exit_3_naming_the_key(tmp_path, model_path):
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "setup", "--model", str(model_path)],
        cwd=tmp_path,
        env=setup_env(tmp_path, CODER_LLM__SERVER__BINARY="/no/such/llama-server"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3 and "llm.server.binary" in proc.stderr
