"""Keys typed while a turn (or a command) runs.

Between prompts the terminal is in its ordinary mode, so it echoed what was typed into
the spinner and the streamed answer; an Enter moved the live region down a line and
left a copy of the spinner behind, and the line it ended was then sent as the next
message, unseen. Now the terminal does not echo during a turn, and what was typed is
read back afterwards and becomes the next prompt's text, to edit or send (as Claude
Code keeps it): kept rather than dropped because it is usually the next request, and
an Enter typed ahead is a new line in it, never a send, so nothing reaches the model
that the user has not seen. Ctrl-C still interrupts (the terminal's signal keys stay on).
"""

from __future__ import annotations

import contextlib
import os
import re
import termios
from collections.abc import Iterator

# escape sequences (arrow keys and the like) and other control characters
_CONTROL = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.|.)?|[\x00-\x08\x0b-\x1f\x7f]")


class Typeahead:
    """Quiet typing on the terminal `fd` (None: not a terminal, nothing to do)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self._kept: list[bytes] = []

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """No echo while the body runs; then what was typed is kept for `take`."""
        saved = self._attributes()
        if saved is None:
            yield
            return
        quiet = [*saved]
        quiet[3] &= ~(termios.ECHO | termios.ECHONL)  # lflag
        self._set(quiet)
        try:
            yield
        finally:
            self.keep()
            self._set(saved)

    def keep(self) -> None:
        """Read what was typed so far into the kept text (before a question such as an
        approval, so typed-ahead text never answers it)."""
        attrs = self._attributes()
        if attrs is None:
            return
        now = [*attrs]
        now[3] &= ~termios.ICANON  # a half-typed line becomes readable too
        now[6] = [*attrs[6]]
        now[6][termios.VMIN], now[6][termios.VTIME] = 0, 0  # read what is there, no waiting
        self._set(now)
        try:
            while data := os.read(self.fd, 4096):  # type: ignore[arg-type]
                self._kept.append(data)
        except OSError:
            pass
        finally:
            self._set(attrs)

    def take(self) -> str:
        """The kept text as a prompt's text: readable characters and line breaks."""
        text = b"".join(self._kept).decode("utf-8", "replace").replace("\r", "\n")
        self._kept.clear()
        return _CONTROL.sub("", text).strip("\n")

    def _attributes(self) -> list | None:
        if self.fd is None:
            return None
        try:
            return termios.tcgetattr(self.fd)
        except (termios.error, OSError):  # not a terminal after all
            return None

    def _set(self, attrs: list) -> None:
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
