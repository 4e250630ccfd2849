"""Intermediate CA expiry: `caExpiry` outputs -> PASS/FAIL rows; `python -m tools.verify.expiry`.

pulumi-tls replaces an intermediate only when an `up` runs inside its early-renewal window
(pulumi/pulumi-tls#39), and nothing else notices an expiring one until istiod's workload
certificates stop validating. So a cluster fails this check from the moment its intermediate is
inside the renewal window or within the warning window (`--warn-days`), whichever is longer. The
daily `ca-expiry` workflow runs the module form on `pulumi stack output caExpiry --json`.

Exit codes of the module form: 0 all good, 1 an intermediate needs rotating, 2 usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from tools.verify.checks import CheckResult

CHECK = "intermediate CA expiry"
DEFAULT_WARN_DAYS = 30
RUNBOOK = "docs/rotate-intermediate-ca.md"


class ExpiryError(ValueError):
    """`caExpiry` is missing or malformed."""


def parse_ca_expiry(raw: Any) -> dict[str, tuple[dt.datetime, int]]:
    """{cluster: {notAfter, earlyRenewalHours}} -> {cluster: (not_after, renewal_hours)}."""
    if not isinstance(raw, Mapping) or not raw:
        raise ExpiryError("caExpiry must be a non-empty object keyed by cluster (run `pulumi up` first)")
    parsed: dict[str, tuple[dt.datetime, int]] = {}
    for cluster, entry in raw.items():
        try:
            not_after = dt.datetime.fromisoformat(str(entry["notAfter"]).replace("Z", "+00:00"))
            hours = int(entry["earlyRenewalHours"])
        except (KeyError, TypeError, ValueError):
            raise ExpiryError(f"caExpiry.{cluster} must hold notAfter (RFC 3339) and earlyRenewalHours") from None
        if not_after.tzinfo is None:
            not_after = not_after.replace(tzinfo=dt.UTC)
        parsed[str(cluster)] = (not_after, hours)
    return parsed


def check_ca_expiry(expiry: Mapping[str, tuple[dt.datetime, int]], now: dt.datetime,
                    warn_days: int) -> list[CheckResult]:
    """One row per cluster: fails inside max(renewal window, warning window) of notAfter."""
    rows = []
    for cluster, (not_after, renewal_hours) in expiry.items():
        left = not_after - now
        window = max(dt.timedelta(hours=renewal_hours), dt.timedelta(days=warn_days))
        detail = f"expires {not_after:%Y-%m-%d %H:%M}Z ({left.days} days left)"
        if left > window:
            rows.append(CheckResult(cluster, CHECK, True, detail))
            continue
        cause = ("expired: istiod signs with an expired CA and cross-cluster mTLS fails" if left <= dt.timedelta(0)
                 else f"inside the {window.days}-day renewal/warning window; pulumi-tls renews only if an `up` "
                 "runs now (pulumi/pulumi-tls#39)")
        rows.append(CheckResult(cluster, CHECK, False, detail, cause,
                                f"raise ca.intermediateGenerations.{cluster} by one in a pull request ({RUNBOOK})"))
    return rows


def main(argv: Sequence[str] | None = None, *, now: dt.datetime | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(prog="python -m tools.verify.expiry",
                                     description="Fail when an intermediate CA is inside its renewal window.")
    parser.add_argument("--file", type=Path, required=True, help="JSON of `pulumi stack output caExpiry --json`")
    parser.add_argument("--warn-days", type=int, default=DEFAULT_WARN_DAYS,
                        help=f"fail this many days before expiry at the latest (default: {DEFAULT_WARN_DAYS})")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if not 0 <= args.warn_days <= 3650:
        err.write(f"expiry: --warn-days {args.warn_days} must be from 0 to 3650\n")
        return 2
    try:
        expiry = parse_ca_expiry(json.loads(args.file.read_text()))
    except (OSError, json.JSONDecodeError, ExpiryError) as error:
        err.write(f"expiry: {args.file}: {error}\n")
        return 2
    rows = check_ca_expiry(expiry, now or dt.datetime.now(dt.UTC), args.warn_days)
    for r in rows:
        out.write(f"{'PASS' if r.passed else 'FAIL'}  {r.cluster}: {r.detail}\n")
        if not r.passed:
            out.write(f"      cause: {r.cause}\n      fix:   {r.fix}\n")
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
