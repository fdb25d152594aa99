#!/usr/bin/env bash
# Installs everything fastmesh needs to build, test and benchmark on a fresh Debian machine.
# Idempotent: each step is skipped when its tool is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
for pair in nginx:nginx-light wrk:wrk h2load:nghttp2-client curl:curl haproxy:haproxy \
    etcd:etcd-server etcdctl:etcd-client; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (rustup)" >&2; exit 1
fi

echo "==> pip install (dev + test requirements)"
python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# h2spec: HTTP/2 conformance, run by tests/hardening. v2.2.1 is its last tag the Go module
# proxy serves (later tags carry a go.mod without the /v2 suffix, so `go install` refuses them).
if ! command -v h2spec >/dev/null 2>&1 && [ ! -x "$(go env GOPATH 2>/dev/null)/bin/h2spec" ]; then
  if command -v go >/dev/null 2>&1; then
    echo "==> go install h2spec"
    go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
  else
    echo "go is required for h2spec (tests/hardening)" >&2; exit 1
  fi
fi

# sslyze (the TLS scan in tests/mesh) pins an older cryptography than fastmesh needs: its own venv.
SSLYZE_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/fastmesh/sslyze"
if [ ! -x "$SSLYZE_VENV/bin/sslyze" ]; then
  echo "==> sslyze into $SSLYZE_VENV"
  python3 -m venv "$SSLYZE_VENV"
  "$SSLYZE_VENV/bin/pip" install -q --disable-pip-version-check sslyze==6.1.0
fi

if ! command -v fortio >/dev/null 2>&1 && [ ! -x "$(go env GOPATH 2>/dev/null)/bin/fortio" ]; then
  if command -v go >/dev/null 2>&1; then
    echo "==> go install fortio"
    go install fortio.org/fortio@v1.66.0 >/dev/null 2>&1 || echo "fortio install failed; the fortio bench row will be skipped" >&2
  fi
fi
