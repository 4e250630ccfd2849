"""Plain-text output of the verify command: check tables, the probe's split table, live progress.

Everything renders to plain text (no colour, no box drawing) so that a CI log, a pipe
or a pasted issue keeps it readable; only the progress display redraws in place, and
only on a terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TextIO

from tools.verify.checks import MESH, CheckResult, StackOutputs
from tools.verify.probe import SplitRow


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  " + "  ".join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]


def format_checks(results: Sequence[CheckResult], outputs: StackOutputs) -> str:
    """One table per cluster (then the mesh-wide checks), failures followed by cause and fix."""
    lines: list[str] = []
    groups = [*(c.name for c in outputs.clusters), MESH]
    info = {c.name: f"{c.name} (network {c.network}, {c.region})" for c in outputs.clusters}
    info[MESH] = "mesh-wide"
    for group in groups:
        rows = [r for r in results if r.cluster == group]
        if not rows:
            continue
        lines.append(f"== {info[group]} ==")
        table = _table(["RESULT", "CHECK", "DETAIL"],
                       [["PASS" if r.passed else "FAIL", r.check, r.detail] for r in rows])
        lines.append(table[0])
        for r, text in zip(rows, table[1:], strict=True):
            lines.append(text)
            if not r.passed:
                indent = " " * (2 + len("RESULT") + 2)
                lines.append(f"{indent}cause: {r.cause}")
                lines.append(f"{indent}fix:   {r.fix}")
        lines.append("")
    passed = sum(r.passed for r in results)
    lines.append(f"checks: {passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def format_split(rows: Sequence[SplitRow], *, target: str, requests: int, tolerance: float) -> str:
    """The probe's result: per client, who answered, against the configured weights."""
    lines = [f"== probe: {requests} requests from each cluster to {target} (tolerance ±{tolerance:g} pp) =="]
    table = _table(
        ["FROM", "TO", "WEIGHT", "RESPONSES", "SHARE", "DEVIATION", "RESULT"],
        [[r.client, r.target, f"{r.weight}%", str(r.responses), f"{r.share:.1f}%", f"{r.deviation:+.1f} pp",
          "PASS" if r.passed else "FAIL"] for r in rows],
        right=(2, 3, 4, 5),
    )
    lines.append(table[0])
    for r, text in zip(rows, table[1:], strict=True):
        lines.append(text)
        if r.note:
            lines.append(f"      {'!' if not r.passed else ' '} {r.note}")
    return "\n".join(lines)


class Progress:
    """Per-cluster status lines for the probe.

    On a terminal the block of lines is redrawn in place as steps finish; otherwise
    every change is one appended line (`probe [blue] echo ready`), which logs well.
    """

    def __init__(self, clusters: Sequence[str], stream: TextIO, *, tty: bool | None = None) -> None:
        self._clusters = list(clusters)
        self._status = dict.fromkeys(self._clusters, "waiting")
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._drawn = False
        self._lock = threading.Lock()
        self._width = max(len(c) for c in self._clusters) if self._clusters else 0

    def start(self, title: str) -> None:
        with self._lock:
            self._stream.write(f"{title}\n")
            if self._tty:
                self._draw()
            self._stream.flush()

    def update(self, cluster: str, status: str) -> None:
        with self._lock:
            self._status[cluster] = status
            if self._tty:
                self._draw()
            else:
                self._stream.write(f"probe [{cluster}] {status}\n")
            self._stream.flush()

    def _draw(self) -> None:
        if self._drawn:
            # Move the cursor back up over the block and redraw it.
            self._stream.write(f"\x1b[{len(self._clusters)}F")
        for c in self._clusters:
            self._stream.write(f"\x1b[2K  {c.ljust(self._width)}  {self._status[c]}\n")
        self._drawn = True
