#!/bin/sh
echo "exit3 running for $PACKER_BUILD_NAME"
exit 3
