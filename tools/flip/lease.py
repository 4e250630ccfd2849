"""One flip per stack: a lease kept where the stack's state lives, visible to every runner of the stack.

The state backend is the one place a laptop and CI both reach for a stack, so the lease is an
object beside the state: `<backend>/.pulumi-flip/<project>/<stack>/lease.json`, created only if
absent - on `gs://` with the JSON API's `ifGenerationMatch=0` precondition (412 when it exists,
https://cloud.google.com/storage/docs/request-preconditions), on `file://` with
`open(O_CREAT|O_EXCL)`. It names its holder and since when; it is deleted on every exit of the
flip; a flip killed outright leaves it, and the journal beside it (tools/flip/journal.py) says
what to do: `--resume` or `--abort`.

The backend URL is Pulumi's own: `PULUMI_BACKEND_URL`, else `backend.url` in Pulumi.yaml, else
the `current` login in `~/.pulumi/credentials.json`. `STORAGE_EMULATOR_HOST` (the variable the
Google Cloud client libraries honour for a Cloud Storage emulator) redirects the gs:// calls.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from components.names import PROJECT

DIRECTORY = ".pulumi-flip"
REQUEST_TIMEOUT_SECONDS = 30.0
STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


class LeaseError(Exception):
    """The lease store cannot be used; the message says which backend and why."""


class LeaseHeld(Exception):
    """Another flip holds the stack."""

    def __init__(self, holder: str, since: str) -> None:
        super().__init__(f"held by {holder} since {since}")
        self.holder = holder
        self.since = since


class Store(Protocol):
    where: str

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist; False when it does."""

    def read(self, key: str) -> bytes | None: ...

    def write(self, key: str, data: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class FileStore:
    """A `file://` backend: beside `.pulumi/` in the backend directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = f"file://{root}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class GcsStore:
    """A `gs://bucket[/prefix]` backend through the Cloud Storage JSON API, with ADC."""

    def __init__(self, bucket: str, prefix: str = "", token: Callable[[], str | None] | None = None,
                 base_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.where = f"gs://{bucket}/{self.prefix}".rstrip("/")
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        self.base_url = (base_url or emulator or "https://storage.googleapis.com").rstrip("/")
        self.token = token or (lambda: None if emulator else _adc_token())

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _request(self, method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            token = self.token()
        except Exception as error:
            raise LeaseError(f"no credentials for {self.where} ({error}); run "
                             "`gcloud auth application-default login`") from None
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise LeaseError(f"cannot reach {self.where}: {error}") from None

    def _object_url(self, key: str) -> str:
        return f"{self.base_url}/storage/v1/b/{self.bucket}/o/{urllib.parse.quote(self._name(key), safe='')}"

    def _upload(self, key: str, data: bytes, if_absent: bool) -> int:
        query = {"uploadType": "media", "name": self._name(key)}
        if if_absent:
            query["ifGenerationMatch"] = "0"
        url = f"{self.base_url}/upload/storage/v1/b/{self.bucket}/o?" + urllib.parse.urlencode(query)
        code, body = self._request("POST", url, data)
        if code not in (200, 412):
            raise LeaseError(f"{self.where}: writing {key} answered {code}: {body[:200]!r}")
        return code

    def create(self, key: str, data: bytes) -> bool:
        return self._upload(key, data, if_absent=True) == 200

    def read(self, key: str) -> bytes | None:
        code, body = self._request("GET", self._object_url(key) + "?alt=media")
        if code == 404:
            return None
        if code != 200:
            raise LeaseError(f"{self.where}: reading {key} answered {code}: {body[:200]!r}")
        return body

    def write(self, key: str, data: bytes) -> None:
        self._upload(key, data, if_absent=False)

    def delete(self, key: str) -> None:
        code, body = self._request("DELETE", self._object_url(key))
        if code not in (200, 204, 404):
            raise LeaseError(f"{self.where}: deleting {key} answered {code}: {body[:200]!r}")


def _adc_token() -> str | None:
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=[STORAGE_SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials.token


def backend_url(project_dir: Path) -> str | None:
    """Pulumi's backend URL for this project, found as the CLI finds it."""
    if os.environ.get("PULUMI_BACKEND_URL"):
        return os.environ["PULUMI_BACKEND_URL"]
    try:
        project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        project = {}
    url = ((project.get("backend") or {}) if isinstance(project, dict) else {}).get("url")
    if url:
        return str(url)
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    try:
        return json.loads((home / "credentials.json").read_text()).get("current")
    except (OSError, ValueError):
        return None


def open_store(project_dir: Path) -> Store:
    url = backend_url(project_dir)
    if not url:
        raise LeaseError("no Pulumi backend is configured (PULUMI_BACKEND_URL, backend.url in Pulumi.yaml or "
                         "`pulumi login`); the flip keeps its lease beside the state")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        root = Path(os.path.expanduser(urllib.parse.unquote(parsed.netloc + parsed.path) or "~"))
        return FileStore(root)
    if parsed.scheme == "gs":
        return GcsStore(parsed.netloc, parsed.path)
    raise LeaseError(f"backend {url}: the flip's lease and journal live beside the state on a gs:// or file:// "
                     "backend (docs/flip.md \"One flip per stack\"); this backend is not supported")


def key(stack: str, name: str) -> str:
    return f"{DIRECTORY}/{PROJECT}/{stack}/{name}"


def holder() -> str:
    """Who runs this flip: user@host (pid), and the CI run when there is one."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    who = f"{user}@{socket.gethostname()} (pid {os.getpid()})"
    if os.environ.get("GITHUB_RUN_ID"):
        who += (f", {os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                f"{os.environ.get('GITHUB_REPOSITORY', '?')}/actions/runs/{os.environ['GITHUB_RUN_ID']}")
    return who


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Lease:
    store: Store
    stack: str
    holder: str
    since: str

    @property
    def key(self) -> str:
        return key(self.stack, "lease.json")

    def release(self) -> None:
        self.store.delete(self.key)


def read_lease(store: Store, stack: str) -> dict[str, Any] | None:
    raw = store.read(key(stack, "lease.json"))
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"holder": "unreadable lease object", "since": "?"}


def acquire(store: Store, stack: str, *, take_over: bool = False) -> Lease:
    """Take the stack's lease (or, for --resume/--abort, take over a dead flip's); LeaseHeld if another holds it."""
    lease = Lease(store, stack, holder(), now())
    body = json.dumps({"holder": lease.holder, "since": lease.since, "stack": stack}).encode()
    if take_over:
        store.write(lease.key, body)
        return lease
    if not store.create(lease.key, body):
        held = read_lease(store, stack) or {}
        raise LeaseHeld(str(held.get("holder", "?")), str(held.get("since", "?")))
    return lease
