"""Model discovery: `coder models`, GGUF headers, `--model NAME`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coder import models
from coder.gguf_header import GGUFError, read_header
from tests import cli
from tests.gguf_files import TEMPLATE_NO_TOOLS, write_gguf


def coder(*args: str, dirs: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {"CODER_LLM__MODEL_DIRS": " ".join(str(d) for d in dirs)}
    return cli.coder(*args, cwd=cwd, env=env, timeout=60)


def test_the_real_smollm2_header(model_path):
    info = models.describe(model_path)
    assert (info.architecture, info.file_type, info.context_length) == ("llama", "Q4_1", 8192)
    assert info.supports_tools is False  # its template drops tools (/props says so too)
    assert info.size == model_path.stat().st_size and info.error is None
    meta = read_header(model_path).metadata
    assert meta["tokenizer.ggml.tokens"].length == 49152  # stepped over, not decoded


def test_coder_models_lists_a_gguf_placed_in_a_configured_dir(tmp_path, model_path):
    shelf = tmp_path / "shelf"
    write_gguf(shelf / "org" / "Qwen2.5-Coder-7B-Q4_K_M.gguf", arch="qwen2", file_type=15)
    write_gguf(shelf / "plain.gguf", arch="gemma3", file_type=7, template=TEMPLATE_NO_TOOLS)
    write_gguf(shelf / "bare.gguf", arch="phi3", file_type=1, template=None)
    (shelf / "smol").mkdir()
    os.link(model_path, shelf / "smol" / "tiny-chat.gguf")
    (shelf / "notes.txt").write_text("not a model")
    proc = coder("models", dirs=[shelf], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line}
    assert rows["Qwen2.5-Coder-7B-Q4_K_M"][3:7] == ["Q4_K_M", "qwen2", "32768", "yes"]
    assert rows["tiny-chat"][3:7] == ["Q4_1", "llama", "8192", "no"]
    assert rows["plain"][3:7] == ["Q8_0", "gemma3", "32768", "no"]
    assert rows["bare"][3:7] == ["F16", "phi3", "32768", "?"]  # no template at all
    assert "notes" not in proc.stdout and str(shelf) in proc.stdout
    as_json = [
        json.loads(x)
        for x in coder("models", "--json", dirs=[shelf], cwd=tmp_path).stdout.splitlines()
    ]
    assert {m["name"]: m["quantization"] for m in as_json} == {
        "Qwen2.5-Coder-7B-Q4_K_M": "Q4_K_M",
        "bare": "F16",
        "plain": "Q8_0",
        "tiny-chat": "Q4_1",
    }


def test_unreadable_files_are_listed_with_the_reason_not_a_crash(tmp_path):
    write_gguf(tmp_path / "good.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    (tmp_path / "text.gguf").write_text("hello, this is no model at all")
    cut = write_gguf(tmp_path / "cut.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(cut[:300])
    (tmp_path / "huge-string.gguf").write_bytes(
        b"GGUF" + bytes([3, 0, 0, 0]) + bytes(8) + bytes([1] + [0] * 7) + b"\xff" * 8
    )
    found = {i.name: i for i in models.discover([tmp_path])}
    assert found["good"].architecture == "qwen2" and found["good"].error is None
    assert "only 0 bytes" in found["empty"].error
    assert "no GGUF magic" in found["text"].error
    assert "cut short" in found["cut"].error or "past" in found["cut"].error
    assert "past the file" in found["huge-string"].error
    with pytest.raises(GGUFError, match="text.gguf"):
        read_header(tmp_path / "text.gguf")


def test_walk_skips_later_shards_and_hidden_dirs_and_follows_file_links(tmp_path):
    write_gguf(tmp_path / "big-00001-of-00002.gguf")
    write_gguf(tmp_path / "big-00002-of-00002.gguf")
    write_gguf(tmp_path / ".cache" / "hidden.gguf")
    blob = write_gguf(tmp_path / "hub" / "blobs" / "0123abcd")  # the HF cache's layout
    snap = tmp_path / "hub" / "snapshots" / "rev"
    snap.mkdir(parents=True)
    (snap / "linked.gguf").symlink_to(blob)
    (tmp_path / "loop").symlink_to(tmp_path)  # a directory link is not entered
    names = [p.name for p in models.gguf_files([tmp_path, tmp_path / "hub"])]
    assert names == ["big-00001-of-00002.gguf", "linked.gguf"]


def test_model_by_unique_substring_exact_name_or_path(tmp_path):
    write_gguf(tmp_path / "a" / "qwen2.5-coder-1.5b-q8_0.gguf")
    write_gguf(tmp_path / "b" / "qwen2.5-coder-7b-q4_k_m.gguf")
    write_gguf(tmp_path / "b" / "llama-3.2-1b.gguf")
    write_gguf(tmp_path / "b" / "llama-3.2-1b-instruct.gguf")
    dirs = [tmp_path]
    assert models.resolve("1.5B", dirs).name == "qwen2.5-coder-1.5b-q8_0.gguf"
    assert models.resolve("llama-3.2-1b", dirs).name == "llama-3.2-1b.gguf"  # exact wins
    elsewhere = write_gguf(tmp_path / "other" / "x.gguf")
    assert models.resolve(str(elsewhere), []) == elsewhere.resolve()
    missing = str(tmp_path / "nope.gguf")
    assert models.resolve(missing, dirs) == Path(missing)  # opened (and refused) later
    with pytest.raises(models.ModelChoiceError, match="matches 2 models") as e:
        models.resolve("qwen", dirs)
    assert "1.5b-q8_0.gguf" in str(e.value) and "7b-q4_k_m.gguf" in str(e.value)
    with pytest.raises(models.ModelChoiceError, match="no model matches 'mistral'") as e:
        models.resolve("mistral", dirs)
    assert "llama-3.2-1b.gguf" in str(e.value)


def test_dash_dash_model_takes_a_substring_and_names_candidates_on_error(tmp_path, model_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    os.link(model_path, shelf / "smol-copy-one.gguf")
    os.link(model_path, shelf / "smol-copy-two.gguf")
    ok = coder("setup", "--model", "copy-two", dirs=[shelf], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"model:  {(shelf / 'smol-copy-two.gguf').resolve()}" in ok.stdout
    ambiguous = coder("setup", "--model", "smol-copy", dirs=[shelf], cwd=tmp_path)
    assert ambiguous.returncode == 2
    assert "matches 2 models" in ambiguous.stderr and "smol-copy-one.gguf" in ambiguous.stderr
    unknown = coder("-q", "hi", "--model", "mistral", dirs=[shelf], cwd=tmp_path)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "no model matches 'mistral'" in unknown.stderr and "smol-copy-one" in unknown.stderr


def test_model_dirs_in_a_config_file_are_relative_to_it(tmp_path):
    conf = tmp_path / "conf"
    write_gguf(conf / "models" / "m.gguf")
    (conf / "config.yaml").write_text("llm:\n  model_dirs: [models, ~/nowhere]\n")
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "coder", "models", "--config", str(conf / "config.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "m.gguf" in proc.stdout, proc.stderr
    assert str(Path.home() / "nowhere") in proc.stdout


def test_header_reads_touch_only_the_header(tmp_path, model_path):
    """98 MB of weights behind a header: reading it must not read them."""
    start = time.perf_counter()
    for _ in range(5):
        models.describe(model_path)
    assert (time.perf_counter() - start) / 5 < 0.5  # 24 ms measured; the file is 98 MB
