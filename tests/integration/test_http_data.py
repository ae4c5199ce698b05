"""The http data source against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN = f"kiln-token-{uuid.uuid4().hex}"


class Handler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        Handler.seen.append(dict(self.headers))
        if self.path == "/version":
            self._answer(200, b"1.2.3\n", "text/plain; charset=utf-8", [("X-Kiln", "a"),
                                                                         ("X-Kiln", "b")])
        elif self.path == "/blob":
            self._answer(200, b"\x00\xffraw", "application/octet-stream", [("X-Kiln", "c")])
        else:
            self._answer(404, b"not here\n", "text/plain")

    def _answer(self, code: int, body: bytes, ctype: str, extra=()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def build(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "t.pkr.hcl").write_text(f'''
variable "token" {{
  type      = string
  default   = "{TOKEN}"
  sensitive = true
}}

data "http" "version" {{
  url = "{url}"
  request_headers = {{
    Accept        = "text/plain"
    Authorization = "Bearer ${{var.token}}"
  }}
}}

source "null" "show" {{
  communicator = "none"
}}

build {{
  sources = ["source.null.show"]
  provisioner "shell-local" {{
    inline = [
      "echo version=${{trimspace(data.http.version.body)}}",
      "echo header=${{data.http.version.response_headers["X-Kiln"]}}",
      "echo sent=${{data.http.version.request_headers["Authorization"]}}",
    ]
  }}
}}
''')
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args, str(tmp_path / "t.pkr.hcl")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_body_and_headers_reach_the_build(tmp_path, server, kiln_state_dir):
    r = build(tmp_path, server + "/version", "build", "-color=false")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "show: version=1.2.3" in out
    assert "show: header=a, b" in out
    assert "show: sent=<sensitive>" in out and TOKEN not in out  # a credential header
    assert Handler.seen[-1]["Authorization"] == f"Bearer {TOKEN}"
    assert Handler.seen[-1]["Accept"] == "text/plain"


def test_validate_does_not_make_the_request(tmp_path, server, kiln_state_dir):
    before = len(Handler.seen)
    r = build(tmp_path, server + "/version", "validate")
    assert (r.returncode, r.stdout.strip()) == (0, "The configuration is valid."), r.stderr
    assert len(Handler.seen) == before


def test_an_error_status_is_a_located_error(tmp_path, server, kiln_state_dir):
    r = build(tmp_path, server + "/missing", "build", "-color=false")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"t.pkr.hcl:8:1: data.http.version: HTTP request error: {server}/missing answered " \
           "404" in out
    assert "Traceback" not in out and "version=" not in out


def test_a_body_that_is_not_text_is_a_warning(tmp_path, server, kiln_state_dir):
    r = build(tmp_path, server + "/blob", "build", "-color=false")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Content-Type application/octet-stream is not text" in out
