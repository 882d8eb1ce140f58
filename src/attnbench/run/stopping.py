"""Ctrl-C and SIGTERM during a run: the first Ctrl-C stops it after the cells in flight, a second
aborts them; SIGTERM (a scheduler, `kill`) aborts them at once."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run: abort the cells in flight now (a scheduler sends SIGKILL soon
    after)."""


class StopRequest:
    """Ctrl-C during a run: the first one stops it after the cells in flight, the second aborts
    them; SIGTERM aborts them at once.

    Installed only in the main thread (the only one Python delivers signals to); elsewhere Ctrl-C
    keeps its usual meaning.
    """

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number, handler in (
                (signal.SIGINT, self._handle),
                (signal.SIGTERM, self._terminate),
            ):
                self._previous[number] = signal.signal(number, handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            for number, previous in self._previous.items():
                fallback = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
                signal.signal(number, previous if previous is not None else fallback)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "attnbench: stopping after the cells in flight; Ctrl-C again to abort them",
            file=sys.stderr,
            flush=True,
        )

    def _terminate(self, signum: int, frame: Any) -> None:
        self.requested = True
        raise Terminated
