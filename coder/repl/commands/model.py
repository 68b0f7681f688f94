"""The model and what it works with: /model, /context, /project, /lora."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from coder import config as config_mod
from coder.config import yaml_inline
from coder.context import Budget
from coder.runtime import Runtime


class ModelCommands:
    """The model commands of `Commands`."""

    def cmd_model(self, arg: str) -> None:
        """/model [NAME]
        show the model; NAME (a path or part of a name `coder models` lists) switches to it"""
        if arg.strip():
            self._switch_model(arg.strip())
            return
        rt, cfg = self.rt, self.cfg
        props = getattr(rt.server, "props", None) or {}
        s = {k: yaml_inline(v) for k, v in dataclasses.asdict(cfg.llm.sampling).items()}
        self._table(
            [
                ("model", model_name(rt)),
                ("file", props.get("model_path") or cfg.llm.server.model_path or "?"),
                ("context", str(self.agent.budget.n_ctx or "?")),
                ("server", rt.client.base_url),
                (
                    "managed",
                    "started by coder" if getattr(rt.server, "managed", False) else "reused",
                ),
                ("tools", rt.client.resolve_protocol(cfg.llm.tool_protocol) + " protocol"),
                (
                    "sampling",
                    f"temperature {s['temperature']}, top_p {s['top_p']}, top_k {s['top_k']}, "
                    f"max_tokens {s['max_tokens']}, seed {s['seed']}",
                ),
            ]
        )

    def cmd_context(self, arg: str) -> None:
        """/context
        what the model sees besides the conversation: system prompt, instructions, size"""
        agent = self.agent
        system = agent.messages[0].get("content") or ""
        rows = [
            (
                "system prompt",
                f"{len(system):,} characters, ~{agent.budget.estimate([agent.messages[0]]):,} tokens",
            )
        ]
        for path, text in self.rt.instructions.files:
            rows.append(("instructions", f"{path} ({len(text):,} characters)"))
        if not self.rt.instructions.files:
            rows.append(
                (
                    "instructions",
                    "none (AGENTS.md or CODER.md in the workspace or the user config dir)",
                )
            )
        rows.append(("tools", f"{len(agent.tools)} offered"))
        used = agent.budget.estimate(agent.messages)
        rows.append(
            (
                "conversation",
                f"{len(agent.messages) - 1} messages, ~{used:,} tokens of {agent.budget.n_ctx or '?'}",
            )
        )
        self._table(rows)
        for note in self.rt.instructions.notices:
            self.say(note, "yellow")

    def complete_model(self) -> list[str]:
        from coder import models

        return [p.name for p in models.gguf_files(models.model_dirs(self.cfg.llm.model_dirs))]

    def _switch_model(self, name: str) -> None:
        """Restart the managed server on another GGUF; the conversation stays, the tool
        protocol and the context size are asked again, the log records the new model."""
        from coder import models
        from coder import server as srv
        from coder.runtime import model_identity

        rt = self.rt
        path = models.resolve(name, models.model_dirs(self.cfg.llm.model_dirs))
        serving = (rt.server.props or {}).get("model_path") or rt.server.model
        if not rt.server.managed:
            self.say(
                f"the server at {rt.client.base_url} was not started by this coder, so coder "
                f"never restarts it: it keeps serving {serving or 'its model'}. To use "
                f"{path.name}, stop that server (or pick another --base-url) and start coder "
                f"with --model {name}",
                "yellow",
            )
            return
        if not path.is_file():
            self.say(f"model file not found: {path}", "red")
            return
        if serving and Path(serving).resolve() == path.resolve():
            self.say(f"already serving {path.name}", "dim")
            return
        self.say(f"switching to {path.name}: restarting the server (the conversation stays)")
        try:
            srv.switch_model(
                rt.server, self.cfg, config_mod.log_dir(self.cfg), str(path), rt.notify
            )
        except srv.ServerError as exc:
            self.say(str(exc), "red")
        finally:  # a new model (or the old one back): ask the server again
            rt.client.forget_server()
            n_ctx = rt.client.context_size()
            self.agent.budget = Budget(n_ctx=n_ctx)  # another tokenizer: calibrate again
            rt.recorder.model_changed(model_identity(rt.server.props, self.cfg, n_ctx))
        protocol = rt.client.resolve_protocol(self.cfg.llm.tool_protocol)
        self.say(
            f"now serving {model_name(rt)} (context {n_ctx or '?'} tokens, {protocol} "
            "tool protocol)",
            "green",
        )

    def cmd_project(self, arg: str) -> None:
        """/project
        the workspace's languages, build system, test/lint/format commands and layout"""
        from coder.project import detect

        info = detect(self.agent.tool_ctx.workspace)

        def commands(found: list) -> str:
            return "\n".join(f"{c.command}  ({c.source})" for c in found) or "none found"

        self._table(
            [
                ("workspace", str(info.root)),
                (
                    "languages",
                    ", ".join(f"{lang} ({n})" for lang, n in info.languages[:8]) or "none found",
                ),
                ("build", ", ".join(b.name for b in info.build_systems) or "none found"),
                ("test", commands(info.test)),
                ("lint", commands(info.lint)),
                ("format", commands(info.format)),
                ("layout", " ".join(info.layout) or "(empty)"),
                *(("note", n) for n in info.notes),
            ]
        )

    def cmd_lora(self, arg: str) -> None:
        """/lora [ID|NAME SCALE]
        list the server's LoRA adapters; set one's scale for this session (0 turns it off)"""
        client = self.rt.client
        adapters = client.adapters or []
        if not adapters:
            self.say("the server has no LoRA adapters (start coder with --lora FILE)", "yellow")
            return
        parts = arg.split()
        if len(parts) == 2:
            which, scale = parts
            match = [
                a
                for a in adapters
                if which == str(a["id"]) or which == Path(a.get("path") or "").name
            ]
            try:
                value = float(scale)
            except ValueError:
                value = math.nan
            if not match or not math.isfinite(value):
                self.say(f"usage: {self.usage('lora')} (ID from /lora, SCALE a number)", "yellow")
                return
            match[0]["scale"] = value  # sent with each request: this session only
        elif parts:
            self.say(f"usage: {self.usage('lora')}", "yellow")
            return
        self._table([(f"{a['id']}", f"scale {a['scale']:g}  {a.get('path')}") for a in adapters])

    def complete_lora(self) -> list[str]:
        return [str(a["id"]) for a in self.rt.client.adapters or []]


def model_name(rt: Runtime) -> str:
    """The model file's name (an alias says less: a managed server is always "coder")."""
    props = getattr(rt.server, "props", None) or {}
    path = props.get("model_path") or rt.config.llm.server.model_path
    if path:
        return Path(path).name.removesuffix(".gguf")
    return str(props.get("model_alias") or rt.config.llm.server.alias)
