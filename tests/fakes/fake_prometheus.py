"""A fake Prometheus HTTP API on 127.0.0.1 serving scripted Istio series, for the flip tool's tests.

It answers `GET /api/v1/query` as Prometheus (and Cloud Monitoring's Prometheus API) do:
an instant vector per `destination_cluster` (values as strings, `[time, "value"]`; Prometheus
API docs, "Instant vectors"). What it answers comes from a responder fed the query's kind
(requests, errors or p99), its window and its time, so a test scripts a rollout: traffic that
follows the weights actually applied, a cluster that starts failing at some weight, too little
traffic, an API error on the Nth query.

`by_reporter` scripts the series per Istio reporter instead, and the fake honours the query's
`reporter="..."` matcher as Prometheus would (without one it sums both, which is the double
count a judge must not make). Istio's standard metrics set `reporter="source"` for a client
proxy or a gateway and `destination` for the server's proxy
(https://istio.io/latest/docs/reference/config/metrics/): `edge_traffic` is what users of the
global load balancer produce - the ingress gateway reports each request as `source`, the
server's sidecar as `destination`; a request the gateway could not route (`no healthy
upstream`, 503) is reported by the gateway alone, with destination_cluster `unknown`.

`answer` replaces a whole answer (status, raw bytes, a Content-Length that promises more than
is sent, bytes dripped one at a time) for the answers a real API or proxy can give when it
misbehaves.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

# (kind "requests" | "errors" | "p99", window seconds, time) -> {destination cluster: value}
Responder = Callable[[str, int, float], Mapping[str, float]]
Weights = Callable[[], Mapping[str, int]]
# (reporter "source" | "destination", kind, window seconds, time) -> {destination cluster: value}
ReporterResponder = Callable[[str, str, int, float], Mapping[str, float]]
REPORTERS = ("source", "destination")


@dataclass(frozen=True)
class Answer:
    """A raw answer: `body` as sent, `length` the Content-Length announced, `drip` seconds between bytes."""

    body: bytes
    status: int = 200
    length: int | None = None
    drip: float = 0.0


def vector(values: Mapping[str, object], at: float = 0.0) -> bytes:
    """An instant-vector answer with each value sent exactly as given (a string, or anything else)."""
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"destination_cluster": c}, "value": [at, v]} for c, v in values.items()]}}).encode()


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


def edge_traffic(applied: Weights, rps: float, *, unhealthy: Callable[[str], bool] = lambda c: False,
                 p99_ms: float = 80.0) -> ReporterResponder:
    """Users of the global load balancer only: `rps` through the ingress gateways, split by the weights
    deployed; the requests routed to an `unhealthy` cluster fail at the gateway (503 UH, cluster `unknown`)."""
    def respond(reporter: str, kind: str, window: int, at: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for cluster, weight in applied().items():
            requests = rps * window * weight / 100
            if requests <= 0:
                continue
            if unhealthy(cluster):
                if reporter == "source" and kind in ("requests", "errors"):
                    out["unknown"] = out.get("unknown", 0.0) + requests
                continue
            if kind == "requests":
                out[cluster] = requests
            elif kind == "p99":
                out[cluster] = p99_ms
        return out

    return respond


class FakePrometheus(LoopbackServer):
    """One Prometheus HTTP API; `fail_on(n)` -> (status, message) makes the n-th query (1-based) fail."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.by_reporter: ReporterResponder | None = None
        self.queries: list[tuple[str, str]] = []  # (query, time)
        self.fail_on: Callable[[int], tuple[int, str] | None] = lambda n: None
        # (n, kind) -> a raw Answer for the n-th query (1-based), or None for the scripted one.
        self.answer: Callable[[int, str], Answer | None] = lambda n, kind: None
        super().__init__(self._handler())

    def values(self, query: str, window: int, at: float) -> Mapping[str, float]:
        kind = kind_of(query)
        if self.by_reporter is None:
            return self.responder(kind, window, at)
        matcher = re.search(r'reporter="(\w+)"', query)
        out: dict[str, float] = {}
        for reporter in (matcher.group(1),) if matcher else REPORTERS:
            for cluster, value in self.by_reporter(reporter, kind, window, at).items():
                out[cluster] = out.get(cluster, 0.0) + value if kind != "p99" else value
        return out

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

            def _send_raw(self, answer: Answer) -> None:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body) if answer.length is None else answer.length))
                self.end_headers()
                try:
                    if not answer.drip:
                        self.wfile.write(answer.body)
                        return
                    for i in range(len(answer.body)):
                        self.wfile.write(answer.body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(answer.drip)
                except OSError:
                    return  # the client gave up
                finally:
                    self.close_connection = True

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
                raw = fake.answer(len(fake.queries), kind_of(query))
                if raw is not None:
                    self._send_raw(raw)
                    return
                window = re.search(r"\[(\d+)s\]", query)
                if not window:
                    self._send(400, {"status": "error", "errorType": "bad_data", "error": "no [Ns] range"})
                    return
                values = fake.values(query, int(window.group(1)), float(at))
                self._send(200, {"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {"destination_cluster": c}, "value": [float(at), repr(float(v))]}
                    for c, v in values.items()]}})

        return Handler
