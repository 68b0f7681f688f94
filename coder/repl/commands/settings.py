"""/config: the config shown, or one key set for this session (and applied if live)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.text import Text

from coder import config as config_mod
from coder.config import yaml_inline
from coder.config.load import take_approval
from coder.runtime import offered_tools

LIVE_KEYS = (
    "llm.sampling.",
    "llm.tool_protocol",
    "agent.max_steps",
    "agent.tools",
    "tools.shell.",
    "tools.mode",
    "logging.logprobs",
    "repl.sessions_dir",
)


class SettingsCommands:
    """The /config command of `Commands` (a mode switch goes through /mode's)."""

    def cmd_config(self, arg: str) -> None:
        """/config [KEY [VALUE]]
        show the config, one key, or set a key for this session"""
        import yaml

        cfg = self.cfg
        key, _, value = arg.partition(" ")
        value = value.strip()
        if not key:
            data = config_mod.as_dict(cfg)
        elif not value:
            data = _redacted_value(key, config_mod.get_key(cfg, key), cfg)
        else:
            config_mod.set_config_text(cfg, key, value, check=offered_tools)
            shown = yaml_inline(_redacted_value(key, config_mod.get_key(cfg, key), cfg))
            live = key.startswith(LIVE_KEYS)
            self.say(
                f"{key} = {shown}"
                + ("" if live else "  (used from the next start; config.yaml is not changed)"),
                "green",
            )
            self._apply_config(key)  # and says what that changed (a mode switch)
            return
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()
        if text.endswith("\n..."):
            text = text[:-4].rstrip()
        self.out.print(Text(text))

    def complete_config(self) -> list[str]:
        return config_keys(self.cfg)

    def _apply_config(self, key: str) -> None:
        cfg, ctx = self.cfg, self.agent.tool_ctx
        if key in ("agent", "agent.tools"):  # offered from the agent's next call
            self.agent.tool_names = offered_tools(cfg, Path(ctx.workspace.root).resolve())
        notices = len(cfg.notices)
        take_approval(cfg, "/config", "mode" in key)  # the deprecated key, read as a mode
        for notice in cfg.notices[notices:]:
            self.say(notice, "yellow")
        if cfg.tools.mode != ctx.mode:
            self._switch_mode(cfg.tools.mode)
        ctx.shell_timeout = cfg.tools.shell.timeout
        ctx.max_output_bytes = cfg.tools.shell.max_output_bytes
        ctx.sandbox = cfg.tools.shell.sandbox


def config_keys(cfg: config_mod.Config) -> list[str]:
    """Every dotted key, sections too ("llm", "llm.sampling", "llm.sampling.seed" ...)."""
    out: list[str] = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            key = prefix + k
            out.append(key)
            if isinstance(v, dict):
                walk(v, key + ".")

    walk(config_mod.as_dict(cfg), "")
    return out


def _redacted_value(key: str, value: Any, cfg: config_mod.Config) -> Any:
    if key in ("llm", "llm.api_key") or key == "":
        data = config_mod.as_dict(cfg)
        return data["llm"] if key == "llm" else data["llm"]["api_key"]
    if key.split(".")[0] == "mcp":  # servers' env values are masked there
        data = config_mod.as_dict(cfg)
        for part in key.split("."):
            data = data[part]
        return data
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value
