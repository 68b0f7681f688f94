"""Logger: drops, never-drop types, rotation, torn lines, crashes and signals (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from coder.atomic import atomic_write
from coder.log import Logger, list_log_files

ROOT = Path(__file__).resolve().parents[1]


def read_lines(d: Path) -> list[bytes]:
    out: list[bytes] = []
    for p in list_log_files(d):
        out.extend(p.read_bytes().splitlines(keepends=True))
    return out


def read_records(d: Path) -> list[dict]:
    return [orjson.loads(line) for line in read_lines(d)]


def test_log_close_stats(tmp_path: Path) -> None:
    lg = Logger(tmp_path, flush_interval=0.05)
    for i in range(500):
        lg.log({"type": "model_call", "i": i})
    assert lg.close()
    recs = read_records(tmp_path)
    assert [r["i"] for r in recs] == list(range(500))
    st = lg.stats()
    assert st["written"] == 500 and st["dropped"] == 0 and st["queued"] == 0
    assert st["bytes"] == sum(p.stat().st_size for p in list_log_files(tmp_path))
    assert list_log_files(tmp_path)[0].name.startswith("coder-")


def test_never_drop_types_survive_a_full_queue(tmp_path: Path) -> None:
    lg = Logger(
        tmp_path,
        buffer_size=20,
        flush_interval=5.0,
        block_timeout=0.01,
        droppable={"stream_delta"},
    )
    # Stall the writer (and the synchronous path) by holding its I/O lock in
    # another thread: the queue fills while the disk is "busy".
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lg._io:
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    important = ["model_call", "tool_result", "reward", "session_end", "session_start"]
    important += ["user_message", "message", "blob"]
    sent_important = []

    def produce() -> None:
        for i in range(200):
            lg.log({"type": "stream_delta", "i": i})
            if i % 10 == 0:
                typ = important[(i // 10) % len(important)]
                lg.log({"type": typ, "i": i})
                sent_important.append(i)

    p = threading.Thread(target=produce)
    p.start()
    time.sleep(0.2)
    release.set()
    p.join(10)
    t.join(5)
    assert lg.close()
    recs = read_records(tmp_path)
    kept_important = [r["i"] for r in recs if r["type"] != "stream_delta"]
    assert kept_important == sent_important  # all of them, in order
    st = lg.stats()
    lows = sum(1 for r in recs if r["type"] == "stream_delta")
    assert st["dropped"] > 0
    assert lows + st["dropped"] == 200
    assert st["written"] == len(recs) == lows + len(sent_important)
    assert st["queued"] == 0


def test_rotation_keeps_order_and_names(tmp_path: Path) -> None:
    lg = Logger(tmp_path, rotate_mib=2 / 1024, flush_interval=0.01)  # 2 KiB files
    for i in range(300):
        lg.log({"type": "message", "i": i, "pad": "x" * 50})
        if i % 50 == 0:
            lg.flush()
    lg.close()
    files = list_log_files(tmp_path)
    assert len(files) > 3
    day = files[0].name.split(".")[0]
    assert files[0].name == f"{day}.jsonl"
    assert files[1].name == f"{day}.1.jsonl" and files[2].name == f"{day}.2.jsonl"
    assert [r["i"] for r in read_records(tmp_path)] == list(range(300))


def test_torn_last_line_is_cut_and_counted(tmp_path: Path) -> None:
    lg = Logger(tmp_path)
    lg.log({"type": "reward", "i": 0})
    lg.close()
    path = list_log_files(tmp_path)[0]
    with open(path, "ab") as f:
        f.write(b'{"type": "model_call", "i": 1, "trunc')  # crash mid-write
    lg2 = Logger(tmp_path)
    lg2.log({"type": "reward", "i": 2})
    lg2.close()
    assert lg2.stats()["torn_lines_repaired"] == 1
    assert [r["i"] for r in read_records(tmp_path)] == [0, 2]
    assert path.read_bytes().endswith(b"\n")


def test_logging_after_close_still_writes_important(tmp_path: Path) -> None:
    lg = Logger(tmp_path, droppable={"debug"})
    lg.close()
    lg.log({"type": "session_end", "i": 1})
    lg.log({"type": "debug", "i": 2})
    assert [r["i"] for r in read_records(tmp_path)] == [1]
    assert lg.stats()["dropped"] == 1


CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from coder.log import Logger
    mode = sys.argv[1]
    lg = Logger(sys.argv[2], flush_interval=float(sys.argv[3]))
    if mode == "chain":
        def mine(signum, frame):
            open(os.path.join(sys.argv[2], "chained"), "w").write(str(signum))
            sys.exit(7)
        signal.signal(signal.SIGTERM, mine)
    else:
        def unwind(signum, frame):  # what coder.cli does with SIGTERM and SIGHUP
            raise SystemExit(128 + signum)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, unwind)
    n = int(sys.argv[4])
    for i in range(n):
        lg.log({{"type": "model_call", "i": i, "pad": "y" * 200}})
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "stream":
        i = n
        print("ready", flush=True)
        while True:
            lg.log({{"type": "model_call", "i": i, "pad": "y" * 200}})
            i += 1
            if i % 100 == 0:
                time.sleep(0.001)
    print("ready", flush=True)
    time.sleep(30)
    """
).format(root=str(ROOT))


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen:
    # written once: rewriting it while a sibling child is still reading it gives that
    # child an empty script (exit 0, no output), seen when three are spawned at once
    script = tmp_path / "child.py"
    if not script.exists():
        atomic_write(script, CHILD.encode())
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill9_mid_stream_leaves_valid_prefix_and_next_logger_appends(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    proc = spawn(tmp_path, "stream", str(d), "0.02", "0")
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    data = b"".join(read_lines(d))
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail is b"" unless a line was torn
    recs = [orjson.loads(line) for line in complete]
    assert len(recs) > 100
    assert [r["i"] for r in recs] == list(range(len(recs)))  # contiguous, no garbage
    lg = Logger(d)
    lg.log({"type": "session_start", "i": -1})
    lg.close()
    assert lg.stats()["torn_lines_repaired"] == (1 if tail else 0)
    after = read_records(d)
    assert after[-1]["i"] == -1 and len(after) == len(recs) + 1


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_unwinding_to_exit_loses_nothing(tmp_path: Path, sig: str) -> None:
    # No handler of the logger's own: the process exits through SystemExit
    # (SIGTERM/SIGHUP, as the CLI turns them) or KeyboardInterrupt, and the
    # logger's atexit hook drains what is queued.
    d = tmp_path / "logs"
    # flush_interval 30 s: everything is still queued when the signal lands
    proc = spawn(tmp_path, "plain", str(d), "30", "600")
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(getattr(signal, sig))
    rc = proc.wait(10)
    if sig == "SIGINT":
        assert "KeyboardInterrupt" in proc.stderr.read()  # then atexit drains
    if sig == "SIGINT":
        assert rc == -signal.SIGINT  # Python re-raises an uncaught Ctrl-C
    else:
        assert rc == 128 + getattr(signal, sig)  # the CLI's exit status for a signal
    assert [r["i"] for r in read_records(d)] == list(range(600))


def test_sigterm_chains_previous_handler(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    proc = spawn(tmp_path, "chain", str(d), "30", "300")
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 7
    assert (d / "chained").read_text() == str(int(signal.SIGTERM))
    assert len(read_records(d)) == 300


def test_uncaught_exception_drains(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    proc = spawn(tmp_path, "raise", str(d), "30", "400")
    assert proc.wait(10) == 1
    assert len(read_records(d)) == 400


def test_processes_sharing_a_dir_do_not_corrupt_each_other(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    procs = [spawn(tmp_path, "raise", str(d), "0.001", "3000") for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 1 and "boom" in err, err
    recs = read_records(d)  # every line parses
    assert len(recs) == 9000
    assert all(r["pad"] == "y" * 200 for r in recs)
    assert os.path.getsize(list_log_files(d)[0]) == sum(len(x) for x in read_lines(d))


# ------------------------------------------------------------ write errors


class FailingDisk:
    """Stands in for the kernel: os.write on a log file fails with ENOSPC ``fails``
    times (the first failure after writing ``partial`` bytes of the chunk), then
    works. Writes to other fds go through."""

    def __init__(self, root: Path, fails: int, partial: int = 0) -> None:
        self.root = str(root)
        self.fails = fails
        self.partial = partial
        self.failed = 0
        self.real = os.write

    def __call__(self, fd: int, data) -> int:
        try:
            is_log = os.readlink(f"/proc/self/fd/{fd}").startswith(self.root)
        except OSError:
            is_log = False
        if is_log and self.failed < self.fails:
            if self.partial and self.failed == 0 and len(data) > self.partial:
                self.partial, n = 0, self.partial
                return self.real(fd, bytes(data[:n]))  # a short write; the next one fails
            self.failed += 1
            raise OSError(28, "No space left on device")
        return self.real(fd, data)


def test_failed_writes_are_kept_and_retried(tmp_path: Path, monkeypatch) -> None:
    disk = FailingDisk(tmp_path, fails=3, partial=700)
    monkeypatch.setattr(os, "write", disk)
    lg = Logger(tmp_path, flush_interval=0.01)
    for i in range(300):
        lg.log({"type": "model_call" if i % 2 else "debug", "i": i, "pad": "z" * 40})
    deadline = time.monotonic() + 10
    while lg.stats()["written"] < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lg.close()
    st = lg.stats()
    assert disk.failed == 3 and disk.partial == 0 and st["errors"] >= 3
    assert st["torn_lines_repaired"] == 0  # our own short write was cut at once
    assert "No space left" in st["last_error"]
    assert st["dropped"] == 0 and st["written"] == 300 and st["queued"] == 0
    lines = read_lines(tmp_path)
    assert all(line.endswith(b"\n") for line in lines)  # the short write was cut back
    assert [orjson.loads(x)["i"] for x in lines] == list(range(300))  # no loss, no duplicate


def test_log_never_raises_and_keeps_never_drop_records_while_the_disk_fails(
    tmp_path: Path, monkeypatch
) -> None:
    disk = FailingDisk(tmp_path, fails=10**9)
    monkeypatch.setattr(os, "write", disk)
    lg = Logger(
        tmp_path, buffer_size=10, flush_interval=0.01, block_timeout=0.01, droppable={"debug"}
    )
    started = time.monotonic()
    for i in range(100):
        lg.log({"type": "tool_result" if i % 4 == 0 else "debug", "i": i})
    assert time.monotonic() - started < 1.0  # no 50 ms wait per record on a dead disk
    time.sleep(0.05)
    disk.fails = 0  # space freed
    assert lg.flush()
    assert lg.close()
    got = [r["i"] for r in read_records(tmp_path)]
    important = [i for i in range(100) if i % 4 == 0]
    assert [i for i in got if i % 4 == 0] == important
    st = lg.stats()
    assert st["errors"] > 0 and st["written"] == len(got)
    assert st["dropped"] == 100 - len(got)  # only low-value records, and counted
    assert st["dropped_on_error"] == 0


def test_close_gives_up_after_bounded_retries_and_counts_the_loss(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(os, "write", FailingDisk(tmp_path, fails=10**9))
    lg = Logger(tmp_path, flush_interval=0.01, close_retry=0.2)
    for i in range(50):
        lg.log({"type": "model_call", "i": i})
    started = time.monotonic()
    assert lg.close() is False  # not everything reached the disk
    assert time.monotonic() - started < 2.0
    st = lg.stats()
    assert st["dropped"] == 50 == st["dropped_on_error"] and st["written"] == 0
    assert st["queued"] == 0 and st["errors"] > 0
    lg.log({"type": "session_end", "i": 99})  # after close: one try, then counted
    assert lg.stats()["dropped"] == 51


def test_by_default_nothing_is_dropped_even_an_unknown_type(tmp_path: Path) -> None:
    lg = Logger(tmp_path, buffer_size=5, flush_interval=5.0, block_timeout=0.001)
    with lg._io:  # the writer is stalled: the queue fills at once
        held = threading.Thread(
            target=lambda: [lg.log({"type": "x-new", "i": i}) for i in range(50)]
        )
        held.start()
        time.sleep(0.2)
    held.join(10)
    assert lg.close()
    assert [r["i"] for r in read_records(tmp_path)] == list(range(50))
    assert lg.stats()["dropped"] == 0


def test_a_writer_fault_is_counted_reported_and_survived(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    lg = Logger(tmp_path, flush_interval=0.01)
    real = lg._drain
    faults = {"n": 2}

    def drain() -> bool:
        if faults["n"]:
            faults["n"] -= 1
            raise RuntimeError("bug in the writer")
        return real()

    monkeypatch.setattr(lg, "_drain", drain)
    lg.log({"type": "reward", "i": 0})
    lg._wake.set()
    deadline = time.monotonic() + 5
    while faults["n"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lg._thread.is_alive()  # the writer thread kept going
    lg.log({"type": "reward", "i": 1})
    assert lg.close()
    st = lg.stats()
    assert st["writer_faults"] == 2 and "bug in the writer" in st["last_error"]
    err = capsys.readouterr().err
    assert err.count("log writer error") == 1 and "RuntimeError" in err
    assert 1 in [r["i"] for r in read_records(tmp_path)]
