"""Stand-ins for the EC2 AMI tools, for the amazon-instance tests and bench.

The real ec2-bundle-vol images the root volume of the EC2 instance it runs on and
ec2-upload-bundle talks to S3 itself, so neither can run here. The stand-ins do what the
builder relies on: ec2-bundle-vol writes a bundle manifest and parts into the destination
(and records the arguments and the X.509 files' modes it was given), ec2-upload-bundle
uploads them to the bucket through the AWS CLI protocol (``aws s3 cp`` with
``--endpoint-url`` at a moto server) with the keys it was handed. Flag files in their
directory make them fail or hang at a chosen point.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from kiln.backend.plugins.amazon.instance_config import (
    DEFAULT_BUNDLE_UPLOAD_COMMAND,
    DEFAULT_BUNDLE_VOL_COMMAND,
)
from kiln_services import ServiceUnavailable

BUNDLE_VOL = r"""#!/bin/bash
# Stand-in for ec2-bundle-vol (the real tool images the root volume of the EC2 instance it
# runs on): writes a manifest and two parts for the builder to upload and register.
set -eu
tools=$(cd "$(dirname "$0")" && pwd)
exclude=""
while [ $# -gt 0 ]; do
  case "$1" in
    -k) key=$2; shift 2;;
    -u) account=$2; shift 2;;
    -c) cert=$2; shift 2;;
    -r) arch=$2; shift 2;;
    -d) dest=$2; shift 2;;
    -p) prefix=$2; shift 2;;
    -e) shift; while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do exclude="$exclude $1"; shift; done;;
    --batch|--no-filter) shift;;
    *) echo "ec2-bundle-vol: unknown argument $1" >&2; exit 2;;
  esac
done
echo "bundle account=$account arch=$arch cert=$cert key=$key dest=$dest prefix=$prefix" \
  "keymode=$(stat -c %a "$key") certmode=$(stat -c %a "$cert")" \
  "dirmode=$(stat -c %a "$(dirname "$key")") keysum=$(sha256sum < "$key" | cut -c1-64)" \
  >> "$tools/calls.log"
if [ -e "$tools/hang-bundle" ]; then touch "$tools/bundle-started"; sleep 60; fi
if [ -e "$tools/fail-bundle" ]; then echo "ERROR: stand-in bundling failed on purpose" >&2; exit 7; fi
echo "Copying / into the image file $dest/$prefix..."
head -c 3000 /dev/urandom > "$dest/$prefix.part.0"
head -c 1000 /dev/urandom > "$dest/$prefix.part.1"
cat > "$dest/$prefix.manifest.xml" <<XML
<?xml version="1.0" ?>
<manifest><version>2007-10-10</version><bundler><name>kiln-stand-in</name></bundler>
<machine_configuration><architecture>$arch</architecture></machine_configuration>
<image><name>$prefix</name><user>$account</user><type>machine</type><parts count="2">
<part index="0"><filename>$prefix.part.0</filename></part>
<part index="1"><filename>$prefix.part.1</filename></part>
</parts></image></manifest>
XML
echo "Created $prefix.manifest.xml"
"""

UPLOAD_BUNDLE = r"""#!/bin/bash
# Stand-in for ec2-upload-bundle: uploads the manifest and its parts to S3 (moto) with the
# AWS CLI and the keys it was given, as the real tool does with its own S3 client.
set -eu
tools=$(cd "$(dirname "$0")" && pwd)
token=""
while [ $# -gt 0 ]; do
  case "$1" in
    -b) bucket=$2; shift 2;;
    -m) manifest=$2; shift 2;;
    -a) access=$2; shift 2;;
    -s) secret=$2; shift 2;;
    -t) token=$2; shift 2;;
    -d) dir=$2; shift 2;;
    --region) region=$2; shift 2;;
    --batch|--retry) shift;;
    *) echo "ec2-upload-bundle: unknown argument $1" >&2; exit 2;;
  esac
done
echo "upload bucket=$bucket manifest=$manifest dir=$dir region=$region access=$access" \
  "secretsum=$(printf %s "$secret" | sha256sum | cut -c1-64) token=${token:+yes}" \
  >> "$tools/calls.log"
export AWS_ACCESS_KEY_ID="$access" AWS_SECRET_ACCESS_KEY="$secret" AWS_DEFAULT_REGION="$region"
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
[ -n "$token" ] && export AWS_SESSION_TOKEN="$token"
aws() { "@AWS@" --endpoint-url "@ENDPOINT@" "$@"; }
name=$(basename "$manifest" .manifest.xml)
aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 || aws s3 mb "s3://$bucket"
# the parts first, the manifest last (a manifest in S3 means the bundle is complete)
for f in "$dir/$name".part.* "$manifest"; do
  if [ "$f" = "$manifest" ]; then
    if [ -e "$tools/hang-upload" ]; then touch "$tools/upload-started"; sleep 60; fi
    if [ -e "$tools/fail-upload" ]; then echo "ERROR: manifest upload failed" >&2; exit 4; fi
  fi
  aws s3 cp --only-show-errors "$f" "s3://$bucket/$(basename "$f")"
  echo "Uploaded $(basename "$f")"
done
"""


def aws_cli() -> str:
    """The AWS CLI of this environment (awscli is a test dependency)."""
    beside = Path(sys.executable).parent / "aws"
    found = str(beside) if beside.exists() else shutil.which("aws")
    if not found:
        raise ServiceUnavailable("the aws CLI is missing: pip install awscli (a test "
                                 "dependency)")
    return found


class Tools:
    """The stand-in AMI tools in a private directory, and what they were called with."""

    def __init__(self, root: Path, endpoint: str):
        self.dir = root / "ami-tools"
        self.dir.mkdir(mode=0o700)
        (self.dir / "ec2-bundle-vol").write_text(BUNDLE_VOL)
        (self.dir / "ec2-upload-bundle").write_text(
            UPLOAD_BUNDLE.replace("@AWS@", aws_cli()).replace("@ENDPOINT@", endpoint))
        for name in ("ec2-bundle-vol", "ec2-upload-bundle"):
            (self.dir / name).chmod(0o700)

    def vol_command(self) -> str:
        # Packer's default command, with the stand-in in place of `sudo -i -n ec2-bundle-vol`
        # (no sudo here, and we are root already)
        return DEFAULT_BUNDLE_VOL_COMMAND.replace("sudo -i -n ec2-bundle-vol",
                                                  str(self.dir / "ec2-bundle-vol"))

    def upload_command(self) -> str:
        return DEFAULT_BUNDLE_UPLOAD_COMMAND.replace("sudo -i -n ec2-upload-bundle",
                                                     str(self.dir / "ec2-upload-bundle"))

    def calls(self, kind: str) -> list[dict[str, str]]:
        log = self.dir / "calls.log"
        out = []
        for line in (log.read_text().splitlines() if log.exists() else []):
            word, *pairs = line.split()
            if word == kind:
                out.append(dict(p.split("=", 1) for p in pairs if "=" in p))
        return out
