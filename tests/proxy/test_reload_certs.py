"""Live reload follows the files a config references: rotating a certificate on disk is
applied, a bad one is rejected (logged with its field path) and the last good one keeps
serving, and fixing it applies it.

`TestWatcher` drives the proxy's watcher (`ProxyServer.check_config`, with the real
translator child) against a recording engine; the end-to-end tests need the engine to
take (and serve) a TLS listener.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from fastmesh.ca import CertificateAuthority, SpiffeId, WorkloadKey, new_workload_key
from fastmesh.proxy._server import ProxyServer, ServeOptions
from tests.support import EchoServer, ProxyProcess, run_proxy, to_yaml

from ._topology import Ports, front_config

IDENTITY = SpiffeId("cluster.local", "default", "front")
TLS_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
CERT_FIELD = (
    "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config"
    ".common_tls_context.tls_certificates[0].certificate_chain"
)


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _stat(p: ProxyProcess, name: str) -> int:
    body = httpx.get(f"{p.admin_url}/stats", params={"filter": f"^{name}$"}).text
    return int(body.split(": ")[1]) if body else -1


def _snapshot_dump(p: ProxyProcess) -> dict[str, Any]:
    dump: dict[str, Any] = httpx.get(f"{p.admin_url}/config_dump").json()["configs"][1]
    return dump


def _replace(path: Path, text: str) -> None:
    """As a rotation tool does: a sibling file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Workload:
    """One identity's key (kept across renewals) and its certificate files."""

    def __init__(self, directory: Path) -> None:
        self.ca, _ = CertificateAuthority.init(directory / "ca", IDENTITY.trust_domain)
        self.key: WorkloadKey = new_workload_key(IDENTITY)
        self.cert = directory / "cert.pem"
        self.key_file = directory / "key.pem"
        self.roots = directory / "roots.pem"
        self.key_file.write_bytes(self.key.key_pem())
        self.roots.write_bytes(self.ca.bundle.pem())

    def renew(self) -> int:
        """A new certificate for the same key, written in place; returns its serial."""
        svid = self.ca.sign_csr(self.key.csr_pem(), IDENTITY)
        _replace(self.cert, svid.chain_pem().decode())
        return int(svid.cert.serial_number)

    def tls_config(self, ports: Ports, upstream_port: int) -> dict[str, Any]:
        config = front_config(ports, upstream_port)
        config["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": TLS_TYPES + "DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": str(self.cert)},
                            "private_key": {"filename": str(self.key_file)},
                        }
                    ]
                },
            },
        }
        return config

    def served_serial(self, port: int) -> int:
        """The serial of the certificate the listener presents in a TLS handshake."""
        ctx = ssl.create_default_context(cafile=str(self.roots))
        ctx.check_hostname = False  # an SVID names a SPIFFE ID (URI SAN), not a host
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return int(x509.load_der_x509_certificate(der).serial_number)


class RecordingEngine:
    """Stands in for the engine: keeps every snapshot applied."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    def apply(self, snapshot_json: str) -> None:
        self.applied.append(json.loads(snapshot_json))

    def served_chain(self) -> str:
        chain: str = self.applied[-1]["listeners"][0]["tls"]["cert_chain_pem"]
        return chain


class TestWatcher:
    async def test_rotation_bad_certificate_and_fix(self, tmp_path: Path) -> None:
        workload = Workload(tmp_path)
        workload.renew()
        config = tmp_path / "envoy.yaml"
        config.write_text(to_yaml(workload.tls_config(Ports.fresh(), 1)))
        server = ProxyServer(ServeOptions(config_path=config))
        engine = server.engine = RecordingEngine()

        assert await server.check_config() is True  # the first load
        assert engine.served_chain() == workload.cert.read_text()
        assert await server.check_config() is None  # nothing changed
        assert len(engine.applied) == 1

        workload.renew()  # only the certificate file changes
        assert await server.check_config() is True
        assert engine.served_chain() == workload.cert.read_text()
        assert engine.applied[1]["version"] != engine.applied[0]["version"]
        os.utime(workload.key_file)  # a new stamp, the same content: re-read, not re-applied
        assert await server.check_config() is None
        assert len(engine.applied) == 2

        _replace(workload.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        assert await server.check_config() is False
        assert server.counters["server.config_reload_failure"] == 1
        assert f"{CERT_FIELD}: {workload.cert}: not a PEM certificate chain" in (
            server.last_reload_error
        )
        assert await server.check_config() is None  # not retried until a file changes
        assert len(engine.applied) == 2

        workload.renew()
        assert await server.check_config() is True
        assert engine.served_chain() == workload.cert.read_text()
        assert server.counters["server.config_reload_success"] == 3
        assert server.last_reload_error == ""

    async def test_a_missing_file_is_watched_until_it_appears(self, tmp_path: Path) -> None:
        workload = Workload(tmp_path)
        config = tmp_path / "envoy.yaml"
        config.write_text(to_yaml(workload.tls_config(Ports.fresh(), 1)))
        server = ProxyServer(ServeOptions(config_path=config))
        engine = server.engine = RecordingEngine()

        assert await server.check_config() is False  # cert.pem does not exist yet
        assert f"cannot read {workload.cert}" in server.last_reload_error
        assert await server.check_config() is None
        workload.renew()
        assert await server.check_config() is True
        assert engine.served_chain() == workload.cert.read_text()


def test_rotated_certificate_file_is_reloaded_and_a_bad_one_rejected(
    echo: EchoServer, tmp_path: Path
) -> None:
    workload = Workload(tmp_path)
    workload.renew()
    ports = Ports.fresh()
    with run_proxy(workload.tls_config(ports, echo.port), workdir=tmp_path, log_level="info") as p:
        first = _snapshot_dump(p)["version"]

        # Rotation: only the certificate file changes, the config file does not.
        workload.renew()
        _eventually(lambda: _stat(p, "server.config_reload_success") == 1)
        second = _snapshot_dump(p)["version"]
        assert second != first
        assert f"{workload.cert} changed: reloading" in p.log()

        # A broken certificate: rejected with its field path and file; the last good
        # version keeps serving.
        _replace(workload.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        _eventually(lambda: _stat(p, "server.config_reload_failure") == 1)
        assert f"{CERT_FIELD}: {workload.cert}: not a PEM certificate chain" in p.log()
        assert "[error][config]" in p.log()
        dump = _snapshot_dump(p)
        assert dump["version"] == second
        assert CERT_FIELD in dump["last_reload_error"]
        assert httpx.get(f"{p.admin_url}/ready").status_code == 200

        # Fixing the file applies it.
        workload.renew()
        _eventually(lambda: _stat(p, "server.config_reload_success") == 2)
        assert _snapshot_dump(p)["last_reload_error"] == ""
        assert _stat(p, "server.config_reload_failure") == 1


def test_the_rotated_certificate_is_served(echo: EchoServer, tmp_path: Path) -> None:
    workload = Workload(tmp_path)
    first = workload.renew()
    ports = Ports.fresh()
    with run_proxy(workload.tls_config(ports, echo.port), workdir=tmp_path) as p:
        assert workload.served_serial(ports.listener) == first
        second = workload.renew()
        _eventually(lambda: _stat(p, "server.config_reload_success") == 1)
        assert workload.served_serial(ports.listener) == second
