"""SIGINT and SIGTERM during a flip: never abandon the Pulumi CLI, never stop a rollback midway.

Python raises KeyboardInterrupt wherever the main thread is; inside the Automation API that
abandons the CLI child 0.25 s later with its pipes closed (`subprocess.Popen.__exit__`), and the
cancelling update keeps the stack locked. So while a CLI child runs, the handler raises nothing:
it forwards ONE SIGINT to the child's own process group (the child runs in its own session, so
a terminal's Ctrl-C or a CI runner's signal reaches only this process) and the runner waits for
the child to finish cancelling. While a rollback runs (`shielded`), signals are only recorded.
Elsewhere the first signal raises `Stopped`, and the flip rolls back. docs/flip.md "Guarantees".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: roll back to the last good weights."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopper:
    """The process's SIGINT/SIGTERM handler for the length of a flip."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.child_pid: int | None = None
        self.child_signalled = False
        self.starting = False
        self.shielded = 0
        self._previous: dict[int, object] = {}

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self.child_pid is not None or self.starting:
            self.forward()
            return
        if self.shielded or not first:
            return
        raise Stopped(signum)

    def forward(self) -> None:
        """One SIGINT to the CLI's process group: `pulumi` cancels the update and releases the lock."""
        if self.child_pid is None or self.child_signalled or self.signum is None or self.shielded:
            return
        self.child_signalled = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child_pid, signal.SIGINT)

    def raise_if_stopped(self) -> None:
        if self.signum is not None and not self.shielded:
            raise Stopped(self.signum)

    @contextlib.contextmanager
    def child(self) -> Iterator[None]:
        """Mark the span in which a CLI child may exist (see `stack.pulumi_runner`)."""
        self.starting = True
        try:
            yield
        finally:
            self.starting = False
            self.child_pid = None
            self.child_signalled = False

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """A rollback: signals are recorded, never raised and never forwarded to its CLI."""
        self.shielded += 1
        try:
            yield
        finally:
            self.shielded -= 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Handle SIGINT and SIGTERM in the main thread for the block (tests run flips in other threads too)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self.handle)
        try:
            yield self
        finally:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)  # type: ignore[arg-type]
            self._previous.clear()
