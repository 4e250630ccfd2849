"""A total deadline for one blocking call (an HTTP request to the metrics or a Kubernetes API).

Socket timeouts bound each read, not a request: an API that drips a byte every few seconds
keeps a 30 s read timeout from ever firing. The call runs in a daemon thread and the caller
stops waiting at the deadline; the abandoned thread ends at its next socket timeout (or with
the process) and its result is dropped.
"""

from __future__ import annotations

import http.client
import threading
import urllib.request
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


class TooLarge(ValueError):
    """The answer is longer than the caller accepts."""


def read_body(request: urllib.request.Request, timeout: float, cancelled: threading.Event, max_bytes: int) -> bytes:
    """The whole body, read a chunk at a time so a request cancelled at its deadline stops at its next chunk.

    TooLarge past `max_bytes`; IncompleteRead when the Content-Length promised more than arrived.
    """
    with urllib.request.urlopen(request, timeout=timeout) as response:
        chunks: list[bytes] = []
        size = 0
        while not cancelled.is_set():
            chunk = response.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"the answer exceeds {max_bytes} bytes")
            chunks.append(chunk)
        if getattr(response, "length", None):
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        return b"".join(chunks)


class NoCredentials(RuntimeError):
    """The token source failed (or gave no answer within the deadline)."""


def fetch(request: urllib.request.Request, token: Callable[[], str | None], *, timeout: float, deadline: float,
          what: str, max_bytes: int) -> bytes:
    """`request`'s whole body, with a bearer token when `token()` gives one, each call within `deadline`.

    NoCredentials when the token source fails; otherwise what `read_body` and `call_with_deadline` raise
    (DeadlineExceeded, TooLarge, IncompleteRead, urllib's errors), for the caller to name its API.
    """
    try:
        bearer = call_with_deadline(token, deadline, "the credentials (Application Default Credentials)")
    except Exception as error:
        raise NoCredentials(str(error)) from None
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    cancelled = threading.Event()
    return call_with_deadline(lambda: read_body(request, timeout, cancelled, max_bytes), deadline, what, cancelled)
