"""Rollout progress: attempts done / total, pass rate so far, tokens/s, ETA.

A terminal gets a rich progress bar (on stderr); anything else one plain line per
attempt, so a log file or CI output reads top to bottom.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from coder.rollout.runner import Outcome


class Progress:
    def __init__(self, total: int, label: str = "rollout", stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.done = self.passed = self.scored = self.errors = self.tokens = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar = None
        if self.stream.isatty() and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total, stats="")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def add(self, o: Outcome) -> None:
        with self._lock:
            self.done += 1
            self.tokens += o.completion_tokens
            if o.complete:
                self.scored += 1
                self.passed += o.status == "passed"
            elif o.status == "error":
                self.errors += 1
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done, stats=self.stats())
            else:
                self._line(o)

    def stats(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f"pass {self.passed}/{self.scored}" if self.scored else "pass -"
        errors = f", {self.errors} errors" if self.errors else ""
        return f"{rate}{errors}, {self.tokens / elapsed:.0f} tok/s"

    def _line(self, o: Outcome) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        what = o.status + (f" (reward {o.reward:g})" if o.reward is not None else "")
        why = f": {o.reason.splitlines()[0][:160]}" if o.reason and not o.complete else ""
        print(
            f"[{self.done}/{self.total}] {o.task_id}#{o.attempt} {what}{why}, "
            f"{o.steps} steps, {o.duration_s:.1f} s | {self.stats()}, ETA {eta:.0f} s",
            file=self.stream,
            flush=True,
        )
