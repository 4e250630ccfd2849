"""The intermediates' expiry: exported by the program, checked by verify and the daily workflow."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offline import Program
from tools.verify.expiry import check_ca_expiry, main, parse_ca_expiry

RENEWAL_HOURS = 720


def _run(tmp_path: Path, exported: object, now: dt.datetime, *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "ca-expiry.json"
    path.write_text(json.dumps(exported))
    out, err = io.StringIO(), io.StringIO()
    code = main(["--file", str(path), *extra], now=now, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_programs_own_export_passes_today_and_fails_inside_the_renewal_window(
        base_stack: Program, tmp_path: Path) -> None:
    exported = base_stack.exports["caExpiry"]
    code, out, _ = _run(tmp_path, exported, dt.datetime.now(dt.UTC))
    assert code == 0, out
    # The earliest-expiring intermediate (the staggered last cluster) enters its window first.
    ends = {c: dt.datetime.fromisoformat(e["notAfter"]) for c, e in exported.items()}
    first = min(ends, key=ends.__getitem__)
    moment = ends[first] - dt.timedelta(hours=RENEWAL_HOURS) + dt.timedelta(minutes=1)
    code, out, _ = _run(tmp_path, exported, moment)
    assert code == 1
    assert f"FAIL  {first}:" in out and f"ca.intermediateGenerations.{first}" in out
    assert [line for line in out.splitlines() if line.startswith("FAIL")] == [
        line for line in out.splitlines() if line.startswith(f"FAIL  {first}:")], "staggered: only one is due"


def test_the_warning_window_is_configurable_and_never_shorter_than_renewal(base_stack: Program,
                                                                            tmp_path: Path) -> None:
    exported = base_stack.exports["caExpiry"]
    soonest = min(dt.datetime.fromisoformat(e["notAfter"]) for e in exported.values())
    moment = soonest - dt.timedelta(days=60)
    assert _run(tmp_path, exported, moment)[0] == 0
    assert _run(tmp_path, exported, moment, "--warn-days", "61")[0] == 1
    assert _run(tmp_path, exported, soonest - dt.timedelta(days=20), "--warn-days", "0")[0] == 1


@given(left_hours=st.integers(min_value=-1000, max_value=5000), warn_days=st.integers(min_value=0, max_value=100))
def test_a_cluster_fails_exactly_inside_the_longer_window(left_hours: int, warn_days: int) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    (row,) = check_ca_expiry({"blue": (now + dt.timedelta(hours=left_hours), RENEWAL_HOURS)}, now, warn_days)
    assert row.passed == (left_hours > max(RENEWAL_HOURS, warn_days * 24))


@pytest.mark.parametrize("exported", [{}, {"blue": {"notAfter": "soon"}}, {"blue": "x"}, []])
def test_unusable_exports_are_usage_errors(tmp_path: Path, exported: object) -> None:
    code, _, err = _run(tmp_path, exported, dt.datetime.now(dt.UTC))
    assert code == 2 and "caExpiry" in err


def test_pulumi_cli_rfc3339_with_z_is_understood() -> None:
    ((not_after, hours),) = parse_ca_expiry({"blue": {"notAfter": "2028-11-08T03:33:04Z",
                                                      "earlyRenewalHours": 720}}).values()
    assert not_after == dt.datetime(2028, 11, 8, 3, 33, 4, tzinfo=dt.UTC) and hours == 720
