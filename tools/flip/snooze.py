"""While a flip runs, the destination success-rate alert policy is snoozed: the flip judges its own steps.

The policy `DestinationClusterSuccessRateLow` (components/alerts.py, stack output
`alertPolicies.success`) is for the time between flips; a step the flip rolls back would otherwise
open an incident for a failure already handled. Cloud Monitoring's snooze API (v3
`projects.snoozes`, https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.snoozes):

- `create`: `POST v3/projects/P/snoozes` with a `Snooze` - `displayName`, `criteria.policies`
  (the alert policy names, at most 16) and `interval` {`startTime`, `endTime`} (RFC 3339). The start
  "cannot be in the past" (15 s of clock skew are allowed), so it is the flip's own now.
- `patch`: `PATCH v3/{name}?updateMask=interval.end_time`. Which fields may change depends on the
  interval: a snooze that has ended is read-only; one that has started may change `display_name`
  and `interval.end_time`; one that has not started also `interval.start_time`
  (`UpdateSnoozeRequest`). There is no delete: `gcloud monitoring snoozes cancel` sets the end
  (and a future start) to one second from now; ending a snooze here is the same patch.

The snooze is bounded: it ends by itself at the flip's worst-case duration (`expected_seconds`)
even if the flip is killed outright, is extended when a slow flip needs more, and is ended when
the flip ends - plus the policy's own lookback window, so the failed step's requests have left
the window the policy judges before it can page. Failures are said and never stop a flip: a
missed snooze costs a page, not a rollback. Authentication: Application Default Credentials with
the monitoring scope (the deployer needs `roles/monitoring.snoozeEditor`).
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from components.alerts import TRAFFIC_WINDOW
from components.config import MIN_WINDOW_SECONDS, FlipSpec
from components.config.rules import duration_seconds
from tools.deadline import DeadlineExceeded, NoCredentials, TooLarge, fetch

MONITORING_V3 = "https://monitoring.googleapis.com/v3"
WRITE_SCOPE = "https://www.googleapis.com/auth/monitoring"
REQUEST_TIMEOUT_SECONDS = 30.0
REQUEST_DEADLINE_SECONDS = 30.0
MAX_ANSWER_BYTES = 1024 * 1024
POLICY_NAME = re.compile(r"^projects/[^/]+/alertPolicies/[^/]+$")
# The stack output `alertPolicies` key of the success-rate policy (components/alerts.py POLICIES).
SUCCESS_POLICY = "success"
# Per step, beyond converging and holding: its preview, update (a locked stack is waited for up to
# 300 s, stack.py) and read-back.
UPDATE_ALLOWANCE_SECONDS = 600
# After the flip, the policy keeps judging the last TRAFFIC_WINDOW of requests.
LOOKBACK_SECONDS = duration_seconds(TRAFFIC_WINDOW) or 600

TokenSource = Callable[[], str | None]


class SnoozeError(Exception):
    """The snooze API could not do it; the message says what it answered."""


def adc_token() -> str | None:
    """A bearer token with the monitoring scope from Application Default Credentials."""
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[WRITE_SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials.token


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_seconds(steps: int, hold: int, interval: int, flip: FlipSpec) -> int:
    """The longest `steps` steps can take (converge, hold, a full inconclusive budget, the update), and a rollback."""
    per_step = (UPDATE_ALLOWANCE_SECONDS + flip.converge_timeout_seconds + max(hold, MIN_WINDOW_SECONDS)
                + (flip.inconclusive_limit + 1) * interval)
    return steps * per_step + UPDATE_ALLOWANCE_SECONDS


class SnoozeClient:
    """Cloud Monitoring v3 snoozes: create and patch, each request under a total deadline."""

    def __init__(self, base_url: str = MONITORING_V3, token: TokenSource = adc_token,
                 timeout: float = REQUEST_TIMEOUT_SECONDS, deadline: float = REQUEST_DEADLINE_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.deadline = deadline

    def create(self, policy: str, start: float, end: float, display_name: str) -> dict[str, Any]:
        if not POLICY_NAME.match(policy):
            raise SnoozeError(f"{policy!r} is not an alert policy name (projects/P/alertPolicies/ID)")
        parent = policy.split("/alertPolicies/", 1)[0]
        body = {"displayName": display_name[:512], "criteria": {"policies": [policy]},
                "interval": {"startTime": rfc3339(start), "endTime": rfc3339(end)}}
        return self._call("POST", f"{parent}/snoozes", body)

    def set_end(self, name: str, end: float) -> dict[str, Any]:
        """Move the end of a started snooze (to end it: a second from now, as `gcloud ... snoozes cancel`)."""
        return self._call("PATCH", name, {"name": name, "interval": {"endTime": rfc3339(end)}},
                          {"updateMask": "interval.end_time"})

    def _call(self, method: str, path: str, body: dict[str, Any],
              query: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            raw = fetch(request, self.token, timeout=self.timeout, deadline=self.deadline,
                        what=f"the monitoring API at {self.base_url}", max_bytes=MAX_ANSWER_BYTES)
        except NoCredentials as error:
            raise SnoozeError(f"no credentials for the monitoring API ({error}); run "
                              "`gcloud auth application-default login`") from None
        except DeadlineExceeded as error:
            raise SnoozeError(str(error)) from None
        except TooLarge:
            raise SnoozeError(f"the monitoring API's answer exceeds {MAX_ANSWER_BYTES} bytes") from None
        except urllib.error.HTTPError as error:
            raise SnoozeError(f"{method} {path} answered {error.code} {error.reason}: {_error_text(error)}") from None
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as error:
            raise SnoozeError(f"cannot reach the monitoring API at {self.base_url}: {error}") from None
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SnoozeError(f"{method} {path}: the answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise SnoozeError(f"{method} {path}: the answer is not a Snooze: {str(answer)[:200]}")
        return answer


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read(4096)
        body = json.loads(raw)
        return str((body.get("error") or {}).get("message") or body)[:300]
    except (OSError, http.client.HTTPException, ValueError, AttributeError):
        return str(error.reason)


@dataclass
class FlipSnooze:
    """The flip's snooze of one policy: begun before the first step, kept long enough, ended at the flip's end."""

    client: SnoozeClient
    policy: str
    stack: str
    clock: Callable[[], float]
    say: Callable[[str], None]
    name: str | None = None
    end: float = 0.0

    def begin(self, seconds: float) -> None:
        now = self.clock()
        try:
            snooze = self.client.create(self.policy, now, now + seconds,
                                        f"flip of stack {self.stack}: the flip judges and rolls back its own steps")
        except SnoozeError as error:
            self.say(f"WARNING: the success-rate alert policy could not be snoozed ({error}); a step the flip rolls "
                     "back may also open an incident")
            return
        self.name, self.end = snooze["name"], now + seconds
        self.say(f"snoozed the success-rate alert policy until {rfc3339(self.end)} ({self.name})")

    def keep_until(self, until: float) -> None:
        """A slow flip: move the end later (never earlier)."""
        if self.name is None or until <= self.end:
            return
        try:
            self.client.set_end(self.name, until)
        except SnoozeError as error:
            self.say(f"WARNING: the snooze {self.name} could not be extended ({error}); it ends at "
                     f"{rfc3339(self.end)}")
            return
        self.end = until
        self.say(f"  the success-rate snooze now ends at {rfc3339(until)}")

    def finish(self) -> None:
        """End it once the policy's window no longer holds the flip's steps (a failed one's 5xx included)."""
        if self.name is None:
            return
        until = min(self.clock() + LOOKBACK_SECONDS, self.end)
        try:
            self.client.set_end(self.name, until)
        except SnoozeError as error:
            self.say(f"WARNING: the snooze {self.name} could not be ended ({error}); it ends by itself at "
                     f"{rfc3339(self.end)}")
            return
        self.end = until
        self.say(f"the success-rate alert policy is snoozed until {rfc3339(until)}, when the last "
                 f"{LOOKBACK_SECONDS // 60} minutes it judges no longer hold the flip's steps ({self.name})")
