"""Interactive REPL: prompt-toolkit input, rich output, slash commands.

Enter sends, Alt+Enter (or Esc, Enter) inserts a newline, a paste arrives whole
(bracketed paste). Ctrl-C during a turn cancels the generation or the running
tool and returns to the prompt; Ctrl-C twice at an empty prompt, or Ctrl-D,
exits. Each slash command is one `cmd_<name>` method of `Commands`; its
docstring's first line is its /help line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from coder import agent as agent_mod
from coder import config as config_mod
from coder import sessions
from coder.log import list_log_files
from coder.render import RichSink, markdown
from coder.tools.workspace import WorkspaceError

EXIT = "exit"
MAX_HISTORY_ENTRY = 64 * 1024  # longer inputs (big pastes) stay out of the history file
LIVE_KEYS = (
    "llm.sampling.",
    "llm.tool_protocol",
    "agent.max_steps",
    "agent.tools",
    "tools.shell.",
    "logging.logprobs",
    "repl.sessions_dir",
)
# stops where the model produced something worth a /good, /bad or /reward
RATABLE_STOPS = frozenset(
    ("answer", "truncated", "max_steps", "repeated_call", "invalid_tool_call", "empty_answer")
)
_COMMAND_RE = re.compile(r"^/([A-Za-z][\w-]*)(?:\s+(.*))?$", re.S)
_PATH_WORD = re.compile(r"[\w./~+-]*$")


# -- statistics ------------------------------------------------------------------------


@dataclass
class Stats:
    """Session totals for the toolbar and /stats, fed by every model call."""

    model_calls: int = 0
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_n: int = 0  # prompt tokens the server took from its cache
    prompt_n: int = 0  # prompt tokens it had to evaluate

    @property
    def cache_hit_rate(self) -> float | None:
        total = self.cache_n + self.prompt_n
        return self.cache_n / total if total else None

    def observe_call(self, usage: dict | None, timings: dict | None) -> None:
        self.model_calls += 1
        usage = usage or {}
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)
        if timings:
            self.cache_n += int(timings.get("cache_n") or 0)
            self.prompt_n += int(timings.get("prompt_n") or 0)


# -- input -----------------------------------------------------------------------------


class _History(FileHistory):
    """FileHistory that skips huge entries and survives an unwritable file."""

    def __init__(self, filename: str, on_error: Callable[[str], None]) -> None:
        super().__init__(filename)
        self._on_error = on_error
        self._failed = False

    def load_history_strings(self) -> Iterable[str]:
        try:
            yield from super().load_history_strings()
        except OSError:
            return

    def store_string(self, string: str) -> None:
        if len(string) > MAX_HISTORY_ENTRY or self._failed:
            return
        try:
            super().store_string(string)
        except OSError as exc:
            self._failed = True
            self._on_error(f"history not saved ({self.filename}: {exc.strerror or exc})")


def open_history(path: str, on_error: Callable[[str], None]) -> History:
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        on_error(f"history kept in memory only: cannot write {p} ({exc.strerror or exc})")
        return InMemoryHistory()
    return _History(str(p), on_error)


class ReplCompleter(Completer):
    """Slash commands and their arguments; file paths (relative to the workspace) on Tab."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl

    def get_completions(self, document: Document, complete_event: Any) -> Iterable[Completion]:
        text = document.text_before_cursor
        if text.startswith("/") and "\n" not in text:
            yield from self._command_completions(text)
            return
        m = _PATH_WORD.search(text)
        word = m.group(0) if m else ""
        if word or complete_event.completion_requested:
            yield from self._paths(word)

    def _command_completions(self, text: str) -> Iterable[Completion]:
        cmds = self.repl.commands
        if " " not in text:
            for name, help_line in cmds.help_lines().items():
                if name.startswith(text[1:]):
                    yield Completion("/" + name, -len(text), display_meta=help_line)
            return
        name, _, arg = text[1:].partition(" ")
        if " " in arg:
            return
        choices: list[str] = []
        if name in ("load", "delete", "save"):
            choices = [s.name for s in sessions.list_sessions(self.repl.sessions_dir)]
        elif name == "config":
            choices = config_keys(self.repl.cfg)
        elif name == "export":
            from coder.export import FORMATS

            choices = list(FORMATS)
        for c in choices:
            if c.startswith(arg):
                yield Completion(c, -len(arg))

    def _paths(self, word: str) -> Iterable[Completion]:
        root = self.repl.root
        head, _, prefix = word.rpartition("/")
        base = (root / head).resolve() if head else root
        if not base.is_relative_to(root) or not base.is_dir():
            return
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            return
        n = 0
        for e in entries:
            if not e.name.startswith(prefix) or (e.name.startswith(".") and not prefix):
                continue
            is_dir = e.is_dir()
            shown = e.name + ("/" if is_dir else "")
            yield Completion((head + "/" if head else "") + shown, -len(word), display=shown)
            n += 1
            if n >= 200:
                return


def config_keys(cfg: config_mod.Config) -> list[str]:
    out: list[str] = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            key = prefix + k
            out.append(key)
            if isinstance(v, dict):
                walk(v, key + ".")

    walk(config_mod.as_dict(cfg), "")
    return out


# -- slash commands --------------------------------------------------------------------


class Commands:
    """Every slash command: a `cmd_<name>(arg)` method whose docstring is its /help line."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl

    @classmethod
    def names(cls) -> list[str]:
        return [n[4:] for n in vars(cls) if n.startswith("cmd_")]

    def help_lines(self) -> dict[str, str]:
        return {
            n: (getattr(self, "cmd_" + n).__doc__ or "").strip().splitlines()[0]
            for n in self.names()
        }

    def get(self, name: str) -> Callable[[str], Any] | None:
        return getattr(self, "cmd_" + name, None) if name in self.names() else None

    # shorthands
    @property
    def out(self) -> Console:
        return self.repl.console

    @property
    def rt(self) -> Any:
        return self.repl.rt

    @property
    def agent(self) -> agent_mod.Agent:
        return self.repl.rt.agent

    def say(self, message: str, style: str = "") -> None:
        self.out.print(Text(message, style=style), soft_wrap=True)

    # -- the commands, in /help order --------------------------------------------------

    def cmd_help(self, arg: str) -> None:
        """show the commands and keys"""
        table = Table.grid(padding=(0, 2))
        for name, line in self.help_lines().items():
            usage = "/" + name + (" " + USAGE[name] if name in USAGE else "")
            table.add_row(Text(usage, style="bold"), Text(line))
        self.out.print(table)
        self.say(
            "Enter sends; Alt+Enter (or Esc then Enter) starts a new line; Tab completes "
            "commands and paths. Ctrl-C stops the answer or tool; Ctrl-C twice or Ctrl-D exits.",
            "dim",
        )

    def cmd_save(self, arg: str) -> None:
        """save the conversation (default name: the current one, else a timestamp)"""
        name = arg or self.repl.session_name or time.strftime("session-%Y%m%d-%H%M%S")
        path = sessions.save(
            self.repl.sessions_dir,
            name,
            self.agent.messages,
            self.agent.tools,
            config_mod.as_dict(self.repl.cfg),
        )
        self.repl.session_name = path.stem
        self.say(f"saved {path.stem} ({len(self.agent.messages)} messages) to {path}", "green")

    def cmd_load(self, arg: str) -> None:
        """load a saved conversation in place of this one"""
        if not arg:
            self.say("usage: /load NAME (/sessions lists them)", "yellow")
            return
        data = sessions.load(self.repl.sessions_dir, arg)  # raises before anything changes
        messages = data["messages"]
        if messages[0].get("role") != "system":
            messages.insert(0, dict(self.agent.messages[0]))
        dropped = len(self.agent.messages) - 1
        before = self.agent.budget.last_prompt_tokens
        self.agent.messages[:] = messages
        self.agent.budget.last_prompt_tokens = None
        self.repl.session_name = data.get("name") or arg
        self.rt.recorder.compaction(
            turn=self.agent.turn,
            dropped_messages=dropped,
            tokens_before=before,
            tokens_after=self.agent.budget.estimate(self.agent.messages),
            note=f"load {self.repl.session_name}",
        )
        users = [m for m in messages if m.get("role") == "user"]
        last = users[-1].get("content") if users else ""
        last = last.strip().splitlines()[0][:80] if isinstance(last, str) and last.strip() else ""
        self.say(
            f"loaded {self.repl.session_name}: {len(messages)} messages, {len(users)} from you"
            + (f"; last: {last}" if last else ""),
            "green",
        )
        saved = {t.get("function", {}).get("name") for t in data.get("tools") or []}
        now = {t["function"]["name"] for t in self.agent.tools}
        if saved and saved != now:
            self.say("note: it was saved with a different tool set", "yellow")

    def cmd_sessions(self, arg: str) -> None:
        """list saved conversations"""
        found = sessions.list_sessions(self.repl.sessions_dir)
        if not found:
            self.say(f"no saved sessions in {self.repl.sessions_dir}", "dim")
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
            cells = [s.name, when, str(s.messages) if not s.error else "-", first]
            table.add_row(*cells[: len(table.columns)])
        self.out.print(table)

    def cmd_delete(self, arg: str) -> None:
        """delete a saved conversation"""
        if not arg:
            self.say("usage: /delete NAME", "yellow")
            return
        path = sessions.delete(self.repl.sessions_dir, arg)
        if self.repl.session_name == path.stem:
            self.repl.session_name = None
        self.say(f"deleted {path.stem}", "green")

    def cmd_clear(self, arg: str) -> None:
        """start over: forget the conversation (the system prompt stays)"""
        dropped = len(self.agent.messages) - 1
        before = self.agent.budget.last_prompt_tokens
        self.agent.clear()
        self.agent.budget.last_prompt_tokens = None
        self.repl.session_name = None
        self.rt.recorder.compaction(
            turn=self.agent.turn,
            dropped_messages=dropped,
            tokens_before=before,
            tokens_after=self.agent.budget.estimate(self.agent.messages),
            note="clear",
        )
        self.say(f"cleared ({dropped} messages)", "green")

    def cmd_config(self, arg: str) -> None:
        """show the config, one key, or set a key for this session"""
        import yaml

        cfg = self.repl.cfg
        key, _, value = arg.partition(" ")
        value = value.strip()
        if not key:
            data = config_mod.as_dict(cfg)
        elif not value:
            current = config_mod.get_key(cfg, key)
            data = _redacted_value(key, current, cfg)
        else:
            set_config_text(cfg, key, value)
            self._apply_config(key)
            shown = yaml_inline(_redacted_value(key, config_mod.get_key(cfg, key), cfg))
            live = key.startswith(LIVE_KEYS)
            self.say(
                f"{key} = {shown}"
                + ("" if live else "  (used from the next start; config.yaml is not changed)"),
                "green",
            )
            return
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()
        if text.endswith("\n..."):
            text = text[:-4].rstrip()
        self.out.print(Text(text))

    def _apply_config(self, key: str) -> None:
        from coder.runtime import offered_tools

        cfg, ctx = self.repl.cfg, self.agent.tool_ctx
        if key in ("agent", "agent.tools"):  # offered from the agent's next call
            self.agent.tool_names = offered_tools(cfg, self.repl.root)
        ctx.approval = cfg.tools.shell.approval
        ctx.shell_timeout = cfg.tools.shell.timeout
        ctx.max_output_bytes = cfg.tools.shell.max_output_bytes

    def cmd_model(self, arg: str) -> None:
        """show the model, its server and the sampling settings"""
        rt, cfg = self.rt, self.repl.cfg
        props = getattr(rt.server, "props", None) or {}
        s = {k: yaml_inline(v) for k, v in dataclasses.asdict(cfg.llm.sampling).items()}
        rows = [
            ("model", self.repl.model_name()),
            ("file", props.get("model_path") or cfg.llm.server.model_path or "?"),
            ("context", str(self.agent.budget.n_ctx or rt.client.context_size() or "?")),
            ("server", rt.client.base_url),
            ("managed", "started by coder" if getattr(rt.server, "managed", False) else "reused"),
            ("tools", rt.client.resolve_protocol(cfg.llm.tool_protocol) + " protocol"),
            (
                "sampling",
                f"temperature {s['temperature']}, top_p {s['top_p']}, top_k {s['top_k']}, "
                f"max_tokens {s['max_tokens']}, seed {s['seed']}",
            ),
        ]
        table = Table.grid(padding=(0, 2))
        for k, v in rows:
            table.add_row(Text(k, style="bold"), Text(str(v)))
        self.out.print(table)

    def cmd_tools(self, arg: str) -> None:
        """list the tools the model can call"""
        from coder import tools as toolbox

        approval = self.agent.tool_ctx.approval
        table = Table.grid(padding=(0, 2))
        for schema in self.agent.tools:
            name = schema["function"]["name"]
            desc = schema["function"].get("description") or ""  # short; cutting hits "e.g."
            tool = toolbox.REGISTRY.get(name)
            note = f" [approval: {approval}]" if tool is not None and tool.needs_approval else ""
            table.add_row(Text(name, style="bold"), Text(desc + note))
        self.out.print(table)

    def cmd_stats(self, arg: str) -> None:
        """tokens, context, prompt-cache hit rate, log writer counters"""
        st, b = self.repl.stats, self.agent.budget
        rate = st.cache_hit_rate
        log = self.rt.logger.stats()
        rows = [
            ("turns", f"{st.turns} ({st.model_calls} model calls)"),
            ("tokens", f"{st.prompt_tokens} prompt, {st.completion_tokens} completion"),
            (
                "context",
                f"{b.last_prompt_tokens or 0} of {b.n_ctx or '?'} tokens in the last prompt",
            ),
            (
                "prompt cache",
                f"{rate:.0%} hit ({st.cache_n} cached, {st.prompt_n} evaluated)"
                if rate is not None
                else "no data yet",
            ),
            (
                "log",
                f"{log['written']} written, {log['queued']} queued, {log['dropped']} dropped, "
                f"{log['errors']} errors",
            ),
            ("log file", str(log.get("file") or "-")),
            ("session", self.rt.recorder.session_id),
        ]
        table = Table.grid(padding=(0, 2))
        for k, v in rows:
            table.add_row(Text(k, style="bold"), Text(v))
        self.out.print(table)

    def cmd_export(self, arg: str) -> None:
        """write this session's log as training data (format sft|openai|grpo|dpo)"""
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
            out = Path(parts[1]).expanduser()
            if out.is_dir() or parts[1].endswith("/"):
                out = out / name
        self.rt.logger.flush()
        # the logs themselves, not earlier exports kept under the log directory
        logs = [p for p in list_log_files(log_dir) if not p.is_relative_to(exports)]
        rows = export.export(logs, fmt, out, session=sid).rows if logs else 0
        if rows == 0:
            with contextlib.suppress(OSError):
                out.unlink()
            self.say(f"nothing to export: this session has no {fmt} rows yet (no file written)",
                     "yellow")  # fmt: skip
            return
        self.say(f"exported {rows} {fmt} rows of this session to {out}", "green")

    def cmd_good(self, arg: str) -> None:
        """rate the last answer good (reward 1.0)"""
        self._reward(1.0, "/good")

    def cmd_bad(self, arg: str) -> None:
        """rate the last answer bad (reward 0.0, like a failed --verify)"""
        self._reward(0.0, "/bad")

    def cmd_reward(self, arg: str) -> None:
        """give the last answer a reward N (e.g. 0.5)"""
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
        last = self.repl.last_result
        if last is not None and last.stop not in RATABLE_STOPS:
            self.say(f"the last turn has no answer to rate (it ended: {last.stop})", "yellow")
            return
        self.rt.recorder.reward(value, "user", note=note, turn=self.agent.turn)
        self.say(f"reward {value:g} for turn {self.agent.turn}", "green")

    def cmd_undo(self, arg: str) -> None:
        """revert the last file change the agent made"""
        try:
            note = self.agent.tool_ctx.workspace.undo_last()
        except WorkspaceError as exc:  # e.g. the old file was too large to keep
            self.say(str(exc), "yellow")
            return
        if note is None:
            self.say("nothing to undo", "dim")
            return
        self.repl.pending_notes.append(f"the user undid your last file edit ({note})")
        self.say(note, "green")

    def cmd_exit(self, arg: str) -> str:
        """leave coder (Ctrl-D does too)"""
        return EXIT


USAGE = {
    "save": "[NAME]",
    "load": "NAME",
    "delete": "NAME",
    "config": "[KEY [VALUE]]",
    "export": "[FORMAT [FILE]]",
    "reward": "N",
}


def set_config_text(cfg: config_mod.Config, key: str, text: str) -> None:
    """/config KEY VALUE: VALUE is YAML (`[a, b]`, `null`, `0.7`); a list may also be
    written `a,b` or `a b`. Nothing changes unless the whole config stays valid."""
    import copy

    import yaml

    from coder.runtime import offered_tools

    config_mod.get_key(cfg, key)  # an unknown key fails here, naming it
    try:
        value: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if value is None and text.strip().lower() not in ("null", "~", "none"):
        value = text  # e.g. "#abc": a YAML comment, not a null
    if isinstance(value, str) and _is_list_key(cfg, key):
        value = [w for w in re.split(r"[,\s]+", value) if w]

    def apply(target: config_mod.Config) -> None:
        try:
            config_mod.set_key(target, key, value, "/config", from_text=isinstance(value, str))
        except config_mod.ConfigError:
            if isinstance(value, str | list | dict):
                raise
            # a string key given e.g. 123 or true: take the text as written
            config_mod.set_key(target, key, text, source="/config", from_text=True)

    trial = copy.deepcopy(cfg)
    apply(trial)
    config_mod.check_ranges(trial)
    offered_tools(trial)
    apply(cfg)


def _is_list_key(cfg: config_mod.Config, key: str) -> bool:
    import typing

    *parents, last = key.split(".")
    obj: Any = cfg
    for part in parents:
        obj = getattr(obj, part)
    if not hasattr(obj, "__dataclass_fields__"):
        return False
    hint = typing.get_type_hints(type(obj)).get(last)
    return any(typing.get_origin(h) is list for h in (hint, *typing.get_args(hint)))


def yaml_inline(value: Any) -> str:
    """A value as YAML writes it on one line: null, true, [a, b], not Python's None."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 16)
    return text.strip().removesuffix("...").strip()


def _redacted_value(key: str, value: Any, cfg: config_mod.Config) -> Any:
    if key in ("llm", "llm.api_key") or key == "":
        data = config_mod.as_dict(cfg)
        return data["llm"] if key == "llm" else data["llm"]["api_key"]
    if hasattr(value, "__dataclass_fields__"):
        return dataclasses.asdict(value)
    return value


# -- the REPL --------------------------------------------------------------------------


class Repl:
    def __init__(
        self,
        rt: Any,
        console: Console,
        *,
        input: Any = None,  # noqa: A002  (prompt-toolkit's name; tests pass a pipe)
        output: Any = None,
        history: History | None = None,
        sink: RichSink | None = None,
    ) -> None:
        self.rt = rt
        self.cfg = rt.config
        self.console = console
        self.input, self.output = input, output
        self.root = Path(rt.agent.tool_ctx.workspace.root).resolve()
        self.sink = sink or RichSink(console, workspace_root=self.root)
        self.stats = Stats()
        self.commands = Commands(self)
        self.session_name: str | None = None
        self.pending_notes: list[str] = []
        self.last_result: agent_mod.TurnResult | None = None  # of the last turn run
        self._ctrl_c_armed = False
        self._yes_no: PromptSession | None = None
        if rt.agent.budget.n_ctx is None:  # the toolbar shows it before the first turn
            with contextlib.suppress(Exception):
                rt.agent.budget.n_ctx = rt.client.context_size()
        self.session: PromptSession = PromptSession(
            history=history or open_history(self.cfg.repl.history_file, self.notify),
            input=input,
            output=output,
            multiline=True,
            key_bindings=self._key_bindings(),
            completer=ReplCompleter(self),
            complete_while_typing=Condition(self._typing_command),
            bottom_toolbar=self.toolbar,
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
            enable_open_in_editor=False,
        )

    @property
    def sessions_dir(self) -> str:
        return self.cfg.repl.sessions_dir

    # -- pieces --------------------------------------------------------------------------

    def _typing_command(self) -> bool:
        text = self.session.default_buffer.text
        return text.startswith("/") and "\n" not in text

    def _key_bindings(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("enter")
        def _send(event: Any) -> None:
            buf = event.current_buffer
            state = buf.complete_state
            if state is not None and state.current_completion is not None:
                buf.apply_completion(state.current_completion)
                return
            buf.validate_and_handle()

        @kb.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        @kb.add("c-c")
        def _interrupt(event: Any) -> None:
            buf = event.current_buffer
            if buf.text:
                buf.reset()  # drop the line, stay at the prompt
                self._ctrl_c_armed = False
            else:
                event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

        return kb

    def model_name(self) -> str:
        """The model file's name (an alias says less: a managed server is always "coder")."""
        props = getattr(self.rt.server, "props", None) or {}
        path = props.get("model_path") or self.cfg.llm.server.model_path
        if path:
            return Path(path).name.removesuffix(".gguf")
        return str(props.get("model_alias") or self.cfg.llm.server.alias)

    def toolbar(self) -> str:
        b = self.rt.agent.budget
        used = b.last_prompt_tokens
        shown = str(used)
        if used is None:  # before the first call, or after /clear, /load: an estimate
            used = b.estimate(self.rt.agent.messages) if len(self.rt.agent.messages) > 1 else 0
            shown = f"~{used}" if used else "0"
        ctx = f"ctx {shown}/{b.n_ctx or '?'}"
        if b.n_ctx:
            ctx += f" ({used / b.n_ctx:.0%})"
        rate = self.stats.cache_hit_rate
        cache = f"cache {rate:.0%}" if rate is not None else "cache -"
        parts = [self.model_name(), ctx, cache]
        if self.session_name:
            parts.append(self.session_name)
        return " " + " | ".join(parts) + " "

    def notify(self, message: str) -> None:
        """Show a message; from a background thread while the prompt runs, above it."""
        app = self.session.app if hasattr(self, "session") else None
        if (
            app is not None
            and app.is_running
            and app.loop is not None
            and threading.current_thread() is not threading.main_thread()
        ):
            app.loop.call_soon_threadsafe(
                lambda: run_in_terminal(lambda: self.sink.notice(message))
            )
        else:
            self.sink.notice(message)

    # -- tool approval ---------------------------------------------------------------

    def approve(self, name: str, what: str) -> bool:
        """y/n before run_shell or git_commit (tools.shell.approval: ask)."""
        with self.sink.pause():
            self.console.print(
                Panel(Text(what), title=f"{name} wants to run", title_align="left", expand=False,
                      border_style="yellow")
            )  # fmt: skip
            if self._yes_no is None:
                self._yes_no = PromptSession(
                    input=self.input, output=self.output, history=InMemoryHistory()
                )
            try:
                answer = self._yes_no.prompt("allow? [y/N] ")
            except (KeyboardInterrupt, EOFError):
                self.rt.cancel.set()  # Ctrl-C here cancels the whole turn
                return False
        return answer.strip().lower() in ("y", "yes")

    # -- main loop -------------------------------------------------------------------

    def banner(self) -> None:
        self.console.print(
            Text.assemble(
                ("coder", "bold"),
                f" · {self.model_name()} · workspace {self.root}\n",
                ("/help for commands · Alt+Enter for a new line · Ctrl-D to exit", "dim"),
            )
        )

    def run(self) -> int:
        while True:
            try:
                text = self.session.prompt("> ")
            except KeyboardInterrupt:
                if self._ctrl_c_armed:
                    return 0
                self._ctrl_c_armed = True
                self.console.print(Text("(Ctrl-C again or Ctrl-D to exit)", style="dim"))
                continue
            except EOFError:
                return 0
            self._ctrl_c_armed = False
            if self.handle(text) == EXIT:
                return 0

    def handle(self, text: str) -> str | None:
        """One submitted input: a slash command or a request for the agent."""
        if not text.strip():
            return None
        m = _COMMAND_RE.match(text.strip())
        if m:
            return self.command(m.group(1), (m.group(2) or "").strip())
        self.turn(text)
        return None

    def command(self, name: str, arg: str) -> str | None:
        fn = self.commands.get(name.lower())
        if fn is None:
            close = difflib.get_close_matches(name.lower(), self.commands.names(), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join('/' + c for c in close)}?" if close else ""
            self.console.print(
                Text(f"unknown command /{name}{hint} (/help lists them)", style="yellow")
            )
            return None
        try:
            return fn(arg)
        except (sessions.SessionError, config_mod.ConfigError) as exc:
            self.console.print(Text(str(exc), style="red"), soft_wrap=True)
        except KeyboardInterrupt:
            self.console.print(Text(f"/{name} interrupted", style="yellow"))
        except Exception as exc:  # a command must never take the REPL down
            self.console.print(
                Text(f"/{name} failed: {type(exc).__name__}: {exc}", style="red"), soft_wrap=True
            )
        return None

    def too_big(self, text: str) -> str | None:
        """Why `text` cannot be sent (it alone would overflow the context), or None."""
        agent = self.rt.agent
        b = agent.budget
        if b.n_ctx is None:
            b.n_ctx = self.rt.client.context_size()
        limit = b.prompt_limit(self.cfg.llm.sampling.max_tokens)
        if limit is None:
            return None
        need = b.estimate([agent.messages[0], {"role": "user", "content": text}])
        if need <= limit:
            return None
        return (
            f"not sent: this message is about {need:,} tokens, more than the {limit:,} the "
            f"model's context ({b.n_ctx:,} tokens) leaves for a prompt."
        )

    def keep_unsent(self, text: str) -> str:
        where = Path(self.cfg.repl.history_file).expanduser().parent / "unsent"
        path = where / time.strftime("%Y%m%d-%H%M%S.txt")
        try:
            sessions.atomic_write(path, text.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            return (
                f"Could not keep a copy ({exc.strerror or exc}); it is not in the history either."
            )
        return (
            f"Your text is kept in {path}; put what matters into a workspace file and ask "
            "about that file instead."
        )

    def turn(self, text: str) -> agent_mod.TurnResult | None:
        problem = self.too_big(text)
        if problem:
            self.console.print(Text(f"{problem} {self.keep_unsent(text)}", style="yellow"),
                               soft_wrap=True)  # fmt: skip
            self.last_result = agent_mod.TurnResult(answer="", stop="too_long", error=problem)
            return None
        if self.pending_notes:
            text = "".join(f"[note: {n}]\n" for n in self.pending_notes) + text
            self.pending_notes.clear()
        rt = self.rt
        rt.cancel.clear()
        self.sink.start()
        restore = self._install_sigint()
        result: agent_mod.TurnResult
        try:
            result = agent_mod.run_turn(rt.agent, text, self.sink, rt.cancel)
        except KeyboardInterrupt:
            result = agent_mod.TurnResult(answer="", stop="interrupted")
        finally:
            restore()
            self.sink.finish()
            rt.cancel.clear()
        self.last_result = result
        self.stats.turns += 1
        for call in result.calls:
            self.stats.observe_call(call["usage"], call["timings"])
        if result.stop in ("answer", "truncated") and result.answer and not self.sink.streamed:
            self.console.print(markdown(result.answer))
        if result.stop == "truncated":
            # the agent may have said so already (a notice naming the key)
            if not any("max_tokens" in n for n in self.sink.notices):
                self.console.print(Text("(cut at llm.sampling.max_tokens)", style="yellow"))
        elif result.stop == "empty_answer":
            self.console.print(Text("(empty answer)", style="dim"))
        elif result.stop == "interrupted":
            self.console.print(Text("interrupted", style="yellow"))
        elif result.stop in ("error", "too_long"):
            self.console.print(Text(f"error: {result.error}", style="red"), soft_wrap=True)
        elif result.stop == "invalid_tool_call":
            self.console.print(
                Text("the model's tool call could not be read twice; try rephrasing", "yellow")
            )
        return result

    def _install_sigint(self) -> Callable[[], None]:
        """During a turn Ctrl-C cancels: the first press sets runtime.cancel (and breaks a
        blocking read from the model), a second one interrupts whatever runs."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_sigint(signum: int, frame: Any) -> None:
            if self.rt.cancel.is_set():
                raise KeyboardInterrupt
            self.rt.cancel.set()
            if self.sink.phase == "model":
                raise KeyboardInterrupt  # the client turns this into an interrupted reply

        previous = signal.signal(signal.SIGINT, on_sigint)
        return lambda: signal.signal(signal.SIGINT, previous)


def main(cfg: config_mod.Config, args: Any) -> int:
    from coder.runtime import open_runtime

    console = Console(highlight=False)
    holder: dict[str, Repl] = {}

    def approve(name: str, what: str) -> bool:
        repl = holder.get("repl")
        return repl.approve(name, what) if repl else False

    def notify(message: str) -> None:
        repl = holder.get("repl")
        if repl:
            repl.notify(message)
        else:
            console.print(Text(message, style="yellow"), soft_wrap=True)

    reason = ["exit"]
    with contextlib.ExitStack() as stack:
        with console.status(escape("connecting to the model server..."), spinner="dots"):
            rt = stack.enter_context(open_runtime(cfg, approve, notify, reason))
        repl = Repl(rt, console)
        holder["repl"] = repl
        repl.banner()
        return repl.run()
