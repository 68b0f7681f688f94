"""Buffered background JSONL writer.

The caller only appends to a deque (O(1), no lock, no I/O); one daemon thread
serialises batches with orjson and appends them with a single O_APPEND write
under an flock, so several coder processes can share a log directory. File
names and order: coder/log/files.py.

Nothing is dropped unless its type was declared ``droppable`` (none of coder's
own records is): when the queue is full a record waits briefly, then is written
synchronously. A failed write (ENOSPC, EIO) loses nothing: the records that did
not reach the disk go back to the front of the queue and are retried with
backoff; only close() gives up, after ``close_retry`` seconds, and counts them
as dropped. A logger still open when the interpreter exits is closed by an
atexit hook. See docs/log-format.md.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from coder.log.files import NAME_RE, log_file_name

_CHUNK = 64 * 1024
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0
_OPEN: weakref.WeakSet[Logger] = weakref.WeakSet()


@atexit.register
def _close_open_loggers() -> None:
    # Normal exit, an uncaught exception, Ctrl-C and the CLI's SIGTERM/SIGHUP
    # (turned into SystemExit) all pass here: queued records still reach the file.
    for logger in list(_OPEN):
        logger.close(timeout=2.0)


def _dumps(record: Any) -> bytes:
    return orjson.dumps(record, default=str, option=_OPTS)


def _repair_tail(fd: int) -> int:
    """Cut a torn last line (no trailing newline) back to the last newline.

    Must be called with the flock held. Returns 1 if something was cut.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    pos = size
    chunk = 65536
    keep = 0
    while pos > 0:
        start = max(0, pos - chunk)
        buf = os.pread(fd, pos - start, start)
        i = buf.rfind(b"\n")
        if i >= 0:
            keep = start + i + 1
            break
        pos = start
    os.ftruncate(fd, keep)
    return 1


class Logger:
    """Non-blocking JSONL logger. ``log()`` never touches the disk."""

    def __init__(
        self,
        dir: str | os.PathLike = "logs",
        buffer_size: int = 1000,
        flush_interval: float = 1.0,
        rotate_mib: float = 256,
        fsync_interval: float = 5.0,
        block_timeout: float = 0.05,
        close_retry: float = 2.0,
        droppable: Iterable[str] = (),
    ) -> None:
        """``droppable``: record types that may be dropped (and counted) when the
        queue is full. Every other record waits or is written synchronously."""
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.buffer_size = max(1, int(buffer_size))
        self.flush_interval = flush_interval
        self.rotate_bytes = max(1, int(rotate_mib * 1024 * 1024))
        self.fsync_interval = fsync_interval
        self.block_timeout = block_timeout
        self.close_retry = close_retry
        self._high_water = max(1, self.buffer_size // 2)
        self.droppable = frozenset(droppable)

        self._q: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()  # set by close(): ends a retry backoff at once
        self._space = threading.Condition(threading.Lock())
        # Re-entrant: a signal handler may call close() while this thread is
        # inside a synchronous write.
        self._io = threading.RLock()
        self._closed = False
        self._closing = False

        self._written = 0
        self._dropped = 0
        self._bytes = 0
        self._torn = 0
        self._sync_writes = 0
        self._errors = 0
        self._last_error: str | None = None
        self._lost = 0  # records given up on after write errors (part of _dropped)
        self._writer_faults = 0  # unexpected exceptions in the writer thread (bugs)
        # While writes fail: when to retry, and the current backoff.
        self._retry_at: float | None = None
        self._backoff = 0.0

        self._fd: int | None = None
        self.path: Path | None = None
        self._day = ""
        self._day_end = 0.0
        self._size = 0
        self._last_fsync = time.monotonic()
        self._dirty = False
        # an unwritable dir fails here, loudly; the day's file itself is created by the
        # first write, so a session that never starts leaves no empty log behind
        tempfile.TemporaryFile(dir=self.dir).close()

        self._thread = threading.Thread(target=self._run, name="coder-logger", daemon=True)
        self._thread.start()
        _OPEN.add(self)

    # ----------------------------------------------------------------- caller

    def log(self, record: dict) -> None:
        """Queue one record. O(1); drops low-value records when the queue is full."""
        q = self._q
        if len(q) < self.buffer_size and not self._closing:
            q.append(record)
            if len(q) >= self._high_water and not self._wake.is_set():
                self._wake.set()
            return
        self._log_slow(record)

    def _log_slow(self, record: dict) -> None:
        important = record.get("type") not in self.droppable
        if self._closed or self._closing:
            if important:
                self._write_sync(record)
            else:
                self._dropped += 1
            return
        if not important:
            self._dropped += 1
            self._wake.set()
            return
        if self._retry_at is not None:
            # The disk is failing: a synchronous write would fail too. Keep the
            # record (over capacity) for the retry instead of stalling the caller.
            self._q.append(record)
            return
        self._wake.set()
        deadline = time.monotonic() + self.block_timeout
        with self._space:
            while len(self._q) >= self.buffer_size and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._space.wait(left)
        if len(self._q) < self.buffer_size and not self._closing:
            self._q.append(record)
            return
        self._write_sync(record)

    def _write_sync(self, record: dict) -> None:
        # Behind what is queued, so the file keeps the order of log() calls
        # (a model_call must follow the message records it references).
        with self._io:
            self._sync_writes += 1
            if self._closed:
                self._write_closed([*self._take_all(), record])
                return
            self._q.append(record)
            self._drain()  # on failure the records stay queued for the retry

    def _write_closed(self, batch: list) -> None:
        # After close(): open, append, fsync, close again; one try, no writer left to retry.
        with self._io:
            left = self._write_batch(batch)
            self._fsync()
            self._close_fd()
            if left:
                self._give_up(left)

    def stats(self) -> dict:
        return {
            "queued": len(self._q),
            "written": self._written,
            "dropped": self._dropped,
            "bytes": self._bytes,
            "torn_lines_repaired": self._torn,
            "sync_writes": self._sync_writes,
            "errors": self._errors,
            "last_error": self._last_error,
            "dropped_on_error": self._lost,
            "writer_faults": self._writer_faults,
            "file": str(self.path) if self.path else None,
        }

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything queued now (blocks; for tests and /export).
        False if a write failed (the records stay queued for the retry)."""
        with self._io:
            ok = self._drain()
            self._fsync()
        return ok

    def close(self, timeout: float = 5.0) -> bool:
        """Drain the queue, fsync and close. Idempotent.

        Failed writes are retried for up to ``min(timeout, close_retry)`` seconds,
        then the records left are counted as dropped (``dropped_on_error``).
        True if everything logged so far reached the file.
        """
        if self._closed:
            return True
        _OPEN.discard(self)
        deadline = time.monotonic() + min(timeout, self.close_retry)
        self._closing = True
        self._stop.set()
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        ok = not self._thread.is_alive()
        with self._io:
            lost = self._lost
            backoff = _BACKOFF_MIN
            while not self._drain():
                if time.monotonic() + backoff > deadline:
                    self._give_up(self._take_all())
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
            self._fsync()
            self._close_fd()
            self._closed = True
            late = self._take_all()  # a log() racing with close()
            if late:
                self._write_closed(late)
            ok = ok and self._lost == lost
        with self._space:
            self._space.notify_all()
        return ok

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writer

    def _run(self) -> None:
        while not self._closing:
            retry_at = self._retry_at
            if retry_at is None:
                self._wake.wait(self.flush_interval)
            else:
                # Backing off after a write error: only close() cuts the wait short
                # (a full queue must not turn this into a busy loop on a dead disk).
                self._stop.wait(max(0.0, retry_at - time.monotonic()))
            self._wake.clear()
            if self._closing:
                return  # close() drains
            try:
                with self._io:
                    if self._closed:
                        return
                    self._drain()
                    if self._dirty and time.monotonic() - self._last_fsync >= self.fsync_interval:
                        self._fsync()
            except Exception as exc:  # a bug, not a disk error: keep writing, say so
                self._writer_fault(exc)

    def _drain(self) -> bool:
        """Write what is queued. On a write error the unwritten records go back to
        the front of the queue, in order, and a retry is scheduled. Call with _io held."""
        batch = self._take_all()
        if not batch:
            return True
        self._notify_space()  # producers refill while we serialise
        left = self._write_batch(batch)
        if not left:
            self._retry_at = None
            self._backoff = 0.0
            return True
        self._q.extendleft(reversed(left))
        self._backoff = min(max(self._backoff * 2, _BACKOFF_MIN), _BACKOFF_MAX)
        self._retry_at = time.monotonic() + self._backoff
        return False

    def _note_error(self, exc: BaseException) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"

    def _writer_fault(self, exc: Exception) -> None:
        """Counted in stats (and so in session_end); the first one is printed to
        stderr with its traceback, since records taken for that batch may be lost."""
        self._note_error(exc)
        self._writer_faults += 1
        if self._writer_faults == 1:
            trace = "".join(traceback.format_exception(exc))
            print(f"coder: log writer error (still running): {trace}", file=sys.stderr)

    def _give_up(self, records: list) -> None:
        self._dropped += len(records)
        self._lost += len(records)

    def _notify_space(self) -> None:
        with self._space:
            self._space.notify_all()

    def _take_all(self) -> list:
        q = self._q
        pop = q.popleft
        out = []
        append = out.append
        with contextlib.suppress(IndexError):
            for _ in range(len(q)):
                append(pop())
        return out

    def _write_batch(self, batch: list) -> list:
        """Append ``batch`` (records, or lines already serialised by a failed try).

        Returns what did not reach the file because of an OSError, in order
        (empty on success): the unwritten lines of the failing chunk as bytes,
        then the records not serialised yet. Nothing is written twice.
        """
        i = 0
        parts: list[bytes] = []
        try:
            self._maybe_switch_file()
            fd = self._fd
            assert fd is not None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                # Another process may have died mid-write: never glue onto its torn line.
                self._torn += _repair_tail(fd)
                end = os.fstat(fd).st_size
                size = 0
                while i < len(batch):
                    rec = batch[i]
                    i += 1
                    if isinstance(rec, bytes):
                        b = rec
                    else:
                        try:
                            b = _dumps(rec)
                        except TypeError as exc:  # orjson.JSONEncodeError: not serialisable
                            self._note_error(exc)
                            self._dropped += 1
                            continue
                    parts.append(b)
                    size += len(b)
                    # Write in cache-sized chunks of whole lines: one huge join costs
                    # more in page faults than the extra syscalls.
                    if size >= _CHUNK:
                        end = self._write_all(fd, parts, end)
                        parts, size = [], 0
                if parts:
                    end = self._write_all(fd, parts, end)
                    parts = []
                self._size = end
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            self._note_error(exc)
            return [*parts, *batch[i:]]
        return []

    def _write_all(self, fd: int, parts: list[bytes], end: int) -> int:
        """Write whole lines at ``end`` (the file size). On an OSError the lines that
        made it count as written and are removed from ``parts``, a torn rest is cut
        off, and the error is raised. Returns the new file size."""
        data = b"".join(parts)
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, view[done:])
        except OSError:
            k = whole = 0
            while k < len(parts) and whole + len(parts[k]) <= done:
                whole += len(parts[k])
                k += 1
            if whole < done:
                # Best effort: if this fails too, _repair_tail cuts it before the retry.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end + whole)
            self._count_written(k, whole)
            del parts[:k]
            raise
        self._count_written(len(parts), len(data))
        return end + len(data)

    def _count_written(self, records: int, size: int) -> None:
        self._written += records
        self._bytes += size
        if records:
            self._dirty = True

    # ------------------------------------------------------------------ files

    def _open_current(self) -> None:
        now = time.time()
        day = time.strftime("%Y%m%d", time.gmtime(now))
        self._day = day
        self._day_end = (now // 86400 + 1) * 86400
        seg = 0
        for p in self.dir.glob(f"coder-{day}*.jsonl"):
            m = NAME_RE.match(p.name)
            if m and m.group(1) == day:
                seg = max(seg, int(m.group(2) or 0))
        while True:
            path = self.dir / log_file_name(day, seg)
            # O_RDWR for pread/ftruncate of a torn tail; O_APPEND keeps every write at EOF.
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._torn += _repair_tail(fd)
                size = os.fstat(fd).st_size
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if size < self.rotate_bytes:
                break
            os.close(fd)
            seg += 1
        self._fd = fd
        self.path = path
        self._size = size

    def _maybe_switch_file(self) -> None:
        if self._fd is None:
            self._open_current()
        elif self._size >= self.rotate_bytes or time.time() >= self._day_end:
            self._fsync()
            self._close_fd()
            self._open_current()

    def _fsync(self) -> None:
        if self._fd is not None and self._dirty:
            try:
                os.fsync(self._fd)
            except OSError as exc:  # nothing to retry: the kernel already dropped the pages
                self._note_error(exc)
        self._dirty = False
        self._last_fsync = time.monotonic()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
