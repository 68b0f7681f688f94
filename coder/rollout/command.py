"""`coder rollout` and `coder eval`: their flags, the server they run against, and what
they print. The work itself is in runner.py; the report in report.py."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson

from coder.config import Config, log_dir
from coder.rollout import report as report_mod
from coder.rollout.progress import Progress
from coder.rollout.runner import (
    Outcome,
    Run,
    Settings,
    execute,
    plan,
    recorded_outcomes,
    scratch_dir,
)
from coder.rollout.tasks import Task, TaskError, load_tasks
from coder.rollout.worktrees import Sources


def cmd_rollout(cfg: Config, args) -> int:
    from coder.cli import EXIT_OK, EXIT_TASK_FAILED

    tasks, settings = _inputs(cfg, args)
    logs = Path(args.logs).expanduser() if args.logs else log_dir(cfg)
    if args.demonstrate:  # one correct trajectory per task: more would be the same
        settings.samples, settings.variant = 1, "demonstration"
    outcomes, total, resumed = run_tasks(
        cfg, tasks, settings, logs, args.base_url, None, demonstrate=args.demonstrate
    )
    print(summary(outcomes, total, resumed, logs), file=sys.stderr)
    return EXIT_TASK_FAILED if any(o.status == "error" for o in outcomes) else EXIT_OK


def cmd_eval(cfg: Config, args) -> int:
    from coder.cli import EXIT_OK, UsageError

    if args.compare:
        reports = [_read_report(Path(p)) for p in args.compare]
        print(report_mod.render([v for r in reports for v in _labelled(r)]))
        return EXIT_OK
    if not args.tasks:
        raise UsageError("coder eval needs TASKS.jsonl (or --compare REPORT...)")
    tasks, settings = _inputs(cfg, args)
    adapters = [_adapter(p) for p in args.lora]
    if adapters and args.base_url:
        raise UsageError("--lora needs a server coder starts with the adapter; drop --base-url")
    logs = Path(args.logs).expanduser() if args.logs else log_dir(cfg) / "eval"
    variants: list[dict] = []
    for adapter in [None, *adapters]:
        s = copy.copy(settings)
        s.variant = "base" if adapter is None else f"lora:{adapter.name}:{_sha(adapter)[:12]}"
        arm = cfg
        if adapter is not None:  # the adapter's setup: its template and tools (card.json)
            arm = copy.deepcopy(cfg)
            arm.llm.server.lora = [str(adapter)]
        outcomes, _, _ = run_tasks(arm, tasks, s, logs, args.base_url, adapter)
        recorded = recorded_outcomes(logs, {o.group_id for o in outcomes})
        name = "base" if adapter is None else adapter.name
        rep = report_mod.variant_report(name, [t.id for t in tasks], recorded, s.samples)
        rep["lora"] = str(adapter) if adapter else None
        variants.append(rep)
    full = {
        "version": report_mod.REPORT_VERSION,
        "created": datetime.now().isoformat(timespec="seconds"),
        "tasks_file": str(Path(args.tasks).resolve()),
        "samples": settings.samples,
        "temperature": cfg.llm.sampling.temperature,
        "logs": str(logs),
        "variants": variants,
    }
    out = Path(args.report) if args.report else logs / f"report-{datetime.now():%Y%m%d-%H%M%S}.json"
    from coder.atomic import atomic_write

    atomic_write(out, orjson.dumps(full, option=orjson.OPT_INDENT_2) + b"\n")
    if args.json:
        print(orjson.dumps(full, option=orjson.OPT_INDENT_2).decode())
    else:
        print(report_mod.render(variants))
    print(f"report: {out}", file=sys.stderr)
    return EXIT_OK


def cmd_generate_tasks(cfg: Config, args) -> int:
    from coder.cli import EXIT_OK, UsageError
    from coder.rollout.generate import FAMILIES, generate, write_task_set

    if args.count < 1:
        raise UsageError(f"--count must be 1 or more, not {args.count}")
    families = [f.strip() for f in args.families.split(",")] if args.families else None
    unknown = [f for f in families or [] if f not in FAMILIES]
    if unknown:
        raise UsageError(
            f"--families: unknown family {unknown[0]!r} (known: {', '.join(FAMILIES)})"
        )
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"generate-tasks: {out} exists and is not a directory")
    path = write_task_set(
        out,
        generate(args.count, 1 if args.seed is None else args.seed, families),
    )
    print(f"{args.count} tasks in {path}")
    return EXIT_OK


def run_tasks(
    cfg: Config,
    tasks: list[Task],
    settings: Settings,
    logs: Path,
    base_url: str | None,
    adapter: Path | None,
    demonstrate: bool = False,
) -> tuple[list[Outcome], int, int]:
    """Run every attempt not already complete in `logs`: (this run's outcomes, with the
    resumed ones read back; how many attempts in all; how many were resumed)."""
    from coder.log import Logger

    notify = _notice
    logs.mkdir(parents=True, exist_ok=True)
    logger = Logger(
        logs,
        buffer_size=cfg.logging.buffer_size,
        flush_interval=cfg.logging.flush_interval,
        rotate_mib=cfg.logging.rotate_mib,
    )
    try:
        with (
            scratch_dir() as scratch,
            _backend(cfg, settings, adapter, base_url, tasks, demonstrate) as (
                client_for,
                model,
                proto,
            ),
        ):
            sources = Sources(scratch)
            try:
                run = Run(
                    config=cfg,
                    settings=settings,
                    logger=logger,
                    client_for=client_for,
                    model=model,
                    protocol=proto,
                    scratch=scratch,
                    sources=sources,
                )
                attempts = plan(run, tasks)
                done = {
                    (o.group_id, o.attempt): o
                    for o in recorded_outcomes(logs, {a.group_id for a in attempts})
                    if o.complete
                }
                todo = [a for a in attempts if (a.group_id, a.index) not in done]
                if done:
                    notify(
                        f"{len(done)} of {len(attempts)} attempts are already in {logs}: resuming"
                    )
                with Progress(len(todo), settings.variant or "rollout") as progress:
                    outcomes = execute(run, todo, progress.add)
                return [*done.values(), *outcomes], len(attempts), len(done)
            finally:
                sources.close()
    finally:
        logger.close()
        lost = logger.stats()["dropped_on_error"]
        if lost:
            notify(
                f"{lost} log records could not be written to {logs}: the rollout's data is incomplete"
            )


@contextlib.contextmanager
def _backend(
    cfg: Config,
    settings: Settings,
    adapter: Path | None,
    base_url: str | None,
    tasks: list[Task],
    demonstrate: bool,
) -> Iterator[tuple]:
    """What answers the attempts: (a client per worker thread, the model's identity, the
    tool protocol). The server (reused or started), or with `demonstrate` each task's own
    solution, without a server."""
    if demonstrate:
        from coder.rollout.demonstrate import MODEL, Demonstrator

        missing = [t.id for t in tasks if not t.solution]
        if missing:
            from coder.cli import UsageError

            raise UsageError(f"--demonstrate: task {missing[0]!r} has no 'solution'")
        first: dict[str, Task] = {}
        for t in tasks:  # the Demonstrator knows a task by its prompt: one solution each
            other = first.setdefault(t.prompt, t)
            if other.solution != t.solution:
                from coder.cli import UsageError

                raise UsageError(
                    f"--demonstrate: tasks {other.id!r} and {t.id!r} have the same prompt "
                    "and different solutions"
                )
        demo = Demonstrator({t.prompt: list(t.solution or ()) for t in tasks})
        yield (lambda: demo), dict(MODEL), "native"
        return
    from coder.runtime import model_identity

    clients: list = []
    try:
        with serving(cfg, settings.workers, adapter, base_url) as server:
            local = threading.local()
            first = _client(cfg, server.base_url)
            clients.append(first)
            n_ctx = first.context_size()

            def client_for():
                if not hasattr(local, "client"):
                    local.client = _client(cfg, server.base_url)
                    clients.append(local.client)
                return local.client

            model = model_identity(server.props or first.props(), cfg, n_ctx)
            yield client_for, model, first.resolve_protocol(cfg.llm.tool_protocol)
    finally:
        for c in clients:
            c.close()


@contextlib.contextmanager
def serving(cfg: Config, workers: int, adapter: Path | None, base_url: str | None) -> Iterator:
    """The server the run talks to: the configured one (reused or started), with `workers`
    slots when coder starts it; for an adapter, one coder starts on a free port."""
    from coder import server as srv

    cfg = copy.deepcopy(cfg)
    if adapter is not None:
        cfg.llm.base_url = f"http://127.0.0.1:{free_port()}/v1"
        cfg.llm.auto_manage = True
        # llm.server.lora: an adapter coder trained is served with its template too
        cfg.llm.server.lora = [str(adapter)]
    if workers > 1:
        cfg.llm.server.parallel = workers
        cfg.llm.server.ctx_size *= workers  # llama.cpp splits -c among its slots
    server = srv.connect(cfg, log_dir(cfg), _notice)
    try:
        slots = (server.props or {}).get("total_slots")
        if not server.managed and isinstance(slots, int) and slots < workers:
            _notice(
                f"the server on {server.base_url} has {slots} slot(s) for {workers} workers: "
                f"requests will queue (stop it so coder starts its own with -np {workers}, "
                "or start it with more slots)"
            )
        elif adapter is not None:
            _notice(f"serving {adapter.name} on {server.base_url}")
        yield server
    finally:
        srv.stop(server)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(outcomes: list[Outcome], total: int, resumed: int, logs: Path) -> str:
    by = {
        s: [o for o in outcomes if o.status == s]
        for s in ("passed", "failed", "error", "interrupted")
    }
    scored = len(by["passed"]) + len(by["failed"])
    rate = f"{100 * len(by['passed']) / scored:.1f}%" if scored else "-"
    lines = [
        f"rollout: {total} attempts ({resumed} already in the logs): {len(by['passed'])} passed, "
        f"{len(by['failed'])} failed, {len(by['error'])} errors"
        + (f", {len(by['interrupted'])} interrupted" if by["interrupted"] else "")
        + f"; pass rate {rate}"
    ]
    reasons: dict[str, list[str]] = {}
    for o in by["error"]:
        reasons.setdefault((o.reason or "unknown").splitlines()[0][:200], []).append(
            f"{o.task_id}#{o.attempt}"
        )
    for reason, which in reasons.items():
        lines.append(
            f"  error ({len(which)}): {reason} [{', '.join(which[:4])}{', ...' if len(which) > 4 else ''}]"
        )
    lines.append(f"logs: {logs}  (coder export --format grpo {logs})")
    return "\n".join(lines)


def _inputs(cfg: Config, args) -> tuple[list[Task], Settings]:
    from coder.cli import UsageError

    if args.samples < 1:
        raise UsageError(f"--samples must be 1 or more, not {args.samples}")
    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise UsageError(f"--max-steps must be 1 or more, not {args.max_steps}")
        cfg.agent.max_steps = args.max_steps
    try:
        tasks = load_tasks(Path(args.tasks).expanduser())
    except TaskError as exc:
        raise UsageError(str(exc)) from None
    # nobody is asked in a rollout: --yes (tools.mode: yes) runs commands, else they are refused
    approval = "auto" if cfg.tools.mode == "yes" else "never"
    return tasks, Settings(samples=args.samples, workers=args.workers, approval=approval)


def _client(cfg: Config, base_url: str):
    from coder.llm import Client

    client = Client(
        base_url,
        api_key=cfg.llm.api_key,
        model=cfg.llm.server.alias,
        timeout=cfg.llm.request_timeout,
        prompt_ids=cfg.logging.prompt_ids,
    )
    if client.props():  # the adapters (and scales) every model_call record names
        client.load_adapters()
    return client


def _adapter(name: str) -> Path:
    from coder.cli import UsageError

    path = Path(name).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"--lora: adapter file not found: {path}")
    return path


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_report(path: Path) -> dict:
    from coder.cli import UsageError

    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"--compare: report not found: {path}") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UsageError(f"--compare: not a JSON report: {path} ({exc})") from None
    variants = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(variants, list) or not all(
        isinstance(v, dict)
        and isinstance(v.get("overall"), dict)
        and isinstance(v.get("tasks"), dict)
        for v in variants
    ):
        raise UsageError(
            f"--compare: not a coder eval report (variants with overall and tasks): {path}"
        )
    data["_path"] = str(path)
    return data


def _labelled(rep: dict) -> list[dict]:
    """A report's variants, named by the report so two runs' columns can be told apart."""
    stem = Path(rep["_path"]).stem
    return [{**v, "name": f"{stem}:{v.get('name')}"} for v in rep["variants"]]


def _notice(message: str) -> None:
    print(f"coder: {message}", file=sys.stderr)
