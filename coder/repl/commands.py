"""The slash commands. Each is one `cmd_<name>(arg)` method of `Commands`: its
docstring's first line is its usage, the second its /help line, and the
`complete_<name>()` beside it (if any) lists what its argument may be."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from coder import agent as agent_mod
from coder import config as config_mod
from coder import modes, sessions
from coder.agent import Agent
from coder.chat import Stop
from coder.config import yaml_inline
from coder.config.load import take_approval
from coder.context import Budget, InUse, shed_context
from coder.plan import plan_from_json
from coder.repl.state import ReplState
from coder.runtime import Runtime, offered_tools
from coder.tools import MODES
from coder.tools.permissions import DESCRIPTIONS
from coder.tools.workspace import WorkspaceError

EXIT = "exit"
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
# stops where the model produced something worth a /good, /bad or /reward
RATABLE_STOPS = frozenset(
    (
        Stop.ANSWER,
        Stop.TRUNCATED,
        Stop.MAX_STEPS,
        Stop.REPEATED_CALL,
        Stop.INVALID_TOOL_CALL,
        Stop.EMPTY_ANSWER,
    )
)


COMPACT_PROMPT = (
    "Summarise our conversation so far for yourself, to go on with the work: what I asked, "
    "what you found and changed (files, functions, commands and their results), what is "
    "left to do. Be brief and concrete; no preamble."
)


class Commands:
    """Every slash command, on a runtime and a console (no prompt needed)."""

    def __init__(self, rt: Runtime, console: Console, state: ReplState | None = None) -> None:
        self.rt = rt
        self.cfg = rt.config
        self.out = console
        self.state = state if state is not None else ReplState()
        # how /plan runs a turn: the REPL sets its own (sink, Ctrl-C, autosave)
        self.run_turn: Callable[[str], agent_mod.TurnResult | None] = lambda text: (
            agent_mod.run_turn(self.agent, text, cancel=rt.cancel)
        )

    @classmethod
    def names(cls) -> list[str]:
        return [n[4:] for n in vars(cls) if n.startswith("cmd_")]

    def get(self, name: str) -> Callable[[str], Any] | None:
        return getattr(self, "cmd_" + name, None) if name in self.names() else None

    def usage(self, name: str) -> str:
        return inspect.cleandoc(getattr(self, "cmd_" + name).__doc__ or "").splitlines()[0]

    def help_line(self, name: str) -> str:
        lines = inspect.cleandoc(getattr(self, "cmd_" + name).__doc__ or "").splitlines()
        return lines[1] if len(lines) > 1 else ""

    def choices(self, name: str) -> list[str]:
        """What the argument of /name may be, for completion ([] when anything goes)."""
        complete = getattr(self, "complete_" + name, None) if name in self.names() else None
        return complete() if complete else []

    def run(self, name: str, arg: str) -> str | None:
        """Run /name arg; errors are reported, never raised. EXIT when the REPL should end."""
        fn = self.get(name.lower())
        if fn is None:
            close = difflib.get_close_matches(name.lower(), self.names(), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join('/' + c for c in close)}?" if close else ""
            self.say(f"unknown command /{name}{hint} (/help lists them)", "yellow")
            return None
        try:
            return fn(arg)
        except (sessions.SessionError, config_mod.ConfigError) as exc:
            self.say(str(exc), "red")
        except KeyboardInterrupt:
            self.say(f"/{name} interrupted", "yellow")
        except Exception as exc:  # a command must never take the REPL down
            self.say(f"/{name} failed: {type(exc).__name__}: {exc}", "red")
        return None

    # shorthands
    @property
    def agent(self) -> Agent:
        return self.rt.agent

    @property
    def sessions_dir(self) -> str:
        return self.cfg.repl.sessions_dir

    @property
    def workspace(self) -> str:
        return str(self.agent.tool_ctx.workspace.root)

    def say(self, message: str, style: str = "") -> None:
        self.out.print(Text(message, style=style), soft_wrap=True)

    def _table(self, rows: list[tuple[str, str]]) -> None:
        table = Table.grid(padding=(0, 2))
        for k, v in rows:
            table.add_row(Text(k, style="bold"), Text(v))
        self.out.print(table)

    # -- the commands, in /help order --------------------------------------------------

    def cmd_help(self, arg: str) -> None:
        """/help
        show the commands and keys"""
        self._table([(self.usage(name), self.help_line(name)) for name in self.names()])
        self.say(
            "Enter sends; Alt+Enter (or Esc then Enter) starts a new line; Tab completes "
            "commands and paths. Ctrl-C stops the answer or tool; Ctrl-C twice or Ctrl-D exits.",
            "dim",
        )

    def cmd_save(self, arg: str) -> None:
        """/save [NAME]
        save the conversation (default name: the current one, else a timestamp)"""
        path = self.rt.save_conversation(arg or self.state.session_name)
        self.state.session_name = path.stem
        n = _counted(self.agent.messages)
        self.say(f"saved {path.stem} ({n} messages) to {path}", "green")

    def complete_save(self) -> list[str]:
        return [s.name for s in sessions.list_sessions(self.sessions_dir)]

    def cmd_load(self, arg: str) -> None:
        """/load NAME
        load a saved conversation in place of this one"""
        if not arg:
            self.say("usage: /load NAME (/sessions lists them)", "yellow")
            return
        data = sessions.load(self.sessions_dir, arg)  # raises before anything changes
        messages = sessions.conversation(data, self.agent.messages[0])
        dropped = len(self.agent.messages) - 1
        before = self.agent.budget.last_prompt_tokens
        self.agent.messages[:] = messages
        self.agent.tool_ctx.plan = plan_from_json(data.get("plan"))  # checked by load
        self.agent.budget.last_prompt_tokens = None
        name = self.state.session_name = data.get("name") or arg
        self._record_reset(dropped, before, f"load {name}")
        users = [m for m in messages if m.get("role") == "user"]
        last = users[-1].get("content") if users else ""
        last = last.strip().splitlines()[0][:80] if isinstance(last, str) and last.strip() else ""
        self.say(
            f"loaded {name}: {_counted(messages)} messages, {len(users)} from you"
            + (f"; last: {last}" if last else ""),
            "green",
        )
        saved = {t.get("function", {}).get("name") for t in data.get("tools") or []}
        now = {t["function"]["name"] for t in self.agent.tools}
        if saved and saved != now:
            self.say("note: it was saved with a different tool set", "yellow")

    complete_load = complete_save

    def cmd_sessions(self, arg: str) -> None:
        """/sessions
        list saved conversations"""
        found = sessions.list_sessions(self.sessions_dir, self.workspace)
        if not found:
            self.say(f"no saved sessions in {self.sessions_dir}", "dim")
            return
        # name and date stay whole (/load takes the name); the first message gets the rest
        name_w = max(4, *(len(s.name) for s in found))
        first_w = self.out.width - name_w - len("2025-01-01 00:00") - len("messages") - 3 * 4
        table = Table(box=None, padding=(0, 2), show_edge=False, pad_edge=False)
        table.add_column("name", style="bold", no_wrap=True, min_width=name_w)
        table.add_column("saved", no_wrap=True, min_width=16)
        table.add_column("messages", no_wrap=True, justify="right")
        if first_w >= 12:
            table.add_column("first message", no_wrap=True, overflow="ellipsis", max_width=first_w)
        for s in found:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated)) if s.updated else "?"
            first = Text(f"({s.error})", style="red") if s.error else Text(s.first_user[:500])
            if s.workspace and s.workspace != self.workspace and not s.error:
                first = Text.assemble((f"[{Path(s.workspace).name}] ", "dim"), first)
            cells = [s.name, when, str(s.messages) if not s.error else "-", first]
            table.add_row(*cells[: len(table.columns)])
        self.out.print(table)

    def cmd_delete(self, arg: str) -> None:
        """/delete NAME
        delete a saved conversation"""
        if not arg:
            self.say("usage: /delete NAME", "yellow")
            return
        path = sessions.delete(self.sessions_dir, arg)
        if self.state.session_name == path.stem:
            self.state.session_name = None
        self.say(f"deleted {path.stem}", "green")

    complete_delete = complete_save

    def cmd_clear(self, arg: str) -> None:
        """/clear
        start over: forget the conversation (the system prompt stays)"""
        dropped = len(self.agent.messages) - 1
        before = self.agent.budget.last_prompt_tokens
        self.agent.clear()
        self.agent.budget.last_prompt_tokens = None
        self.state.session_name = None
        self._record_reset(dropped, before, "clear")
        self.say(f"cleared ({dropped} messages)", "green")

    def _record_reset(self, dropped: int, tokens_before: int | None, note: str) -> None:
        self.rt.recorder.compaction(
            turn=self.agent.turn,
            dropped_messages=dropped,
            tokens_before=tokens_before,
            tokens_after=self.agent.budget.estimate(self.agent.messages),
            note=note,
        )

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

    def cmd_tools(self, arg: str) -> None:
        """/tools
        list the tools the model can call"""
        asking = modes.asking(self.agent)
        rows = []
        for schema in self.agent.tools:
            name = schema["function"]["name"]
            desc = schema["function"].get("description") or ""  # short; cutting hits "e.g."
            rows.append((name, desc + (" [asks first]" if name in asking else "")))
        self._table(rows)
        self.say(f"{self.agent.tool_ctx.mode} mode (/mode shows what it offers and asks)", "dim")

    def cmd_mode(self, arg: str) -> None:
        """/mode [NAME]
        show the permission mode; NAME (read-only, ask, auto-edit, yes) switches this session to it"""
        if arg.strip():
            self._switch_mode(modes.check_mode(arg.strip()))
            return
        mode = self.agent.tool_ctx.mode
        asking = modes.asking(self.agent)
        self._table(
            [
                ("mode", f"{mode}: {DESCRIPTIONS[mode]}"),
                ("offered", f"{len(self.agent.tools)} tools (/tools lists them)"),
                ("ask first", ", ".join(asking) or "nothing"),
                ("modes", f"{', '.join(MODES)} (/mode NAME switches this session)"),
            ]
        )

    def complete_mode(self) -> list[str]:
        return list(MODES)

    def _switch_mode(self, mode: str) -> None:
        """/mode NAME, /config tools.mode NAME: switch, say what changed, tell the model."""
        change = modes.switch(self.agent, mode)
        first, *rest = change.lines()
        self.say(first, "green")
        for line in rest:
            self.say(line)
        if change.note:
            self.state.pending_notes.append(change.note)

    def cmd_mcp(self, arg: str) -> None:
        """/mcp
        the MCP servers (mcp.servers): state, process, tools"""
        host = self.rt.mcp
        if host is None:
            self.say("no MCP servers configured (mcp.servers in ~/.config/coder/config.yaml)")
            return
        from coder.mcp.tools import tool_name

        styles = {"ready": "green", "starting": "yellow", "stopped": "dim"}
        for server in host.servers.values():
            state = Text(str(server.state), style=styles.get(server.state, "red"))
            head = Text.assemble(
                (server.name, "bold"),
                "  ",
                state,
                f"  pid {server.pid}" if server.pid else "",
                f"  {'trusted' if server.spec.trusted else 'untrusted'}: "
                + modes.status(self.agent.tool_ctx.mode, "run", server.spec.trusted),
            )
            self.out.print(head)
            command = " ".join([server.spec.command, *server.spec.args])
            rows = [("command", command)]
            if server.error:
                rows.append(("error", server.error))
            if server.log_path:
                rows.append(("log", str(server.log_path)))
            if server.state == "ready":
                names = [tool_name(server.name, t.name) for t in server.tools]
                rows.append(("tools", ", ".join(names) or "none"))
            self._table([(f"  {k}", v) for k, v in rows])

    def cmd_stats(self, arg: str) -> None:
        """/stats
        tokens, context, prompt-cache hit rate, log writer counters"""
        st, b = self.state.stats, self.agent.budget
        rate = st.cache_hit_rate
        log = self.rt.logger.stats()
        self._table(
            [
                ("turns", f"{st.turns} ({st.model_calls} model calls)"),
                ("tokens", f"{st.prompt_tokens} prompt, {st.completion_tokens} completion"),
                ("context", _context_line(b.in_use(self.agent.messages), b.n_ctx)),
                (
                    "prompt cache",
                    f"{rate:.0%} hit ({st.cache_n} cached, {st.prompt_n} evaluated)"
                    if rate is not None
                    else "no data yet",
                ),
                (
                    "log",
                    f"{log['written']} written, {log['queued']} queued, "
                    f"{log['dropped']} dropped, {log['errors']} errors",
                ),
                ("log file", str(log.get("file") or "-")),
                ("session", self.rt.recorder.session_id),
            ]
        )

    def cmd_export(self, arg: str) -> None:
        """/export [FORMAT [FILE]]
        write this session's log as training data (format sft|openai|grpo|dpo|tokens)"""
        from coder import export

        parts = arg.split()
        fmt = parts[0] if parts else "sft"
        if fmt not in export.FORMATS:
            self.say(f"unknown format {fmt!r}; one of {', '.join(export.FORMATS)}", "yellow")
            return
        sid = self.rt.recorder.session_id
        log_dir = Path(self.rt.logger.dir)
        exports = log_dir / "exports"  # not the workspace: the model would list the files
        name = f"coder-{sid[:8]}-{fmt}.jsonl"
        out = exports / name
        if len(parts) > 1:
            if parts[1] == "-":  # the REPL's screen is not a data stream
                self.say("/export writes a file; `coder export -o -` writes to stdout", "yellow")
                return
            out = Path(parts[1]).expanduser()
            if out.is_dir() or parts[1].endswith("/"):
                out = out / name
        self.rt.logger.flush()
        # the log files of log_dir itself: earlier exports kept in exports/ are not read
        stats = export.export(None, fmt, out, session=sid, log_dir=log_dir)
        if stats.rows == 0:  # export writes no file then (and leaves an old one alone)
            self.say(
                f"nothing to export: this session has no {fmt} rows yet (no file written): "
                f"{stats.empty_reason(fmt)}",
                "yellow",
            )
            return
        left = stats.summary()
        self.say(f"exported {stats.rows} {fmt} rows of this session to {out}", "green")
        if left:
            self.say(left, "dim")

    def complete_export(self) -> list[str]:
        from coder.export import FORMATS

        return list(FORMATS)

    def cmd_good(self, arg: str) -> None:
        """/good
        rate the last answer good (reward 1.0)"""
        self._reward(1.0, "/good")

    def cmd_bad(self, arg: str) -> None:
        """/bad
        rate the last answer bad (reward 0.0, like a failed --verify)"""
        self._reward(0.0, "/bad")

    def cmd_reward(self, arg: str) -> None:
        """/reward N
        give the last answer a reward N (e.g. 0.5)"""
        try:
            value = float(arg)
        except ValueError:
            self.say("usage: /reward N, a number such as 1, 0.5 or -1", "yellow")
            return
        if not math.isfinite(value):
            self.say("the reward must be a finite number", "yellow")
            return
        self._reward(value, f"/reward {arg}")

    def _reward(self, value: float, note: str) -> None:
        if self.agent.turn == 0:
            self.say("nothing to rate yet: ask something first", "yellow")
            return
        last = self.state.last_result
        if last is not None and last.stop not in RATABLE_STOPS:
            self.say(f"the last turn has no answer to rate (it ended: {last.stop})", "yellow")
            return
        self.rt.recorder.reward(value, "user", note=note, turn=self.agent.turn)
        self.say(f"reward {value:g} for turn {self.agent.turn}", "green")

    def cmd_undo(self, arg: str) -> None:
        """/undo
        revert the last file change the agent made"""
        try:
            note = self.agent.tool_ctx.workspace.undo_last()
        except WorkspaceError as exc:  # e.g. the old file was too large to keep
            self.say(str(exc), "yellow")
            return
        if note is None:
            self.say("nothing to undo", "dim")
            return
        self.state.pending_notes.append(f"the user undid your last file edit ({note})")
        self.say(note, "green")

    def cmd_diff(self, arg: str) -> None:
        """/diff
        what the agent's file edits changed this session, as one diff"""
        text = session_diff(self.agent.tool_ctx.workspace)
        if not text:
            self.say("the agent has changed no file this session", "dim")
            return
        from rich.syntax import Syntax

        self.out.print(Syntax(text, "diff", theme="ansi_dark", word_wrap=True))
        self.say(
            "(edits by the file tools; what shell commands changed is not tracked: "
            "in a git repository, git diff shows everything)",
            "dim",
        )

    def cmd_add(self, arg: str) -> None:
        """/add PATH...
        pin files: the model sees their current content (sent again after each change)"""
        if not arg:
            self.say(
                "usage: /add PATH... (/drop unpins; @PATH in a message attaches once)", "yellow"
            )
            return
        ws = self.agent.tool_ctx.workspace
        for path in arg.split():
            try:
                rel = self.state.pinned.add(ws, path)
            except WorkspaceError as exc:
                self.say(f"not pinned: {exc}", "red")
                continue
            self.say(
                f"pinned {rel}: it goes with your next message, and again when it changes", "green"
            )

    def cmd_drop(self, arg: str) -> None:
        """/drop [PATH...]
        unpin files (all of them without a PATH)"""
        paths = arg.split() or [None]
        gone = [p for path in paths for p in self.state.pinned.drop(path)]
        if gone:
            self.say(f"unpinned {', '.join(gone)}", "green")
        else:
            pinned = ", ".join(self.state.pinned.sent) or "none"
            self.say(f"not pinned: {arg} (pinned: {pinned})", "yellow")

    def complete_drop(self) -> list[str]:
        return list(self.state.pinned.sent)

    def cmd_init(self, arg: str) -> None:
        """/init [--force]
        write a starting AGENTS.md from what coder detects in the project, for you to edit"""
        from coder.atomic import atomic_write
        from coder.instructions import load_instructions, starting_agents_md, user_dir
        from coder.project import detect

        ws = self.agent.tool_ctx.workspace
        path = ws.root / "AGENTS.md"
        if os.path.lexists(path) and arg.strip() != "--force":
            self.say(f"{path} exists: edit it, or /init --force to write it anew", "yellow")
            return
        atomic_write(path, starting_agents_md(detect(ws)).encode())
        self.rt.instructions = load_instructions(ws.root, user_dir())
        base = agent_mod.system_prompt(self.cfg)
        self.agent.messages[0] = {"role": "system", "content": base + self.rt.instructions.prompt()}
        self.say(f"wrote {path}: edit it; the model gets it from your next message", "green")

    def cmd_compact(self, arg: str) -> None:
        """/compact [FOCUS]
        summarise the conversation so far with the model; the system prompt and your last request stay"""
        agent = self.agent
        msgs = agent.messages
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        if len(users) < 2:
            self.say("nothing to compact: there is only one request so far", "dim")
            return
        last = users[-1]
        before = agent.budget.estimate(msgs)
        self.say("summarising the conversation...", "dim")
        summary = self._summary(msgs[:last], arg)
        if summary:
            kept = [
                msgs[0],
                {"role": "user", "content": f"[summary of our conversation so far]\n{summary}"},
                {"role": "assistant", "content": "Understood: I will go on from this summary."},
                *msgs[last:],
            ]
            dropped = len(msgs) - len(kept)
            note = f"compact: a {len(summary):,}-character summary"
        else:
            kept = list(msgs)
            shed_context(kept, agent.budget, max(1, before // 2), msgs[last])
            dropped = len(msgs) - len(kept)
            note = "compact: the summary failed, older output shed instead"
        msgs[:] = kept
        agent.budget.last_prompt_tokens = None
        after = agent.budget.estimate(msgs)
        self.rt.recorder.compaction(
            turn=agent.turn,
            dropped_messages=dropped,
            tokens_before=before,
            tokens_after=after,
            note=note,
        )
        self.say(f"{note}: ~{before:,} -> ~{after:,} tokens", "green" if summary else "yellow")

    def _summary(self, history: list[dict], focus: str) -> str | None:
        """The model's summary of `history`, or None when it gave none."""
        ask = COMPACT_PROMPT + (f" Focus on: {focus}" if focus else "")
        try:
            reply = self.rt.client.chat(
                [*history, {"role": "user", "content": ask}],
                [],
                sampling=dataclasses.replace(self.cfg.llm.sampling, temperature=0.2),
                protocol=self.cfg.llm.tool_protocol,
                cancel=self.rt.cancel,
            )
        except Exception as exc:  # LLMError, or anything the server did: shed instead
            self.say(f"the summary failed: {exc}", "yellow")
            return None
        text = (reply.message.get("content") or "").strip()
        if reply.error or reply.interrupted or not text:
            self.say(f"the summary failed: {reply.error or 'no text'}", "yellow")
            return None
        return text

    def cmd_plan(self, arg: str) -> None:
        """/plan [TEXT | --drop]
        plan TEXT first: numbered steps, then worked through as a checklist (no TEXT: show it)"""
        from coder import plan as plan_mod
        from coder.render import plan_panel

        if arg.strip() == "--drop":
            self.agent.tool_ctx.plan = None
            self.say("plan dropped (update_plan is no longer offered)", "green")
        elif arg.strip():
            plan_mod.run_planned(self.agent, arg.strip(), self.run_turn, self._show_plan)
        elif self.agent.tool_ctx.plan is None:
            self.say("no plan: /plan TEXT asks the model for one, then works through it", "dim")
        else:
            self.out.print(plan_panel(self.agent.tool_ctx.plan))

    def _show_plan(self, plan: Any, reply: str) -> None:
        from coder.render import plan_panel

        if plan is None:  # its text was shown as the turn's answer
            self.say("the reply has no numbered steps: going on without a checklist", "yellow")
        else:
            self.out.print(plan_panel(plan))

    def cmd_exit(self, arg: str) -> str:
        """/exit
        leave coder (Ctrl-D does too)"""
        return EXIT

    def cmd_quit(self, arg: str) -> str:
        """/quit
        leave coder (as /exit)"""
        return self.cmd_exit(arg)


def model_name(rt: Runtime) -> str:
    """The model file's name (an alias says less: a managed server is always "coder")."""
    props = getattr(rt.server, "props", None) or {}
    path = props.get("model_path") or rt.config.llm.server.model_path
    if path:
        return Path(path).name.removesuffix(".gguf")
    return str(props.get("model_alias") or rt.config.llm.server.alias)


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


def session_diff(workspace: Any) -> str:
    """A unified diff of every file the agent's tools wrote, from its content before the
    first edit of the session (as the undo journal kept it) to its content now."""
    first: dict[str, Any] = {}
    for edit in workspace.journal:
        first.setdefault(edit.path, edit)
    out: list[str] = []
    for path, edit in sorted(first.items()):
        if not edit.kept:
            out.append(f"# {path}: the file was too large to keep; no diff\n")
            continue
        now_path = workspace.root / path
        now = now_path.read_bytes() if now_path.is_file() else None
        if now == edit.before:
            continue
        if b"\0" in (edit.before or b"") or b"\0" in (now or b""):
            out.append(f"Binary file {path} changed\n")
            continue
        before = (edit.before or b"").decode("utf-8", "replace").splitlines(keepends=True)
        after = (now or b"").decode("utf-8", "replace").splitlines(keepends=True)
        lines = difflib.unified_diff(
            before,
            after,
            "/dev/null" if edit.before is None else f"a/{path}",
            "/dev/null" if now is None else f"b/{path}",
        )
        out.extend(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )
    return "".join(out)


def _context_line(used: InUse, n_ctx: int | None) -> str:
    """/stats' context row: the toolbar's figure (Budget.in_use), saying how it was got."""
    how = "in the last prompt" if used.measured else "estimated (no prompt measured yet)"
    return f"{used} of {n_ctx or '?'} tokens {how}"


def _counted(messages: list[dict]) -> int:
    """Messages as /save, /load, /clear and /sessions count them: the system prompt not."""
    return sum(m.get("role") != "system" for m in messages)
