"""A stand-in for the `pulumi` binary, for driving the REAL Automation API path (tools/flip/stack.py).

Run as `pulumi` (tests put a two-line wrapper named `pulumi` on PATH that execs this file with the
venv's Python). It answers exactly the commands pulumi/automation 3.272 runs for the flip (read in
venv/lib/python3.11/site-packages/pulumi/automation/_local_workspace.py and _stack.py):
`version`; `stack select --stack S`; `config set-all --stack S --path --plaintext k=v...`;
`preview --diff --policy-pack P [--target URN...] --exec-kind auto.local --event-log tcp://H:P`;
`up --yes --skip-preview --diff --policy-pack P --target URN... --exec-kind auto.local`; then
`stack output --json [--show-secrets]` and `stack history --json --show-secrets --page-size 1 --page 1`.
Each has `--non-interactive` first and `--stack S` appended.

Real behaviour it reproduces, and where it was read (pulumi/pulumi at the fetched snapshot):
- The DIY backend's update lock: `up` creates `.pulumi/locks/organization/<project>/<stack>/<id>.json`
  under the `file://` backend and refuses while another lock exists, with the message of
  `pkg/backend/diy/lock.go` ("the stack is currently locked by N lock(s). Either wait for the other
  process(es) to end or delete the lock file with `pulumi cancel`.", then one line per lock);
  previews take no lock (`pkg/backend/diy/backend.go`: only Update/Import/Refresh/Destroy lock).
- Cancellation (`pkg/backend/cancellation_scope.go`): the first SIGINT or SIGTERM prints
  "^C received; cancelling. If you would like to terminate immediately, press ^C again." and
  cancels: the update stops after its in-flight step (here: `FAKE_PULUMI_CANCEL_SECONDS`, still
  holding the lock), then releases the lock and fails; a second signal terminates at once
  (the lock stays).
- A Go program writing to a closed stdout dies of SIGPIPE: when the SDK abandons the child and
  closes its pipes, the next progress line kills it, the lock stays (field-pitfalls 23).
- `--target` limits preview and update to the given URNs (`pulumi up --target`).
- Engine events go to the Automation API over gRPC (`--event-log tcp://…`, the
  `pulumirpc.Events/StreamEvents` client stream the SDK serves for CLI > 3.205) or to a file.

The "deployment" is the `file://` backend's stack JSON this stand-in keeps (`served`: the split
each cluster's routing VirtualServices carry; `routing`: URN -> cluster; `outputs`), and `up` puts
the VirtualServices into the clusters' (fake) Kubernetes API servers named by the kubeconfigs of
the outputs, so the flip reads them back with the real Kubernetes client. Knobs (environment):
FAKE_PULUMI_UP_SECONDS (how long an update works), FAKE_PULUMI_CANCEL_SECONDS (how long a
cancel takes), FAKE_PULUMI_LOG (a file each invocation's argv is appended to, one JSON line).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "gke-istio-mesh"
LOCKED = ("the stack is currently locked by {n} lock(s). Either wait for the other process(es) to end or "
          "delete the lock file with `pulumi cancel`.")


def backend() -> Path:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        fail(f"error: the stand-in supports only a file:// backend, got {url!r}")
    return Path(urllib.parse.unquote(url[len("file://"):]))


def state_path(stack: str) -> Path:
    return backend() / ".pulumi" / "stacks" / PROJECT / f"{stack}.json"


def lock_dir(stack: str) -> Path:
    return backend() / ".pulumi" / "locks" / "organization" / PROJECT / stack


def load(stack: str) -> dict[str, Any]:
    path = state_path(stack)
    if not path.is_file():
        fail(f"error: no stack named '{stack}' found")
    return json.loads(path.read_text())


def save(stack: str, state: dict[str, Any]) -> None:
    path = state_path(stack)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def fail(message: str, code: int = 255) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    raise SystemExit(code)


def say(text: str) -> None:
    """Progress on stdout; a closed pipe kills the process as SIGPIPE kills the Go CLI (the lock stays)."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os._exit(141)


def flags(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Positional words and `--flag value` pairs (boolean flags get "")."""
    words: list[str] = []
    opts: dict[str, list[str]] = {}
    boolean = {"--diff", "--yes", "--skip-preview", "--json", "--show-secrets", "--path", "--plaintext",
               "--non-interactive"}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            opts.setdefault(k, []).append(v)
        elif a.startswith("--") and a not in boolean and i + 1 < len(args):
            opts.setdefault(a, []).append(args[i + 1])
            i += 1
        elif a.startswith("--"):
            opts.setdefault(a, []).append("")
        else:
            words.append(a)
        i += 1
    return words, opts


# ------------------------------------------------------------------ config set-all --path


def adjust(value: str) -> Any:
    """`pulumi config set --path`'s adjustObjectValue: booleans, ints (no leading 0), else the string."""
    if value in ("true", "false"):
        return value == "true"
    if len(value) > 1 and value[0] == "0":
        return value
    try:
        return int(value)
    except ValueError:
        return value


def config_set_all(stack: str, pairs: list[str]) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    path = Path.cwd() / f"Pulumi.{stack}.yaml"
    doc = yaml.load(path.read_text())
    for pair in pairs:
        k, v = pair.split("=", 1)
        key, *rest = k.split(".")
        node = doc["config"].setdefault(key, {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        node[rest[-1]] = adjust(v)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        yaml.dump(doc, f)
    tmp.replace(path)


def file_weights(stack: str) -> dict[str, int]:
    import yaml

    doc = yaml.safe_load((Path.cwd() / f"Pulumi.{stack}.yaml").read_text())
    return {k: int(v) for k, v in doc["config"][f"{PROJECT}:traffic"]["weights"].items()}


# ------------------------------------------------------------------ engine


def changes(stack: str, state: dict[str, Any], targets: list[str]) -> list[tuple[str, str]]:
    """Routing VirtualServices whose cluster serves another split than the file's, plus staged extras."""
    weights = file_weights(stack)
    found = [("update", urn) for urn, cluster in state["routing"].items() if state["served"][cluster] != weights]
    found += [(op, urn) for op, urn in state.get("extra", [])]
    return [c for c in found if not targets or c[1] in targets]


def emit(log: str, events: list[dict[str, Any]]) -> None:
    if log.startswith("tcp://"):
        import grpc
        from pulumi.runtime.proto import events_pb2, events_pb2_grpc

        with grpc.insecure_channel(log[len("tcp://"):]) as channel:
            events_pb2_grpc.EventsStub(channel).StreamEvents(
                iter([events_pb2.EventRequest(event=json.dumps(e)) for e in events]))
    else:
        with open(log, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in events)


def preview(stack: str, opts: dict[str, list[str]]) -> None:
    state = load(stack)
    found = changes(stack, state, opts.get("--target", []))
    now = time.time()
    events: list[dict[str, Any]] = [
        {"sequence": i, "timestamp": int(now), "resourcePreEvent": {"metadata": {
            "op": op, "urn": urn, "type": urn.split("::")[-2].split("$")[-1], "provider": ""}}}
        for i, (op, urn) in enumerate(found)]
    counts: dict[str, int] = {}
    for op, _ in found:
        counts[op] = counts.get(op, 0) + 1
    events.append({"sequence": len(events), "timestamp": int(now),
                   "summaryEvent": {"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": counts}})
    events.append({"sequence": len(events), "timestamp": int(now), "cancelEvent": {}})
    for op, urn in found:
        say(f"    ~ {op} {urn}")
    emit(opts["--event-log"][0], events)


class Cancel(Exception):
    pass


def up(stack: str, opts: dict[str, list[str]]) -> None:
    locks = lock_dir(stack)
    locks.mkdir(parents=True, exist_ok=True)
    held = sorted(p for p in locks.iterdir() if p.suffix == ".json")
    if held:
        lines = [LOCKED.format(n=len(held))]
        for p in held:
            body = json.loads(p.read_text())
            lines.append(f"  {p}: created by {body['username']}@{body['hostname']} (pid {body['pid']}) at "
                         f"{body['timestamp']}")
        fail("error: " + "\n".join(lines))
    lock = locks / f"{uuid.uuid4()}.json"
    lock.write_text(json.dumps({"pid": os.getpid(), "username": "stand-in", "hostname": "localhost",
                                "timestamp": dt.datetime.now(dt.UTC).isoformat()}))
    signals: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        signals.append(signum)
        if len(signals) == 1:
            say("^C received; cancelling. If you would like to terminate immediately, press ^C again.")
            raise Cancel
        say("^C received; terminating")
        os._exit(255)  # terminate immediately: the lock stays

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    targets = opts.get("--target", [])
    try:
        say(f"Updating ({stack})")
        work = float(os.environ.get("FAKE_PULUMI_UP_SECONDS", "0.2"))
        deadline = time.monotonic() + work
        while time.monotonic() < deadline:
            say("    ... updating")
            time.sleep(0.05)
        state = load(stack)
        weights = file_weights(stack)
        for urn, cluster in state["routing"].items():
            if targets and urn not in targets:
                continue
            if cluster in state["outputs"]["kubeconfigs"]:  # not a shared resource such as the dashboard
                deploy(state, cluster, weights)
            state["served"][cluster] = weights
        state["appliedExtra"] = state.get("appliedExtra", []) + [
            urn for _, urn in state.get("extra", []) if not targets or urn in targets]
        state["history"] = state.get("history", 0) + 1
        save(stack, state)
    except Cancel:
        time.sleep(float(os.environ.get("FAKE_PULUMI_CANCEL_SECONDS", "0.5")))
        lock.unlink(missing_ok=True)
        fail("error: update canceled")
    lock.unlink(missing_ok=True)
    say("Update succeeded")


def deploy(state: dict[str, Any], cluster: str, weights: dict[str, int]) -> None:
    """The cluster's routing VirtualServices with the file's split (a PUT, as delete + create).

    `state["virtualServices"]` holds each one as `components.traffic.virtual_service` rendered it
    (the test seeds them); a weights change alters exactly the route weights per subset, which is
    all the program changes in them (tests/test_flip.py proves that on the offline engine).
    """
    import urllib.error
    import urllib.request

    import yaml

    kubeconfig = yaml.safe_load(state["outputs"]["kubeconfigs"][cluster])
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    token = kubeconfig["users"][0]["user"]["token"]
    for vs in state["virtualServices"]:
        for route in vs["spec"]["http"][0]["route"]:
            route["weight"] = weights.get(route["destination"]["subset"], 0)
        meta = vs["metadata"]
        base = f"{server}/apis/networking.istio.io/v1/namespaces/{meta['namespace']}/virtualservices"
        for method, url, body in (("DELETE", f"{base}/{meta['name']}", None), ("POST", base, json.dumps(vs).encode())):
            request = urllib.request.Request(url, data=body, method=method,
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/json"})
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=10).close()


def main(argv: list[str]) -> None:
    if os.environ.get("FAKE_PULUMI_LOG"):
        with open(os.environ["FAKE_PULUMI_LOG"], "a") as f:
            f.write(json.dumps(argv) + "\n")
    words, opts = flags(argv)
    stack = (opts.get("--stack") or [""])[-1]
    if words[:1] == ["version"]:
        say("v3.272.0")
    elif words[:2] == ["stack", "select"]:
        load(stack)
    elif words[:2] == ["config", "set-all"]:
        config_set_all(stack, words[2:] + [v for k in ("--plaintext",) for v in opts.get(k, []) if v])
    elif words[:1] == ["preview"]:
        preview(stack, opts)
    elif words[:1] == ["up"]:
        up(stack, opts)
    elif words[:2] == ["stack", "output"]:
        outputs = load(stack)["outputs"]
        say(json.dumps(outputs if "--show-secrets" in opts else {k: v for k, v in outputs.items()}))
    elif words[:2] == ["stack", "history"]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        say(json.dumps([{"kind": "update", "startTime": stamp, "endTime": stamp, "message": "", "environment": {},
                         "config": {}, "result": "succeeded", "version": load(stack).get("history", 0)}]))
    else:
        fail(f"error: the stand-in does not know `pulumi {' '.join(argv)}`")


if __name__ == "__main__":
    main(sys.argv[1:])
