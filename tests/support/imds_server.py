"""A loopback instance metadata service for the amazon-chroot tests: IMDSv2 tokens (and
IMDSv1 when ``require_token`` is off), serving ``instance-id`` and placement data."""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ImdsServer:
    def __init__(self, instance_id: str, availability_zone: str = "us-east-1a",
                 require_token: bool = True, tokens: bool = True):
        self.instance_id = instance_id
        self.availability_zone = availability_zone
        self.require_token = require_token
        self.tokens_enabled = tokens  # False: an IMDSv1-only service (PUT is refused)
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a token)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ImdsServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                owner.requests.append(("PUT", self.path, False))
                if not owner.tokens_enabled:
                    self._send(405)
                    return
                if self.path != "/latest/api/token" or \
                        not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._send(400)
                    return
                token = secrets.token_hex(16)
                owner.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                token = self.headers.get("X-aws-ec2-metadata-token", "")
                owner.requests.append(("GET", self.path, bool(token)))
                if token and token not in owner.tokens:
                    self._send(401)
                    return
                if owner.require_token and not token:
                    self._send(401)
                    return
                values = {
                    "/latest/meta-data/instance-id": owner.instance_id,
                    "/latest/meta-data/placement/availability-zone": owner.availability_zone,
                }
                if self.path in values:
                    self._send(200, values[self.path])
                else:
                    self._send(404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ImdsServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
