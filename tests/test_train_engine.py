"""`coder train` for real: the real SmolLM2 copied from its GGUF, real TRL steps, the
adapter converted by llama.cpp's script and served by the real engine.

SFT: 10 steps on the 8 logged tool-call sessions of train_data.py (lr 1e-3) turn prose
into native tool calls at temperature 0 with the adapter at scale 1, not at scale 0.
dpo, kto and grpo: two steps each on 4 requests answered both ways; the server loads
each adapter. Longer runs are in bench/bench_train.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from coder.config import Config, Sampling
from tests.conftest import free_port
from tests.train_data import EXAMPLES, SYSTEM, TOOLS, write_pairs, write_sessions

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parent.parent


def train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    got = subprocess.run(
        [sys.executable, "-m", "coder", "train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=1200,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    return got


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sft")
    write_sessions(tmp / "logs")
    # from the logs (exported in-process), as a user would run it
    got = train(
        "--method", "sft", str(tmp / "logs"), "--steps", "10", "--lr", "1e-3",
        "--out", str(tmp / "adapter"), cwd=tmp,
    )  # fmt: skip
    assert "step 10/10" in got.stderr and "tok/s" in got.stderr and "ETA" in got.stderr
    return tmp / "adapter" / "adapter.gguf"


def managed(adapter: Path, tmp: Path):
    """A server coder starts itself from config llm.server.lora."""
    from coder import server as srv

    cfg = Config()
    cfg.llm.base_url = f"http://127.0.0.1:{free_port()}/v1"
    cfg.llm.server.lora = [str(adapter)]
    cfg.llm.server.threads = 2
    cfg.llm.server.cache_ram_mib = 256
    return srv.connect(cfg, tmp), cfg


def get(url: str) -> object:
    return json.loads(urllib.request.urlopen(url, timeout=30).read())


def test_sft_adapter_card_and_files(sft_adapter: Path):
    out = sft_adapter.parent
    card = orjson.loads((out / "card.json").read_bytes())
    assert card["made_by"] == "coder train" and card["method"] == "sft"
    assert card["steps"] == 10 and card["final_loss"] < card["losses"][0]
    assert len(card["base"]["sha256"]) == 64 and card["base"]["gguf"].endswith(".gguf")
    assert card["data"]["exported_from_logs"] and card["data"]["rows"] == 8
    assert all(len(f["sha256"]) == 64 for f in card["data"]["files"])
    assert card["hyperparameters"]["lr"] == 1e-3 and card["chat_template"]
    assert (out / "peft" / "adapter_model.safetensors").is_file()
    peft_cfg = orjson.loads((out / "peft" / "adapter_config.json").read_bytes())
    assert peft_cfg["base_model_name_or_path"] == card["base"]["gguf"]
    assert sft_adapter.read_bytes()[:4] == b"GGUF"
    assert not list(out.parent.glob(".adapter.tmp-*"))


def test_managed_server_serves_the_adapter_and_it_calls_tools(sft_adapter, tmp_path):
    """Acceptance: native tool_calls at temperature 0 with the adapter at scale 1, prose
    at scale 0, switched per request (llama.cpp's `lora` field) by coder's own client,
    and every model_call record names the adapter and its scale."""
    from coder import server as srv
    from coder.llm import Client
    from coder.log import Logger, Recorder, list_log_files

    server, cfg = managed(sft_adapter, tmp_path)
    try:
        listed = get(server.base_url.removesuffix("/v1") + "/lora-adapters")
        assert [Path(a["path"]) for a in listed] == [sft_adapter.resolve()]
        props = get(server.base_url.removesuffix("/v1") + "/props")
        assert props["chat_template_caps"]["supports_tools"]  # the card's template
        client = Client(server.base_url, model=cfg.llm.server.alias)
        assert client.load_adapters()[0]["scale"] == 1.0
        logger = Logger(tmp_path / "logs")
        rec = Recorder(logger)
        rec.session_start(config={}, model={}, tools=TOOLS, workspace="/w", git_head=None)
        sampling = Sampling(temperature=0.0, max_tokens=60)
        calls = {}
        for step, scale in enumerate((1.0, 0.0), 1):
            client.adapters[0]["scale"] = scale
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Read the file todo.txt."},
            ]
            reply = client.chat(messages, TOOLS, sampling=sampling, protocol="native")
            rec.model_call(1, step, reply)
            calls[scale] = [(c.name, c.arguments) for c in reply.tool_calls]
        client.close()
        logger.close()
    finally:
        srv.stop(server)
    assert calls[1.0] and calls[1.0][0][0] == "read_file"
    assert "todo.txt" in calls[1.0][0][1]
    assert calls[0.0] == []
    records = [
        orjson.loads(line)
        for f in list_log_files(tmp_path / "logs")
        for line in f.read_bytes().splitlines()
    ]
    used = [r["adapters"] for r in records if r["type"] == "model_call"]
    assert [[a["scale"] for a in u] for u in used] == [[1.0], [0.0]]
    assert Path(used[0][0]["path"]) == sft_adapter.resolve()


def test_template_renders_byte_identical_in_training_and_serving(sft_adapter, tmp_path):
    """transformers' apply_chat_template (the training side, with its generation marks)
    against the engine's own /apply-template, with tools, tool calls and results."""
    from coder import server as srv
    from coder.train.base import base_gguf, ensure_base
    from coder.train.methods import load_tokenizer, render

    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Read a.py and b.py, then run the tests."},
        {
            "role": "assistant",
            "content": "Reading both.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": {"path": "a.py"}}},
                {"id": "c2", "type": "function", "function": {"name": "read_file", "arguments": {"path": "b.py"}}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "print('a')"},
        {"role": "tool", "tool_call_id": "c2", "content": "print('b')"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "run_shell", "arguments": {"command": "pytest -q"}}}
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "2 passed"},
        {"role": "assistant", "content": "Both print a letter; 2 tests pass."},
        {"role": "user", "content": "Thanks."},
    ]  # fmt: skip
    tok = load_tokenizer(ensure_base(base_gguf(None)).hf_dir)
    trained = render(tok, messages, TOOLS, generation_prompt=True)
    server, _ = managed(sft_adapter, tmp_path)
    try:
        # the wire form: arguments as JSON strings, as coder's client sends them
        wire = json.loads(json.dumps(messages))
        for m in wire:
            for c in m.get("tool_calls") or []:
                c["function"]["arguments"] = json.dumps(c["function"]["arguments"])
        body = json.dumps({"messages": wire, "tools": TOOLS}).encode()
        req = urllib.request.Request(
            server.base_url.removesuffix("/v1") + "/apply-template",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        served = json.loads(urllib.request.urlopen(req, timeout=30).read())["prompt"]
    finally:
        srv.stop(server)
    assert "<tool_call>" in trained and "<tool_response>" in trained and "read_file" in trained
    assert trained == served


@pytest.fixture(scope="module")
def pair_logs(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("pairs") / "logs"
    write_pairs(logs, EXAMPLES[:4])
    return logs


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_dpo_and_kto_write_an_adapter_the_server_loads(method, pair_logs, tmp_path):
    from coder import server as srv

    got = train(
        "--method", method, str(pair_logs), "--steps", "2", "--out", str(tmp_path / "a"),
        cwd=tmp_path,
    )  # fmt: skip
    assert "step 2/2" in got.stderr
    card = orjson.loads((tmp_path / "a" / "card.json").read_bytes())
    assert card["method"] == method and card["steps"] == 2
    server, _ = managed(tmp_path / "a" / "adapter.gguf", tmp_path)
    try:
        listed = get(server.base_url.removesuffix("/v1") + "/lora-adapters")
    finally:
        srv.stop(server)
    assert [Path(a["path"]).name for a in listed] == ["adapter.gguf"]


def test_grpo_from_recorded_groups_and_ctrl_c_keeps_the_last_step(pair_logs, tmp_path):
    """GRPO on the recorded groups (two completions each, rewards 1 and 0). A Ctrl-C
    after the first step stops the run there and still writes a complete adapter."""
    from coder import server as srv

    out = tmp_path / "a"
    proc = subprocess.Popen(
        [sys.executable, "-m", "coder", "train", "--method", "grpo", str(pair_logs)]
        + ["--steps", "200", "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    lines = []
    deadline = time.monotonic() + 900
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("step 1/200"):
            os.kill(proc.pid, signal.SIGINT)
            break
        assert time.monotonic() < deadline
    lines += proc.stderr.readlines()
    assert proc.wait(600) == 0, "".join(lines[-30:])
    card = orjson.loads((out / "card.json").read_bytes())
    assert card["method"] == "grpo" and card["interrupted"] is True
    assert 1 <= card["steps"] < 200 and card["final_loss"] is not None
    server, _ = managed(out / "adapter.gguf", tmp_path)
    try:
        listed = get(server.base_url.removesuffix("/v1") + "/lora-adapters")
    finally:
        srv.stop(server)
    assert len(listed) == 1


def test_starter_recipe_trains_on_verified_demonstrations_and_serves_its_tools(tmp_path):
    """`coder train --recipe starter` from nothing: generated tasks, one demonstration of
    each through the real loop and verifier, sft on those (one step here; bench_loop.py
    trains it whole), an adapter whose card names the recipe and the tools it was trained
    with, which coder then offers with it."""
    from coder.config import Config
    from coder.runtime import offered_tools
    from coder.train.recipe import RECIPES

    # a round of expert iteration: rollouts given beside the recipe add what passed
    write_sessions(tmp_path / "passed", EXAMPLES[:2], reward=1.0)
    write_sessions(tmp_path / "failed", EXAMPLES[2:3], reward=0.0)
    rollouts = [str(tmp_path / "passed"), str(tmp_path / "failed")]
    out = str(tmp_path / "a")
    got = train("--recipe", "starter", *rollouts, "--steps", "1", "--out", out, cwd=tmp_path)
    recipe = RECIPES["starter"]
    assert f"{recipe.count} of {recipe.count} demonstrations verified" in got.stderr
    card = orjson.loads((tmp_path / "a" / "card.json").read_bytes())
    assert card["recipe"] == "starter" and card["method"] == "sft" and card["steps"] == 1
    assert card["data"]["rows"] == recipe.count + 2
    assert card["hyperparameters"]["lr"] == recipe.lr
    assert sorted(card["tools"]) == sorted(recipe.tools)
    cfg = Config()
    cfg.llm.server.lora = [str(tmp_path / "a" / "adapter.gguf")]
    assert offered_tools(cfg) == card["tools"]


def test_eval_runs_the_base_and_the_adapter_each_in_its_setup(sft_adapter, tmp_path):
    """`coder eval --lora`: the base arm in the default setup (SmolLM2's own template: the
    json protocol), the adapter's arm on a server coder starts with it (its template:
    native tool calls); the report names each arm's protocol and template."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "todo.txt").write_text("buy milk\n")
    task = {
        "id": "read-todo",
        "prompt": "Read the file todo.txt.",
        "repo": "repo",
        "verify": 'grep -qi "milk" "$CODER_ANSWER_FILE"',
        "max_steps": 2,
    }
    (tmp_path / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    env = dict(
        os.environ,
        CODER_LLM__BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
        CODER_LLM__SAMPLING__MAX_TOKENS="64",
        CODER_LLM__SERVER__THREADS="2",
    )
    got = subprocess.run(
        [sys.executable, "-m", "coder", "eval", "tasks.jsonl", "--lora", str(sft_adapter)]
        + ["--logs", "ev", "--report", "r.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    base, adapter = json.loads((tmp_path / "r.json").read_text())["variants"]
    assert base["lora"] is None and adapter["lora"] == str(sft_adapter)
    assert base["protocol"] == "json" and adapter["protocol"] == "native"
    assert base["chat_template_hash"] != adapter["chat_template_hash"]
    assert base["overall"]["attempts"] == adapter["overall"]["attempts"] == 1
