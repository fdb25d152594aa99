"""sslyze against fastmesh's mTLS inbound listener: what a security review would check.

sslyze pins an older `cryptography` than fastmesh needs, so it lives in its own virtualenv
(`scripts/install-deps.sh` makes it): `$FASTMESH_SSLYZE_PYTHON`, else
`${XDG_CACHE_HOME:-~/.cache}/fastmesh/sslyze/bin/python`. The full report is printed
(`pytest -s` shows it) and a JSON summary is saved to `bench/results/tls-scan.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartProxy
from tests.support import EchoServer

from ._mesh import Mesh, Sidecar, inbound_config

SUMMARY = Path(__file__).resolve().parents[2] / "bench" / "results" / "tls-scan.json"
LEGACY = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")
MODERN = ("tls_1_2", "tls_1_3")
AEAD = ("_GCM_", "_CHACHA20_POLY1305_", "_CCM")
COMMANDS = [
    "--sslv2",
    "--sslv3",
    "--tlsv1",
    "--tlsv1_1",
    "--tlsv1_2",
    "--tlsv1_3",
    "--compression",
    "--reneg",
    "--heartbleed",
    "--openssl_ccs",
    "--fallback",
    "--early_data",
    "--elliptic_curves",
]


def sslyze_python() -> str:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = cache / "fastmesh" / "sslyze" / "bin" / "python"
    python = os.environ.get("FASTMESH_SSLYZE_PYTHON", str(default))
    if not Path(python).exists():
        pytest.skip(reason=f"no sslyze virtualenv at {python} (scripts/install-deps.sh)")
    return python


def scan(port: int, cert: Path, key: Path, out: Path) -> dict[str, Any]:
    """sslyze's scan result for `127.0.0.1:port`, presenting the client SVID `cert`/`key`."""
    cmd = [sslyze_python(), "-m", "sslyze", "--json_out", str(out), "--cert", str(cert)]
    cmd += ["--key", str(key), *COMMANDS, f"127.0.0.1:{port}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stderr
    [server] = json.loads(out.read_text())["server_scan_results"]
    assert server["scan_status"] == "COMPLETED", server
    result: dict[str, Any] = server["scan_result"]
    return result


def accepted(result: dict[str, Any], version: str) -> list[dict[str, Any]]:
    suites: list[dict[str, Any]] = result[f"{version}_cipher_suites"]["result"][
        "accepted_cipher_suites"
    ]
    return [s["cipher_suite"] for s in suites]


def is_aead(suite: str) -> bool:
    return any(mode in suite for mode in AEAD)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    def outcome(name: str) -> dict[str, Any]:
        found: dict[str, Any] = result[name]["result"]
        return found

    reneg = outcome("session_renegotiation")
    return {
        "scanner": "sslyze 6.1.0",
        "target": "fastmesh-proxy mTLS inbound listener (DownstreamTlsContext, defaults)",
        "protocols": {
            v: [f"{s['name']} ({s['key_size']} bits)" for s in accepted(result, v)]
            for v in (*LEGACY, *MODERN)
        },
        "compression": outcome("tls_compression")["supports_compression"],
        "secure_renegotiation": reneg["supports_secure_renegotiation"],
        "client_renegotiation_dos": reneg["is_vulnerable_to_client_renegotiation_dos"],
        "heartbleed": outcome("heartbleed")["is_vulnerable_to_heartbleed"],
        "ccs_injection": outcome("openssl_ccs_injection")["is_vulnerable_to_ccs_injection"],
        "fallback_scsv": outcome("tls_fallback_scsv")["supports_fallback_scsv"],
        "early_data": outcome("tls_1_3_early_data")["supports_early_data"],
        "curves": [c["name"] for c in outcome("elliptic_curves")["supported_curves"] or []],
    }


def test_the_tls_listener_passes_a_sslyze_scan(
    start_proxy: StartProxy, tmp_path: Path, echo: EchoServer
) -> None:
    mesh = Mesh(tmp_path / "mesh")
    backend, frontend = mesh.workload("backend"), mesh.workload("frontend")
    side = Sidecar()
    start_proxy(inbound_config(side, backend, echo.port, peer=frontend.uri))

    result = scan(side.listener, frontend.cert, frontend.key_file, tmp_path / "sslyze.json")
    summary = summarize(result)
    print(json.dumps(summary, indent=1))
    SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")

    for version in LEGACY:
        assert summary["protocols"][version] == [], f"{version} accepted"
    suites = [s for v in MODERN for s in accepted(result, v)]
    assert {v for v in MODERN if summary["protocols"][v]} == set(MODERN)
    weak = [s["name"] for s in suites if s["key_size"] < 128 or not is_aead(s["name"])]
    assert weak == []
    assert summary["compression"] is False
    assert summary["secure_renegotiation"] is True
    assert summary["client_renegotiation_dos"] is False
    assert (summary["heartbleed"], summary["ccs_injection"]) == (False, False)
