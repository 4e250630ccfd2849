"""Istio's standard metrics through a Prometheus HTTP API: Cloud Monitoring's, for Managed Service for Prometheus.

Cloud Monitoring answers PromQL at
`https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus/api/v1/query`
(GET, `query` and `time`; OAuth scope monitoring.read), authenticated here with Google
Application Default Credentials. Any Prometheus-compatible base URL works (tests serve one on
loopback). Istio labels requests by the destination's cluster ID, `destination_cluster`,
which is `global.multiCluster.clusterName` - the stack's cluster name. The client-side
proxies report (`reporter="source"`) so failures that never reach the destination count.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from tools.flip.judge import ClusterMeasurement

MONITORING_API = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"
READ_SCOPE = "https://www.googleapis.com/auth/monitoring.read"
REQUEST_TIMEOUT_SECONDS = 30.0
REQUESTS_METRIC = "istio_requests_total"
DURATION_METRIC = "istio_request_duration_milliseconds_bucket"
CLUSTER_LABEL = "destination_cluster"

TokenSource = Callable[[], str | None]


class PrometheusError(Exception):
    """The metrics API could not answer; the message says what it said."""


def cloud_monitoring_url(project: str) -> str:
    return MONITORING_API.format(project=project)


def adc_token() -> str | None:
    """A bearer token from Application Default Credentials (`gcloud auth application-default login`, WIF in CI)."""
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[READ_SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials.token


def _selector(services: Sequence[str], extra: str = "") -> str:
    hosts = "|".join(re.escape(s) for s in services)
    return f'{{reporter="source",destination_service=~"{hosts}"{extra}}}'


def queries(services: Sequence[str], window_seconds: int) -> dict[str, str]:
    """The three PromQL queries of a step, over the last `window_seconds`."""
    w = f"{max(int(window_seconds), 1)}s"
    return {
        "requests": f"sum by ({CLUSTER_LABEL}) (increase({REQUESTS_METRIC}{_selector(services)}[{w}]))",
        "errors": (f"sum by ({CLUSTER_LABEL}) (increase({REQUESTS_METRIC}"
                   f'{_selector(services, ",response_code=~" + chr(34) + "5.." + chr(34))}[{w}]))'),
        "p99": (f"histogram_quantile(0.99, sum by ({CLUSTER_LABEL}, le) "
                f"(rate({DURATION_METRIC}{_selector(services)}[{w}])))"),
    }


class PrometheusClient:
    """Instant queries against one Prometheus HTTP API base URL (…/api/v1/query is appended)."""

    def __init__(self, base_url: str, token: TokenSource = lambda: None,
                 timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def query(self, promql: str, at: float) -> dict[str, float]:
        """`promql` at time `at`, as {destination cluster: value}."""
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            token = self.token()
        except Exception as error:
            raise PrometheusError(f"no credentials for the metrics API ({error}); run "
                                  "`gcloud auth application-default login`") from None
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise PrometheusError(f"the metrics API answered {error.code} {error.reason}: "
                                  f"{_error_text(error.read())}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise PrometheusError(f"cannot reach the metrics API at {self.base_url}: {error}") from None
        except json.JSONDecodeError:
            raise PrometheusError("the metrics API answered something that is not JSON") from None
        return _vector(body)

    def measure(self, services: Sequence[str], window_seconds: int, at: float) -> dict[str, ClusterMeasurement]:
        """Requests, 5xx and p99 per destination cluster over the window ending at `at`."""
        q = queries(services, window_seconds)
        requests, errors, p99 = (self.query(q[k], at) for k in ("requests", "errors", "p99"))
        return {c: ClusterMeasurement(requests=requests.get(c, 0.0), errors=errors.get(c, 0.0), p99_ms=p99.get(c))
                for c in set(requests) | set(p99)}


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        return str(body.get("error") or body.get("message") or body)[:300]
    except (json.JSONDecodeError, AttributeError):
        return raw.decode(errors="replace")[:300]


def _vector(body: Any) -> dict[str, float]:
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error") if isinstance(body, dict) else body
        raise PrometheusError(f"the query failed: {detail}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"expected an instant vector, got {data.get('resultType')!r}")
    out: dict[str, float] = {}
    for series in data.get("result") or []:
        cluster = (series.get("metric") or {}).get(CLUSTER_LABEL, "unknown")
        value = float(series["value"][1])
        if not math.isnan(value):
            out[cluster] = out.get(cluster, 0.0) + value
    return out
