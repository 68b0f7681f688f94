"""A server's health, as Docker's health checks count it: the one definition of the
states `coder server status` shows and the session's server watcher keeps.

Each check is a `probe` (endpoint.py). A ready server is HEALTHY and a loading one
LOADING (either resets the count of failures); something that is not a llama.cpp server,
or an HTTP error, is ERROR at once, as is a server process that exited. A check that
fails (nothing answers, or no answer in time) counts only outside the start period, and
`retries` such failures in a row make the server UNHEALTHY; fewer leave the state as it
was (UNKNOWN before anything was seen).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from coder.server.endpoint import Probe


class Health(StrEnum):
    UNKNOWN = "UNKNOWN"  # not checked yet, or only failures too few to judge
    LOADING = "LOADING"  # up, loading its model
    HEALTHY = "HEALTHY"  # ready
    UNHEALTHY = "UNHEALTHY"  # `retries` failed checks in a row, after the start period
    ERROR = "ERROR"  # the process exited, or what answers is not a usable llama.cpp server


RETRIES = 3  # Docker's default


@dataclass
class HealthCheck:
    """The state from the checks so far. `started`: when the server process started
    (epoch seconds; None: unknown, so no start period applies)."""

    retries: int = RETRIES
    start_period: float = 0.0
    started: float | None = None
    state: Health = Health.UNKNOWN
    failures: int = 0  # failed checks in a row that counted
    detail: str = ""  # what the last check saw, when it was not plain health
    checked: float | None = None  # when (epoch seconds)

    def observe(self, p: Probe, now: float | None = None) -> Health:
        """Take one probe's result; the state after it."""
        now = time.time() if now is None else now
        self.checked, self.detail = now, p.detail
        if p.state in ("ready", "loading"):
            self.failures = 0
            self.state = Health.HEALTHY if p.state == "ready" else Health.LOADING
        elif p.state == "foreign" and not p.timed_out:
            self.state = Health.ERROR
        elif not self.starting(now):
            self.failures += 1
            if self.failures >= self.retries:
                self.state = Health.UNHEALTHY
        return self.state

    def exited(self, code: int | None, now: float | None = None) -> Health:
        """The server process ended (`code`: its exit status, None if not known)."""
        self.checked = time.time() if now is None else now
        self.detail = "the server process exited" + (f" (code {code})" if code is not None else "")
        self.state = Health.ERROR
        return self.state

    def starting(self, now: float) -> bool:
        """Inside the start period, where failed checks do not count."""
        return self.started is not None and now - self.started < self.start_period
