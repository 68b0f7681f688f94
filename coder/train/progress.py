"""Training progress (step, loss, trained tokens/s, ETA) and Ctrl-C: a TrainerCallback.

A first Ctrl-C asks the trainer to stop after the step under way, so the adapter saved
is the one of the last finished step; a second one interrupts at once."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field

from transformers import TrainerCallback


@dataclass
class Report:
    steps: int = 0
    total: int = 0
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    first_step_s: float | None = None  # from the trainer's start to the first step's end
    interrupted: bool = False

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def line(r: Report) -> str:
    loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
    left = (r.total - r.steps) * (r.seconds / r.steps) if r.steps else 0.0
    return (
        f"step {r.steps}/{r.total}  loss {loss}  {r.tokens_per_s:.0f} tok/s  "
        f"ETA {int(left // 60)}:{int(left % 60):02d}"
    )


class Progress(TrainerCallback):
    def __init__(self, rich: bool | None = None, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.rich = self.stream.isatty() if rich is None else rich
        self.report = Report()
        self._t0 = 0.0
        self._stop = False
        self._old = None
        self._live = None

    # -- Ctrl-C
    def _on_sigint(self, signum, frame) -> None:
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True
        self.report.interrupted = True
        self._say("stopping after this step (Ctrl-C again to stop now)")

    def on_train_begin(self, args, state, control, **kw):
        self.report.total = state.max_steps
        self._t0 = time.monotonic()
        try:
            self._old = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            self._old = None
        if self.rich:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream), transient=False)
            self._live.start()

    def on_step_end(self, args, state, control, **kw):
        r = self.report
        r.steps = state.global_step
        r.seconds = time.monotonic() - self._t0
        if r.first_step_s is None:
            r.first_step_s = r.seconds
        r.tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        if self._stop:
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.report.losses.append(float(logs["loss"]))
            self._say(line(self.report), progress=True)

    def on_train_end(self, args, state, control, **kw):
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _say(self, text: str, progress: bool = False) -> None:
        if self._live is not None and progress:
            self._live.update(text)
        elif self._live is not None:
            self._live.console.print(text)
        else:
            print(text, file=self.stream, flush=True)
