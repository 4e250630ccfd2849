"""A total deadline for one blocking call (an HTTP request to the metrics or a Kubernetes API).

Socket timeouts bound each read, not a request: an API that drips a byte every few seconds
keeps a 30 s read timeout from ever firing. The call runs in a daemon thread and the caller
stops waiting at the deadline; the abandoned thread ends at its next socket timeout (or with
the process) and its result is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call gave no complete answer within its total deadline."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what}: no complete answer within {seconds:g}s")
        self.what, self.seconds = what, seconds


def call_with_deadline(call: Callable[[], T], seconds: float, what: str,
                       cancelled: threading.Event | None = None) -> T:
    """`call()`, or DeadlineExceeded after `seconds`; `cancelled` is set for a call that can stop early."""
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller, whatever it is
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name=f"deadline: {what}", daemon=True).start()
    if not done.wait(seconds):
        if cancelled is not None:
            cancelled.set()
        raise DeadlineExceeded(what, seconds)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
