#!/usr/bin/env bash
# Runs every check: lints, the engine's own Rust tests, and the whole pytest suite
# (unit, end to end against real processes, and differential against real Envoy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export PATH="$HOME/go/bin:$PATH"
# Everything is installed here: a skipped test would hide a broken install (tests/conftest.py).
export FASTMESH_FORBID_SKIPS=1

echo "==> lint: ruff, mypy, cargo fmt, clippy, gofmt and go vet (bench/xdsload)"
ruff check src tests bench ext
ruff format --check src tests bench ext
mypy
python3 -m mypy.stubtest fastmesh._native
(cd native && cargo fmt --check && cargo clippy --release --all-targets -q -- -D warnings)
(cd bench/xdsload && test -z "$(gofmt -l .)" && go vet .)

echo "==> cargo test (the engine as plain Rust)"
(cd native && cargo test --release -q)

echo "==> pytest"
python3 -m pytest -q -p no:cacheprovider --benchmark-disable "$@"
