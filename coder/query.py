"""`coder -q TEXT`: one task, headless. Output as text (the answer on stdout, tool
activity and notices on stderr), one JSON object (`--output-format json`, or `--json`),
or a stream of JSON events (`stream-json`: one per line, ending with the result)."""

from __future__ import annotations

import json
import sys

from coder.cli import (
    EXIT_LOG_INCOMPLETE,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_TASK_FAILED,
    EXIT_USAGE,
    UsageError,
)


def cmd_query(cfg, args) -> int:

    from coder import agent as agent_mod
    from coder.chat import Stop
    from coder.runtime import open_runtime

    task = sys.stdin.read() if args.query == "-" else args.query
    if not task.strip():
        raise UsageError("-q needs a task (text, or '-' to read it from stdin)")
    fmt = output_format(args)
    # a terminal gets rendered markdown (rich honours NO_COLOR); a pipe gets plain text
    rendered = fmt == "text" and sys.stdout.isatty()
    if fmt == "stream-json":
        sink = EventSink()
    else:
        sink = _tty_sink() if rendered else PlainSink(stream_text=fmt == "text")
    with open_runtime(cfg, sink.notice) as rt:
        rt.agent.tool_ctx.approve = _refuse_unasked
        name = resume_for_query(rt, args, sink.notice)
        progress = None
        if rendered:  # its spinner says how long and how many tokens
            sink.root = rt.agent.tool_ctx.workspace.root
            sink.start()
        elif progress_wanted(sys.stderr):  # the answer goes elsewhere: progress on stderr
            from coder.render.progress import StderrProgress

            progress = StderrProgress(sink, sys.stderr)
            rt.notify.target = progress.notice  # a notice from another thread erases it too
            progress.start()
        try:
            result = run_task(rt, task, progress or sink, plan=getattr(args, "plan", False))
        finally:
            if rendered:
                sink.finish()
            elif progress is not None:
                progress.finish()
                rt.notify.target = sink.notice
        rt.end_reason = result.stop
        save_conversation(rt, name, sink.notice)
        verified = verify(rt, args.verify, sink) if args.verify else None
        if fmt != "text":
            summary = {
                "answer": result.answer,
                "stop": result.stop,
                "tool_calls": agent_mod.tool_calls_summary(result),
                "usage": result.usage,
                "session_id": rt.recorder.session_id,
                "error": result.error,
                "reward": verified,
                "plan": plan.to_json() if (plan := rt.agent.tool_ctx.plan) is not None else None,
            }
            if fmt == "json":
                print(json.dumps(summary))
            else:
                sink.emit("result", **summary)
        elif result.answer and not sink.streamed:
            if rendered:
                from coder.render import markdown

                sink.console.print(markdown(result.answer))
            else:
                print(result.answer)
        elif sink.streamed and not rendered:
            print()
    if result.stop in (Stop.ERROR, Stop.TOO_LONG):
        print(f"coder: {result.error}", file=sys.stderr)
        return EXIT_SERVER if result.stop == Stop.ERROR else EXIT_USAGE
    if result.stop == Stop.INTERRUPTED:
        print("coder: interrupted", file=sys.stderr)
        return 130
    if verified is not None:  # the verifier is the judge of the task
        code = EXIT_OK if verified >= 1.0 else EXIT_TASK_FAILED
    else:
        code = EXIT_OK if result.ok else EXIT_TASK_FAILED
    lost = rt.logger.stats()["dropped_on_error"]  # final once the runtime has closed
    return EXIT_LOG_INCOMPLETE if code == EXIT_OK and lost else code


def progress_wanted(stream) -> bool:
    """A progress line on stderr: only on a terminal that can redraw a line."""
    import os

    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


def output_format(args) -> str:
    fmt = getattr(args, "output_format", None)
    if args.json and fmt not in (None, "json"):
        raise UsageError(f"--json is --output-format json; it does not go with {fmt}")
    return fmt or ("json" if args.json else "text")


def resume_for_query(rt, args, notify) -> str | None:
    """-c or --resume NAME with -q: load that conversation first; its name, or None."""
    from coder import sessions
    from coder.plan import plan_from_json

    here, directory = str(rt.agent.tool_ctx.workspace.root), rt.config.repl.sessions_dir
    if args.resume == "":
        raise UsageError("--resume with -q needs a NAME (there is no one to pick from a list)")
    name = args.resume
    if args.continue_:
        info = sessions.latest(directory, here)
        if info is None:
            notify(f"no earlier conversation in {here}: starting a new one")
            return None
        name = info.name
    if name is None:
        return None
    try:
        data = sessions.load(directory, name)
    except sessions.SessionError as exc:
        raise UsageError(str(exc)) from None
    rt.agent.messages[:] = sessions.conversation(data, rt.agent.messages[0])
    rt.agent.tool_ctx.plan = plan_from_json(data.get("plan"))  # checked by sessions.load
    return data.get("name") or name


def run_task(rt, task: str, sink, plan: bool = False):
    """The task as one turn; with --plan, the plan's turn first (its text kept off
    stdout: the plan goes to stderr as a notice), then the work. One result: the last
    turn's, with the usage and tool calls of both."""
    from coder import agent as agent_mod
    from coder import plan as plan_mod

    def run(text: str, out=sink) -> agent_mod.TurnResult:
        return agent_mod.run_turn(rt.agent, text, out, rt.cancel)

    if not plan:
        return run(task)

    def show(steps, reply: str) -> None:
        if steps is None:
            sink.notice(f"the plan has no numbered steps; going on without a checklist:\n{reply}")
        else:
            sink.notice(f"plan:\n{steps.checklist()}")

    turns = plan_mod.run_planned(
        rt.agent, task, run, show, run_planning=lambda text: run(text, QuietText(sink))
    )
    result = turns[-1]
    for earlier in turns[:-1]:
        result.tool_calls[:0] = earlier.tool_calls
        result.calls[:0] = earlier.calls
        for key in result.usage:
            result.usage[key] += earlier.usage.get(key, 0)
    return result


def save_conversation(rt, name: str | None, notify) -> None:
    """Keep a -q conversation like the REPL's, so `coder -c` can go on from it."""
    from coder import sessions

    try:
        rt.save_conversation(name)
    except sessions.SessionError as exc:
        notify(f"the conversation was not saved: {exc}")


class QuietText:
    """A sink that leaves the text out (the plan's turn of -q --plan) and passes the rest on."""

    def __init__(self, sink) -> None:
        self.sink = sink

    def text(self, delta: str) -> None:
        pass

    def tool_call(self, call) -> None:
        self.sink.tool_call(call)

    def tool_result(self, call, result) -> None:
        self.sink.tool_result(call, result)

    def notice(self, message: str) -> None:
        self.sink.notice(message)

    def usage(self, usage: dict) -> None:
        self.sink.usage(usage)


def _refuse_unasked(name: str, what: str) -> str:
    # nobody can answer: what the mode would ask about is refused, and the model told why
    return (
        "coder -q cannot ask anyone: file edits need --mode auto-edit (the default) or "
        "--yes, commands need --yes"
    )


def verify(rt, command: str, sink) -> float:
    """--verify CMD: run CMD in the workspace; exit 0 is reward 1.0, else 0.0, unless its
    last stdout line is {"reward": x} (coder/rollout/verify.py, as rollouts do)."""
    from coder.rollout.verify import run_command

    verdict = run_command(command, rt.agent.tool_ctx.workspace.root, timeout=600)
    rt.recorder.reward(
        verdict.reward,
        "verifier",
        note=verdict.note,
        turn=rt.agent.turn,
        verifier=verdict.record(),
    )
    sink.notice(f"verify: {command} -> {verdict.outcome} (reward {verdict.reward:g})")
    return verdict.reward


def _tty_sink():
    from coder.render import RichSink, console_for

    return RichSink(console_for(sys.stdout))


class PlainSink:
    """-q output: the answer's text to stdout, tool activity and notices to stderr."""

    def __init__(self, stream_text: bool = True) -> None:
        self.stream_text = stream_text
        self.streamed = False

    def text(self, delta: str) -> None:
        if self.stream_text and delta:
            sys.stdout.write(delta)
            sys.stdout.flush()
            self.streamed = True

    def tool_call(self, call) -> None:
        if self.streamed:
            sys.stdout.write("\n")
            self.streamed = False
        print(f"> {call.name} {call.arguments}", file=sys.stderr)

    def tool_result(self, call, result) -> None:
        first = (result.output.strip().splitlines() or [""])[0][:120]
        print(f"  {first}", file=sys.stderr)  # an error's output says so itself

    def notice(self, message: str) -> None:
        print(f"coder: {message}", file=sys.stderr)

    def usage(self, usage: dict) -> None:
        pass


class EventSink:
    """--output-format stream-json: every event as one JSON line on stdout, as it happens
    (text deltas, tool calls and results, notices), the last one the result."""

    streamed = False  # the answer is in the events; nothing is printed after them

    def emit(self, kind: str, **fields) -> None:
        sys.stdout.write(json.dumps({"type": kind, **fields}) + "\n")
        sys.stdout.flush()

    def text(self, delta: str) -> None:
        if delta:
            self.emit("text", text=delta)

    def tool_call(self, call) -> None:
        self.emit("tool_call", id=call.id, name=call.name, arguments=call.arguments)

    def tool_result(self, call, result) -> None:
        self.emit(
            "tool_result",
            id=call.id,
            name=call.name,
            output=result.output,
            is_error=result.is_error,
            duration_ms=round(result.duration_ms, 1),
        )

    def notice(self, message: str) -> None:
        self.emit("notice", message=message)

    def usage(self, usage: dict) -> None:
        pass  # the result event has the turn's usage
