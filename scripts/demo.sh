#!/usr/bin/env bash
# The main job on embedded defaults: builds fastmesh, then runs the demo (fastmesh-proxy in
# front of small demo services on loopback, some traffic, and a walkthrough). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec fastmesh demo "$@"
