"""The instance metadata service: which EC2 instance Kiln runs on.

IMDSv2 first (a session token from ``PUT /latest/api/token``), IMDSv1 only when the
service does not hand out tokens. The endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT when
set (as botocore reads it), else the link-local address every EC2 instance has.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL = "21600"
TIMEOUT = 2.0
_MAX_BODY = 64 * 1024


class MetadataError(RuntimeError):
    pass


def endpoint() -> str:
    return (os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _open(req: urllib.request.Request) -> str:
    # no proxy: the metadata service is on this host's link, never behind a proxy
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=TIMEOUT) as resp:
        return resp.read(_MAX_BODY).decode("utf-8", "replace").strip()


class Metadata:
    def __init__(self, base: str | None = None):
        self.base = (base or endpoint()).rstrip("/")
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            req = urllib.request.Request(
                f"{self.base}/latest/api/token", method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})
            try:
                self._token = _open(req)
            except urllib.error.HTTPError as e:
                if e.code in (403, 404, 405):  # IMDSv1 only (or tokens turned off)
                    self._token = ""
                else:
                    raise MetadataError(f"the instance metadata service at {self.base} "
                                        f"refused a session token: HTTP {e.code}") from e
            except (urllib.error.URLError, OSError) as e:
                raise MetadataError(
                    f"cannot reach the instance metadata service at {self.base}: "
                    f"{getattr(e, 'reason', e)}. The amazon-chroot builder runs on the EC2 "
                    "instance the volume is attached to") from e
        return self._token

    def get(self, path: str) -> str:
        token = self.token()
        headers = {"X-aws-ec2-metadata-token": token} if token else {}
        req = urllib.request.Request(f"{self.base}/latest/meta-data/{path}", headers=headers)
        try:
            return _open(req)
        except urllib.error.HTTPError as e:
            raise MetadataError(f"instance metadata {path}: HTTP {e.code}") from e
        except (urllib.error.URLError, OSError) as e:
            raise MetadataError(f"instance metadata {path}: {getattr(e, 'reason', e)}") from e

    def instance_id(self) -> str:
        value = self.get("instance-id")
        if not value.startswith("i-"):
            raise MetadataError(f"the instance metadata service gave {value[:40]!r} as the "
                                "instance id")
        return value
