"""`coder server logs [--tail N] [--follow]`: the managed server's log file, printed as
bytes (a server may write anything), then, with --follow, what it writes next.

The file is the one `coder server start` recorded in its pidfile, else
`<logging.dir>/llama-server.log`, where every server coder starts writes (process.py).
Following polls the file: no inotify, and a file cut short or replaced is read again
from its start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

from coder.config import Config, log_dir
from coder.server.detached import read_pidfile
from coder.server.endpoint import endpoint
from coder.server.process import LOG_NAME

POLL = 0.2  # seconds between looks at a followed file
BLOCK = 1 << 16


def server_log(cfg: Config) -> Path:
    info = read_pidfile(endpoint(cfg)) or {}
    if isinstance(info.get("log"), str):
        return Path(info["log"])
    return log_dir(cfg) / LOG_NAME


def tail_offset(f: BinaryIO, lines: int) -> int:
    """Where the last `lines` lines of `f` begin (a last line without a newline counts)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos, seen = end, 0
    while pos > 0:
        size = min(BLOCK, pos)
        pos -= size
        f.seek(pos)
        block = f.read(size)
        if pos + size == end and block.endswith(b"\n"):
            block = block[:-1]  # the final newline ends the last line, starts none
        i = len(block)
        while (i := block.rfind(b"\n", 0, i)) != -1:
            seen += 1
            if seen == lines:
                return pos + i + 1
    return 0


def show(path: Path, out: BinaryIO, tail: int | None = None, follow: bool = False) -> None:
    """Print `path` (its last `tail` lines if given); with `follow`, then every byte
    written to it, until KeyboardInterrupt. FileNotFoundError when it is missing."""
    # not a `with`: the file is reopened below when it is replaced
    f = open(path, "rb")  # noqa: SIM115
    try:
        f.seek(0 if tail is None else tail_offset(f, tail))
        _copy(f, out)
        while follow:
            time.sleep(POLL)
            if _copy(f, out):
                continue
            if _replaced(f, path):
                f.close()
                f = open(path, "rb")  # noqa: SIM115
    finally:
        f.close()


def _copy(f: BinaryIO, out: BinaryIO) -> bool:
    """What is left of `f` to `out`; False when there was nothing."""
    wrote = False
    while chunk := f.read(BLOCK):
        out.write(chunk)
        wrote = True
    if wrote:
        out.flush()
    return wrote


def _replaced(f: BinaryIO, path: Path) -> bool:
    """The file at `path` is another one now, or shorter than what was read."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # gone for now: keep the old one until a new one appears
    mine = os.fstat(f.fileno())
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev) or now.st_size < f.tell()
