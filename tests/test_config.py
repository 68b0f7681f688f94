import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coder import config
from coder.config import Config, ConfigError
from coder.config.keys import NOT_KEYS
from coder.redact import REDACTED

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_yaml_matches_builtin_defaults(tmp_path):
    cfg = config.load(REPO / "config.yaml", env={}, cwd=tmp_path)
    defaults = config.as_dict(Config())
    loaded = config.as_dict(cfg)
    # The one intended difference: the repo's logs/ folder instead of ~/.local/share.
    assert loaded["logging"].pop("dir") == str(REPO / "logs")
    defaults["logging"].pop("dir")
    assert loaded == defaults


def test_every_key_is_documented_in_config_yaml():
    text = (REPO / "config.yaml").read_text()

    def keys(obj):
        for f in dataclasses.fields(obj):
            if f.name in NOT_KEYS:
                continue
            yield f.name
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from keys(value)

    from coder.config.schema import McpServerConfig

    every = [*keys(Config()), *keys(McpServerConfig())]  # a server's keys, in its example
    missing = [k for k in every if f"{k}:" not in text]
    assert missing == []


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("llm:\n  server:\n    portt: 9\n")
    with pytest.raises(ConfigError) as err:
        config.load(bad, env={}, cwd=tmp_path)
    assert "llm.server.portt" in str(err.value) and str(bad) in str(err.value)


@pytest.mark.parametrize(
    "yaml_text, key, expected",
    [
        ("llm:\n  server:\n    ctx_size: big\n", "llm.server.ctx_size", "an integer"),
        ("llm:\n  auto_manage: 3\n", "llm.auto_manage", "true or false"),
        ("llm:\n  tool_protocol: xml\n", "llm.tool_protocol", "one of auto, native, json"),
        ("llm: 5\n", "llm", "a mapping"),
        ("llm:\n  server:\n    extra_args: -x\n", "llm.server.extra_args", "a list of strings"),
    ],
)
def test_wrong_type_names_key_file_and_type(tmp_path, yaml_text, key, expected):
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        config.load(bad, env={}, cwd=tmp_path)
    msg = str(err.value)
    assert f"'{key}'" in msg and str(bad) in msg and expected in msg


def test_precedence_cli_over_env_over_file_over_user(tmp_path):
    (tmp_path / "xdg" / "coder").mkdir(parents=True)
    (tmp_path / "xdg" / "coder" / "config.yaml").write_text(
        "llm:\n  sampling:\n    top_k: 1\n    temperature: 0.1\n    seed: 1\n"
    )
    extra = tmp_path / "extra.yaml"
    extra.write_text("llm:\n  sampling:\n    temperature: 0.3\n    seed: 2\n")
    env = {"CODER_LLM__SAMPLING__SEED": "3", "CODER_API_KEY": "k"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    cfg = config.load(extra, {"llm.sampling.temperature": 0.9}, env=env, cwd=tmp_path)
    assert cfg.llm.sampling.top_k == 1  # the user's config
    assert cfg.llm.sampling.seed == 3  # env over --config
    assert cfg.llm.sampling.temperature == 0.9  # CLI over all
    assert cfg.llm.api_key == "k"
    assert config.as_dict(cfg)["llm"]["api_key"] == REDACTED


def test_env_value_of_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load(None, env={"CODER_LLM__SERVER__CTX_SIZE": "lots"}, cwd=tmp_path)
    assert "llm.server.ctx_size" in str(err.value) and "environment" in str(err.value)


def test_relative_paths_in_a_config_file_are_anchored_to_it(tmp_path):
    sub = tmp_path / "proj"
    sub.mkdir()
    (sub / "c.yaml").write_text(
        "logging:\n  dir: mylogs\nllm:\n  server:\n    model_path: m.gguf\n"
    )
    cfg = config.load(sub / "c.yaml", env={}, cwd=tmp_path)
    assert cfg.logging.dir == str(sub / "mylogs")
    assert cfg.llm.server.model_path == str(sub / "m.gguf")


def test_cli_exit_code_2_for_bad_config(tmp_path):
    (tmp_path / ".coder").mkdir()
    (tmp_path / ".coder" / "config.yaml").write_text("agent:\n  max_step: 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "hi"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "agent.max_step" in proc.stderr and "config.yaml" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_yaml_on_off_is_accepted_for_flash_attn(tmp_path):
    (tmp_path / "c.yaml").write_text("llm:\n  server:\n    flash_attn: on\n")
    assert config.load(tmp_path / "c.yaml", env={}, cwd=tmp_path).llm.server.flash_attn == "on"
    (tmp_path / "c.yaml").write_text("llm:\n  server:\n    flash_attn: off\n")
    assert config.load(tmp_path / "c.yaml", env={}, cwd=tmp_path).llm.server.flash_attn == "off"


def test_workspace_in_a_config_file_is_relative_to_it(tmp_path):
    (tmp_path / "c.yaml").write_text("tools:\n  workspace: proj\n")
    cfg = config.load(tmp_path / "c.yaml", env={}, cwd="/")
    assert cfg.tools.workspace == str(tmp_path / "proj")


def test_flags_before_a_subcommand_are_kept():
    from coder.cli import build_parser

    args = build_parser().parse_args(
        ["--config", "F", "--base-url", "U", "export", "--format", "sft"]
    )
    assert (args.config, args.base_url) == ("F", "U")
    args = build_parser().parse_args(["server", "status", "--base-url", "V"])
    assert args.base_url == "V"


@pytest.mark.parametrize(
    "env, key",
    [
        ({"CODER_LOG_DIR": "/proc/nope/logs"}, "logging.dir"),
        ({"CODER_AGENT__SYSTEM_PROMPT": "/no/such/prompt.md"}, "agent.system_prompt"),
        ({"CODER_AGENT__TOOLS": "read_file teleport"}, "agent.tools"),
    ],
)
def test_unusable_paths_and_names_are_exit_2_naming_the_key(tmp_path, env, key):
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "hi"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and key in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_yaml_names_line_and_column(tmp_path):
    (tmp_path / "c.yaml").write_text("llm:\n  sampling: [1,\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1"):
        config.load(tmp_path / "c.yaml", env={}, cwd=tmp_path)


@pytest.mark.parametrize(
    "key, value",
    [("llm.sampling.temperature", -5.0), ("llm.sampling.max_tokens", 0), ("agent.max_steps", 0)],
)
def test_values_out_of_range_name_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config.load(None, {key: value}, env={}, cwd=tmp_path)


def test_a_directory_as_config_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        config.load(tmp_path, env={}, cwd=tmp_path)


def test_json_without_q_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "-q" in proc.stderr


def test_export_takes_a_log_directory_and_refuses_a_directory_as_output(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "coder-20261101.jsonl").write_text("garbage\n")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "coder", "export", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )

    # nothing to export: exit 1 with the reason, and no file
    none = run("--format", "sft", str(logs), "-o", str(tmp_path / "out.jsonl"))
    assert none.returncode == 1 and "no readable session (1 corrupt lines)" in none.stderr
    assert not (tmp_path / "out.jsonl").exists()
    bad = run("--format", "sft", str(logs), "-o", str(tmp_path))
    assert bad.returncode == 2 and "is a directory" in bad.stderr


def test_export_reads_a_directory_in_write_order(tmp_path):
    from coder.cli import log_paths

    names = ["coder-20261101.jsonl"] + [f"coder-20261101.{i}.jsonl" for i in (1, 2, 10)]
    for name in names:
        (tmp_path / name).write_text("")
    assert [p.name for p in log_paths([str(tmp_path)])] == names


def test_export_of_an_empty_directory_is_a_usage_error_not_the_log_dir(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "export", "--format", "sft", str(empty)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and f"no log files (*.jsonl) in {empty}" in proc.stderr


def test_a_failed_start_leaves_no_empty_log_file(tmp_path):
    env = dict(os.environ, CODER_LOG_DIR=str(tmp_path / "logs"))
    proc = subprocess.run(
        [sys.executable, "-m", "coder", "-q", "hi", "--no-auto-manage"]
        + ["--base-url", "http://127.0.0.1:9/v1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert list((tmp_path / "logs").glob("*.jsonl")) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("read_file,grep", ["read_file", "grep"]),
        ("read_file, grep ,", ["read_file", "grep"]),
        ("[read_file, grep]", ["read_file", "grep"]),
        ("read_file grep", ["read_file", "grep"]),
    ],
)
def test_list_settings_from_the_environment(text, expected):
    cfg = config.load(None, {}, env={"CODER_AGENT__TOOLS": text})
    assert cfg.agent.tools == expected
    cfg = config.load(None, {}, env={"CODER_LLM__SERVER__EXTRA_ARGS": '--lora "my file.gguf"'})
    assert cfg.llm.server.extra_args == ["--lora", "my file.gguf"]


def test_every_flag_of_every_command_has_help_text():
    import argparse

    from coder.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    walk(subparser, f"{name} {sub}")
            elif not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "coder")
    assert missing == []
