#!/usr/bin/env bash
# The drop-in proxy alone: builds fastmesh, then runs `fastmesh demo` (fastmesh-proxy in
# front of small demo services on loopback, some traffic, and a walkthrough). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec fastmesh demo "$@"
