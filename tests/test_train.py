"""`coder train` without training: the import boundary, the missing extra, the data
checks and exit codes, nothing half-written; the kto / grpo row selection."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from coder.train import data as data_mod
from coder.train.template import served_template, training_template
from tests import cli
from tests.train_data import EXAMPLES, write_pairs, write_sessions

ROOT = Path(__file__).resolve().parent.parent


def run_py(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_version_parser_and_repl_never_import_torch():
    code = (
        "import sys\n"
        "from coder import cli\n"
        "assert cli.main(['--version']) == 0\n"
        "cli.build_parser().parse_args(['train', '--method', 'sft'])\n"
        "import coder.repl.app, coder.repl.commands, coder.runtime, coder.train.flags\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    got = run_py(code)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip().splitlines()[-1] == "[]"


def test_without_the_extra_train_says_what_to_install_and_exits_5(tmp_path):
    # sys.modules[name] = None is how Python marks a module as absent: find_spec says
    # None and `import torch` fails, as in an environment without the extra
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from coder import cli\n"
        f"sys.exit(cli.main(['train', '--method', 'sft', '--out', {str(tmp_path / 'out')!r}]))\n"
    )
    got = run_py(code, cwd=tmp_path)
    assert got.returncode == 5, got.stderr
    assert "pip install torch==2.13.0" in got.stderr
    assert "[train]" in got.stderr and "torch" in got.stderr
    assert not (tmp_path / "out").exists()


def coder(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli.coder(*args, cwd=cwd, timeout=600)


def test_wrong_shaped_data_names_the_columns_and_writes_nothing(tmp_path):
    logs = tmp_path / "logs"
    write_pairs(logs, EXAMPLES[:2])
    dpo = tmp_path / "dpo.jsonl"
    assert (
        coder("export", "--format", "dpo", str(logs), "-o", str(dpo), cwd=tmp_path).returncode == 0
    )
    out = tmp_path / "adapter"
    got = coder("train", "--method", "sft", "--data", str(dpo), "--out", str(out), cwd=tmp_path)
    assert got.returncode == 2, got.stderr
    assert "sft needs rows with the columns messages" in got.stderr
    assert "coder export --format sft" in got.stderr
    assert not out.exists() and not list(tmp_path.glob(".adapter*"))


def test_empty_data_exits_6_and_missing_base_exits_7(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "adapter"
    got = coder("train", "--method", "sft", "--data", str(empty), "--out", str(out), cwd=tmp_path)
    assert got.returncode == 6, got.stderr
    assert "nothing to train on" in got.stderr
    got = coder(
        "train", "--method", "sft", "--data", str(empty), "--out", str(out),
        "--model", str(tmp_path / "no.gguf"), cwd=tmp_path,
    )  # fmt: skip
    assert got.returncode == 7, got.stderr
    assert "base model not found" in got.stderr and "no.gguf" in got.stderr
    assert not out.exists()


def test_grpo_logs_with_only_flat_groups_is_empty_data(tmp_path):
    logs = tmp_path / "logs"
    write_sessions(logs, EXAMPLES[:2], reward=1.0)  # groups of one: flat
    got = coder("train", "--method", "grpo", str(logs), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert got.returncode == 6, got.stderr
    assert "flat groups" in got.stderr


def grpo_rows(tmp_path: Path) -> list[dict]:
    logs = tmp_path / "logs"
    write_pairs(logs, EXAMPLES[:3])
    return data_mod.load("grpo", None, [logs], logs).rows


def test_grpo_keeps_groups_of_one_size_and_counts_the_rest(tmp_path):
    rows = grpo_rows(tmp_path)
    assert len(rows) == 3 and all(len(r["completions"]) == 2 for r in rows)
    odd = [*rows, {**rows[0], "completions": rows[0]["completions"] * 2, "rewards": [1, 0, 1, 0]}]
    skipped: Counter = Counter()
    kept = list(data_mod._grpo(odd, skipped, None))
    assert len(kept) == 3 and skipped == {"groups of another size than 2": 1}
    flat = {**rows[0], "rewards": [0.0, 0.0]}
    skipped = Counter()
    assert list(data_mod._grpo([flat], skipped, None)) == []
    assert skipped == {"flat groups (all rewards equal)": 1}


def test_kto_labels_from_rewards(tmp_path):
    rows = grpo_rows(tmp_path)
    kto = list(data_mod._kto(rows, Counter()))
    labels = sorted(
        (r["label"], bool(r["completion"][0].get("tool_calls"))) for r in kto
    )  # the tool call passed the verifier (1.0), the prose did not (0.0)
    assert labels == [(False, False)] * 3 + [(True, True)] * 3
    auto = {
        "prompt": [],
        "completions": [[], []],
        "rewards": [-1.0, 0.0],
        "reward_sources": ["auto"] * 2,
    }
    skipped: Counter = Counter()
    got = list(data_mod._kto([auto], skipped))
    assert [r["label"] for r in got] == [
        False
    ]  # an automatic failure; an automatic answer has no label
    assert sum(skipped.values()) == 1


def test_from_rollouts_keeps_only_passed_attempts(tmp_path):
    logs = tmp_path / "logs"
    write_pairs(logs, EXAMPLES[:3])  # each request: a passed tool call and a failed prose
    rows = data_mod.load("sft", None, [logs], logs, from_rollouts=True).rows
    assert len(rows) == 3
    assert all(any(m.get("tool_calls") for m in r["messages"]) for r in rows)
    assert len(data_mod.load("sft", None, [logs], logs).rows) == 6


def test_training_template_only_adds_generation_marks():
    served, marked = served_template(), training_template()
    assert marked.count("{%- generation -%}") == 1 and marked.count("{%- endgeneration -%}") == 1
    stripped = marked.replace("{%- generation -%}", "").replace(
        "{{- '<|im_end|>' -}}{%- endgeneration -%}{{- '\\n' -}}", "{{- '<|im_end|>\\n' -}}"
    )
    assert stripped == served


def test_card_is_read_beside_the_adapter(tmp_path):
    from coder.train.card import card_template, trained_by_coder

    adapter = tmp_path / "a" / "adapter.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF")
    assert card_template(adapter) is None and not trained_by_coder(adapter)
    card = {"made_by": "coder train", "chat_template": "prompts/chatml-tools.jinja"}
    (adapter.parent / "card.json").write_bytes(orjson.dumps(card))
    assert card_template(adapter) == "prompts/chatml-tools.jinja"


def test_an_adapter_coder_trained_brings_its_tools_unless_agent_tools_is_set(tmp_path):
    """The adapter's setup: served with the tools its rows offered (card.json `tools`)."""
    from coder.config import Config
    from coder.runtime import offered_tools

    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    cfg = Config()
    cfg.llm.server.lora = [str(adapter)]
    assert offered_tools(cfg) is None  # no card: the default tools
    card = {"made_by": "coder train", "tools": ["read_file", "grep"]}
    (tmp_path / "card.json").write_bytes(orjson.dumps(card))
    assert offered_tools(cfg) == ["read_file", "grep"]
    cfg.agent.tools = ["read_file", "write_file"]  # the user's choice wins
    assert offered_tools(cfg) == ["read_file", "write_file"]
    cfg.agent.tools = None
    card["tools"] = ["read_file", "no_such_tool"]  # a card from another version: ignored
    (tmp_path / "card.json").write_bytes(orjson.dumps(card))
    assert offered_tools(cfg) is None


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "coder train needs --method sft|dpo|kto|grpo (or --recipe starter)"),
        (["--recipe", "starter", "--method", "dpo"], "--recipe starter makes its own sft data"),
        (["--recipe", "starter", "--data", "x.jsonl"], "--recipe starter makes its own sft data"),
        (["--recipe", "starter", "no-such-logs"], "log file not found: no-such-logs"),
    ],
)
def test_recipe_and_method_usage_errors_exit_2(tmp_path, args, message):
    got = coder("train", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert got.returncode == 2 and message in got.stderr, got.stderr
    assert not (tmp_path / "out").exists()
    assert "demonstrations" not in got.stderr  # said before any work


@pytest.mark.parametrize("scale", ["", ":0.5"])
def test_lora_config_serves_the_adapter_with_its_template(tmp_path, scale):
    from coder.config import Config
    from coder.server.command import build_command

    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    cfg = Config()
    cfg.llm.server.lora = [f"{adapter}{scale}"]
    cmd = build_command(cfg, ["llama-server"], "m.gguf")
    i = cmd.index("--lora-scaled")
    assert cmd[i + 1 : i + 3] == [str(adapter), "0.5" if scale else "1"]
    assert "--chat-template-file" not in cmd  # not coder's: no card, no template
    (tmp_path / "card.json").write_bytes(
        orjson.dumps({"made_by": "coder train", "chat_template": "prompts/chatml-tools.jinja"})
    )
    cmd = build_command(cfg, ["llama-server"], "m.gguf")
    assert cmd[cmd.index("--chat-template-file") + 1].endswith("chatml-tools.jinja")


def test_repl_lora_sets_a_scale_for_this_session_only(tmp_path):
    """/lora lists the adapters and sets a scale in this client, which sends it with each
    request (llama.cpp's per-request `lora`), never to the server-wide endpoint."""
    import io
    import threading

    from rich.console import Console

    from coder import server as srv_mod
    from coder.agent import Agent
    from coder.config import Config
    from coder.llm import Client
    from coder.llm.client import build_body
    from coder.log import Logger, Recorder
    from coder.repl import Commands
    from coder.runtime import Notifier, Runtime
    from coder.tools import ToolContext
    from coder.tools.workspace import Workspace

    cfg = Config()
    (tmp_path / "ws").mkdir()
    url = "http://127.0.0.1:9/v1"  # nothing listens: /lora asks no server
    logger = Logger(tmp_path / "logs")
    recorder = Recorder(logger)
    client = Client(url)
    agent = Agent(
        client=client,
        config=cfg,
        tool_ctx=ToolContext(workspace=Workspace(tmp_path / "ws")),
        recorder=recorder,
    )
    server = srv_mod.Server(srv_mod.Endpoint("127.0.0.1", 9, url), managed=False)
    rt = Runtime(cfg, logger, recorder, server, client, agent, threading.Event(), Notifier(print))
    out = io.StringIO()
    commands = Commands(rt, Console(file=out, width=120, color_system=None))
    try:
        client.adapters = []
        commands.run("lora", "")
        assert "no LoRA adapters" in out.getvalue()
        client.adapters = [{"id": 0, "path": "/a/adapter.gguf", "scale": 1.0}]
        commands.run("lora", "adapter.gguf 0.25")
        assert "scale 0.25" in out.getvalue()
        commands.run("lora", "7 1")
        assert "usage: /lora" in out.getvalue()
        assert commands.choices("lora") == ["0"]
        body = build_body(
            [], [], sampling=cfg.llm.sampling, protocol="native", lora=client.adapters
        )
        assert body["lora"] == [{"id": 0, "scale": 0.25}]
        assert "lora" not in build_body([], [], sampling=cfg.llm.sampling, protocol="native")
    finally:
        client.close()
        logger.close()


@pytest.mark.parametrize(("busy_percent", "threads"), [(0.0, 4), (50.0, 2), (90.0, 1), (100.0, 1)])
def test_training_takes_the_cores_busy_right_now_leaves(monkeypatch, busy_percent, threads):
    import psutil

    from coder.train import methods

    monkeypatch.setattr(methods.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(methods.os, "getloadavg", lambda: (8.0, 8.0, 8.0))  # a minute ago
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: busy_percent)
    assert methods.torch_threads() == threads
