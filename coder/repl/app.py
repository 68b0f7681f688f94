"""The REPL itself: the prompt-toolkit session, its keys and toolbar, and running turns.

Enter sends, Alt+Enter (or Esc, Enter) inserts a newline, a paste arrives whole
(bracketed paste). Ctrl-C during a turn cancels the generation or the running
tool and returns to the prompt; Ctrl-C twice at an empty prompt, or Ctrl-D, exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from coder import agent as agent_mod
from coder import sessions
from coder import tools as toolbox
from coder.atomic import atomic_write
from coder.chat import Stop
from coder.config import Config
from coder.render import RichSink, markdown
from coder.repl import approvals, context_files
from coder.repl.commands import EXIT, Commands, model_name
from coder.repl.input import MENTION_WORD, ReplCompleter, open_history
from coder.repl.state import ReplState
from coder.repl.typeahead import Typeahead
from coder.runtime import Runtime, open_runtime
from coder.server import Health

_COMMAND_RE = re.compile(r"^/([A-Za-z][\w-]*)(?:\s+(.*))?$", re.S)


class Repl:
    """A REPL on an open runtime; it answers the runtime's approval questions and shows
    its notices from the moment it is built."""

    def __init__(
        self,
        rt: Runtime,
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
        self.state = ReplState()
        self.commands = Commands(rt, console, self.state)
        self.commands.run_turn = self.turn  # /plan's turns run as typed ones do
        self._ctrl_c_armed = False
        self._autosave_failed = False
        # keys typed during a turn: not echoed, kept for the next prompt (the terminal's)
        on_tty = input is None and sys.stdin.isatty()
        self.typeahead = Typeahead(sys.stdin.fileno() if on_tty else None)
        self._yes_no: PromptSession | None = None
        self.session: PromptSession = PromptSession(
            history=history or open_history(self.cfg.repl.history_file, self.notify),
            input=input,
            output=output,
            multiline=True,
            key_bindings=self._key_bindings(),
            completer=ReplCompleter(self.commands, self.root),
            complete_while_typing=Condition(self._typing_command),
            bottom_toolbar=self.toolbar,
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
            enable_open_in_editor=False,
        )
        rt.agent.tool_ctx.approve = self.approve
        rt.notify.target = self.notify

    # -- pieces --------------------------------------------------------------------------

    def _typing_command(self) -> bool:
        """Complete while typing: a slash command, or an @path being typed."""
        text = self.session.default_buffer.document.text_before_cursor
        return (text.startswith("/") and "\n" not in text) or bool(MENTION_WORD.search(text))

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

    def toolbar(self) -> str:
        agent = self.rt.agent
        b = agent.budget
        used = b.in_use(agent.messages)
        ctx = f"ctx {used}/{b.n_ctx or '?'}"
        if b.n_ctx:
            ctx += f" ({used.tokens / b.n_ctx:.0%})"
        rate = self.state.stats.cache_hit_rate
        cache = f"cache {rate:.0%}" if rate is not None else "cache -"
        parts = [model_name(self.rt), ctx, cache, f"{agent.tool_ctx.mode} mode"]
        health = self.rt.server.health.state  # the session's server watcher keeps it
        if health not in (Health.HEALTHY, Health.UNKNOWN):
            parts.append(f"server {health}")
        if agent.tool_ctx.plan is not None:
            parts.append(agent.tool_ctx.plan.progress())
        if self.state.session_name:
            parts.append(self.state.session_name)
        return " " + " | ".join(parts) + " "

    def notify(self, message: str) -> None:
        """Show a message; from a background thread while the prompt runs, above it."""
        # open_history may report before the session exists
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

    def approve(self, name: str, what: str) -> bool | str:
        """Before what the mode asks about (tools.mode: ask for edits and commands,
        auto-edit for commands): y, n, a (always, for the session) or a reason to refuse,
        which goes back to the model. An edit shows its diff."""
        always = self.state.approvals
        if always.allowed(name, what):
            self.sink.notice(f"{name}: allowed for this session ({what.splitlines()[0][:80]})")
            return True
        label = always.always_label(name, what)
        tool = self.rt.agent.callable_tools().get(name)
        self.typeahead.keep()  # what was typed ahead is for the next prompt, not an answer
        with self.sink.pause():
            head, _, diff = what.partition("\n")
            if tool is not None and tool.access == "write" and diff:  # an edit: its diff
                title, body = f"{name} wants to {head}", Syntax(diff, "diff", theme="ansi_dark")
            elif tool is not None and tool.access == "write":
                title, body = f"{name} wants to change", Text(what)
            else:
                title, body = f"{name} wants to run", Text(what)
            self.console.print(
                Panel(body, title=title, title_align="left", expand=False, border_style="yellow")
            )
            if self._yes_no is None:
                self._yes_no = PromptSession(
                    input=self.input, output=self.output, history=InMemoryHistory()
                )
            choices = "[y]es, [n]o" + (f", [a]lways {label} this session" if label else "")
            self.console.print(Text(f"{choices}, or say why not", style="dim"))
            try:
                answer = self._yes_no.prompt("allow? ")
            except (KeyboardInterrupt, EOFError):
                self.rt.cancel.set()  # Ctrl-C here cancels the whole turn
                return False
        verdict, remember = approvals.read_answer(answer)
        if remember and label:
            always.remember(name, what)
        return verdict

    # -- main loop -------------------------------------------------------------------

    def banner(self) -> None:
        self.console.print(
            Text.assemble(
                ("coder", "bold"),
                f" · {model_name(self.rt)} · workspace {self.root}\n",
                (server_line(self.rt) + "\n", "dim"),
                ("/help for commands · Alt+Enter for a new line · Ctrl-D to exit", "dim"),
            )
        )

    def run(self) -> int:
        while True:
            try:
                text = self.session.prompt("> ", default=self.typeahead.take())
            except KeyboardInterrupt:
                if self._ctrl_c_armed:
                    return 0
                self._ctrl_c_armed = True
                self.console.print(Text("(Ctrl-C again or Ctrl-D to exit)", style="dim"))
                continue
            except EOFError:
                return 0
            self._ctrl_c_armed = False
            with self.typeahead.quiet():
                done = self.handle(text)
            if done == EXIT:
                return 0

    def handle(self, text: str) -> str | None:
        """One submitted input: a slash command or a request for the agent."""
        if not text.strip():
            return None
        m = _COMMAND_RE.match(text.strip())
        if m:
            return self.commands.run(m.group(1), (m.group(2) or "").strip())
        if text.lstrip().startswith("!"):
            self.user_command(text.lstrip()[1:].strip())
            return None
        self.turn(text)
        return None

    def user_command(self, command: str) -> None:
        """!command: the user runs a shell command in the workspace (theirs: nobody is
        asked); its output goes to the model with the next request."""
        if not command:
            self.console.print(Text("usage: !COMMAND (runs it in the workspace)", "yellow"))
            return
        ctx = dataclasses.replace(self.rt.agent.tool_ctx, mode="yes")
        self.rt.cancel.clear()
        restore = self._install_sigint()
        try:
            result = toolbox.dispatch("run_shell", {"command": command}, ctx)
        except KeyboardInterrupt:
            self.console.print(Text("interrupted", "yellow"))
            return
        finally:
            restore()
            self.rt.cancel.clear()
        self.console.print(Text(result.output), soft_wrap=True)
        self.state.pending_notes.append(
            f"the user ran `{command}` in the workspace:\n{result.output}"
        )
        self.console.print(Text("(the model sees this output with your next message)", "dim"))

    def keep_unsent(self, text: str) -> str:
        where = Path(self.cfg.repl.history_file).expanduser().parent / "unsent"
        path = where / time.strftime("%Y%m%d-%H%M%S.txt")
        try:
            atomic_write(path, text.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            return (
                f"Could not keep a copy ({exc.strerror or exc}); it is not in the history either."
            )
        return (
            f"Your text is kept in {path}; put what matters into a workspace file and ask "
            "about that file instead."
        )

    def turn(self, text: str) -> agent_mod.TurnResult | None:
        typed = text
        ws = self.rt.agent.tool_ctx.workspace
        text, _, notices = context_files.attach_mentions(text, ws)
        changes, pin_notices = self.state.pinned.changed(ws)
        for notice in [*notices, *pin_notices]:
            self.notify(notice)
        notes = "".join(f"[note: {n}]\n" for n in self.state.pending_notes)
        text = notes + text + "".join(f"\n\n{block}" for _, _, block in changes)
        over = agent_mod.context_overflow(self.rt.agent, text)
        if over is not None:
            problem = (
                f"not sent: this message is about {over.needed:,} tokens, more than the "
                f"{over.limit:,} the model's context ({over.n_ctx:,} tokens) leaves for a prompt."
            )
            self.console.print(
                Text(f"{problem} {self.keep_unsent(typed)}", style="yellow"), soft_wrap=True
            )
            self.state.last_result = agent_mod.TurnResult(
                answer="", stop=Stop.TOO_LONG, error=problem
            )
            return None
        self.state.pending_notes.clear()
        self.state.pinned.mark_sent(changes)
        rt = self.rt
        rt.cancel.clear()
        self.sink.start()
        restore = self._install_sigint()
        result: agent_mod.TurnResult
        try:
            result = agent_mod.run_turn(rt.agent, text, self.sink, rt.cancel)
        except KeyboardInterrupt:
            result = agent_mod.TurnResult(answer="", stop=Stop.INTERRUPTED)
        finally:
            restore()
            self.sink.finish()
            rt.cancel.clear()
        self.state.last_result = result
        self.state.stats.turns += 1
        for call in result.calls:
            self.state.stats.observe_call(call["usage"], call["timings"])
        self._report(result)
        self.autosave()
        return result

    def autosave(self) -> None:
        """Keep the conversation as it goes, so `coder -c` finds it after /exit (or a crash)."""
        if len(self.rt.agent.messages) < 2:
            return
        try:
            self.state.session_name = self.rt.save_conversation(self.state.session_name).stem
        except sessions.SessionError as exc:
            if not self._autosave_failed:  # once: the REPL goes on without it
                self.notify(f"the conversation is not being saved: {exc}")
            self._autosave_failed = True

    def resume(self, name: str | None) -> None:
        """`coder -c` (name None: this workspace's latest) or `--resume [NAME]` ("": pick)."""
        directory, here = self.cfg.repl.sessions_dir, self.commands.workspace
        if name is None:
            info = sessions.latest(directory, here)
            if info is None:
                self.notify(f"no earlier conversation in {here}: starting a new one")
                return
            name = info.name
        elif name == "":
            name = self._pick_session(directory, here)
            if name is None:
                return
        self.commands.run("load", name)

    def _pick_session(self, directory: str, here: str) -> str | None:
        found = [s for s in sessions.list_sessions(directory, here) if not s.error][:20]
        if not found:
            self.notify(f"no saved conversations in {directory}: starting a new one")
            return None
        for i, s in enumerate(found, 1):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated or 0))
            where = "" if s.workspace == here else f" [{Path(s.workspace or '?').name}]"
            self.console.print(Text(f"{i:3}. {when}  {s.name}{where}  {s.first_user[:60]}"))
        picker = PromptSession(input=self.input, output=self.output, history=InMemoryHistory())
        try:
            answer = picker.prompt("resume which? [1] ").strip() or "1"
        except (KeyboardInterrupt, EOFError):
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(found):
            return found[int(answer) - 1].name
        return answer  # a name typed in: /load reports it if there is none

    def _report(self, result: agent_mod.TurnResult) -> None:
        """What the streamed output did not already say about how the turn ended."""
        if (
            result.stop in (Stop.ANSWER, Stop.TRUNCATED)
            and result.answer
            and not self.sink.streamed
        ):
            self.console.print(markdown(result.answer))
        if result.stop == Stop.TRUNCATED:
            # the agent may have said so already (a notice naming the key)
            if not any("max_tokens" in n for n in self.sink.notices):
                self.console.print(Text("(cut at llm.sampling.max_tokens)", style="yellow"))
        elif result.stop == Stop.EMPTY_ANSWER:
            self.console.print(Text("(empty answer)", style="dim"))
        elif result.stop == Stop.INTERRUPTED:
            self.console.print(Text("interrupted", style="yellow"))
        elif result.stop in (Stop.ERROR, Stop.TOO_LONG):
            self.console.print(Text(f"error: {result.error}", style="red"), soft_wrap=True)
        elif result.stop == Stop.INVALID_TOOL_CALL:
            self.console.print(
                Text("the model's tool call could not be read twice; try rephrasing", "yellow")
            )

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


def server_line(rt: Runtime) -> str:
    """Which server answers: started or reused, where, its model file and template."""
    server, props = rt.server, rt.server.props or {}
    how = "started by coder" if server.managed else "reused (coder did not start it)"
    model = Path(props.get("model_path") or "?").name
    caps = props.get("chat_template_caps") or {}
    template = {True: "template with tools", False: "template without tools"}.get(
        caps.get("supports_tools"), "template unknown"
    )
    protocol = rt.client.resolve_protocol(rt.config.llm.tool_protocol)
    return f"server {server.base_url}: {how} · {model} · {template} · {protocol} tool protocol"


def main(cfg: Config, args: Any = None) -> int:
    """`coder` on a terminal: open the runtime, then the REPL on it until /exit or Ctrl-D."""
    console = Console(highlight=False)

    def notify(message: str) -> None:  # until the REPL is up
        console.print(Text(message, style="yellow"), soft_wrap=True)

    with contextlib.ExitStack() as stack:
        with console.status(escape("connecting to the model server..."), spinner="dots"):
            rt = stack.enter_context(open_runtime(cfg, notify))
        repl = Repl(rt, console)
        repl.banner()
        if getattr(args, "continue_", False):
            repl.resume(None)
        elif getattr(args, "resume", None) is not None:
            repl.resume(args.resume)
        return repl.run()
