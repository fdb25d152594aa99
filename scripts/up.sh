#!/usr/bin/env bash
# The main job on embedded defaults: builds fastmesh, then runs `fastmesh up` — the control
# plane, a local CA and a demo application of four services (reviews in three versions),
# each with a fastmesh-proxy sidecar configured only over xDS, all on loopback; sends some
# traffic and prints what to try next. Ctrl-C stops everything. `--smoke` checks and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec fastmesh up "$@"
