"""The server's command line and environment, one builder for llama-server and the engine."""

from __future__ import annotations

import os
from pathlib import Path

from coder.config import Config, ConfigError
from coder.redact import REDACTED, without_secrets
from coder.server.endpoint import endpoint


def build_command(cfg: Config, program: list[str], model_path: str) -> list[str]:
    """llama-server flags from the config: each key maps to one flag."""
    s = cfg.llm.server
    ep = endpoint(cfg)
    cmd = [*program, "-m", model_path, "--host", s.host, "--port", str(ep.port)]
    cmd += ["-c", str(s.ctx_size), "-np", str(s.parallel), "--alias", s.alias]
    cmd += ["-fa", s.flash_attn, "--cache-ram", str(s.cache_ram_mib)]
    cmd += ["-b", str(s.batch_size), "-ub", str(s.ubatch_size)]
    cmd += ["--cache-type-k", s.cache_type_k, "--cache-type-v", s.cache_type_v]
    cmd += ["--jinja"] if s.jinja else ["--no-jinja"]
    template = s.chat_template_file or adapters_template(cfg)
    if template:
        cmd += ["--chat-template-file", template_path(template)]
    for path, scale in lora_adapters(cfg):
        cmd += ["--lora-scaled", path, f"{scale:g}"]
    if s.threads:
        cmd += ["-t", str(s.threads)]
    if s.n_gpu_layers is not None:
        cmd += ["-ngl", str(s.n_gpu_layers)]
    if s.n_cpu_moe is not None:
        cmd += ["--n-cpu-moe", str(s.n_cpu_moe)]
    if s.metrics:
        cmd += ["--metrics"]
    return cmd + list(s.extra_args)


def lora_adapters(cfg: Config) -> list[tuple[str, float]]:
    """llm.server.lora: each "FILE" (scale 1) or "FILE:SCALE", the file checked."""
    out = []
    for entry in cfg.llm.server.lora:
        path, _, scale = entry.rpartition(":")
        try:
            value = float(scale) if path else 1.0
        except ValueError:
            path, value = "", 1.0
        path = path or entry
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"llm.server.lora: no such adapter file: {path}")
        out.append((str(Path(path).expanduser().resolve()), value))
    return out


def adapters_tools(cfg: Config) -> list[str] | None:
    """The tool set an adapter coder trained was trained with (card.json `tools`)."""
    from coder.train.card import card_tools

    for path, _ in lora_adapters(cfg):
        tools = card_tools(Path(path))
        if tools:
            return tools
    return None


def adapters_template(cfg: Config) -> str | None:
    """The template an adapter coder trained was trained with (its card.json says), so
    the served format is the trained one; None when no adapter names one."""
    from coder.train.card import card_template

    for path, _ in lora_adapters(cfg):
        template = card_template(Path(path))
        if template:
            return template
    return None


API_KEY_ENV = "LLAMA_API_KEY"  # llama-server reads --api-key from it (common/arg.cpp)


def server_env(cfg: Config) -> dict[str, str]:
    """The server's environment, without any of coder's credentials: the api key reaches
    the server through a pipe (process.spawn), never its command line (every local user
    can read it with `ps`) nor its environment (/proc/PID/environ, for its whole life)."""
    return without_secrets(os.environ)


def template_path(name: str) -> str:
    """llm.server.chat_template_file: a path, or a template coder ships
    (`prompts/chatml-tools.jinja`, by name; also where a path anchored to a config file
    does not exist). A relative name is coder's own template first: a file of that name
    in the working directory (the workspace) must not replace it."""
    from coder import resources

    path = Path(name).expanduser()
    if path.is_absolute() and path.is_file():
        return str(path)
    for shipped in (f"prompts/{path.name}", path.name):
        try:
            return str(resources.path(shipped))
        except FileNotFoundError:
            pass
    if path.is_file():
        return str(path)
    raise ConfigError(f"llm.server.chat_template_file: no such file: {path}")


def redact(cmd: list[str]) -> list[str]:
    """The command line with the api key hidden (for logs and messages)."""
    out = list(cmd)
    for i, arg in enumerate(out[:-1]):
        if arg == "--api-key":
            out[i + 1] = REDACTED
    return out
