"""Command line: argument parsing, subcommands and exit codes.

Exit codes: 0 ok, 1 task failed, 2 usage or config error, 3 model server error,
4 the task succeeded but log records could not be written, 5 `coder train` without the
`train` extra, 6 nothing to train on, 7 no base model to train, 8 no server log to show
(`coder server logs`), 130 interrupted.
Imports stay lazy so `coder --version` starts as fast as Python itself.
"""

from __future__ import annotations

import sys

from coder import __version__

EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE, EXIT_SERVER = 0, 1, 2, 3
EXIT_LOG_INCOMPLETE = 4  # the task succeeded, but log records could not be written
EXIT_MISSING_EXTRA, EXIT_NO_DATA, EXIT_NO_BASE_MODEL = 5, 6, 7  # coder train
EXIT_NO_LOG = 8  # coder server logs: the log file is not there


class UsageError(Exception):
    pass


def common_options(default=None):
    """The flags every command takes. Subcommands get them with default=SUPPRESS, so a
    flag given before the subcommand (`coder --config F export`) is not reset."""
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    flag = default if default is not None else False

    def opt(*names, **kw):
        kw.setdefault("default", flag if kw.get("action") == "store_true" else default)
        g.add_argument(*names, **kw)

    opt("--config", metavar="FILE", help="config file (over the user and project config)")
    opt("--model", metavar="GGUF", help="model file for the managed server")
    opt("--base-url", metavar="URL", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    opt("--no-auto-manage", action="store_true", help="never start a server; use --base-url")
    opt("--temperature", type=float, help="sampling temperature (llm.sampling.temperature)")
    opt("--top-p", type=float, help="nucleus sampling (llm.sampling.top_p)")
    opt("--top-k", type=int, help="top-k sampling (llm.sampling.top_k)")
    opt(
        "--max-tokens",
        type=int,
        help="the most tokens one reply may take (llm.sampling.max_tokens)",
    )
    opt("--seed", type=int, help="sampling seed, for repeatable runs (llm.sampling.seed)")
    opt(
        "--tool-protocol",
        choices=["auto", "native", "json"],
        help="how tools reach the model (llm.tool_protocol)",
    )
    opt(  # checked by the config loader: a bad value is one line naming tools.mode, exit 2
        "--mode",
        metavar="MODE",
        help="permission mode (tools.mode): read-only offers no tool that writes or runs; "
        "ask: edits and commands ask first; auto-edit (default): edits apply, commands ask; "
        "yes: nothing asks",
    )
    opt("--yes", "-y", action="store_true", help="nothing asks: the same as --mode yes")
    opt("--workspace", metavar="DIR", help="the directory the tools may touch (default: cwd)")
    return common


def build_parser():
    import argparse

    from coder.export import FORMATS

    common = common_options()
    sub_common = common_options(argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="coder",
        description="A terminal coding agent for local models (llama.cpp).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"coder {__version__}")
    parser.add_argument(
        "-q", "--query", metavar="TEXT", help="run one task and exit ('-' reads stdin)"
    )
    parser.add_argument(
        "-c",
        "--continue",
        dest="continue_",
        action="store_true",
        help="resume this workspace's last conversation (REPL or -q)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="NAME",
        help="resume a saved conversation by name (without NAME: pick one)",
    )
    parser.add_argument(
        "--output-format",
        choices=["text", "json", "stream-json"],
        help="with -q: the answer as text (default), one JSON object, or JSON events, "
        "one per line, ending with the result",
    )
    parser.add_argument(
        "--json", action="store_true", help="with -q: print one JSON object (--output-format json)"
    )
    parser.add_argument("--verify", metavar="CMD", help="with -q: run CMD afterwards as the reward")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="with -q: ask the model for a numbered plan first, then do the task with the "
        "plan as a checklist it updates (update_plan); the REPL's /plan TEXT",
    )
    parser.add_argument(
        "--lora",
        dest="serve_lora",
        action="append",
        metavar="GGUF[:SCALE]",
        help="serve with this LoRA adapter (llm.server.lora; repeatable)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    setup = sub.add_parser(
        "setup", parents=[sub_common], help="unpack the default model, show paths"
    )
    setup.add_argument("--quiet", action="store_true", help="print only errors")

    srv = sub.add_parser(
        "server", parents=[sub_common], help="status | start | stop | logs of the model server"
    )
    srv.add_argument(
        "action",
        choices=["status", "start", "stop", "logs"],
        help="status: its health, pid, model, slots, speed; start: one that outlives coder; "
        "stop: it; logs: its log file",
    )
    srv.add_argument(
        "--watch",
        action="store_true",
        help="status: refresh every second until Ctrl-C (a live view on a terminal, one "
        "line per refresh otherwise)",
    )
    srv.add_argument("--tail", metavar="N", help="logs: only the last N lines")
    srv.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="logs: go on printing what the server writes, until Ctrl-C",
    )

    models = sub.add_parser(
        "models", parents=[sub_common], help="list the GGUF models in llm.model_dirs"
    )
    models.add_argument("--json", action="store_true", help="one JSON object per model")

    exp = sub.add_parser("export", parents=[sub_common], help="turn logs into training data")
    exp.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="sft: TRL conversations; openai: OpenAI fine-tuning; grpo: prompts with "
        "their rewarded completions; dpo: chosen/rejected pairs; tokens: each call in "
        "token ids (docs/log-format.md)",
    )
    exp.add_argument(
        "--since", metavar="DATE", help="only sessions that began at or after DATE (YYYY-MM-DD)"
    )
    exp.add_argument(
        "--min-reward",
        type=float,
        metavar="R",
        help="sft/openai/tokens: only turns rewarded R or more; grpo: groups whose best "
        "reward reaches R; dpo: pairs whose chosen reaches R",
    )
    exp.add_argument("--session", metavar="ID", help="only sessions whose id starts with ID")
    exp.add_argument(
        "--all",
        dest="keep_all",
        action="store_true",
        help="sft/openai/tokens: keep failed turns too (default: only turns that answered)",
    )
    exp.add_argument(
        "--wire",
        action="store_true",
        help="the messages exactly as the server received them (the json protocol's "
        "text), instead of canonical tool_calls + tools",
    )
    exp.add_argument(
        "--skip-flat",
        action="store_true",
        help="grpo: leave out groups whose rewards are all equal",
    )
    exp.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (atomically); '-' or none: stdout"
    )
    exp.add_argument(
        "logs",
        nargs="*",
        metavar="LOG",
        help="log files or directories (default: every log of logging.dir)",
    )
    from coder.rollout.flags import add_parsers
    from coder.train.flags import add_parser as add_train_parser

    add_parsers(sub, sub_common)
    add_train_parser(sub, sub_common)
    return parser


def overrides(args) -> dict:
    mode = getattr(args, "mode", None)
    if args.yes and mode not in (None, "yes"):
        raise UsageError(f"--yes is --mode yes; it does not go with --mode {mode}")
    return {
        "llm.server.model_path": args.model,
        "llm.base_url": args.base_url,
        "llm.auto_manage": False if args.no_auto_manage else None,
        "llm.sampling.temperature": args.temperature,
        "llm.sampling.top_p": args.top_p,
        "llm.sampling.top_k": args.top_k,
        "llm.sampling.max_tokens": args.max_tokens,
        "llm.sampling.seed": args.seed,
        "llm.tool_protocol": args.tool_protocol,
        "tools.workspace": args.workspace,
        "tools.mode": "yes" if args.yes else mode,
        "llm.server.lora": getattr(args, "serve_lora", None),
    }


def _raise_exit(signum, frame):
    # SIGTERM/SIGHUP unwind like Ctrl-C, so every `finally` (stop server, close log) runs.
    # Only the first: a closed terminal often sends SIGHUP then SIGTERM, and a second
    # exception would cut that cleanup short (kill -9 is still there for a stuck one).
    # A no-op handler, not SIG_IGN, which the commands run while unwinding would inherit.
    import signal

    from coder.chat import Terminated

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _ignore)
    raise Terminated(signum)


def _ignore(signum, frame):
    pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # the fast path: no argparse, no config
        print(f"coder {__version__}")
        return EXIT_OK
    import signal

    parser = build_parser()
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)

    from coder import config as config_mod
    from coder.redact import take_env_secrets
    from coder.server import ServerError

    try:
        cfg = config_mod.load(args.config, overrides(args))
        take_env_secrets()  # the config has the key: no process coder starts gets it
        for notice in cfg.notices:  # e.g. a deprecated key, read as its replacement
            print(f"coder: {notice}", file=sys.stderr)
        if args.model:  # a path, or a unique part of a name `coder models` lists
            from coder import models

            dirs = models.model_dirs(cfg.llm.model_dirs)
            cfg.llm.server.model_path = str(models.resolve(args.model, dirs))
        if args.command == "models":
            return cmd_models(cfg, args)
        if args.command == "setup":
            return cmd_setup(cfg, args)
        if args.command == "server":
            return cmd_server(cfg, args)
        if args.command == "export":
            return cmd_export(cfg, args)
        if args.command in ("rollout", "eval", "generate-tasks"):
            from coder.rollout import command

            run = {
                "rollout": command.cmd_rollout,
                "eval": command.cmd_eval,
                "generate-tasks": command.cmd_generate_tasks,
            }[args.command]
            return run(cfg, args)
        if args.command == "train":
            from coder.train.command import cmd_train

            return cmd_train(cfg, args)
        if args.query is not None:
            from coder.query import cmd_query

            return cmd_query(cfg, args)
        if args.json or args.verify or args.output_format or args.plan:
            raise UsageError("--json, --output-format, --verify and --plan go with -q TEXT")
        return cmd_repl(cfg, args)
    except (config_mod.ConfigError, UsageError) as exc:
        print(f"coder: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ServerError as exc:
        print(f"coder: {exc}", file=sys.stderr)
        return EXIT_SERVER
    except KeyboardInterrupt:
        print("coder: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `coder ... | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a path from the config or the command line that cannot be used
        where = f": {exc.filename}" if exc.filename else ""
        print(f"coder: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE


def log_dir(cfg):
    from coder.config import log_dir

    return log_dir(cfg)


def cmd_setup(cfg, args) -> int:
    from coder import provision
    from coder.server import ServerError

    say = (lambda m: None) if args.quiet else (lambda m: print(m))
    if cfg.llm.server.model_path:
        from pathlib import Path

        model = Path(cfg.llm.server.model_path).expanduser()
        if not model.is_file():
            raise ServerError(f"model file not found: {model} (llm.server.model_path)")
        say(f"model:  {model} (llm.server.model_path; nothing to unpack)")
    else:
        try:
            model = provision.ensure_model(say)
        except provision.ProvisionError as exc:
            raise ServerError(str(exc)) from None
        say(f"model:  {model}")
    try:
        choice = provision.choose_server(cfg.llm.server.binary)
    except provision.ProvisionError as exc:
        raise ServerError(str(exc)) from None
    say(f"server: {' '.join(choice.command)}\n        ({choice.reason})")
    say(f"url:    {cfg.llm.base_url}")
    say(f"logs:   {log_dir(cfg).resolve()}")
    return EXIT_OK


def cmd_models(cfg, args) -> int:
    from coder import models

    dirs = models.model_dirs(cfg.llm.model_dirs)
    print(models.report(models.discover(dirs), dirs, as_json=args.json))
    return EXIT_OK


def cmd_server(cfg, args) -> int:
    from coder import server as srv

    if args.watch and args.action != "status":
        raise UsageError("--watch goes with `coder server status`")
    if (args.tail is not None or args.follow) and args.action != "logs":
        raise UsageError("--tail and --follow go with `coder server logs`")
    ep = srv.endpoint(cfg)
    if args.action == "start":
        p = srv.probe(ep.root, cfg.llm.api_key)
        if p.state in ("ready", "loading"):
            model = (p.props or {}).get("model_path") or "its model"
            owner = srv.pidfile_process(ep)
            by = f", started by `coder server start` (pid {owner.pid})" if owner else ""
            print(f"a llama.cpp server already runs on {ep.address} ({model}{by}): nothing started")
            return EXIT_OK
        s = srv.start_detached(cfg, log_dir(cfg), notify=lambda m: print(m, file=sys.stderr))
        print(
            f"llama.cpp server running on {ep.address} (pid {s.pid}); `coder server stop` ends it"
        )
        return EXIT_OK
    if args.action == "stop":
        if srv.stop_detached(ep):
            print(f"stopped the server on {ep.address}")
            return EXIT_OK
        print(f"no server started by `coder server start` is running on {ep.address}")
        return EXIT_OK
    if args.action == "logs":
        return cmd_server_logs(cfg, args)
    from coder.server import status

    if args.watch:
        return status.watch(cfg)
    st = status.read_status(cfg, status.one_shot_check(cfg))
    print(status.status_text(st))
    return EXIT_OK if st.state == status.Health.HEALTHY else EXIT_SERVER


def cmd_server_logs(cfg, args) -> int:
    from coder.server import logs

    tail = None
    if args.tail is not None:
        if not args.tail.isdigit():
            raise UsageError(f"--tail: not a number of lines (0 or more): {args.tail}")
        tail = int(args.tail)
    path = logs.server_log(cfg)
    try:
        logs.show(path, sys.stdout.buffer, tail=tail, follow=args.follow)
    except FileNotFoundError:
        print(
            f"coder: no server log at {path} (no server was started with this logging.dir)",
            file=sys.stderr,
        )
        return EXIT_NO_LOG
    except KeyboardInterrupt:  # how --follow ends
        pass
    return EXIT_OK


def cmd_export(cfg, args) -> int:
    from datetime import datetime
    from pathlib import Path

    from coder import export

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UsageError(f"--since: not a date (YYYY-MM-DD[THH:MM]): {args.since}") from None
    paths = log_paths(args.logs)
    out = Path(args.output) if args.output and args.output != "-" else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        what = "is a directory" if out.is_dir() else "is in a directory that does not exist"
        raise UsageError(f"-o {out}: {what}; give a file path")
    stats = export.export(
        paths,
        args.format,
        out,
        since=since,
        min_reward=args.min_reward,
        session=args.session,
        progress=sys.stderr.isatty(),
        log_dir=log_dir(cfg),
        keep_all=args.keep_all,
        wire=args.wire,
        skip_flat=args.skip_flat,
    )
    source = ", ".join(map(str, paths)) if paths else f"{log_dir(cfg)}/*.jsonl"
    if stats.rows == 0:
        print(
            f"coder: nothing exported (no file written): {stats.empty_reason(args.format)}",
            file=sys.stderr,
        )
        if args.format == "dpo" and stats.sessions:
            print(
                "coder: dpo needs the same prompt answered at least twice with different "
                "rewards (e.g. several `coder -q TASK --verify CMD --seed N` runs)",
                file=sys.stderr,
            )
        return EXIT_TASK_FAILED
    where = f" to {out}" if out else ""
    left = stats.summary()
    print(
        f"exported {stats.rows} {args.format} rows from {stats.sessions} sessions in {source}"
        f"{where}" + (f"; {left}" if left else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def log_paths(names: list[str]) -> list:
    """LOG arguments: files, or directories standing for the *.jsonl files in them, in
    the order they were written (coder-DAY.jsonl, .1, .2, ... .10: not the glob's order).
    A LOG that names nothing to read is an error, never a reason to read logging.dir."""
    from pathlib import Path

    from coder.log import log_files

    paths = []
    for name in names:
        if not Path(name).exists():
            raise UsageError(f"log file not found: {name}")
        found = log_files([name])
        if not found:
            raise UsageError(f"no log files (*.jsonl) in {name}")
        paths += found
    return paths


def cmd_repl(cfg, args) -> int:
    if sys.stdin.isatty() and sys.stdout.isatty():
        from coder import repl

        return repl.main(cfg, args)
    return line_loop(cfg)


def line_loop(cfg) -> int:
    """Piped stdin: one task per line, plain output (scripts, tests)."""
    from coder import agent as agent_mod
    from coder.query import PlainSink
    from coder.runtime import open_runtime

    sink = PlainSink()
    with open_runtime(cfg, sink.notice) as rt:  # tools that need approval are refused
        for line in sys.stdin:
            if line.strip() in ("/exit", "/quit"):
                break
            if line.strip():
                result = agent_mod.run_turn(rt.agent, line.strip(), sink, rt.cancel)
                if not sink.streamed and result.answer:
                    print(result.answer)
                elif sink.streamed:
                    print()
                    sink.streamed = False
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
