"""Progress lines for the long offline commands (`make render`, `make diff`, `make bench`).

On stderr, so what a command prints on stdout (a report, a diff) stays clean for a pipe; each
line carries the seconds since the command started, so a slow step shows itself.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, command: str, out: TextIO | None = None) -> None:
        self.command = command
        self.out = out if out is not None else sys.stderr
        self.started = time.monotonic()

    def step(self, message: str) -> None:
        """`[  3.2s] render: message`."""
        self.out.write(f"[{time.monotonic() - self.started:5.1f}s] {self.command}: {message}\n")
        self.out.flush()
