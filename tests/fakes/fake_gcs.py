"""A fake Cloud Storage JSON API on loopback: the calls tools/flip/lease.py's GcsStore makes.

Real behaviour reproduced (https://cloud.google.com/storage/docs/json_api/v1/objects/insert,
.../objects/get, .../objects/delete and https://cloud.google.com/storage/docs/request-preconditions):
- `POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=NAME` stores the body and answers the
  object resource with a new `generation`; with `ifGenerationMatch=0` it answers 412
  Precondition Failed when the object exists (create only if absent), atomically.
- `GET /storage/v1/b/BUCKET/o/NAME?alt=media` answers the bytes, 404 when absent.
- `DELETE /storage/v1/b/BUCKET/o/NAME` answers 204, 404 when absent.
The client reaches it through STORAGE_EMULATOR_HOST, the variable Google's client libraries honour.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer


class FakeGcs(LoopbackServer):
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, int]] = {}
        self._generation = itertools.count(1_700_000_000_000_000)
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", content_type: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _object(self) -> tuple[str, str] | None:
                path = urllib.parse.urlsplit(self.path).path
                prefix = "/storage/v1/b/"
                if not path.startswith(prefix) or "/o/" not in path:
                    return None
                bucket, name = path[len(prefix):].split("/o/", 1)
                return bucket, urllib.parse.unquote(name)

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                bucket = url.path.split("/b/", 1)[1].split("/o", 1)[0]
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake._lock:
                    key = (bucket, query["name"])
                    if query.get("ifGenerationMatch") == "0" and key in fake.objects:
                        self._send(412, json.dumps({"error": {"code": 412, "message": "At least one of the "
                                                              "pre-conditions you specified did not hold."}}).encode())
                        return
                    generation = next(fake._generation)
                    fake.objects[key] = (data, generation)
                self._send(200, json.dumps({"bucket": bucket, "name": key[1], "generation": str(generation)}).encode())

            def do_GET(self) -> None:
                key = self._object()
                if key is None or key not in fake.objects:
                    self._send(404, b'{"error": {"code": 404, "message": "No such object"}}')
                    return
                self._send(200, fake.objects[key][0], "application/octet-stream")

            def do_DELETE(self) -> None:
                key = self._object()
                with fake._lock:
                    if key is None or key not in fake.objects:
                        self._send(404, b'{"error": {"code": 404, "message": "No such object"}}')
                        return
                    del fake.objects[key]
                self._send(204)

        return Handler
