"""Istio's standard metrics through a Prometheus HTTP API: Cloud Monitoring's, for Managed Service for Prometheus.

Cloud Monitoring answers PromQL at
`https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus/api/v1/query`
(GET, `query` and `time`; OAuth scope monitoring.read), authenticated here with Google
Application Default Credentials. Any Prometheus-compatible base URL works (tests serve one on
loopback). Istio labels requests by the destination's cluster ID, `destination_cluster`,
which is `global.multiCluster.clusterName` - the stack's cluster name.

No answer is trusted blindly: every request has a total deadline, and an answer that is not a
well-formed instant vector of finite, non-negative numbers per named cluster raises
`Inconclusive` (a `PrometheusError`), never a measurement.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from components import promql
from tools.deadline import DeadlineExceeded, NoCredentials, TooLarge, fetch
from tools.flip.judge import ClusterMeasurement

MONITORING_API = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"
READ_SCOPE = "https://www.googleapis.com/auth/monitoring.read"
# Per socket operation (connect, each read) ...
REQUEST_TIMEOUT_SECONDS = 30.0
# ... and for the whole request: a dripping API cannot hold a read longer than this.
REQUEST_DEADLINE_SECONDS = 30.0
# An instant vector per destination cluster is a few hundred bytes; anything this large is not one.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
CLUSTER_LABEL = promql.DESTINATION_CLUSTER
# Istio's value of destination_cluster when the request reached no workload it knows.
UNKNOWN_CLUSTER = "unknown"
# The queries count each request once, as `reporter="source"` reports it (components/promql.py's
# requests_selector). Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/,
# label "Reporter") set `source` when the report comes from a client proxy OR A GATEWAY and
# `destination` when it comes from the server's proxy. So each request to a routed service is reported
# once as `source` - by the ingress gateway for users of the global load balancer, by the caller's
# sidecar inside the mesh (the east-west gateway passes mTLS through, AUTO_PASSTHROUGH, and reports no
# HTTP request) - while summing both reporters would count it twice, and `destination` alone would
# miss every request that never reached a server proxy: `no healthy upstream` (503 UH) at a gateway,
# refused connections, timeouts. Both the edge's and the mesh's clients count (no `source` filter).

TokenSource = Callable[[], str | None]


class PrometheusError(Exception):
    """The metrics API could not answer; the message says what it said."""


class Inconclusive(PrometheusError):
    """The metrics API answered, but with something that cannot be judged (the message says what)."""


def cloud_monitoring_url(project: str) -> str:
    return MONITORING_API.format(project=project)


def adc_token() -> str | None:
    """A bearer token from Application Default Credentials (`gcloud auth application-default login`, WIF in CI)."""
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[READ_SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials.token


def queries(services: Sequence[str], window_seconds: int) -> dict[str, str]:
    """The three PromQL queries of a step over the last `window_seconds`, per destination cluster, from
    every client (edge and mesh) of the routed services (components/promql.py builds them)."""
    w = f"{max(int(window_seconds), 1)}s"
    return {
        "requests": promql.request_count(services, None, w),
        "errors": promql.error_count(services, None, w),
        "p99": promql.p99(services, None, w),
    }


class PrometheusClient:
    """Instant queries against one Prometheus HTTP API base URL (…/api/v1/query is appended)."""

    def __init__(self, base_url: str, token: TokenSource = lambda: None,
                 timeout: float = REQUEST_TIMEOUT_SECONDS, deadline: float = REQUEST_DEADLINE_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.deadline = deadline

    def query(self, promql: str, at: float) -> dict[str, float]:
        """`promql` at time `at`, as {destination cluster: value}; `Inconclusive` if the answer cannot be used."""
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            raw = fetch(request, self.token, timeout=self.timeout, deadline=self.deadline,
                        what=f"the metrics API at {self.base_url}", max_bytes=MAX_ANSWER_BYTES)
        except NoCredentials as error:
            raise PrometheusError(f"no credentials for the metrics API ({error}); run "
                                  "`gcloud auth application-default login`") from None
        except DeadlineExceeded as error:
            raise PrometheusError(str(error)) from None
        except urllib.error.HTTPError as error:
            raise PrometheusError(f"the metrics API answered {error.code} {error.reason}: "
                                  f"{_error_text(error)}") from None
        except http.client.IncompleteRead:
            raise Inconclusive("the metrics API's answer was cut off (truncated body)") from None
        except TooLarge:
            raise Inconclusive(f"the metrics API's answer exceeds {MAX_ANSWER_BYTES} bytes") from None
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as error:
            raise PrometheusError(f"cannot reach the metrics API at {self.base_url}: {error}") from None
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise Inconclusive("the metrics API answered bytes that are not UTF-8") from None
        except ValueError:
            raise Inconclusive("the metrics API answered something that is not JSON (or was cut off)") from None
        return _vector(body)

    def measure(self, services: Sequence[str], window_seconds: int, at: float) -> dict[str, ClusterMeasurement]:
        """Requests, 5xx and p99 per destination cluster over the window ending at `at`.

        5xx that name no cluster (`unknown`: e.g. no healthy upstream at a gateway) cannot be
        blamed on one, so the read is inconclusive; other unattributed requests are left out.
        """
        q = queries(services, window_seconds)
        requests, errors, p99 = (self.query(q[k], at) for k in ("requests", "errors", "p99"))
        for kind, values in (("requests", requests), ("5xx", errors)):
            for cluster, value in values.items():
                if math.isnan(value):
                    raise Inconclusive(f"{cluster}: the count of {kind} is NaN")
        unattributed = errors.pop(UNKNOWN_CLUSTER, 0.0)
        if unattributed > 0:
            raise Inconclusive(f"{unattributed:.0f} 5xx answers of the routed services name no destination "
                               "cluster (e.g. `no healthy upstream` at a gateway): no cluster can be judged")
        requests.pop(UNKNOWN_CLUSTER, None)
        p99.pop(UNKNOWN_CLUSTER, None)
        for cluster in errors:
            if errors[cluster] > requests.get(cluster, 0.0):
                raise Inconclusive(f"{cluster}: {errors[cluster]:g} 5xx out of {requests.get(cluster, 0.0):g} "
                                   "requests: the answers disagree")
        out: dict[str, ClusterMeasurement] = {}
        for c in set(requests) | set(p99) | set(errors):
            latency = p99.get(c)
            out[c] = ClusterMeasurement(requests=requests.get(c, 0.0), errors=errors.get(c, 0.0),
                                        p99_ms=None if latency is None or math.isnan(latency) else latency)
        return out


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read(4096)
    except (OSError, http.client.HTTPException):
        return str(error.reason)
    try:
        body = json.loads(raw)
        return str(body.get("error") or body.get("message") or body)[:300]
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:300]


def _vector(body: Any) -> dict[str, float]:
    """An instant vector by destination cluster: finite (NaN allowed for a quantile), non-negative, one per cluster."""
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error") if isinstance(body, dict) else body
        raise PrometheusError(f"the query failed: {str(detail)[:300]}")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        found = data.get("resultType") if isinstance(data, dict) else data
        raise Inconclusive(f"expected an instant vector, got {str(found)[:100]!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise Inconclusive(f"the vector's result is not a list: {str(result)[:100]!r}")
    out: dict[str, float] = {}
    for series in result:
        metric = series.get("metric") if isinstance(series, dict) else None
        sample = series.get("value") if isinstance(series, dict) else None
        if not isinstance(metric, dict) or not isinstance(metric.get(CLUSTER_LABEL), str) \
                or not metric[CLUSTER_LABEL]:
            raise Inconclusive(f"a series carries no {CLUSTER_LABEL} label: {str(series)[:200]}")
        cluster = metric[CLUSTER_LABEL]
        if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
            raise Inconclusive(f"{cluster}: the sample is not [time, \"value\"]: {str(sample)[:100]}")
        try:
            value = float(sample[1])
        except ValueError:
            raise Inconclusive(f"{cluster}: the value {sample[1][:40]!r} is not a number") from None
        # Prometheus answers NaN for a quantile of no observations: the caller decides what that means.
        if math.isinf(value) or value < 0:
            raise Inconclusive(f"{cluster}: the value {value:g} is not a finite, non-negative number")
        if cluster in out:
            raise Inconclusive(f"{cluster}: two series for one cluster in a `sum by ({CLUSTER_LABEL})` answer")
        out[cluster] = value
    return out
