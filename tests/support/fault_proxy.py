"""An HTTP proxy in front of moto that answers chosen EC2 actions with an AWS error, for
fault injection, and records every call's parameters (moto ignores some of them, e.g.
RegisterImage's block devices): everything else goes through to moto unchanged."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FaultProxy:
    def __init__(self, target: str, fail_actions: dict[str, str] | None = None,
                 slow_actions: dict[str, float] | None = None):
        self.target = target.rstrip("/")
        self.fail_actions = fail_actions or {}  # action -> error code
        #: action -> seconds the answer is held back after moto carried the call out
        self.slow_actions = slow_actions or {}
        self.failed: list[str] = []
        self.calls: list[dict[str, str]] = []  # each call's form parameters
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = {k: v[0] for k, v in urllib.parse.parse_qs(
                    body.decode("utf-8", "replace")).items()}
                owner.calls.append(params)
                action = params.get("Action", "")
                if action in owner.fail_actions and "DryRun" not in params:
                    owner.failed.append(action)
                    code = owner.fail_actions[action]
                    data = (f"<Response><Errors><Error><Code>{code}</Code><Message>injected "
                            f"fault for {action}</Message></Error></Errors><RequestID>x"
                            "</RequestID></Response>").encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                req = urllib.request.Request(owner.target + self.path, data=body or None,
                                             method=method, headers=headers)
                try:
                    with _OPENER.open(req, timeout=60) as resp:
                        status, rh, data = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as e:
                    status, rh, data = e.code, e.headers, e.read()
                if action in owner.slow_actions and "DryRun" not in params:
                    time.sleep(owner.slow_actions[action])
                self.send_response(status)
                for k, v in rh.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                         "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._forward("POST")

            def do_GET(self) -> None:
                self._forward("GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
