"""A fake Prometheus HTTP API on 127.0.0.1 serving scripted Istio series, for the flip tool's tests.

It answers `GET /api/v1/query` as Prometheus (and Cloud Monitoring's Prometheus API) do:
an instant vector per `destination_cluster`. What it answers comes from a responder fed
the query's kind (requests, errors or p99), its window and its time, so a test scripts a
rollout: traffic that follows the weights actually applied, a cluster that starts failing
at some weight, too little traffic, an API error on the Nth query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

# (kind "requests" | "errors" | "p99", window seconds, time) -> {destination cluster: value}
Responder = Callable[[str, int, float], Mapping[str, float]]
Weights = Callable[[], Mapping[str, int]]


def kind_of(query: str) -> str:
    if "histogram_quantile" in query:
        return "p99"
    if 'response_code=~"5..' in query:
        return "errors"
    return "requests"


def traffic(applied: Weights, rps: float, *, error_pct: Callable[[str, Mapping[str, int]], float] = lambda c, w: 0.0,
            p99_ms: Callable[[str, Mapping[str, int]], float] = lambda c, w: 80.0) -> Responder:
    """Traffic that follows the weights deployed right now: `rps` in total, split by weight."""
    def respond(kind: str, window: int, at: float) -> dict[str, float]:
        weights = applied()
        out: dict[str, float] = {}
        for cluster, weight in weights.items():
            if weight <= 0:
                continue
            requests = rps * window * weight / 100
            if kind == "requests":
                out[cluster] = requests
            elif kind == "errors":
                out[cluster] = requests * error_pct(cluster, weights) / 100
            elif requests > 0:
                out[cluster] = p99_ms(cluster, weights)
        return out

    return respond


class FakePrometheus(LoopbackServer):
    """One Prometheus HTTP API; `fail_on(n)` -> (status, message) makes the n-th query (1-based) fail."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.queries: list[tuple[str, str]] = []  # (query, time)
        self.fail_on: Callable[[int], tuple[int, str] | None] = lambda n: None
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != "/api/v1/query":
                    self._send(404, {"status": "error", "errorType": "not_found", "error": url.path})
                    return
                params = parse_qs(url.query)
                query, at = params.get("query", [""])[0], params.get("time", ["0"])[0]
                fake.queries.append((query, at))
                failure = fake.fail_on(len(fake.queries))
                if failure is not None:
                    code, message = failure
                    self._send(code, {"status": "error", "errorType": "internal", "error": message})
                    return
                window = re.search(r"\[(\d+)s\]", query)
                if not window:
                    self._send(400, {"status": "error", "errorType": "bad_data", "error": "no [Ns] range"})
                    return
                values = fake.responder(kind_of(query), int(window.group(1)), float(at))
                self._send(200, {"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {"destination_cluster": c}, "value": [float(at), repr(float(v))]}
                    for c, v in values.items()]}})

        return Handler
