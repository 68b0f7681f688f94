"""Run N attempts per task: each in its own worktree, scored by the task's verifier.

Every attempt is a logged session whose ``session_start.extra`` names its task, its
group (all attempts of one task in one setting share it) and its seed; the verifier's
reward and an ``attempt`` record (status, diff, reason) close it. The attempt records
on disk are the run's state: a rerun skips what is complete, and the summary and the
eval report are read back from them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from coder import agent as agent_mod
from coder.chat import Stop
from coder.config import Config
from coder.context import Budget
from coder.llm import Client
from coder.log import Logger, Recorder, iter_records, log_files
from coder.rollout.tasks import Task
from coder.rollout.verify import Verdict, run_command
from coder.rollout.worktrees import SourceError, Sources, attempt_diff, worktree

PASS = 1.0  # an attempt passes when its reward reaches this
DONE = ("passed", "failed")  # statuses of a complete attempt: a rerun skips it


@dataclass(frozen=True)
class Attempt:
    task: Task
    index: int  # 0 .. samples-1
    group_id: str
    seed: int


@dataclass
class Outcome:
    """What one attempt came to: the `attempt` record's fields."""

    task_id: str
    group_id: str
    attempt: int
    seed: int
    status: str  # passed | failed | error | interrupted
    reward: float | None = None
    reason: str | None = None  # why an attempt errored, or how the turn stopped
    stop: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    protocol: str | None = None
    chat_template_hash: str | None = None
    variant: str | None = None
    session_id: str | None = None
    diff: str | None = None

    @property
    def complete(self) -> bool:
        return self.status in DONE

    def record(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    @classmethod
    def from_record(cls, rec: dict) -> Outcome:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in rec.items() if k in names})


@dataclass
class Settings:
    """How a run samples and runs its attempts (what the group id hashes, with the task)."""

    samples: int
    workers: int = 1
    approval: str = "never"  # run_shell for tasks that do not say: auto | never
    variant: str | None = None  # a label for the model setting (eval: the adapter)


@dataclass
class Run:
    """What a run's attempts share."""

    config: Config
    settings: Settings
    logger: Logger
    client_for: Callable[[], Client]
    model: dict  # model_identity() of the server
    protocol: str
    scratch: Path
    sources: Sources
    cancel: threading.Event = field(default_factory=threading.Event)


def group_id(task: Task, run_key: str, tree: str | None) -> str:
    """All attempts at one task in one setting: ``TASK_ID@hash`` of the task, its files
    (the tree id) and the model and sampling settings."""
    h = hashlib.blake2b(digest_size=5)
    h.update(orjson.dumps([task.spec(), tree, run_key], option=orjson.OPT_SORT_KEYS))
    return f"{task.id}@{h.hexdigest()}"


def run_key(cfg: Config, model: dict, protocol: str, settings: Settings) -> str:
    s = cfg.llm.sampling
    return orjson.dumps(
        {
            "model": [model.get("model_file"), model.get("model_size"), model.get("alias")],
            "template": model.get("chat_template_hash"),
            "protocol": protocol,
            "sampling": [s.temperature, s.top_p, s.top_k, s.min_p, s.max_tokens, s.seed],
            "max_steps": cfg.agent.max_steps,
            "approval": settings.approval,
            "variant": settings.variant,
        },
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def seed_for(task_id: str, index: int, base: int | None) -> int:
    """A distinct, repeatable seed per attempt (a resumed attempt samples as before)."""
    return (zlib.crc32(f"{task_id}/{index}".encode()) + (base or 0) * 1_000_003) & 0x7FFFFFFF


def plan(run: Run, tasks: list[Task]) -> list[Attempt]:
    key = run_key(run.config, run.model, run.protocol, run.settings)
    attempts = []
    for task in tasks:
        try:
            tree: str | None = run.sources.get(task.repo, task.ref).tree
        except SourceError:
            tree = None  # reported when its attempts run
        gid = group_id(task, key, tree)
        for i in range(run.settings.samples):
            seed = seed_for(task.id, i, run.config.llm.sampling.seed)
            attempts.append(Attempt(task, i, gid, seed))
    return attempts


def recorded_outcomes(log_dir: Path, group_ids: Iterable[str] | None = None) -> list[Outcome]:
    """The attempt records in a log directory (of the given groups); for one attempt
    written twice (a retried error), the last one."""
    wanted = set(group_ids) if group_ids is not None else None
    latest: dict[tuple[str, int], Outcome] = {}
    paths = log_files([str(log_dir)]) if log_dir.is_dir() else []
    for rec in iter_records(paths):
        if rec.get("type") != "attempt" or not isinstance(rec.get("group_id"), str):
            continue
        if wanted is not None and rec["group_id"] not in wanted:
            continue
        with contextlib.suppress(TypeError):
            out = Outcome.from_record(rec)
            latest[(out.group_id, out.attempt)] = out
    return list(latest.values())


def execute(
    run: Run,
    attempts: list[Attempt],
    on_done: Callable[[Outcome], None] = lambda o: None,
) -> list[Outcome]:
    """Run the attempts on `settings.workers` threads, `on_done` called as each ends (from
    its thread). On Ctrl-C or SIGTERM (any exception here) the rest are cancelled and the
    running ones stop and remove their worktrees before it is re-raised."""

    def one(a: Attempt) -> Outcome:
        outcome = run_attempt(run, a)
        on_done(outcome)
        return outcome

    pool = ThreadPoolExecutor(max(1, run.settings.workers), thread_name_prefix="attempt")
    try:
        futures = [pool.submit(one, a) for a in attempts]
        pending = set(futures)
        while pending:  # wait in slices: a signal reaches this thread between them
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        return [f.result() for f in futures]
    except BaseException:
        run.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_attempt(run: Run, attempt: Attempt) -> Outcome:
    """One attempt, logged as one session; never raises for a failure of the attempt."""
    task, cfg = attempt.task, run.config
    recorder = Recorder(run.logger, secrets=[cfg.llm.api_key])
    out = Outcome(
        task_id=task.id,
        group_id=attempt.group_id,
        attempt=attempt.index,
        seed=attempt.seed,
        status="error",
        protocol=run.protocol,
        chat_template_hash=run.model.get("chat_template_hash"),
        variant=run.settings.variant,
        session_id=recorder.session_id,
    )
    if run.cancel.is_set():  # never started: nothing to log
        out.status, out.reason = "interrupted", "cancelled before it started"
        return out
    started = time.monotonic()
    try:
        _attempt(run, attempt, recorder, out)
    except SourceError as exc:
        out.reason = str(exc)
    except Exception as exc:  # a crash of one attempt is reported, the run goes on
        out.reason = f"{type(exc).__name__}: {exc}"
    finally:
        out.duration_s = round(time.monotonic() - started, 3)
        if run.cancel.is_set() and not out.complete:
            out.status = "interrupted"
        if not recorder.started:  # it failed before the agent existed: log why all the same
            _start_session(run, attempt, recorder, str(task.repo), [])
        recorder.attempt(**out.record())
        recorder.session_end(out.status)
    return out


def _attempt(run: Run, attempt: Attempt, recorder: Recorder, out: Outcome) -> None:
    task = attempt.task
    source = run.sources.get(task.repo, task.ref)
    dest = run.scratch / f"{_slug(task.id)}-{attempt.index}-{uuid.uuid4().hex[:6]}"
    with worktree(run.sources, source, dest) as path:
        agent = _agent(run, attempt, path, recorder)
        _start_session(run, attempt, recorder, str(path), agent.tools, source.commit)
        env = {"CODER_TASK_DIR": str(task.base)}
        if task.setup:
            setup = run_command(task.setup, path, task.timeout, run.cancel, env)
            if setup.exit_code != 0:
                out.reason = (
                    f"setup failed: {setup.command} -> {setup.outcome}: {setup.output[-300:]}"
                )
                return
        result = agent_mod.run_turn(agent, task.prompt, agent_mod.NullSink(), run.cancel)
        out.stop, out.steps = str(result.stop), result.steps
        out.prompt_tokens = result.usage.get("prompt_tokens", 0)
        out.completion_tokens = result.usage.get("completion_tokens", 0)
        if result.stop == Stop.INTERRUPTED or run.cancel.is_set():
            out.status, out.reason = "interrupted", "cancelled"
            return
        if result.stop == Stop.ERROR:  # the server failed: not the model's doing, rerun it
            out.reason = f"model server: {result.error}"
            return
        if not result.ok:
            out.reason = result.error or str(result.stop)
        out.diff = attempt_diff(path)
        answer = dest.with_name(dest.name + ".answer")  # beside the worktree, not in it
        answer.write_text(result.answer, encoding="utf-8")
        env["CODER_ANSWER_FILE"] = str(answer)
        verdict = run_command(task.verify, path, task.timeout, run.cancel, env)
        if verdict.cancelled:
            out.status, out.reason = "interrupted", "cancelled during the verifier"
            return
        _reward(recorder, verdict, agent.turn)
        out.reward = verdict.reward
        out.status = "passed" if verdict.reward >= PASS else "failed"
        if verdict.timed_out:
            out.reason = f"verifier {verdict.outcome}"


def _reward(recorder: Recorder, verdict: Verdict, turn: int) -> None:
    recorder.reward(
        verdict.reward, "verifier", note=verdict.note, turn=turn, verifier=verdict.record()
    )


def _agent(run: Run, attempt: Attempt, path: Path, recorder: Recorder) -> agent_mod.Agent:
    from coder.runtime import offered_tools
    from coder.tools import ToolContext
    from coder.tools.workspace import Workspace

    task = attempt.task
    cfg = copy.deepcopy(run.config)
    cfg.llm.sampling.seed = attempt.seed
    cfg.llm.tool_protocol = run.protocol  # resolved once, named in every record
    cfg.logging.logprobs = True  # the sampled token ids are the point of a rollout
    if task.max_steps:
        cfg.agent.max_steps = task.max_steps
    if task.tools is not None:
        cfg.agent.tools = list(task.tools)
    client = run.client_for()
    # approval auto runs commands; never refuses them (edits apply: the worktree is thrown away)
    auto = (task.approval or run.settings.approval) == "auto"
    tool_ctx = ToolContext(
        workspace=Workspace(path),
        mode="yes" if auto else "auto-edit",
        approve=_nobody_to_ask,
        shell_timeout=cfg.tools.shell.timeout,
        max_output_bytes=cfg.tools.shell.max_output_bytes,
        sandbox=cfg.tools.shell.sandbox,
        cancel=run.cancel,
    )
    return agent_mod.Agent(
        client=client,
        config=cfg,
        tool_ctx=tool_ctx,
        recorder=recorder,
        tool_names=offered_tools(cfg),  # a worktree is a repository: git tools work
        budget=Budget(n_ctx=run.model.get("n_ctx")),
        # native tool calls carry sampled ids only without streaming (llama.cpp)
        stream=run.protocol != "native",
    )


def _nobody_to_ask(name: str, what: str) -> str:
    return "nobody is asked in a rollout: commands run only with approval auto"


def _start_session(
    run: Run,
    attempt: Attempt,
    recorder: Recorder,
    workspace: str,
    tools: list[dict],
    commit: str | None = None,
) -> None:
    from coder.config import as_dict

    recorder.session_start(
        config=as_dict(run.config),
        model=run.model,
        tools=tools,
        workspace=workspace,
        git_head=commit,
        extra={
            "group_id": attempt.group_id,
            "task_id": attempt.task.id,
            "attempt": attempt.index,
            "seed": attempt.seed,
            "tool_protocol": run.protocol,
            "variant": run.settings.variant,
            "rollout": {"repo": str(attempt.task.repo), "ref": attempt.task.ref},
        },
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40]


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """Where worktrees and copied repos live during a run; gone afterwards."""
    import shutil

    path = Path(tempfile.mkdtemp(prefix="coder-rollout-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
