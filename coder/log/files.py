"""Where logs live: file names, write order, and which files a reader should read.

``<dir>/coder-YYYYMMDD.jsonl`` (UTC date), then ``coder-YYYYMMDD.1.jsonl``,
``.2.jsonl``... once a file passes ``rotate_mib`` (no renames: the active file
is the highest-numbered one).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

NAME_RE = re.compile(r"^coder-(\d{8})(?:\.(\d+))?\.jsonl$")


class NoLogs(ValueError):
    """Nothing to read was named: neither log files nor a log directory."""


def log_file_name(day: str, segment: int) -> str:
    return f"coder-{day}.jsonl" if segment == 0 else f"coder-{day}.{segment}.jsonl"


def _write_order(path: Path) -> tuple:
    m = NAME_RE.match(path.name)
    if m:
        return (0, m.group(1), int(m.group(2) or 0), "")
    return (1, "", 0, path.name)


def list_log_files(directory: str | os.PathLike) -> list[Path]:
    """The *.jsonl files in ``directory`` (not below: exports/ lives there) in write
    order (day, then segment)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted((p for p in d.glob("*.jsonl") if p.is_file()), key=_write_order)


def log_files(
    paths: Iterable[str | os.PathLike] | None, log_dir: str | os.PathLike | None = None
) -> list[Path]:
    """The files to read: ``paths`` with directories expanded to their *.jsonl in
    write order; no paths -> the files of ``log_dir``. Neither given raises NoLogs
    (never a guess such as ./logs)."""
    given = [Path(p) for p in paths or ()]
    if not given:
        if log_dir is None:
            raise NoLogs("no logs to read: give log files or a log directory")
        return list_log_files(Path(log_dir).expanduser())
    out: list[Path] = []
    for p in given:
        out.extend(list_log_files(p) if p.is_dir() else [p])
    return out
