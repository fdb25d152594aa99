"""End to end: two TLS ServiceEntries on one port, reached through a sidecar the control
plane drives, each by the SNI its client sends; the sidecar passes the TLS through (the
client verifies the upstream's own certificate), an SNI no entry has reaches no one, and a
VirtualService `tls` route sends an SNI elsewhere."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.support import free_port, run_proxy
from tests.support.pki import Leaf, Pki
from tests.support.proxy import Binary

from .harness import ControlPlaneThread, account_sidecar, wait_until, write_yaml

pytestmark = pytest.mark.envoy

#: The client sidecar's outbound address.
CLIENT_ADDRESS = "127.0.0.2"
HOSTS = ("a.example.com", "b.example.com")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.connections += 1
        try:
            with self.server.tls.wrap_socket(self.request, server_side=True) as tls:
                tls.sendall(self.server.greeting)
        except OSError:  # a client that gave up mid-handshake
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    connections = 0

    def __init__(self, leaf: Leaf, greeting: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(leaf.cert_file, leaf.key_file)
        self.greeting = greeting


class TlsServer:
    """Completes a TLS handshake with its certificate, sends `greeting` and closes."""

    def __init__(self, leaf: Leaf, greeting: bytes) -> None:
        self._server = _Server(leaf, greeting)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def connections(self) -> int:
        return self._server.connections

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def tls_entry(host: str, port: int, server: TlsServer) -> dict[str, object]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": host.split(".")[0], "namespace": "default"},
        "spec": {
            "hosts": [host],
            "resolution": "STATIC",
            "ports": [{"number": port, "name": "tls", "protocol": "TLS"}],
            "endpoints": [{"address": "127.0.0.1", "ports": {"tls": server.port}}],
        },
    }


@dataclass
class Mesh:
    #: The outbound port both entries share.
    port: int
    ca_file: Path
    servers: dict[str, TlsServer]
    config_dir: Path

    def call(self, sni: str | None) -> tuple[str, bytes]:
        """A TLS connection through the client sidecar, sending `sni` (None: no SNI): the
        DNS names of the certificate the other end presented (one the CA issued, whatever
        its name), and what it sent."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = False
        with (
            socket.create_connection((CLIENT_ADDRESS, self.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
            return ",".join(san.value.get_values_for_type(x509.DNSName)), tls.recv(100)


@pytest.fixture(scope="module", params=["envoy", "fastmesh-proxy"])
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    binary: Binary = request.param
    base = tmp_path_factory.mktemp("tls")
    pki = Pki(base / "pki")
    config_dir = base / "mesh"
    config_dir.mkdir()
    port = free_port(CLIENT_ADDRESS)
    with ExitStack() as stack:
        servers = {
            host: stack.enter_context(TlsServer(pki.issue(host), host.encode())) for host in HOSTS
        }
        write_yaml(config_dir / "mesh.yaml", *(tls_entry(h, port, s) for h, s in servers.items()))
        cp = stack.enter_context(ControlPlaneThread(config_dir))
        client = account_sidecar("client", cp.port, CLIENT_ADDRESS)
        stack.enter_context(run_proxy(client, binary=binary, workdir=base))
        mesh = Mesh(port, pki.ca_file, servers, config_dir)
        wait_until("a.example.com through the sidecar", lambda: mesh.call("a.example.com"))
        yield mesh


def test_each_sni_reaches_its_own_entrys_server(mesh: Mesh) -> None:
    for host in HOSTS:
        # the certificate is the server's own: the sidecar passed the TLS through
        assert mesh.call(host) == (host, host.encode())
    assert [mesh.servers[h].connections > 0 for h in HOSTS] == [True, True]


def test_an_unknown_sni_or_none_reaches_no_server(mesh: Mesh) -> None:
    before = {h: s.connections for h, s in mesh.servers.items()}
    for sni in ("c.example.com", None):
        with pytest.raises(OSError):  # the sidecar closes it: no filter chain matches
            mesh.call(sni)
    assert {h: s.connections for h, s in mesh.servers.items()} == before


def test_a_tls_route_sends_an_sni_to_another_entry(mesh: Mesh) -> None:
    route = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {
            "hosts": ["a.example.com"],
            "tls": [
                {
                    "match": [{"sniHosts": ["a.example.com"]}],
                    "route": [{"destination": {"host": "b.example.com"}}],
                }
            ],
        },
    }
    write_yaml(mesh.config_dir / "route.yaml", route)
    try:
        # b's server answers, with its own certificate: the client would refuse it for a
        wait_until(
            "a.example.com to reach b", lambda: mesh.call("a.example.com")[1] == b"b.example.com"
        )
        assert mesh.call("a.example.com") == ("b.example.com", b"b.example.com")
        assert mesh.call("b.example.com") == ("b.example.com", b"b.example.com")
    finally:
        (mesh.config_dir / "route.yaml").unlink()
    wait_until(
        "a.example.com to reach a again", lambda: mesh.call("a.example.com")[0] == "a.example.com"
    )
