#!/usr/bin/env bash
# Builds and installs fastmesh (the Rust engine via maturin, the Cython speed-ups) into
# the current Python environment. Cargo builds incrementally: a repeat run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "==> building the Cython speed-ups (ext/)"
python3 -m pip install -q --disable-pip-version-check --no-build-isolation ./ext
echo "==> building the Rust engine (native/, release)"
python3 -m pip install -q --disable-pip-version-check --no-build-isolation -e .
python3 -c "import fastmesh._native as n; print('fastmesh engine', n.__version__, 'ready')"
