"""The ``http`` data source: the body and headers of an HTTP(S) response.

As Packer's: ``url`` is required; ``method`` (default GET), ``request_headers`` and
``request_body`` are optional; any status but 200 is an error. Outputs ``url``,
``request_headers``, ``response_headers`` (several values of one header joined with
", ") and ``body`` (text; a response that is not text is decoded with replacement
characters, and a warning says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import DataSource, StepError

#: request headers whose values are credentials: masked wherever output goes
SECRET_HEADER = re.compile(r"authorization|token|cookie|secret|password|api[-_]?key", re.I)
TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|x-yaml|yaml|javascript|.*\+json|.*\+xml))",
                        re.I)
TIMEOUT = 60.0
MAX_BODY = 64 << 20


@dataclass
class HttpDataConfig:
    url: str = opt("", required=True, doc="http:// or https:// URL to request")
    method: str = opt("GET", doc="HTTP method")
    request_headers: dict[str, str] = opt(default_factory=dict, doc="headers to send")
    request_body: str = opt("", doc="body sent with the request")

    def check(self) -> None:
        if self.url and not re.match(r"^https?://", self.url, re.I):
            raise ConfigProblems([("url", f'url must start with http:// or https://, got '
                                   f'"{self.url}"')])


class HttpDataSource(DataSource):
    Config = HttpDataConfig
    outputs = ("url", "request_headers", "response_headers", "body")

    def __init__(self, config: HttpDataConfig):
        self.config = config
        #: what a user should hear about (non-text content)
        self.warnings: list[str] = []

    def execute(self, add_secret) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        c = self.config
        for name, value in c.request_headers.items():
            if SECRET_HEADER.search(name) and value:
                add_secret(value)
        req = urllib.request.Request(c.url, method=(c.method or "GET").upper(),
                                     headers=dict(c.request_headers),
                                     data=c.request_body.encode() if c.request_body else None)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 - http(s) only
                status = resp.status
                headers = _joined(resp.headers)
                raw = resp.read(MAX_BODY + 1)
        except urllib.error.HTTPError as e:
            raise StepError(f"HTTP request error: {c.url} answered {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise StepError(f"HTTP request to {c.url} failed: {e.reason}") from e
        except (OSError, ValueError) as e:
            raise StepError(f"HTTP request to {c.url} failed: {e}") from e
        if status != 200:
            raise StepError(f"HTTP request error: {c.url} answered {status} (200 is required)")
        if len(raw) > MAX_BODY:
            raise StepError(f"the response from {c.url} is larger than {MAX_BODY >> 20} MiB")
        ctype = headers.get("Content-Type", "")
        if not TEXT_TYPES.match(ctype):
            self.warnings.append(f"{c.url}: Content-Type {ctype or '(none)'} is not text; the "
                                 "body is decoded as UTF-8 with replacement characters")
        return {
            "url": c.url,
            "request_headers": dict(c.request_headers),
            "response_headers": headers,
            "body": raw.decode("utf-8", "replace"),
        }


def _joined(msg: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in msg.keys():
        if name not in out:
            out[name] = ", ".join(msg.get_all(name) or [])
    return out
