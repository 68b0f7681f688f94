"""Log -> training data (JSONL, one row per line). See docs/log-format.md, "Exports".

- canonical.py      each call as (prompt, completion, tools): canonical or wire form
- turns.py          a session's turns: their calls, stop reason, reward, failed or not
- conversations.py  sft / openai rows: whole conversations ending at a good turn
- groups.py         grpo / dpo rows: turns grouped by prompt, through on-disk SQLite
- messages.py       one message as TRL (arguments objects) or OpenAI (strings) wants it
- output.py         Options, ExportStats (counts and reasons), the atomic JSONL sink
- tokens.py         tokens rows: one per model call in token ids, complete or noted

Reads session by session (constant memory in the log size).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

import orjson

from coder.export.canonical import session_views
from coder.export.conversations import openai_rows, sft_rows
from coder.export.groups import advantages, dpo_rows, grpo_rows
from coder.export.messages import openai_message, trl_message
from coder.export.output import ExportStats, Options, Out
from coder.export.tokens import tokens_rows
from coder.log import ReadStats, SessionLog, log_files, read_sessions

# A format is one function: (sessions, options, stats) -> rows. Adding one is one entry.
RowSource = Callable[[Iterable[SessionLog], Options, ExportStats], Iterator[dict]]
ROW_SOURCES: dict[str, RowSource] = {
    "sft": sft_rows,
    "openai": openai_rows,
    "grpo": grpo_rows,
    "dpo": dpo_rows,
    "tokens": tokens_rows,
}
FORMATS = tuple(ROW_SOURCES)  # the CLI's --format choices too
PROGRESS_MIN_BYTES = 8 << 20

__all__ = [
    "FORMATS",
    "ROW_SOURCES",
    "ExportStats",
    "Options",
    "advantages",
    "export",
    "openai_message",
    "session_views",
    "trl_message",
]


def export(
    paths: list[Path] | None,
    fmt: str,
    out: Path | None,
    since: datetime | None = None,
    min_reward: float | None = None,
    session: str | None = None,
    progress: bool = False,
    log_dir: str | os.PathLike | None = None,
    *,
    keep_all: bool = False,
    wire: bool = False,
    skip_flat: bool = False,
) -> ExportStats:
    """Write training rows from the logs in ``paths`` (files or directories; none
    given: every log of ``log_dir``; neither: coder.log.NoLogs).

    ``out`` None writes to stdout. No row: no file is written (nor replaced), and
    ``ExportStats.empty_reason`` says why. Corrupt lines are skipped and counted.
    """
    if fmt not in ROW_SOURCES:
        raise ValueError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    files = log_files(paths, log_dir)
    opts = Options(min_reward=min_reward, keep_all=keep_all, wire=wire, skip_flat=skip_flat)
    stats = ExportStats(out=str(out) if out else None)
    rstats = ReadStats()
    bar, on_bytes = _progress(files, fmt) if progress else (None, None)
    since_ts = since.timestamp() if since is not None else None

    def sessions() -> Iterator[SessionLog]:
        for s in read_sessions(files, rstats, on_bytes):
            if session is not None and not s.session_id.startswith(session):
                stats.filtered_sessions["--session"] += 1
                continue
            if since_ts is not None and (s.first_ts or 0) < since_ts:
                stats.filtered_sessions["--since"] += 1
                continue
            stats.sessions += 1
            yield s

    w: Out | None = None
    try:
        if bar is not None:
            bar.start()
        for row in ROW_SOURCES[fmt](sessions(), opts, stats):
            if w is None:  # opened at the first row: an empty export writes nothing
                w = Out(out)
            w.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            stats.rows += 1
        if w is not None:
            w.commit()
    except BaseException:
        if w is not None:
            w.abort()
        raise
    finally:
        if bar is not None:
            bar.stop()
    stats.skipped_lines = rstats.skipped_lines
    stats.broken_calls = rstats.broken_calls
    return stats


def _progress(files: list[Path], fmt: str):
    """A rich progress bar on stderr for inputs of PROGRESS_MIN_BYTES or more."""
    total = sum(p.stat().st_size for p in files if p.exists())
    if total < PROGRESS_MIN_BYTES:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(f"export {fmt}", total=total)

    def on_bytes(n: int) -> None:
        bar.advance(task, n)

    return bar, on_bytes
