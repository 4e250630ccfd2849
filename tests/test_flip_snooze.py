"""The flip's snooze of the success-rate alert policy, against a fake Cloud Monitoring v3 snooze API.

The fake (tests/fakes/fake_monitoring.py) checks every body against the `Snooze` schema of the
monitoring v3 discovery document and the documented rules (a start in the past is refused, an
ended snooze is read-only, a started one may only move its end).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from components.alerts import POLICIES
from tests.fakes.fake_monitoring import FakeMonitoring
from tests.fakes.loopback import LoopbackServer
from tools.flip.snooze import SUCCESS_POLICY, FlipSnooze, SnoozeClient, SnoozeError, rfc3339

POLICY = "projects/p1/alertPolicies/42"


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[tuple[FakeMonitoring, Clock]]:
    clock = Clock()
    fake = FakeMonitoring(clock, {POLICY}).start()
    yield fake, clock
    fake.stop()


def test_the_policy_snoozed_is_the_success_rate_policy_the_stack_exports() -> None:
    (policy,) = [p for p in POLICIES if p.key == SUCCESS_POLICY]
    assert "success rate" in policy.title and "snoozes this policy" in policy.documentation


def test_a_snooze_is_created_for_one_policy_kept_longer_when_needed_and_ended(api) -> None:
    fake, clock = api
    said: list[str] = []
    snooze = FlipSnooze(SnoozeClient(fake.url, token=lambda: None), POLICY, "prod", clock, said.append)
    snooze.begin(3600)
    assert snooze.name is not None
    created = fake.snoozes[snooze.name]
    assert created["criteria"] == {"policies": [POLICY]} and created["displayName"].startswith("flip of stack prod")
    assert created["interval"] == {"startTime": rfc3339(clock.now), "endTime": rfc3339(clock.now + 3600)}
    clock.now += 1800
    snooze.keep_until(clock.now + 600)  # inside the bound: nothing to do
    assert len(fake.requests) == 1
    snooze.keep_until(clock.now + 7200)  # a slow flip: later, never earlier
    assert fake.snoozes[snooze.name]["interval"]["endTime"] == rfc3339(clock.now + 7200)
    clock.now += 60
    snooze.finish()
    assert fake.snoozes[snooze.name]["interval"]["endTime"] == rfc3339(clock.now + 600)
    assert [m for m, *_ in fake.requests] == ["POST", "PATCH", "PATCH"]
    assert all(path.endswith("?updateMask=interval.end_time") for m, path, *_ in fake.requests if m == "PATCH")


def test_a_snooze_that_already_ended_is_said_not_raised(api) -> None:
    fake, clock = api
    said: list[str] = []
    snooze = FlipSnooze(SnoozeClient(fake.url, token=lambda: None), POLICY, "prod", clock, said.append)
    snooze.begin(120)
    clock.now += 3600  # the flip outlived its snooze (it could not be extended): the API makes it read-only
    snooze.finish()
    assert "could not be ended" in said[-1] and "has ended and is read-only" in said[-1]


def test_the_client_refuses_what_is_not_a_policy_and_reports_what_the_api_said(api) -> None:
    fake, clock = api
    client = SnoozeClient(fake.url, token=lambda: None)
    with pytest.raises(SnoozeError, match="is not an alert policy name"):
        client.create("alertPolicies/42", clock.now, clock.now + 60, "x")
    with pytest.raises(SnoozeError, match="404 Not Found: alert policy projects/p1/alertPolicies/7 not found"):
        client.create("projects/p1/alertPolicies/7", clock.now, clock.now + 60, "x")
    with pytest.raises(SnoozeError, match="start_time cannot be in the past"):
        client.create(POLICY, clock.now - 120, clock.now + 60, "x")


def test_every_request_has_a_total_deadline() -> None:
    class Silent(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            time.sleep(3)

    server = LoopbackServer(Silent).start()
    try:
        started = time.monotonic()
        with pytest.raises(SnoozeError, match=r"no complete answer within 0\.3s"):
            SnoozeClient(server.url, token=lambda: None, deadline=0.3).create(POLICY, 0, 60, "x")
        assert time.monotonic() - started < 2
    finally:
        server.stop()
